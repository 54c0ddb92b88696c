"""Placement data model: jobs of a workflow run and their placements on a site's partitions (aisci.slurm.site)."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field

from aisci.resources import CPU, GPU  # noqa: F401 - the classes a job runs in, named here with the model
from aisci.slurm.site import Partition, Site


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

    def seconds_on(self, partition: Partition, sites: Site) -> float:
        """Runtime on ``partition``, moving the inputs there included."""
        return self.runtime_s[self.resource_class(partition)] + sites.transfer(partition.centre).seconds(self.input_bytes)

    def fits(self, partition: Partition, sites: Site) -> bool:
        gpus = self.gpus_in(partition)
        return (
            partition.per_node(self.threads, self.mem_mb, gpus) > 0
            and self.seconds_on(partition, sites) <= partition.max_walltime_s
        )

    def cost_on(self, partition: Partition, sites: Site) -> float:
        """Price of running the job on ``partition``: core-hours, GPU-hours and moving its inputs."""
        hours = self.seconds_on(partition, sites) / 3600
        return (
            hours * (self.threads * partition.core_hour_cost + self.gpus_in(partition) * partition.gpu_hour_cost)
            + sites.transfer(partition.centre).cost(self.input_bytes)
        )


#: Where each rule may run: rule -> partition ids in order of preference. A job goes to the first
#: of its rule's partitions where it can start soonest (Slurm's rule for ``--partition a,b``).
Placement = Mapping[str, tuple[str, ...]]


def static_placement(jobs: list[Job] | tuple[Job, ...], sites: Site) -> dict[str, tuple[str, ...]]:
    """The mapping without a plan: GPU-class rules on the home GPU partitions, the rest on the home CPU
    ones (GPU-class rules too when home has no GPUs; CPU rules on the GPU nodes when home has only those)."""
    home = [p for p in sites.partitions if p.centre == sites.home]
    cpu_parts = tuple(p.id for p in home if not p.gpus) or tuple(p.id for p in home)
    gpu_parts = tuple(p.id for p in home if p.gpus) or cpu_parts
    return {job.rule: (gpu_parts if job.gpus else cpu_parts) for job in jobs}
