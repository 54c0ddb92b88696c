"""Score caches: SpliceAI and protein language model scores, once per variant and model version.

A `ScoreModel` names what scores are computed with; its ``version`` is a content hash of the
weights, reference, annotation and scoring options, so changing any of them starts a new cache and
every variant is scored again, while an unchanged model never scores a variant twice. The cache of
one model is append-only Parquet, ``<root>/<stage>/<name>@<version>/chrom=<chrom>/part-<uuid>.parquet``
(schemas `SPLICE_SCORES`, `PROTEIN_SCORES`); each part is written whole under a temporary name that
does not end in ``.parquet``, so a reader never sees half a file and a killed task loses only its
own chunk. Two tasks racing on the same variant both write it; readers keep one part's rows.

Part of the base: the germline SpliceAI stage (`aisci.splice.cached`) and the cohort store
(`aisci.cohort`) share these caches. The stages build the models and score them
(`aisci.splice.runner`, `aisci.protein.runner`) and hand their runner to `score_chunk`, the unit of
work of a Dask task or a Snakemake job, so cached values equal those of `aisci splice score` and
`aisci plm score`.
"""

from __future__ import annotations

import hashlib
import json
import logging
import re
import threading
import time
import uuid
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import quote

import pyarrow as pa
import pyarrow.compute as pc

from aisci.errors import InputError
from aisci.fileio import atomic_output, check_readable, sha256

log = logging.getLogger(__name__)

# Bump when what a scorer writes for the same inputs changes: every cache then starts afresh.
SCORER_REVISION = 1
KEY_COLUMNS = ("variant_id", "pos", "ref", "alt")
_DEVICE = re.compile(r"auto|cpu|cuda(:\d+)?")
_HASHES: dict[tuple[str, int, int, int], str] = {}  # (path, size, mtime_ns, ctime_ns) -> sha256
_PARSED: dict[tuple[str, str, str], Any] = {}  # (loader, annotation, sha256) -> parsed annotation

# --- score caches: scores/<stage>/<model_id>/chrom=<chrom>/part-<uuid>.parquet -----------------------
# Append-only and content-addressed by (variant_id, model_id). A variant scored with nothing to
# report (outside every gene, not a protein change, skipped) still gets one row with a `status`,
# so it is never scored again.  Several rows per variant: one per gene (splice) or transcript (protein).
SPLICE_SCORES = pa.schema([
    pa.field("variant_id", pa.string(), nullable=False),
    pa.field("pos", pa.int64(), nullable=False),
    pa.field("ref", pa.string(), nullable=False),
    pa.field("alt", pa.string(), nullable=False),
    pa.field("status", pa.string(), nullable=False),  # "scored" or the official tool's skip reason
    pa.field("gene", pa.string()),
    pa.field("strand", pa.string()),
    pa.field("ds_ag", pa.float32()), pa.field("ds_al", pa.float32()),
    pa.field("ds_dg", pa.float32()), pa.field("ds_dl", pa.float32()),
    pa.field("dp_ag", pa.int32()), pa.field("dp_al", pa.int32()),
    pa.field("dp_dg", pa.int32()), pa.field("dp_dl", pa.int32()),
])
PROTEIN_SCORES = pa.schema([
    pa.field("variant_id", pa.string(), nullable=False),
    pa.field("pos", pa.int64(), nullable=False),
    pa.field("ref", pa.string(), nullable=False),
    pa.field("alt", pa.string(), nullable=False),
    pa.field("status", pa.string(), nullable=False),  # "scored", "not scored" (no in-frame protein change), "intergenic"
    pa.field("gene", pa.string()),
    pa.field("transcript", pa.string()),
    pa.field("consequence", pa.string()),
    pa.field("hgvs_p", pa.string()),
    pa.field("strategy", pa.string()),
    pa.field("score", pa.float32()),                  # log p(mut) - log p(wt); lower = more damaging
])
SCORE_SCHEMAS = {"splice": SPLICE_SCORES, "protein": PROTEIN_SCORES}
STAGES = tuple(SCORE_SCHEMAS)


def variant_id(chrom: str, pos: int, ref: str, alt: str) -> str:
    """The content key of one ALT allele: ``chrom:pos:ref:alt``."""
    return f"{chrom}:{pos}:{ref}:{alt}"


def parse_variant_id(key: str) -> tuple[str, int, str, str]:
    """Inverse of `variant_id` (chromosome names may themselves hold ':' only before the last three fields)."""
    chrom, pos, ref, alt = key.rsplit(":", 3)
    return chrom, int(pos), ref, alt


def model_id(name: str, version: str) -> str:
    """The directory name of one model's score cache: ``name@version`` (version: a content hash)."""
    return f"{name}@{version}"


def check_schema(actual: pa.Schema, expected: pa.Schema, where: str) -> None:
    """Raise ValueError naming ``where`` and the first difference when ``actual`` lacks or mistypes a field."""
    for want in expected:
        idx = actual.get_field_index(want.name)
        if idx < 0:
            raise ValueError(f"{where}: missing column {want.name!r}")
        if not actual.field(idx).type.equals(want.type):
            raise ValueError(f"{where}: column {want.name!r} is {actual.field(idx).type}, expected {want.type}")


@dataclass(frozen=True)
class ScoreModel:
    """What a stage's scores are computed with; picklable, sent as is to Dask workers and Snakemake jobs.

    Attributes:
        stage: "splice" or "protein".
        name: the model's name ("spliceai-1.3.1", or the protein model's name in the model store).
        version: 12 hex digits of the SHA-256 of weights, reference, annotation and scoring options.
        options: what a worker needs to rebuild the scorer (absolute paths, distance, mask, strategy,
            batch size, device, threads) and, under "content", the hashes the version was made of;
            not part of equality (the version is).
    """

    stage: str
    name: str
    version: str
    options: dict[str, Any] = field(default_factory=dict, compare=False, hash=False)

    @property
    def model_id(self) -> str:
        """``name@version``: the directory of this model's cache."""
        return model_id(self.name, self.version)


def check_runtime(device: str, threads: int, batch_size: int) -> None:
    """The scoring options every model takes: a device spelling, torch threads and a batch size."""
    if not isinstance(device, str) or not _DEVICE.fullmatch(device):
        raise InputError(f"--device {device!r}: expected auto, cpu, cuda or cuda:N")
    if threads < 0:
        raise InputError(f"--threads {threads}: must be 0 (torch's default) or more")
    if batch_size < 1:
        raise InputError(f"--batch-size {batch_size}: must be at least 1")


def input_file(path: str | Path, option: str) -> Path:
    """An input file of a model, made absolute; the message names the option."""
    return check_readable(Path(path).expanduser(), option).resolve()


def reference_path(ref: str | Path) -> Path:
    """The reference FASTA of a model, opened once to check that it is an indexed FASTA with sequences."""
    import pysam

    path = input_file(ref, "--ref")
    try:
        with pysam.FastaFile(str(path)) as fasta:
            if not fasta.references:
                raise InputError(f"--ref {path}: no sequences")
    except (OSError, ValueError) as exc:
        raise InputError(f"--ref {path}: cannot open as an indexed FASTA ({exc})") from None
    return path


def cached_sha256(path: Path) -> str:
    """SHA-256 of a file, remembered in this process while its size, mtime and ctime stay the same."""
    st = path.stat()
    key = (str(path), st.st_size, st.st_mtime_ns, st.st_ctime_ns)
    if key not in _HASHES:
        _HASHES[key] = sha256(path)
    return _HASHES[key]


def unchanged_sha256(path: Path, recorded: str, name: str) -> str:
    """SHA-256 of ``path`` (e.g. a model's annotation), which must still be ``recorded``: the one its model version was made from.

    Raises:
        InputError: naming ``name`` when the file changed since.
    """
    sha = cached_sha256(path)
    if sha != recorded:
        raise InputError(f"{name}: the annotation changed since the model version was computed; run again")
    return sha


def parsed_once(load: Callable[[str], Any], spec: str, sha: str) -> Any:
    """``load(spec)`` once per process and content: a model checks its annotation parses, its runner reuses it."""
    key = (f"{load.__module__}.{load.__qualname__}", spec, sha)
    if key not in _PARSED:
        _PARSED[key] = load(spec)
    return _PARSED[key]


def model_version(stage: str, content: dict[str, Any]) -> str:
    """12 hex digits of the SHA-256 of what a model's scores depend on (and `SCORER_REVISION`)."""
    text = json.dumps({"stage": stage, "revision": SCORER_REVISION, **content}, sort_keys=True)
    return hashlib.sha256(text.encode()).hexdigest()[:12]


# ---------------------------------------------------------------------------------------- runners
_LOADED: dict[str, Any] = {}  # model_id -> loaded scorer of this process
MAX_LOADED = 2  # models kept loaded per process (a worker scoring splice then protein keeps both)
_LOCK = threading.Lock()


def loaded_runner(model: ScoreModel, runner_class: Callable[[dict[str, Any]], Any]) -> Any:
    """The scorer of ``model`` in this process, built from its options by ``runner_class`` on first use.

    A runner has a ``lock`` and ``score(chrom, variants) -> table of the stage's schema``; the stage
    packages provide them (`aisci.splice.runner.SpliceRunner`, `aisci.protein.runner.ProteinRunner`).
    """
    with _LOCK:
        runner = _LOADED.get(model.model_id)
        if runner is None:
            if not model.options:
                raise InputError(f"{model.model_id}: no scoring options; build the model with splice_model() "
                                 "or protein_model()")
            if model.options.get("threads"):
                import torch

                torch.set_num_threads(model.options["threads"])
            runner = runner_class(model.options)
            while len(_LOADED) >= MAX_LOADED:  # a long-lived worker meeting a new version drops the oldest
                _LOADED.pop(next(iter(_LOADED)))
            _LOADED[model.model_id] = runner
        return runner



# ----------------------------------------------------------------------------------------- cache
class ScoreCache:
    """The append-only score caches under ``root`` (the store's ``scores/`` or a cache shared by stores)."""

    def __init__(self, root: str | Path) -> None:
        self.root = Path(root)

    def model_dir(self, model: ScoreModel) -> Path:
        """``<root>/<stage>/<model_id>``."""
        if model.stage not in SCORE_SCHEMAS:
            raise ValueError(f"unknown stage {model.stage!r}: expected one of {', '.join(STAGES)}")
        return self.root / model.stage / model.model_id

    def chrom_dir(self, model: ScoreModel, chrom: str) -> Path:
        """The partition of one chromosome (hive ``chrom=`` with '/' and '%' URI-escaped, as pyarrow reads it)."""
        return self.model_dir(model) / f"chrom={quote(chrom, safe=_SAFE)}"

    def parts(self, model: ScoreModel, chrom: str | None = None) -> list[Path]:
        """The complete part files of a model (of one chromosome), oldest name order."""
        if chrom is not None:
            return sorted(self.chrom_dir(model, chrom).glob("part-*.parquet"))
        return sorted(self.model_dir(model).glob("chrom=*/part-*.parquet"))

    def write(self, model: ScoreModel, chrom: str, table: pa.Table) -> Path:
        """Add one part of scores of ``chrom`` (the stage's schema; absent nullable columns as nulls) atomically."""
        import pyarrow.parquet as pq

        want = SCORE_SCHEMAS[model.stage]
        for f in want:  # absent nullable columns are null (e.g. no gene for a variant outside every gene)
            if f.nullable and f.name not in table.column_names:
                table = table.append_column(f, pa.nulls(table.num_rows, f.type))
        check_schema(table.schema, want, f"{model.stage} scores of {chrom}")
        table = table.select(want.names).cast(want)
        info = self.model_dir(model) / "model.json"
        if not info.exists():  # provenance: what the version hash was computed from
            with atomic_output(info, suffix=".part") as tmp:
                tmp.write_text(json.dumps({"stage": model.stage, "name": model.name, "version": model.version,
                                           "options": model.options}, indent=2, sort_keys=True) + "\n")
        path = self.chrom_dir(model, chrom) / f"part-{uuid.uuid4().hex}.parquet"
        with atomic_output(path, suffix=".part") as tmp:
            pq.write_table(table, tmp)
        return path

    def read(self, model: ScoreModel, chrom: str | None = None, columns: list[str] | None = None) -> pa.Table:
        """Every cached row of a model (of one chromosome); a variant found in several parts keeps one part's rows."""
        import pyarrow.parquet as pq

        want = SCORE_SCHEMAS[model.stage]
        columns = list(columns or want.names)
        parts = self.parts(model, chrom)
        if not parts:
            return want.empty_table().select(columns)
        tables = []
        for i, part in enumerate(parts):
            t = pq.read_table(part, columns=list(dict.fromkeys(["variant_id", *columns])))
            check_schema(t.schema, want.empty_table().select(t.column_names).schema, str(part))
            tables.append(t.append_column("_part", pa.array([i] * t.num_rows, pa.int32())))
        table = pa.concat_tables(tables)
        vid, part = table.column("variant_id").combine_chunks(), table.column("_part").combine_chunks()
        keys = pc.unique(vid)
        first_part = pc.take(part, pc.index_in(keys, value_set=vid))  # parts are in order: first hit = lowest part
        keep = pc.equal(part, pc.take(first_part, pc.index_in(vid, value_set=keys)))
        return table.filter(keep).select(columns)

    def keys(self, model: ScoreModel, chrom: str) -> pa.Array:
        """The distinct variant_ids cached for a model on one chromosome."""
        return _keys(self.parts(model, chrom))

    def count(self, model: ScoreModel) -> int:
        """Distinct variants cached for a model (one chromosome in memory at a time)."""
        return sum(len(_keys(sorted(d.glob("part-*.parquet")))) for d in sorted(self.model_dir(model).glob("chrom=*")))

    def missing(self, model: ScoreModel, variants: Iterable[pa.RecordBatch | pa.Table]) -> Iterator[pa.Table]:
        """The distinct variants with no cached row for ``model``, one table per run of a chromosome.

        Args:
            model: the model.
            variants: batches (or tables) with at least chrom, variant_id, pos, ref and alt columns, grouped by
                chromosome as `CohortStore.variant_batches` yields them (a chromosome that comes back later
                is handled correctly but may yield a variant twice). Duplicates are dropped.

        Yields:
            Non-empty tables (chrom, variant_id, pos, ref, alt) of one chromosome each, sorted by position.
            Only the cached keys and the missing variants of the current chromosome are held in memory.
        """
        current: str | None = None
        cached = pa.array([], pa.string())
        pending: list[pa.Table] = []
        for batch in variants:
            for chrom, rows in _by_chrom(batch):
                if chrom != current:
                    if pending:
                        yield _distinct(current, pending)
                    current, cached, pending = chrom, self.keys(model, chrom), []
                rows = rows.filter(pc.invert(pc.is_in(rows.column("variant_id"), value_set=cached)))
                if rows.num_rows:
                    pending.append(rows)
        if pending:
            yield _distinct(current, pending)

    def best(self, model: ScoreModel, chrom: str | None = None) -> pa.Table:
        """One row per cached variant: the gene with the largest delta score, or the most damaging transcript.

        Returns:
            splice: variant_id, splice_gene, ds_ag, ds_al, ds_dg, ds_dl, ds_max, splice_model, splice_model_version;
            protein: variant_id, protein_gene, protein_transcript, hgvs_p, protein_score, protein_model,
            protein_model_version. Sorted by variant_id; a variant with nothing scored has null scores.
        """
        t = self.read(model, chrom)
        if model.stage == "splice":
            ds_max = pc.max_element_wise(*(t.column(c) for c in _DS), skip_nulls=True).cast(pa.float32())
            t = t.append_column("ds_max", ds_max)
            t = t.sort_by([("variant_id", "ascending", "at_end"), ("ds_max", "descending", "at_end")])
            names = {"gene": "splice_gene", **{c: c for c in _DS}, "ds_max": "ds_max"}
        else:
            t = t.sort_by([("variant_id", "ascending", "at_end"), ("score", "ascending", "at_end")])
            names = {"gene": "protein_gene", "transcript": "protein_transcript", "hgvs_p": "hgvs_p",
                     "score": "protein_score"}
        vid = t.column("variant_id").combine_chunks()
        t = t.take(pc.index_in(pc.unique(vid), value_set=vid))
        out = t.select(["variant_id", *names]).rename_columns(["variant_id", *names.values()])
        n = out.num_rows
        out = out.append_column(f"{model.stage}_model", pa.array([model.name] * n, pa.string()))
        return out.append_column(f"{model.stage}_model_version", pa.array([model.version] * n, pa.string()))


_SAFE = "!#$&'()*+,:;=?@[]^{|}~"
_KEYS = pa.schema([("chrom", pa.string()), ("variant_id", pa.string()), ("pos", pa.int64()), ("ref", pa.string()),
                   ("alt", pa.string())])
_DS = ("ds_ag", "ds_al", "ds_dg", "ds_dl")


def _keys(parts: list[Path]) -> pa.Array:
    import pyarrow.parquet as pq

    chunks = [c for p in parts for c in pq.read_table(p, columns=["variant_id"]).column("variant_id").chunks]
    return pc.unique(pa.chunked_array(chunks, pa.string()).combine_chunks())


def _by_chrom(batch: pa.RecordBatch | pa.Table) -> Iterator[tuple[str, pa.Table]]:
    """(chrom, rows) runs of a batch; a batch of one chromosome (the usual case) is not split."""
    table = pa.Table.from_batches([batch]) if isinstance(batch, pa.RecordBatch) else batch
    if table.num_rows == 0:
        return
    table = table.select(["chrom", *KEY_COLUMNS]).cast(_KEYS)
    chroms = pc.unique(table.column("chrom")).to_pylist()
    if len(chroms) == 1:
        yield chroms[0], table
        return
    for chrom in chroms:
        yield chrom, table.filter(pc.equal(table.column("chrom"), chrom))


def _distinct(chrom: str | None, tables: list[pa.Table]) -> pa.Table:
    t = pa.concat_tables(tables)
    vid = t.column("variant_id").combine_chunks()
    t = t.take(pc.index_in(pc.unique(vid), value_set=vid))
    t = t.sort_by([("pos", "ascending"), ("variant_id", "ascending")])
    return t.set_column(0, "chrom", pa.array([chrom] * t.num_rows, pa.string())).combine_chunks()


# --------------------------------------------------------------------------------------- scoring
def score_chunk(model: ScoreModel, chrom: str, variants: pa.Table, cache_root: str | Path,
                runner_class: Callable[[dict[str, Any]], Any]) -> int:
    """Score ``variants`` of one chromosome with ``model`` and add them to the cache as one part.

    The unit of work of a Dask task or a Snakemake job. The model is loaded once per process (kept
    by model_id); calls from several threads of one process take turns. Every variant gets at least
    one row, "scored" or the reason it was not (so it is not scored again).

    Args:
        model: from `splice_model` / `protein_model` (its options say how to rebuild the scorer).
        chrom: the chromosome of every variant.
        variants: a table with variant_id, pos, ref, alt (as `ScoreCache.missing` yields).
        cache_root: the ScoreCache root.
        runner_class: builds the stage's scorer from the model's options (see `loaded_runner`).

    Returns:
        The number of distinct variants scored.

    Raises:
        InputError: the model has no options (a model rebuilt from a cache directory name cannot score).
    """
    if isinstance(variants, pa.RecordBatch):
        variants = pa.Table.from_batches([variants])
    if variants.num_rows == 0:
        return 0
    vid = variants.column("variant_id").combine_chunks()
    variants = variants.take(pc.index_in(pc.unique(vid), value_set=vid))
    runner = loaded_runner(model, runner_class)
    t0 = time.perf_counter()
    with runner.lock:
        table = runner.score(chrom, variants)
    ScoreCache(cache_root).write(model, chrom, table)
    log.info("%s: %d variants of %s scored in %.1f s", model.model_id, variants.num_rows, chrom,
             time.perf_counter() - t0)
    return variants.num_rows
