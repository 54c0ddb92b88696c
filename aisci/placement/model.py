"""Placement data model: sites (centres, partitions, transfers), jobs of a workflow run, placements."""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass, field

from aisci.resources import CPU, GPU  # noqa: F401 - the classes a job runs in, named here with the model


@dataclass(frozen=True)
class Partition:
    """One partition of one centre. Sizes are per node; costs per core-hour and GPU-hour."""

    centre: str
    name: str  # the Slurm partition name
    nodes: int
    cores: int
    mem_mb: int
    gpus: int = 0
    gpu_model: str | None = None
    max_walltime_s: float = math.inf
    core_hour_cost: float = 0.0
    gpu_hour_cost: float = 0.0
    queue_wait_s: float = 0.0  # expected wait before its first job starts (the backlog)
    slurm_cluster: str | None = None  # sbatch --clusters, for a partner centre reached by multi-cluster Slurm

    @property
    def id(self) -> str:
        """``centre/name``: unique across centres."""
        return f"{self.centre}/{self.name}"

    @property
    def total_cores(self) -> int:
        return self.nodes * self.cores

    @property
    def total_gpus(self) -> int:
        return self.nodes * self.gpus

    def per_node(self, threads: int, mem_mb: int, gpus: int) -> int:
        """How many jobs of this shape fit on one node at once (0: it fits nowhere here)."""
        fits = [self.cores // max(threads, 1), self.mem_mb // max(mem_mb, 1)]
        if gpus:
            fits.append(self.gpus // gpus)
        return max(0, min(fits))

    def slots(self, threads: int, mem_mb: int, gpus: int) -> int:
        """How many jobs of this shape the partition runs at once."""
        return self.nodes * self.per_node(threads, mem_mb, gpus)


@dataclass(frozen=True)
class Transfer:
    """Moving job inputs from the home centre to another centre: price and bandwidth."""

    cost_per_gb: float = 0.0
    gbit_s: float = math.inf

    def seconds(self, nbytes: float) -> float:
        return 0.0 if math.isinf(self.gbit_s) else nbytes * 8 / (self.gbit_s * 1e9)

    def cost(self, nbytes: float) -> float:
        return self.cost_per_gb * nbytes / 1e9


@dataclass(frozen=True)
class Sites:
    """Every partition of every centre; the data lives at ``home``."""

    home: str
    partitions: tuple[Partition, ...]
    transfers: Mapping[str, Transfer] = field(default_factory=dict)  # centre -> from home to it

    def partition(self, pid: str) -> Partition:
        for p in self.partitions:
            if p.id == pid:
                return p
        raise KeyError(pid)

    def transfer(self, centre: str) -> Transfer:
        """Transfer from home to ``centre`` (free and instant at home)."""
        if centre == self.home:
            return Transfer()
        return self.transfers.get(centre, Transfer())


@dataclass(frozen=True)
class Job:
    """One job of the workflow's DAG, with what it asks for and how long it is expected to run.

    ``runtime_s`` has a "cpu" entry for every job and also a "gpu" entry for a job of a GPU-class
    rule (one that declares ``gpu``): the rule can then run on a GPU partition with its GPUs, or on
    a CPU partition without them.
    """

    id: int
    rule: str
    wildcards: str  # the Slurm plugin's form: values joined by "_" ("" without wildcards)
    threads: int
    mem_mb: int
    gpus: int  # declared GPUs (0: a CPU-class rule)
    deps: tuple[int, ...] = ()
    input_bytes: int = 0  # bytes of the source files it derives from (moved to another centre)
    runtime_s: Mapping[str, float] = field(default_factory=dict)
    group: str | None = None

    @property
    def classes(self) -> tuple[str, ...]:
        return (GPU, CPU) if self.gpus else (CPU,)

    def gpus_in(self, partition: Partition) -> int:
        """GPUs the job takes on ``partition``: its declared GPUs where there are GPUs, else none."""
        return self.gpus if self.gpus and partition.gpus else 0

    def resource_class(self, partition: Partition) -> str:
        return GPU if self.gpus_in(partition) else CPU

    def seconds_on(self, partition: Partition, sites: Sites) -> float:
        """Runtime on ``partition``, moving the inputs there included."""
        return self.runtime_s[self.resource_class(partition)] + sites.transfer(partition.centre).seconds(self.input_bytes)

    def fits(self, partition: Partition, sites: Sites) -> bool:
        gpus = self.gpus_in(partition)
        return (
            partition.per_node(self.threads, self.mem_mb, gpus) > 0
            and self.seconds_on(partition, sites) <= partition.max_walltime_s
        )

    def cost_on(self, partition: Partition, sites: Sites) -> float:
        """Price of running the job on ``partition``: core-hours, GPU-hours and moving its inputs."""
        hours = self.seconds_on(partition, sites) / 3600
        return (
            hours * (self.threads * partition.core_hour_cost + self.gpus_in(partition) * partition.gpu_hour_cost)
            + sites.transfer(partition.centre).cost(self.input_bytes)
        )


#: Where each rule may run: rule -> partition ids in order of preference. A job goes to the first
#: of its rule's partitions where it can start soonest (Slurm's rule for ``--partition a,b``).
Placement = Mapping[str, tuple[str, ...]]


def static_placement(jobs: list[Job] | tuple[Job, ...], sites: Sites) -> dict[str, tuple[str, ...]]:
    """The mapping without a plan: GPU-class rules on the home GPU partitions, the rest on the home CPU
    ones (GPU-class rules too when home has no GPUs; CPU rules on the GPU nodes when home has only those)."""
    home = [p for p in sites.partitions if p.centre == sites.home]
    cpu_parts = tuple(p.id for p in home if not p.gpus) or tuple(p.id for p in home)
    gpu_parts = tuple(p.id for p in home if p.gpus) or cpu_parts
    return {job.rule: (gpu_parts if job.gpus else cpu_parts) for job in jobs}
