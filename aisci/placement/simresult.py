"""Results of a cluster simulation: every job's run, per-partition figures, utilisation over time."""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from typing import Any

from aisci.placement.model import Job
from aisci.slurm.site import Site


@dataclass(frozen=True)
class JobRun:
    """Where and when one job ran: ``node`` is its node's index in the partition, and ``cores``,
    ``mem_mb`` and ``gpus`` what it held there."""

    job_id: int
    rule: str
    wildcards: str
    partition: str  # partition id, centre/name
    resource_class: str  # "cpu" or "gpu"
    ready_s: float
    start_s: float
    end_s: float
    node: int
    cores: int
    mem_mb: int
    gpus: int

    @property
    def wait_s(self) -> float:
        return self.start_s - self.ready_s


@dataclass(frozen=True)
class PartitionStats:
    """What one partition did over [0, makespan]."""

    partition: str
    jobs: int
    core_seconds: float
    gpu_seconds: float
    core_utilisation: float
    gpu_utilisation: float
    utilisation: float  # the GPU one for a partition with GPUs, else the core one
    mean_wait_s: float
    cost: float
    total_cores: int
    total_gpus: int


@dataclass(frozen=True)
class SimResult:
    """The outcome of :func:`simulate`: every job's run and per-partition and overall figures."""

    makespan_s: float
    runs: tuple[JobRun, ...]
    partitions: tuple[PartitionStats, ...]  # in sites order, unused partitions included
    mean_utilisation: float  # mean of ``utilisation`` over every partition of the sites
    mean_wait_s: float
    max_wait_s: float
    cost: float

    def stats(self, partition_id: str) -> PartitionStats:
        """Figures of one partition. Raises KeyError for an unknown partition id."""
        for s in self.partitions:
            if s.partition == partition_id:
                return s
        raise KeyError(partition_id)

    def timeline(self, partition_id: str, step_s: float | None = None) -> tuple[list[float], list[float]]:
        """Busy fraction of a partition's primary resource (GPUs if it has any, else cores) over time.

        Args:
            partition_id: ``centre/name``.
            step_s: None for the exact step function; else the mean over bins of this width.

        Returns:
            ``(times_s, fractions)`` of equal length, for a post-step plot: ``fractions[i]`` holds
            from ``times_s[i]`` to ``times_s[i + 1]``. Times start at 0 and end at the makespan,
            where the fraction is 0.

        Raises:
            KeyError: unknown partition id.
            ValueError: ``step_s`` not positive.
        """
        stats = self.stats(partition_id)
        gpu = stats.total_gpus > 0
        total = stats.total_gpus if gpu else stats.total_cores
        delta: dict[float, int] = {}
        for r in self.runs:
            if r.partition == partition_id:
                used = r.gpus if gpu else r.cores
                if used and r.end_s > r.start_s:
                    delta[r.start_s] = delta.get(r.start_s, 0) + used
                    delta[r.end_s] = delta.get(r.end_s, 0) - used
        times, fracs, busy = [0.0], [0.0], 0
        for t in sorted(delta):
            busy += delta[t]
            if t == times[-1]:
                fracs[-1] = busy / total
            else:
                times.append(t)
                fracs.append(busy / total)
        if times[-1] < self.makespan_s:
            times.append(self.makespan_s)
            fracs.append(0.0)
        if step_s is None:
            return times, fracs
        if step_s <= 0:
            raise ValueError(f"step_s must be positive, got {step_s}")
        return _binned(times, fracs, self.makespan_s, step_s)

    def rule_table(self) -> list[dict[str, Any]]:
        """One row per (rule, partition): jobs, mean wait and mean runtime, sorted by rule then partition."""
        acc: dict[tuple[str, str], list[float]] = {}
        for r in self.runs:
            row = acc.setdefault((r.rule, r.partition), [0, 0.0, 0.0])
            row[0] += 1
            row[1] += r.wait_s
            row[2] += r.end_s - r.start_s
        return [
            {"rule": rule, "partition": pid, "jobs": int(n), "mean_wait_s": w / n, "mean_runtime_s": d / n}
            for (rule, pid), (n, w, d) in sorted(acc.items())
        ]

    def as_dict(self) -> dict[str, Any]:
        """A JSON-friendly summary: overall figures and per-partition stats (no per-job runs)."""
        return {
            "jobs": len(self.runs),
            "makespan_s": self.makespan_s,
            "makespan_h": self.makespan_s / 3600,
            "mean_utilisation": self.mean_utilisation,
            "mean_wait_s": self.mean_wait_s,
            "max_wait_s": self.max_wait_s,
            "cost": self.cost,
            "partitions": [asdict(s) for s in self.partitions],
        }


def _binned(times: list[float], fracs: list[float], end: float, step: float) -> tuple[list[float], list[float]]:
    """Time-weighted mean of a post-step function over bins [k·step, (k+1)·step) ∩ [0, end)."""
    nbins = math.ceil(end / step) if end > 0 else 0
    out_t, out_f = [], []
    i = 0
    for k in range(nbins):
        lo, hi = k * step, min((k + 1) * step, end)
        if hi <= lo:  # rounding can leave an empty last bin
            break
        area = 0.0
        while i + 1 < len(times) and times[i + 1] <= lo:
            i += 1
        j = i
        while j < len(times) and times[j] < hi:
            seg_hi = times[j + 1] if j + 1 < len(times) else hi
            area += fracs[j] * (min(seg_hi, hi) - max(times[j], lo))
            j += 1
        out_t.append(lo)
        out_f.append(area / (hi - lo))
    out_t.append(end)
    out_f.append(0.0)
    return out_t, out_f


def summarise(jobs: Sequence[Job], sites: Site, runs: tuple[JobRun, ...], where: list[int]) -> SimResult:
    """Per-partition and overall figures of the runs (``where``: each job's partition index)."""
    parts = sites.partitions
    makespan = max((r.end_s for r in runs), default=0.0)
    acc = [[0, 0.0, 0.0, 0.0, 0.0] for _ in parts]  # jobs, core-s, gpu-s, wait, cost
    for job, run, pi in zip(jobs, runs, where):
        a = acc[pi]
        a[0] += 1
        a[1] += run.cores * (run.end_s - run.start_s)
        a[2] += run.gpus * (run.end_s - run.start_s)
        a[3] += run.wait_s
        a[4] += job.cost_on(parts[pi], sites)
    stats = []
    for p, (count, core_s, gpu_s, wait, cost) in zip(parts, acc):
        core_u = core_s / (p.total_cores * makespan) if makespan > 0 and p.total_cores else 0.0
        gpu_u = gpu_s / (p.total_gpus * makespan) if makespan > 0 and p.total_gpus else 0.0
        mean_wait = wait / count if count else 0.0
        utilisation = gpu_u if p.gpus else core_u
        stats.append(
            PartitionStats(p.id, int(count), core_s, gpu_s, core_u, gpu_u, utilisation, mean_wait, cost,
                           p.total_cores, p.total_gpus)
        )
    waits = [r.wait_s for r in runs]
    return SimResult(
        makespan_s=makespan,
        runs=runs,
        partitions=tuple(stats),
        mean_utilisation=sum(s.utilisation for s in stats) / len(stats) if stats else 0.0,
        mean_wait_s=sum(waits) / len(waits) if waits else 0.0,
        max_wait_s=max(waits, default=0.0),
        cost=sum(s.cost for s in stats),
    )
