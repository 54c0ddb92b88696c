"""The simulator on real runs as benchmarks/placement/reality.py rebuilds them (group jobs from the DAG)."""

from __future__ import annotations

import importlib.util
from types import SimpleNamespace

from aisci.placement.model import Job
from aisci.slurm.site import Partition, Site
from tests.conftest import REPO

spec = importlib.util.spec_from_file_location("reality", REPO / "benchmarks/placement/reality.py")
reality = importlib.util.module_from_spec(spec)
spec.loader.exec_module(reality)


def rule_job(i, rule, deps=(), gpus=0):
    return Job(id=i, rule=rule, wildcards=str(i), threads=1, mem_mb=100, gpus=gpus, deps=tuple(deps))


def slurm_job(rule, where, elapsed, cpus=2, gpus=0, start=1):
    cluster, partition = where.split("/")
    return SimpleNamespace(rule=rule, where=where, cluster=cluster, partition=partition, state="COMPLETED",
                           job_id=f"{rule}-{start}-{where}", start=start, end=start + elapsed, elapsed_s=elapsed,
                           alloc_cpus=cpus, req_mem=2**30, gpus=gpus)


def test_group_members_connected_in_the_dag_become_one_slurm_job_per_sample():
    # two samples: check_reads -> align_reads (group align), then call_group (group calls) -> context (own job)
    jobs = []
    for s in range(2):
        b = 4 * s
        jobs += [rule_job(b, "check_reads"), rule_job(b + 1, "align_reads", [b]), rule_job(b + 2, "call_group", [b + 1]),
                 rule_job(b + 3, "annotate_context", [b + 2], gpus=1)]
    groups = {"check_reads": "align", "align_reads": "align", "call_group": "calls"}
    measured = [slurm_job("group:align", "home/cpu", 30), slurm_job("group:align", "home/cpu", 50),
                slurm_job("group:calls", "partner/cpu", 10), slurm_job("group:calls", "partner/cpu", 10),
                slurm_job("annotate_context", "partner/gpu", 4, cpus=1, gpus=1, start=1),
                slurm_job("annotate_context", "home/gpu", 6, cpus=1, gpus=1, start=2)]
    sites = Site(home="home", partitions=tuple(
        Partition(centre=c, name=n, nodes=1, cores=2, mem_mb=8000, gpus=2 if n == "gpu" else 0, slurm_cluster=c)
        for c in ("home", "partner") for n in ("cpu", "gpu")))
    sim, placement, assignment, sim_kinds, real_kinds = reality.simulator_view(jobs, groups, measured, sites)
    assert sim_kinds == real_kinds == {"group:align": 2, "group:calls": 2, "annotate_context": 2}
    assert placement == {"group:align": ("home/cpu",), "group:calls": ("partner/cpu",),
                         "annotate_context": ("partner/gpu", "home/gpu")}
    by_kind = {}
    for j in sim:
        by_kind.setdefault(j.rule, []).append(j)
    align, calls, context = by_kind["group:align"][0], by_kind["group:calls"][0], by_kind["annotate_context"][0]
    assert align.runtime_s == {"cpu": 40} and align.threads == 2 and align.mem_mb == 1024 and align.deps == ()
    assert calls.deps == (align.id,) and context.deps == (calls.id,) and context.gpus == 1
    # a kind that ran on two partitions: one job dealt to each, with its runtime there
    contexts = by_kind["annotate_context"]
    assert [assignment[j.id] for j in contexts] == ["partner/gpu", "home/gpu"]
    assert [j.runtime_s["gpu"] for j in contexts] == [4, 6]
    # align 0-40 and 40-80 (2 cores each, on 2), calls 40-50 / 80-90, context 50-54 / 90-96
    assert reality.simulated(sim, placement, sites, 0.0, 0.0, assignment)["makespan_s"] == 96
    # each dependency step 3 s later: the second sample's calls 83-93, its context 96-102
    assert reality.simulated(sim, placement, sites, 3.0, 0.0, assignment)["makespan_s"] == 102
    # no job waits behind a blocked higher one: backfill passes change nothing
    assert reality.simulated(sim, placement, sites, 3.0, 30.0, assignment)["makespan_s"] == 102
    # Slurm's routing model places the jobs itself: one sample's align and calls on each centre's CPUs
    # (40 + 10 s), both contexts (their mean, 5 s) on home's 2 GPUs: done at 55 s
    routed = reality.routing_prediction(sim, sites)
    assert routed == {"makespan_s": 55, "busy_s": {"home/cpu": 50, "partner/cpu": 50, "home/gpu": 10}}
