"""Where reanalysis runs: a `distributed` LocalCluster, an existing scheduler, or dask-jobqueue workers on Slurm.

On Slurm two kinds of worker join one scheduler: CPU workers (VCF ingest) in the CPU partition
and GPU workers in the GPU partition, started with ``--resources GPU=1`` so that model tasks,
submitted with ``resources={"GPU": 1}``, land on them and nowhere else. Without GPU workers
(a laptop, a CPU-only cluster) model tasks run on any worker.
"""

from __future__ import annotations

import contextlib
import logging
from dataclasses import dataclass, field
from typing import Any, Iterator

from aisci.errors import InputError, ToolError

log = logging.getLogger(__name__)

GPU_RESOURCE = "GPU"
# A cluster started here skips Dask's statistical profiler (a stack sample of the running task every
# 10 ms), polls worker memory once a second instead of ten times, and ticks its event loops (the
# "unresponsive loop" check) twice a second instead of fifty times. Measured on 2 cores: an idle
# 2-worker LocalCluster used 11 % of a core, 2.4 % with these; on ingest tasks the workers' background
# threads took 3.3 ms of CPU per 45 ms sample, 1.6 ms with these. The dashboard's profile page stays empty.
WORKER_CONFIG = {"distributed.worker.profile.enabled": False, "distributed.admin.system-monitor.gil.enabled": False,
                 "distributed.worker.memory.monitor-interval": "1s", "distributed.admin.tick.interval": "500ms",
                 "distributed.admin.system-monitor.interval": "2s"}


@dataclass(frozen=True)
class SlurmWorkers:
    """The Slurm jobs that host Dask workers (one worker process per job)."""

    cpu_partition: str = "cpu"
    cpu_jobs: int = 2
    cpu_cores: int = 1
    cpu_memory: str = "4GB"
    gpu_partition: str | None = "gpu"
    gpu_jobs: int = 1
    gpu_cores: int = 1
    gpu_memory: str = "8GB"
    account: str | None = None
    walltime: str = "04:00:00"
    log_directory: str | None = None
    extra_directives: list[str] = field(default_factory=list)

    def check(self) -> None:
        """Raise InputError for counts or sizes no Slurm job can have."""
        for name in ("cpu_jobs", "cpu_cores", "gpu_cores"):
            if getattr(self, name) < 1:
                raise InputError(f"--slurm-{name.replace('_', '-')} must be at least 1, got {getattr(self, name)}")
        if self.gpu_jobs < 0:
            raise InputError(f"--slurm-gpu-jobs must be 0 or more, got {self.gpu_jobs}")


@contextlib.contextmanager
def open_client(scheduler: str | None = None, workers: int = 2, threads_per_worker: int = 1,
                slurm: SlurmWorkers | None = None, dashboard: str = ":0",
                start_timeout: float = 600.0) -> Iterator[Any]:
    """A connected `distributed.Client`; the cluster it started (if any) is closed on exit.

    Args:
        scheduler: address of an existing scheduler (``tcp://host:8786``): join it, start nothing.
        workers: LocalCluster worker processes (when neither ``scheduler`` nor ``slurm``).
        threads_per_worker: threads per local worker process.
        slurm: start the workers as Slurm jobs with dask-jobqueue instead.
        dashboard: dashboard address of a cluster started here (``:0`` = any free port).
        start_timeout: seconds to wait for the Slurm worker jobs to connect.

    Yields:
        The client.

    Raises:
        InputError: an unreachable scheduler, or dask-jobqueue missing for ``slurm``.
        ToolError: Slurm worker jobs that did not connect within ``start_timeout``.
    """
    import dask
    from distributed import Client, LocalCluster

    if scheduler:
        try:
            client = Client(scheduler, timeout="20s")
        except (OSError, TimeoutError, ValueError) as exc:
            raise InputError(f"--scheduler {scheduler}: cannot connect ({exc})") from None
        try:
            yield client
        finally:
            client.close()
        return
    if slurm is not None:
        slurm.check()
        cluster = _slurm_cluster(slurm, dashboard)
    else:
        if workers < 1:
            raise InputError(f"--workers must be at least 1, got {workers}")
        with dask.config.set(WORKER_CONFIG):  # read by the scheduler and nannies, handed to the workers
            cluster = LocalCluster(n_workers=workers, threads_per_worker=threads_per_worker, processes=True,
                                   dashboard_address=dashboard, silence_logs=logging.ERROR)
    try:
        client = Client(cluster)
        try:
            if slurm is not None:
                want = slurm.cpu_jobs + slurm.gpu_jobs
                log.info("waiting for %d Slurm worker jobs (%d CPU, %d GPU) to start", want, slurm.cpu_jobs,
                         slurm.gpu_jobs)
                try:
                    client.wait_for_workers(want, timeout=start_timeout)
                except TimeoutError:
                    raise ToolError(f"{want} Slurm worker jobs did not connect within {start_timeout:.0f} s "
                                    "(see squeue and the worker logs)") from None
            yield client
        finally:
            client.close()
    finally:
        cluster.close()


def _slurm_cluster(slurm: SlurmWorkers, dashboard: str) -> Any:
    """A dask-jobqueue SLURMCluster with CPU worker jobs plus GPU worker jobs on one scheduler."""
    try:
        from dask_jobqueue import SLURMCluster
    except ImportError:  # pragma: no cover - a dependency of aisci
        raise InputError("--slurm needs dask-jobqueue (pip install dask-jobqueue)") from None
    # a worker job reads its Dask configuration from its environment
    prologue = [f"export DASK_{key.upper().replace('.', '__').replace('-', '_')}={value}"
                for key, value in WORKER_CONFIG.items()]
    common: dict[str, Any] = dict(processes=1, walltime=slurm.walltime, account=slurm.account,
                                  job_script_prologue=prologue,
                                  log_directory=slurm.log_directory, scheduler_options={"dashboard_address": dashboard})
    cluster = SLURMCluster(queue=slurm.cpu_partition, cores=slurm.cpu_cores, memory=slurm.cpu_memory,
                           job_extra_directives=list(slurm.extra_directives), job_name="aisci-dask-cpu", **common)
    cluster.scale(jobs=slurm.cpu_jobs)
    if slurm.gpu_jobs and slurm.gpu_partition:
        # A second kind of job on the same scheduler: the cluster's worker spec is a dict of
        # name -> job class + options (distributed.SpecCluster); adding entries starts more jobs.
        options = dict(cluster.new_spec["options"])
        options.update(queue=slurm.gpu_partition, cores=slurm.gpu_cores, memory=slurm.gpu_memory,
                       job_name="aisci-dask-gpu",
                       job_extra_directives=[*slurm.extra_directives, "--gres=gpu:1"],
                       worker_extra_args=["--resources", f"{GPU_RESOURCE}=1"])
        for i in range(slurm.gpu_jobs):
            cluster.worker_spec[f"gpu-{i}"] = {"cls": cluster.job_cls, "options": options}
        cluster.sync(cluster._correct_state)
    log.info("Slurm job script of the CPU workers:\n%s", cluster.job_script())
    return cluster


def gpu_workers(client: Any) -> int:
    """How many connected workers advertise the GPU resource."""
    info = client.scheduler_info(n_workers=-1)  # all workers (the default lists only the first few)
    return sum(1 for w in info.get("workers", {}).values() if w.get("resources", {}).get(GPU_RESOURCE))


def model_resources(client: Any) -> dict[str, float] | None:
    """``{"GPU": 1}`` when GPU workers exist (model tasks go only there), else None (any worker)."""
    return {GPU_RESOURCE: 1} if gpu_workers(client) else None
