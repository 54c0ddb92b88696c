"""Tests for aisci.placement.baselines: Slurm's multi-cluster routing, HEFT, the lower bound, perturbation,
and the plan that keeps the better of the ILP and HEFT."""

import random
import statistics

import pytest

from aisci.placement.baselines import best_plan, earliest_start, heft, lower_bound, perturbed, simulate_heft
from aisci.placement.ilp import plan
from aisci.placement.model import Job, static_placement
from aisci.placement.simulate import simulate
from aisci.slurm.site import Partition, Site, Transfer


def part(name, nodes=1, cores=4, mem_mb=1000, gpus=0, centre="home", **kw):
    return Partition(centre=centre, name=name, nodes=nodes, cores=cores, mem_mb=mem_mb, gpus=gpus, **kw)


def job(id, rule="r", threads=1, mem_mb=100, gpus=0, deps=(), cpu=10.0, gpu=None, input_bytes=0, wildcards=""):
    runtime = {"cpu": cpu} if gpu is None else {"cpu": cpu, "gpu": gpu}
    return Job(id=id, rule=rule, wildcards=wildcards or str(id), threads=threads, mem_mb=mem_mb, gpus=gpus,
               deps=tuple(deps), input_bytes=input_bytes, runtime_s=runtime)


TWO = Site("home", (part("cpu", cores=2, centre="home"), part("cpu", cores=2, centre="partner")),
           {"partner": Transfer(gbit_s=8)})


def test_earliest_start_sends_each_ready_job_where_it_starts_first():
    # 4 one-core jobs of 10 s on two 2-core clusters: two at home, two at the partner, all at t = 0
    res = earliest_start([job(i) for i in range(4)], TWO)
    assert res.makespan_s == 10
    assert sorted(r.partition for r in res.runs) == ["home/cpu"] * 2 + ["partner/cpu"] * 2


def test_earliest_start_pays_the_transfer_it_did_not_foresee():
    # 1 GB moved at 8 Gbit/s = 1 s more at the partner; routing does not see it, the run pays it
    res = earliest_start([job(i, input_bytes=10**9) for i in range(3)], TWO)
    ends = sorted(r.end_s for r in res.runs)
    assert ends == [10, 10, 11]


def test_earliest_start_commits_at_submission_and_never_moves():
    # a long job fills home; the partner opens only after 100 s (its backlog). The next job is
    # ready at 0: home frees at 50, the partner opens at 100, so it queues at home and starts at 50.
    sites = Site("home", (part("cpu", cores=1), part("cpu", cores=1, centre="partner", queue_wait_s=100)), {})
    res = earliest_start([job(0, cpu=50), job(1, cpu=5)], sites)
    runs = {r.job_id: r for r in res.runs}
    assert runs[1].partition == "home/cpu" and runs[1].start_s == 50


def test_earliest_start_keeps_gpu_rules_on_gpu_partitions_of_any_centre():
    sites = Site("home", (part("cpu", cores=4), part("gpu", cores=4, gpus=1, centre="partner")), {})
    jobs = [job(0, rule="g", gpus=1, cpu=100, gpu=10), job(1, rule="g", gpus=1, cpu=100, gpu=10)]
    res = earliest_start(jobs, sites)
    assert [r.partition for r in res.runs] == ["partner/gpu", "partner/gpu"] and res.makespan_s == 20


def test_heft_finds_the_partition_that_finishes_first():
    # a GPU-class job: 100 s on CPUs, 10 s on the one GPU; the second waits for the GPU (20 s) rather
    # than run 100 s on CPUs
    sites = Site("home", (part("cpu", cores=4), part("gpu", cores=4, gpus=1)), {})
    jobs = [job(0, rule="g", gpus=1, cpu=100, gpu=10), job(1, rule="g", gpus=1, cpu=100, gpu=10)]
    h = heft(jobs, sites)
    assert h.assignment == {0: "home/gpu", 1: "home/gpu"} and h.makespan_s == 20
    assert simulate_heft(jobs, sites, h).makespan_s == 20


def test_heft_ranks_the_long_chain_first():
    # a chain a -> b (60 s) and three independent 30 s jobs on one 1-core partition plus a 2-core one
    sites = Site("home", (part("small", cores=1), part("big", cores=2)), {})
    jobs = [job(0, rule="a", cpu=30), job(1, rule="b", deps=[0], cpu=30)] + [job(i, rule="c", cpu=30) for i in (2, 3, 4)]
    h = heft(jobs, sites)
    assert h.nice["a"] < h.nice["c"]
    assert simulate_heft(jobs, sites, h).makespan_s == 60  # the bound: the chain


def test_lower_bound_is_the_chain_or_the_work():
    sites = Site("home", (part("a", cores=2),), {})
    chain = [job(0, cpu=10), job(1, deps=[0], cpu=20)]
    b = lower_bound(chain, sites)
    assert (b.critical_path_s, b.makespan_s) == (30, 30)
    wide = [job(i, cpu=10) for i in range(8)]  # 80 core-seconds on 2 cores
    b = lower_bound(wide, sites)
    assert b.work_s == pytest.approx(40) and b.makespan_s == pytest.approx(40)


def test_lower_bound_counts_memory_and_the_partition_backlog():
    sites = Site("home", (part("a", cores=4, mem_mb=1000, queue_wait_s=5),), {})
    b = lower_bound([job(i, mem_mb=1000, cpu=10) for i in range(3)], sites)  # one at a time: memory
    assert b.work_s == pytest.approx(30) and b.critical_path_s == 15


def test_earliest_start_sees_the_room_earlier_submissions_left():
    # four jobs ready at once, room for all four at home: none is sent to the partner (and its transfer)
    sites = Site("home", (part("cpu", cores=4), part("cpu", cores=4, centre="partner")), {"partner": Transfer(gbit_s=8)})
    res = earliest_start([job(i, input_bytes=10**10) for i in range(4)], sites)
    assert {r.partition for r in res.runs} == {"home/cpu"} and res.makespan_s == 10


def test_lower_bound_counts_each_resource_on_its_own():
    # a CPU job and a GPU job side by side on one node: neither resource is full twice over
    sites = Site("home", (part("n", cores=2, gpus=2, mem_mb=4000),), {})
    jobs = [job(0, rule="c", cpu=3600), job(1, rule="g", gpus=2, cpu=36000, gpu=3600)]
    assert simulate(jobs, sites, {"c": ("home/n",), "g": ("home/n",)}).makespan_s == 3600
    assert lower_bound(jobs, sites).makespan_s <= 3600 + 1e-6
    # cores-heavy beside memory-heavy
    sites = Site("home", (part("n", cores=4, mem_mb=4000),), {})
    jobs = [job(0, rule="a", threads=3, mem_mb=1000, cpu=3600), job(1, rule="b", threads=1, mem_mb=3000, cpu=3600)]
    assert lower_bound(jobs, sites).makespan_s <= 3600 + 1e-6


def test_lower_bound_of_a_rule_whose_jobs_move_different_amounts():
    # one job moves 100 GB to the partner (100 s at 8 Gbit/s), its twin nothing: 10 s is feasible
    sites = Site("home", (part("cpu", cores=1), part("cpu", cores=1, centre="partner")), {"partner": Transfer(gbit_s=8)})
    jobs = [job(0, cpu=10, input_bytes=100 * 10**9), job(1, cpu=10)]
    assert earliest_start(jobs, sites).makespan_s == 10
    assert lower_bound(jobs, sites).makespan_s <= 10 + 1e-6


def random_dag(n, seed):
    rng = random.Random(seed)
    jobs = []
    for i in range(n):
        deps = rng.sample(range(i), k=min(i, rng.randint(0, 2)))
        gpus = 1 if rng.random() < 0.2 else 0
        cpu = rng.uniform(5, 100)
        jobs.append(job(i, rule=f"r{i % 7}{'g' if gpus else ''}", threads=rng.choice([1, 2]), gpus=gpus, deps=deps,
                        cpu=cpu, gpu=cpu / 8 if gpus else None, input_bytes=rng.choice([0, 10**9])))
    return jobs


SITES = Site("home", (part("cpu", nodes=2, cores=4), part("gpu", cores=4, gpus=1),
                      part("cpu", nodes=2, cores=4, centre="partner", queue_wait_s=20),
                      part("gpu", cores=4, gpus=2, centre="partner", queue_wait_s=40)),
             {"partner": Transfer(gbit_s=1)})


@pytest.mark.parametrize("seed", range(5))
def test_no_schedule_beats_the_bound(seed):
    jobs = random_dag(120, seed)
    bound = lower_bound(jobs, SITES).makespan_s
    runs = {
        "static": simulate(jobs, SITES, static_placement(jobs, SITES)),
        "earliest": earliest_start(jobs, SITES),
        "heft": simulate_heft(jobs, SITES, heft(jobs, SITES)),
    }
    for name, res in runs.items():
        assert res.makespan_s >= bound * (1 - 1e-9), name
        assert {r.job_id for r in res.runs} == {j.id for j in jobs}
        finished = {r.job_id: r.end_s for r in res.runs}
        for j, r in zip(jobs, res.runs):
            assert r.start_s >= max((finished[d] for d in j.deps), default=0.0) - 1e-9, (name, j.id)


def test_perturbation_is_reproducible_and_log_normal():
    jobs = [job(i, cpu=100.0, gpu=10.0, gpus=1) for i in range(2000)]
    a, b = perturbed(jobs, 0.3, 7), perturbed(jobs, 0.3, 7)
    assert [j.runtime_s for j in a] == [j.runtime_s for j in b]
    assert perturbed(jobs, 0.3, 8)[0].runtime_s != a[0].runtime_s
    import math

    logs = [math.log(j.runtime_s["cpu"] / 100) for j in a]
    assert abs(statistics.mean(logs)) < 0.03 and abs(statistics.stdev(logs) - 0.3) < 0.03
    assert all(j.runtime_s["gpu"] * 10 == pytest.approx(j.runtime_s["cpu"]) for j in a)  # one factor per job


def layered_dag(samples, seed):
    """A pipeline per sample: align (2 threads) -> call -> score (GPU class), every rule one stage."""
    rng = random.Random(seed)
    jobs = []
    for s in range(samples):
        a = rng.uniform(20, 60)
        base = 3 * s
        jobs += [job(base, rule="align", threads=2, cpu=a, wildcards=f"s{s}"),
                 job(base + 1, rule="call", deps=[base], cpu=a / 2, wildcards=f"s{s}"),
                 job(base + 2, rule="score", gpus=1, deps=[base + 1], cpu=a, gpu=a / 10, wildcards=f"s{s}",
                     input_bytes=10**9)]
    return jobs


def test_best_plan_keeps_the_faster_of_ilp_and_heft():
    jobs = layered_dag(40, 3)
    ilp = plan(jobs, SITES, time_limit_s=4)
    chosen, runs = best_plan(jobs, SITES, ilp)
    assert set(runs) == {"ilp", "heft"}
    faster = min(runs.values(), key=lambda r: r.makespan_s).makespan_s
    again = simulate(jobs, SITES, chosen.placement, chosen.assignment(jobs), chosen.nice)
    assert again.makespan_s == pytest.approx(faster)
    if chosen.explicit is not None:
        assert chosen.status == "heft" and sum(d.jobs for d in chosen.decisions) == len(jobs)
        assert all(d.why.startswith("HEFT") for d in chosen.decisions)
    else:
        assert chosen is ilp


def test_a_heft_plan_writes_and_reads_back_every_jobs_partition(tmp_path):
    """The ILP keeps CPU jobs off GPU nodes; HEFT uses their cores too and wins. plan.json then
    holds each job's partition, which `aisci simulate-cluster --plan` replays exactly."""
    from aisci.placement.plan import job_key, read_plan, write_plan

    sites = Site("home", (part("cpu", cores=1), part("gpu", cores=8, gpus=1)), {})
    jobs = [job(i, rule="w", cpu=60, wildcards=f"s{i}") for i in range(8)]
    chosen, runs = best_plan(jobs, sites, plan(jobs, sites, time_limit_s=4))
    assert runs["heft"].makespan_s < runs["ilp"].makespan_s and chosen.explicit is not None
    write_plan(chosen, jobs, sites, tmp_path)
    counts, nice, explicit = read_plan(tmp_path / "plan.json")
    assert explicit == {job_key(j): chosen.explicit[j.id] for j in jobs}
    assert sum(counts["w"].values()) == 8 and nice == chosen.nice
    assert "HEFT" in (tmp_path / "plan.tsv").read_text()
