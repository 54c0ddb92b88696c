"""`aisci reanalyze`: ingest a manifest's VCFs into the cohort store and score what no model has scored yet, on Dask.

Two phases, each resumable:

1. Ingest. Every sample whose VCF is new or changed (by content fingerprint) is parsed on a
   worker into staged Parquet files; the driver commits them shard by shard (a shard = up to
   ``--shard-size`` samples) into the store, updating the per-variant summaries incrementally.
   A killed run loses at most the shards not yet committed; a malformed VCF fails only its sample.
2. Score. For each stage, the variants of the store with no (variant, model version) entry in the
   score cache are scored in chunks: model tasks ask for the ``GPU`` resource when GPU workers
   exist. Each chunk lands as one complete cache file, so a killed run re-scores nothing finished.

The same functions run without Dask (``client=None``) for `aisci cohort ingest` / `score`, which
the Snakemake workflow calls once per shard.
"""

from __future__ import annotations

import argparse
import ctypes
import logging
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Iterator

from aisci import options
from aisci.errors import AisciError, InputError

log = logging.getLogger(__name__)

SCORE_CHUNK = 500  # variants per scoring task (a model loads once per worker, not per task)
INFLIGHT_PER_WORKER = 8  # bounded submission: enough queued that workers do not idle while the driver commits


@dataclass(frozen=True)
class Failure:
    """A sample that could not be ingested, or a scoring chunk that failed, and why."""

    what: str
    error: str


@dataclass
class Outcome:
    """What one run did: counts per phase and every failure."""

    ingested: list[str] = field(default_factory=list)
    up_to_date: int = 0
    scored: dict[str, int] = field(default_factory=dict)
    cached: dict[str, int] = field(default_factory=dict)
    gpu_tasks: dict[str, int] = field(default_factory=dict)  # scoring tasks that ran on a GPU worker
    tasks: dict[str, int] = field(default_factory=dict)
    failures: list[Failure] = field(default_factory=list)
    seconds: dict[str, float] = field(default_factory=dict)

    def text(self) -> str:
        """The end-of-run summary, failures listed last."""
        lines = [f"samples ingested: {len(self.ingested)}, already in the store and unchanged: {self.up_to_date}"]
        for stage in self.scored:
            lines.append(f"{stage}: {self.scored[stage]} variants scored now, {self.cached[stage]} taken from the "
                         f"score cache; {self.tasks[stage]} scoring tasks, {self.gpu_tasks[stage]} on GPU workers")
        lines.append("time: " + ", ".join(f"{k} {v:.1f} s" for k, v in self.seconds.items()))
        if self.failures:
            lines.append(f"FAILED ({len(self.failures)}):")
            lines += [f"  {f.what}: {f.error}" for f in self.failures]
        return "\n".join(lines)


# ---------------------------------------------------------------------------------------------- tasks
M_TRIM_THRESHOLD, M_MMAP_THRESHOLD = -1, -3  # mallopt parameters (glibc malloc.h)
_MALLOC_TUNED = False


def shard_task(root: str, items: list[tuple[str, str]]) -> tuple[list[str], list[Failure]]:
    """Worker side of ingest: stage a shard's samples one by one, then commit them together.

    Commits from many workers serialise on the store's lock, so the driver does no ingest work
    and a shard is the unit a killed run resumes from. When the shard's commit fails, its samples are
    committed one by one: a sample that cannot be committed fails alone, never the good ones beside it.

    Returns:
        The names committed, and a Failure per sample that could not be read or committed.
    """
    from aisci.cohort.store import CohortStore

    _one_arrow_thread()
    keep_freed_memory()
    store = CohortStore(root)
    staged, failures = [], []
    for name, vcf in items:
        try:
            staged.append(store.stage_sample(name, Path(vcf)))
        except AisciError as exc:
            failures.append(Failure(f"sample {name}", str(exc) if vcf in str(exc) else f"{vcf}: {exc}"))
        except Exception as exc:  # a bug or a broken file system must not stop the other samples either
            log.exception("staging %s failed", name)
            failures.append(Failure(f"sample {name}", f"unexpected {type(exc).__name__}: {exc} ({vcf})"))
    if not staged:
        return [], failures
    try:
        store.commit(staged)
        return [s.name for s in staged], failures
    except Exception:  # noqa: BLE001 - which sample is at fault is found below, one commit each
        log.warning("committing the shard failed: committing its %d samples one by one", len(staged),
                    exc_info=True)
    committed = []
    for s in staged:
        try:
            store.commit([s])
            committed.append(s.name)
        except Exception as exc:  # noqa: BLE001 - reported as this sample's failure
            store.discard(s)
            why = str(exc) if isinstance(exc, AisciError) else f"unexpected {type(exc).__name__}: {exc}"
            failures.append(Failure(f"sample {s.name}", f"{s.vcf}: cannot be committed: {why}"))
    return committed, failures


def keep_freed_memory() -> None:
    """Let glibc keep freed memory for reuse instead of returning it to the kernel at once.

    Staging a sample allocates and frees arrays of a few MiB; by default glibc maps each with mmap and
    unmaps it when freed, so every sample faults its memory in again: ~2,000 page faults and a fifth of
    the time of a 20,000-record sample (measured: 10 ms of system time per sample, 3 ms with this).
    Allocations below 64 MiB come from the heap, and up to 128 MiB of free heap stays mapped. Peak memory
    is unchanged (the same arrays, reused). A no-op where the C library is not glibc.
    """
    global _MALLOC_TUNED
    if _MALLOC_TUNED or not sys.platform.startswith("linux"):
        return
    _MALLOC_TUNED = True
    try:
        libc = ctypes.CDLL("libc.so.6")
        libc.mallopt(M_MMAP_THRESHOLD, 64 << 20)
        libc.mallopt(M_TRIM_THRESHOLD, 128 << 20)
    except (OSError, AttributeError):  # not glibc
        pass


def _one_arrow_thread() -> None:
    """Let Arrow use one thread in this process: staging is sequential, the parallelism is one process per
    shard (Dask workers, Snakemake jobs), and Arrow's pool of one thread per core only contends with them."""
    import pyarrow as pa

    if pa.cpu_count() != 1:
        pa.set_cpu_count(1)
        pa.set_io_thread_count(1)


def score_task(model: Any, chrom: str, variants: Any, cache_root: str) -> Any:
    """Worker side of scoring: one chunk into one cache file; (count, ran on a GPU worker), or a Failure."""
    from aisci.cohort.cluster import GPU_RESOURCE
    from aisci.cohort.scorers import RUNNERS
    from aisci.scorecache import score_chunk

    try:
        n = score_chunk(model, chrom, variants, cache_root, RUNNERS[model.stage])
    except Exception as exc:
        log.exception("scoring %s on %s failed", model.stage, chrom)
        return Failure(f"{model.stage} chunk of {len(variants)} variants on {chrom}", f"{type(exc).__name__}: {exc}")
    on_gpu = False
    if "distributed" in sys.modules:  # else not on a Dask worker (`aisci cohort score`)
        from distributed import get_worker

        try:
            on_gpu = bool(get_worker().state.total_resources.get(GPU_RESOURCE))
        except ValueError:
            pass
    return n, on_gpu


# ------------------------------------------------------------------------------------------- running
Call = tuple[str, tuple[Any, ...], dict[str, Any]]  # (label naming the sample or chunk, args, submit options)
POLL_S = 5.0
STALE_TEMP_S = 3600.0
WORKER_TIMEOUT_S = 600.0


def _results(client: Any, fn: Callable[..., Any], calls: Iterator[Call], total: int | None, desc: str,
             progress: bool, worker_timeout: float = WORKER_TIMEOUT_S) -> Iterator[Any]:
    """Run ``fn(*args)`` for every call, yielding results (or Failures naming the call) as they finish.

    On Dask a bounded number of tasks is in flight. When no worker able to run the waiting tasks
    has been connected for ``worker_timeout`` seconds (Slurm worker jobs past their wall time,
    killed for memory, a lost node), the waiting and the remaining calls fail instead of hanging.
    """
    from tqdm import tqdm

    bar = tqdm(total=total, desc=desc, unit="task", disable=not progress or total == 0, file=sys.stderr,
               mininterval=1.0)
    try:
        if client is None:
            for _, args, _ in calls:
                result = fn(*args)
                bar.update(1)
                yield result
            return
        from distributed import wait

        limit = max(1, INFLIGHT_PER_WORKER * len(client.scheduler_info(n_workers=-1)["workers"]))
        calls = iter(calls)
        inflight: dict[Any, tuple[str, Any]] = {}
        exhausted, stalled_since = False, None
        while True:
            while not exhausted and len(inflight) < limit:
                call = next(calls, None)
                if call is None:
                    exhausted = True
                    break
                label, args, options = call
                inflight[client.submit(fn, *args, pure=False, **options)] = (label, options.get("resources"))
            if not inflight:
                return
            try:
                done = wait(list(inflight), timeout=POLL_S, return_when="FIRST_COMPLETED").done
            except TimeoutError:
                done = set()
            for future in done:
                label, _ = inflight.pop(future)
                bar.update(1)
                yield _done(future, label)
            if done or _can_run(client, [r for _, r in inflight.values()]):
                stalled_since = None
                continue
            stalled_since = stalled_since or time.monotonic()
            if time.monotonic() - stalled_since < worker_timeout:
                continue
            why = (f"no worker able to run it for {worker_timeout:.0f} s (workers lost: wall time, memory, a node "
                   "failure?)")
            for future, (label, _) in inflight.items():
                future.cancel()
                yield Failure(label, why)
            for label, _, _ in calls:
                yield Failure(label, "not run: " + why)
            return
    finally:
        bar.close()


def _can_run(client: Any, needs: list[Any]) -> bool:
    """Whether a connected worker has what the waiting tasks need (any worker, or one with their resources)."""
    workers = client.scheduler_info(n_workers=-1)["workers"].values()
    for resources in needs:
        if any(all(w.get("resources", {}).get(k, 0) >= v for k, v in (resources or {}).items()) for w in workers):
            return True
    return False


def _done(future: Any, label: str) -> Any:
    try:
        return future.result()
    except Exception as exc:  # KilledWorker: the task's worker died (out of memory, killed) too often
        return Failure(label, f"{type(exc).__name__}: {exc}")


def ingest(store: Any, samples: list[Any], shard_size: int, client: Any = None, progress: bool = True,
           outcome: Outcome | None = None, worker_timeout: float = WORKER_TIMEOUT_S) -> Outcome:
    """Bring the store up to date with ``samples``: one task per shard of new or changed samples, each committed.

    Args:
        store: the `CohortStore`.
        samples: manifest rows (`aisci.cohort.manifest.Sample`).
        shard_size: samples per commit.
        client: a `distributed.Client`, or None to run in this process.
        progress: show a progress bar on stderr.
        outcome: add to this outcome (a new one by default).
        worker_timeout: seconds without a worker before the waiting samples fail.

    Returns:
        The outcome, with the ingested samples and the failures.
    """
    outcome = outcome or Outcome()
    t0 = time.perf_counter()
    todo = [s for s, stale in zip(samples, store.stale((s.name, s.vcf) for s in samples), strict=True) if stale]
    outcome.up_to_date += len(samples) - len(todo)
    log.info("%d of %d samples to ingest (%d already in the store, unchanged)", len(todo), len(samples),
             len(samples) - len(todo))
    shards = [todo[i:i + shard_size] for i in range(0, len(todo), shard_size)]

    def label(shard: list[Any]) -> str:
        names = shard[0].name if len(shard) == 1 else f"{shard[0].name} .. {shard[-1].name}"
        return f"shard of {len(shard)} sample{'s' if len(shard) > 1 else ''} ({names})"

    calls = ((label(sh), (str(store.root), [(s.name, str(s.vcf)) for s in sh]), {}) for sh in shards)
    for result in _results(client, shard_task, calls, len(shards), "ingest", progress, worker_timeout):
        if isinstance(result, Failure):  # the whole shard was lost (worker killed, no workers left)
            outcome.failures.append(result)
        else:
            outcome.ingested += result[0]
            outcome.failures += result[1]
    outcome.seconds["ingest"] = time.perf_counter() - t0
    return outcome


def score(store: Any, models: list[Any], client: Any = None, progress: bool = True, chunk: int = SCORE_CHUNK,
          outcome: Outcome | None = None, worker_timeout: float = WORKER_TIMEOUT_S) -> Outcome:
    """Score every variant of the store that has no cache entry for each model.

    Args:
        store: the `CohortStore`.
        models: `aisci.scorecache.ScoreModel` per stage.
        client: a `distributed.Client`, or None to run in this process.
        progress: show a progress bar on stderr.
        chunk: variants per task.
        outcome: add to this outcome.
        worker_timeout: seconds without a worker able to score before the waiting chunks fail.

    Returns:
        The outcome with per-stage counts of variants scored now and found in the cache.
    """
    import numpy as np

    from aisci.cohort.cluster import model_resources
    from aisci.scorecache import ScoreCache

    outcome = outcome or Outcome()
    cache = ScoreCache(store.root / "scores")
    options = {}
    if client is not None:
        resources = model_resources(client)
        options = {"resources": resources} if resources else {}
        log.info("model tasks run on %s", "GPU workers" if resources else "any worker (no GPU workers)")
    for model in models:
        t0 = time.perf_counter()
        todo = [0]

        def chunks(model: Any = model) -> Iterator[Call]:
            for chrom, table in _missing(cache, model, store):
                todo[0] += table.num_rows
                for i in range(0, table.num_rows, chunk):
                    # a copy, not a slice: a pickled slice carries its whole parent table to the worker
                    part = table.take(np.arange(i, min(i + chunk, table.num_rows)))
                    pos = part.column("pos")
                    label = (f"{model.stage} chunk {chrom}:{pos[0].as_py()}-{pos[-1].as_py()} "
                             f"({part.num_rows} variants)")
                    yield label, (model, chrom, part, str(cache.root)), options

        calls = chunks()
        done = tasks = on_gpu = 0
        for result in _results(client, score_task, calls, None, f"score {model.stage}", progress, worker_timeout):
            if isinstance(result, Failure):
                outcome.failures.append(result)
            else:
                done += result[0]
                tasks += 1
                on_gpu += result[1]
        outcome.scored[model.stage] = done
        outcome.tasks[model.stage], outcome.gpu_tasks[model.stage] = tasks, on_gpu
        outcome.cached[model.stage] = sum(store.variant_counts().values()) - todo[0]
        outcome.seconds[f"score {model.stage}"] = time.perf_counter() - t0
        log.info("%s (%s): %d variants scored, %d taken from the cache", model.stage, model.model_id, done,
                 outcome.cached[model.stage])
    return outcome


def _missing(cache: Any, model: Any, store: Any) -> Iterator[tuple[str, Any]]:
    """(chrom, table of unscored variants) per chromosome, streamed from the store's variant summaries."""
    import pyarrow as pa

    def batches() -> Iterator[Any]:
        for chrom, batch in store.variant_batches():
            yield pa.RecordBatch.from_arrays(
                [pa.array([chrom] * batch.num_rows, pa.string()), batch.column("variant_id"), batch.column("pos"),
                 batch.column("ref"), batch.column("alt")], names=["chrom", "variant_id", "pos", "ref", "alt"])

    for table in cache.missing(model, batches()):
        if table.num_rows:
            yield table.column("chrom")[0].as_py(), table


# ------------------------------------------------------------------------------------------------ CLI
def add_model_arguments(p: argparse.ArgumentParser) -> None:
    """Options that pick the reference, annotation and models of the scoring stages."""
    g = p.add_argument_group("scoring models")
    g.add_argument("--ref", help="reference FASTA the VCFs were called against (plain or bgzip, with .fai)")
    g.add_argument("--annotation", help="gene annotation: GFF3/GTF (both stages) or grch37/grch38 (splice only)")
    options.add_splice_weights(g)
    g.add_argument("--distance", type=int, default=50, help="SpliceAI max distance to a gained/lost site (default 50)")
    g.add_argument("--mask", action="store_true", help="SpliceAI masked scores")
    g.add_argument("--model", help="protein language model name in the model store")
    options.add_model_store(g)
    g.add_argument("--strategy", choices=["masked-marginals", "wt-marginals", "pseudo-ppl"], default="masked-marginals",
                   help="protein substitution scoring (default masked-marginals)")
    options.add_device(g)
    options.add_threads(g, "torch threads per scoring task")


def build_models(args: argparse.Namespace, stages: list[str]) -> list[Any]:
    """The ScoreModel of each stage, every input checked now, before any worker starts."""
    from aisci.protein.runner import protein_model
    from aisci.splice.runner import splice_model

    models = []
    for stage in stages:
        if not args.ref or not args.annotation:
            raise InputError(f"--stage {stage} needs --ref and --annotation")
        if stage == "splice":
            models.append(splice_model(args.ref, args.annotation, weights=args.splice_weights, distance=args.distance,
                                       mask=args.mask, device=args.device, threads=args.threads))
        else:
            if not args.model:
                raise InputError("--stage protein needs --model (a model in the model store)")
            models.append(protein_model(args.ref, args.annotation, args.model, args.model_store,
                                        strategy=args.strategy, device=args.device, threads=args.threads))
    return models


def stages_of(text: str) -> list[str]:
    """``splice|protein|all|none`` as a list of stages."""
    return {"all": ["splice", "protein"], "none": [], "splice": ["splice"], "protein": ["protein"]}[text]


def open_store(path: str) -> Any:
    """Open (or create) the store and remove what an interrupted run left unreferenced."""
    from aisci.cohort.store import CohortStore

    store = CohortStore(path, create=True)
    removed = store.collect_garbage()
    # temporaries of score-cache files a killed run was writing (hidden, never read); an hour old at
    # least, so that a concurrent writer's are left alone
    stale = time.time() - STALE_TEMP_S
    for tmp in (store.root / "scores").glob("**/.*.tmp.part"):
        if tmp.stat().st_mtime < stale:
            tmp.unlink(missing_ok=True)
            removed.append(tmp)
    if removed:
        log.info("removed %d files left by an interrupted run", len(removed))
    return store


def _quiet_cluster(record: logging.LogRecord) -> bool:
    """Keep errors of the Dask cluster's loggers, drop their chatter."""
    return record.levelno >= logging.ERROR or not record.name.startswith(("distributed", "dask_jobqueue", "bokeh"))


def configure_parser(p: argparse.ArgumentParser) -> None:
    """Options of `aisci reanalyze`."""
    p.add_argument("--manifest", required=True, help="TSV with a header 'sample<TAB>vcf', one row per sample")
    p.add_argument("--store", required=True, help="the cohort store folder (created if missing)")
    p.add_argument("--stage", choices=["splice", "protein", "all", "none"], default="all",
                   help="which AI scores to bring up to date (default all)")
    p.add_argument("--shard-size", type=int, default=50, help="samples committed together (default 50)")
    where = p.add_argument_group("where it runs (default: a LocalCluster on this machine)")
    where.add_argument("--workers", type=int, default=2, help="LocalCluster worker processes (default 2)")
    where.add_argument("--scheduler", help="join an existing Dask scheduler (tcp://host:8786) instead")
    where.add_argument("--slurm", action="store_true", help="start the workers as Slurm jobs (dask-jobqueue)")
    where.add_argument("--slurm-cpu-partition", default="cpu", help="partition of the CPU workers (default cpu)")
    where.add_argument("--slurm-cpu-jobs", type=int, default=2, help="CPU worker jobs (default 2)")
    where.add_argument("--slurm-cpu-memory", default="4GB", help="memory per CPU worker job (default 4GB)")
    where.add_argument("--slurm-gpu-partition", default="gpu", help="partition of the GPU workers (default gpu)")
    where.add_argument("--slurm-gpu-jobs", type=int, default=1, help="GPU worker jobs, one GPU each (default 1; 0: none)")
    where.add_argument("--slurm-gpu-memory", default="16GB", help="memory per GPU worker job (default 16GB)")
    where.add_argument("--slurm-account", help="Slurm account of the worker jobs")
    where.add_argument("--slurm-walltime", default="04:00:00", help="wall time of each worker job (default 04:00:00)")
    where.add_argument("--slurm-log-directory", help="folder for the worker jobs' logs")
    p.add_argument("--score-chunk", type=int, default=SCORE_CHUNK,
                   help=f"variants per scoring task (default {SCORE_CHUNK})")
    p.add_argument("--worker-timeout", type=float, default=WORKER_TIMEOUT_S,
                   help=f"fail the waiting tasks after this many seconds with no worker able to run them "
                        f"(default {WORKER_TIMEOUT_S:.0f})")
    p.add_argument("--no-progress", action="store_true", help="no progress bars")
    add_model_arguments(p)


def run(args: argparse.Namespace) -> int:
    """Check everything, then ingest and score on Dask; exit 1 when any sample or chunk failed."""
    from aisci.cohort.cluster import SlurmWorkers, open_client
    from aisci.cohort.manifest import read_manifest

    if args.scheduler and args.slurm:
        raise InputError("--scheduler and --slurm exclude each other")
    if args.shard_size < 1 or args.score_chunk < 1:
        raise InputError("--shard-size and --score-chunk must be at least 1")
    samples = read_manifest(args.manifest)
    models = build_models(args, stages_of(args.stage))
    slurm = None
    if args.slurm:
        slurm = SlurmWorkers(cpu_partition=args.slurm_cpu_partition, cpu_jobs=args.slurm_cpu_jobs,
                             cpu_memory=args.slurm_cpu_memory, gpu_partition=args.slurm_gpu_partition,
                             gpu_jobs=args.slurm_gpu_jobs, gpu_memory=args.slurm_gpu_memory,
                             account=args.slurm_account, walltime=args.slurm_walltime,
                             log_directory=args.slurm_log_directory)
        slurm.check()
    if not getattr(args, "verbose", False):
        # the cluster's own INFO/WARNING lines (connections, workers starting and stopping) drown the progress
        # bars; distributed sets levels on its child loggers itself, so filter at our handlers instead
        for handler in logging.getLogger().handlers:
            handler.addFilter(_quiet_cluster)
    progress = not args.no_progress
    with open_client(args.scheduler, workers=args.workers, slurm=slurm) as client:
        print(f"Dask dashboard: {client.dashboard_link}", file=sys.stderr, flush=True)
        store = open_store(args.store)
        outcome = ingest(store, samples, args.shard_size, client, progress, worker_timeout=args.worker_timeout)
        outcome = score(store, models, client, progress, chunk=args.score_chunk, outcome=outcome,
                        worker_timeout=args.worker_timeout)
    print(outcome.text())
    print(f"store: {store.root} ({store.n_samples()} samples)")
    return 1 if outcome.failures else 0
