"""Tests for aisci.placement.simulate: hand-checked schedules, utilisation, cost, errors and a large random DAG."""

import json
import random
from collections import defaultdict

import pytest

from aisci.placement.model import Job, static_placement
from aisci.slurm.site import Partition, Site, Transfer
from aisci.placement.simplot import plot_utilisation
from aisci.placement.simulate import simulate


def part(name, nodes=1, cores=4, mem_mb=1000, gpus=0, centre="home", **kw):
    return Partition(centre=centre, name=name, nodes=nodes, cores=cores, mem_mb=mem_mb, gpus=gpus, **kw)


def sites_of(*parts, transfers=None):
    return Site(home="home", partitions=tuple(parts), transfers=transfers or {})


def job(id, rule="r", threads=1, mem_mb=100, gpus=0, deps=(), cpu=10.0, gpu=None, input_bytes=0, wildcards=""):
    runtime = {"cpu": cpu} if gpu is None else {"cpu": cpu, "gpu": gpu}
    return Job(
        id=id, rule=rule, wildcards=wildcards, threads=threads, mem_mb=mem_mb, gpus=gpus,
        deps=tuple(deps), input_bytes=input_bytes, runtime_s=runtime,
    )


def starts(result):
    return {r.job_id: r.start_s for r in result.runs}


def test_chain_runs_back_to_back():
    sites = sites_of(part("a"))
    jobs = [job(0, cpu=10), job(1, deps=[0], cpu=20), job(2, deps=[1], cpu=30)]
    res = simulate(jobs, sites, {"r": ("home/a",)})
    # 0: 0-10, 1: 10-30, 2: 30-60; each starts the moment it is ready
    assert res.makespan_s == 60
    assert [(r.ready_s, r.start_s, r.end_s) for r in res.runs] == [(0, 0, 10), (10, 10, 30), (30, 30, 60)]
    assert [r.wait_s for r in res.runs] == [0, 0, 0]
    assert res.mean_wait_s == 0 and res.max_wait_s == 0


def test_cores_shared_on_a_node_third_job_waits():
    sites = sites_of(part("a", cores=4))
    jobs = [job(0, threads=2, cpu=10), job(1, threads=2, cpu=20), job(2, threads=2, cpu=30)]
    res = simulate(jobs, sites, {"r": ("home/a",)})
    # 0 and 1 fill the 4 cores at t=0; 2 takes 0's cores when it ends at 10 and runs to 40
    assert starts(res) == {0: 0, 1: 0, 2: 10}
    assert res.makespan_s == 40
    assert res.runs[2].wait_s == 10 and res.max_wait_s == 10
    assert res.mean_wait_s == pytest.approx(10 / 3)


def test_memory_limits_a_node():
    sites = sites_of(part("a", cores=8, mem_mb=1000))
    jobs = [job(0, mem_mb=600, cpu=10), job(1, mem_mb=600, cpu=10)]
    res = simulate(jobs, sites, {"r": ("home/a",)})
    # 600 + 600 > 1000 MB although 8 cores are free: the second waits for the first
    assert starts(res) == {0: 0, 1: 10}
    assert res.makespan_s == 20


def test_gpus_limit_a_node():
    sites = sites_of(part("g", cores=8, gpus=1))
    jobs = [job(0, gpus=1, gpu=10, cpu=100), job(1, gpus=1, gpu=10, cpu=100)]
    res = simulate(jobs, sites, {"r": ("home/g",)})
    # one GPU: 0 runs 0-10 on it, 1 runs 10-20
    assert starts(res) == {0: 0, 1: 10}
    assert res.makespan_s == 20
    assert {r.resource_class for r in res.runs} == {"gpu"}


def test_jobs_spread_over_nodes_first_fit():
    sites = sites_of(part("a", nodes=2, cores=4))
    jobs = [job(i, threads=3, cpu=10) for i in range(3)]
    res = simulate(jobs, sites, {"r": ("home/a",)})
    # 3 threads each: one per node; the third waits for node 0 to free at 10
    assert [(r.node, r.start_s) for r in res.runs] == [(0, 0), (1, 0), (0, 10)]


def test_gpu_class_job_on_cpu_partition_runs_cpu_runtime_without_gpu():
    cpu, gpu = part("cpu", cores=8), part("gpu", cores=8, gpus=2)
    sites = sites_of(cpu, gpu)
    j = job(0, gpus=1, gpu=10, cpu=100)
    on_cpu = simulate([j], sites, {"r": ("home/cpu",)})
    run = on_cpu.runs[0]
    assert (run.partition, run.resource_class, run.end_s, run.gpus) == ("home/cpu", "cpu", 100, 0)
    assert on_cpu.stats("home/cpu").gpu_seconds == 0
    on_gpu = simulate([j], sites, {"r": ("home/gpu",)})
    run = on_gpu.runs[0]
    assert (run.partition, run.resource_class, run.end_s, run.gpus) == ("home/gpu", "gpu", 10, 1)
    # 1 GPU of 2 busy for the whole 10 s makespan
    assert on_gpu.stats("home/gpu").gpu_seconds == 10
    assert on_gpu.stats("home/gpu").utilisation == 0.5


def test_placement_order_first_free_partition():
    sites = sites_of(part("a", cores=4), part("b", cores=4))
    one = simulate([job(0, threads=4)], sites, {"r": ("home/a", "home/b")})
    assert one.runs[0].partition == "home/a"
    two = simulate([job(0, threads=4), job(1, threads=4)], sites, {"r": ("home/a", "home/b")})
    # a is full after job 0, so job 1 starts at once on b rather than waiting for a
    assert [(r.partition, r.start_s) for r in two.runs] == [("home/a", 0), ("home/b", 0)]
    reverse = simulate([job(0, threads=4)], sites, {"r": ("home/b", "home/a")})
    assert reverse.runs[0].partition == "home/b"


def test_backfill_small_job_passes_blocked_big_one():
    sites = sites_of(part("a", cores=4))
    jobs = [
        job(0, rule="x", threads=2, cpu=100),
        job(1, rule="big", threads=4, cpu=10),
        job(2, rule="small", threads=2, cpu=50),
    ]
    res = simulate(jobs, sites, {"x": ("home/a",), "big": ("home/a",), "small": ("home/a",)})
    # x holds 2 cores 0-100; big (4 cores) cannot start; small fits beside x at 0 (backfill, no
    # reservation), ends at 50; big starts when x ends at 100
    assert starts(res) == {0: 0, 1: 100, 2: 0}
    assert res.makespan_s == 110


def test_smaller_job_of_same_rule_is_not_blocked_by_a_bigger_one():
    sites = sites_of(part("a", cores=4))
    jobs = [job(0, threads=2, cpu=100), job(1, threads=4, cpu=10), job(2, threads=1, cpu=10)]
    res = simulate(jobs, sites, {"r": ("home/a",)})
    # same rule, different shapes: job 2 (1 core) starts beside job 0 although job 1 (4 cores) waits
    assert starts(res) == {0: 0, 1: 100, 2: 0}


def test_queue_wait_delays_first_start_and_sends_jobs_elsewhere():
    slow = part("slow", queue_wait_s=30)
    res = simulate([job(0, cpu=10)], sites_of(slow), {"r": ("home/slow",)})
    assert (res.runs[0].start_s, res.runs[0].end_s, res.runs[0].wait_s) == (30, 40, 30)
    assert res.makespan_s == 40
    # with a second, idle partition the job goes there at once even though it is listed second
    res = simulate([job(0, cpu=10)], sites_of(slow, part("b")), {"r": ("home/slow", "home/b")})
    assert (res.runs[0].partition, res.runs[0].start_s) == ("home/b", 0)


def test_transfer_time_and_cost_at_partner_centre():
    home = part("a", core_hour_cost=1.0)
    partner = part("p", centre="partner", core_hour_cost=1800.0)
    sites = sites_of(home, partner, transfers={"partner": Transfer(cost_per_gb=0.5, gbit_s=8.0)})
    j = job(0, threads=2, cpu=10, input_bytes=2_000_000_000)
    res = simulate([j], sites, {"r": ("partner/p",)})
    # 2 GB at 8 Gbit/s = 2 s of transfer: runtime 12 s
    assert res.runs[0].end_s == 12 and res.makespan_s == 12
    # 12 s * 2 cores * 1800/core-h = 12.0, plus 2 GB * 0.5/GB = 1.0
    assert res.cost == pytest.approx(13.0, rel=1e-12)
    assert res.stats("partner/p").cost == pytest.approx(13.0, rel=1e-12)
    at_home = simulate([j], sites, {"r": ("home/a",)})
    assert at_home.runs[0].end_s == 10  # no transfer at home


def test_utilisation_cost_and_mean_over_all_partitions():
    a = part("a", cores=4, core_hour_cost=360.0)
    unused = part("b", nodes=3)
    sites = sites_of(a, unused)
    jobs = [job(0, threads=2, cpu=10), job(1, threads=2, cpu=20)]
    res = simulate(jobs, sites, {"r": ("home/a",)})
    sa, sb = res.partitions
    # makespan 20; core-seconds 2*10 + 2*20 = 60 of 4*20 = 80 -> 0.75
    assert res.makespan_s == 20
    assert (sa.partition, sa.jobs, sa.core_seconds, sa.core_utilisation, sa.utilisation) == ("home/a", 2, 60, 0.75, 0.75)
    assert sa.gpu_utilisation == 0 and sa.gpu_seconds == 0
    # cost: (10 + 20)/3600 h * 2 cores * 360 = 2 + 4 = 6
    assert sa.cost == pytest.approx(6.0, rel=1e-12) and res.cost == pytest.approx(6.0, rel=1e-12)
    assert (sb.partition, sb.jobs, sb.utilisation, sb.cost, sb.mean_wait_s) == ("home/b", 0, 0, 0, 0)
    # mean over both partitions, the unused one included: (0.75 + 0) / 2
    assert res.mean_utilisation == 0.375
    # busy fraction: 4/4 cores in [0,10), 2/4 in [10,20), 0 from 20
    assert res.timeline("home/a") == ([0, 10, 20], [1.0, 0.5, 0.0])
    # 15 s bins: [0,15) mean (10*1 + 5*0.5)/15, [15,20) 0.5
    times, fracs = res.timeline("home/a", step_s=15)
    assert times == [0, 15, 20] and fracs == pytest.approx([12.5 / 15, 0.5, 0.0])
    assert res.timeline("home/b") == ([0, 20], [0.0, 0.0])
    summary = json.loads(json.dumps(res.as_dict()))
    assert summary["makespan_s"] == 20 and summary["jobs"] == 2
    assert [p["partition"] for p in summary["partitions"]] == ["home/a", "home/b"]
    assert res.rule_table() == [
        {"rule": "r", "partition": "home/a", "jobs": 2, "mean_wait_s": 0.0, "mean_runtime_s": 15.0}
    ]


def test_gpu_partition_utilisation_is_its_gpu_one():
    g = part("g", nodes=2, cores=8, gpus=2)
    res = simulate([job(0, gpus=1, gpu=10, cpu=100, threads=4)], sites_of(g), {"r": ("home/g",)})
    s = res.stats("home/g")
    # 1 of 4 GPUs for the whole makespan; 4 of 16 cores
    assert (s.gpu_utilisation, s.core_utilisation, s.utilisation) == (0.25, 0.25, 0.25)
    res = simulate([job(0, gpus=1, gpu=10, cpu=100, threads=8)], sites_of(g), {"r": ("home/g",)})
    s = res.stats("home/g")
    assert (s.gpu_utilisation, s.core_utilisation, s.utilisation) == (0.25, 0.5, 0.25)


def test_empty_job_list():
    sites = sites_of(part("a"), part("g", gpus=1))
    res = simulate([], sites, {})
    assert (res.makespan_s, res.mean_utilisation, res.mean_wait_s, res.max_wait_s, res.cost) == (0, 0, 0, 0, 0)
    assert [s.utilisation for s in res.partitions] == [0, 0]
    assert res.timeline("home/a") == ([0.0], [0.0])
    assert res.timeline("home/a", step_s=10) == ([0.0], [0.0])


def test_static_placement_two_sample_dag():
    cpu = part("cpu", cores=8)
    gpu = part("gpu", cores=16, gpus=1)
    far = part("far", centre="partner", nodes=10, cores=64, gpus=8)
    sites = sites_of(cpu, gpu, far)
    jobs = [
        job(0, rule="align", threads=4, cpu=100, wildcards="s1"),
        job(1, rule="align", threads=4, cpu=100, wildcards="s2"),
        job(2, rule="embed", gpus=1, gpu=10, cpu=100, deps=[0], wildcards="s1"),
        job(3, rule="embed", gpus=1, gpu=10, cpu=100, deps=[1], wildcards="s2"),
        job(4, rule="merge", cpu=10, deps=[2, 3]),
    ]
    placement = static_placement(jobs, sites)
    assert placement == {"align": ("home/cpu",), "embed": ("home/gpu",), "merge": ("home/cpu",)}
    res = simulate(jobs, sites, placement)
    # both aligns share the 8 cores 0-100; one GPU: embed s1 100-110, s2 110-120; merge 120-130
    assert [(r.partition, r.start_s, r.end_s) for r in res.runs] == [
        ("home/cpu", 0, 100), ("home/cpu", 0, 100), ("home/gpu", 100, 110), ("home/gpu", 110, 120),
        ("home/cpu", 120, 130),
    ]
    assert res.makespan_s == 130 and res.max_wait_s == 10
    assert res.stats("partner/far").jobs == 0 and res.stats("partner/far").utilisation == 0


def test_errors_name_the_rule_wildcards_and_partition():
    sites = sites_of(part("a", cores=4))
    with pytest.raises(ValueError, match=r"rule 'other' \(wildcards 's1'\) has no entry in the placement"):
        simulate([job(0), job(1, rule="other", wildcards="s1")], sites, {"r": ("home/a",)})
    with pytest.raises(ValueError, match=r"rule 'r' \(wildcards 's2'\).*fits none of its partitions: home/a"):
        simulate([job(0, threads=64, wildcards="s2")], sites, {"r": ("home/a",)})
    with pytest.raises(ValueError, match="fits none"):
        simulate([job(0)], sites, {"r": ()})
    with pytest.raises(ValueError, match="unknown partition 'home/nope'"):
        simulate([job(0)], sites, {"r": ("home/a", "home/nope")})
    # over the walltime limit counts as not fitting
    short = sites_of(part("a", max_walltime_s=5))
    with pytest.raises(ValueError, match="fits none"):
        simulate([job(0, cpu=10)], short, {"r": ("home/a",)})
    gpu_sites = sites_of(part("g", gpus=1))
    with pytest.raises(ValueError, match="no runtime estimate for class 'gpu'"):
        simulate([job(0, gpus=1)], gpu_sites, {"r": ("home/g",)})


def test_errors_in_the_dag():
    sites = sites_of(part("a"))
    placement = {"r": ("home/a",)}
    with pytest.raises(ValueError, match="cycle"):
        simulate([job(0, deps=[1]), job(1, deps=[0])], sites, placement)
    with pytest.raises(ValueError, match="cycle"):
        simulate([job(0, deps=[0])], sites, placement)
    with pytest.raises(ValueError, match="unknown job id 7"):
        simulate([job(0, deps=[7])], sites, placement)
    with pytest.raises(ValueError, match="duplicate job id 0"):
        simulate([job(0), job(0)], sites, placement)


def test_plot_utilisation_writes_png(tmp_path):
    sites = sites_of(part("a", cores=4), part("g", gpus=1))
    jobs = [job(0, threads=2, cpu=3600), job(1, rule="e", gpus=1, gpu=1800, cpu=7200, deps=[0])]
    results = {
        "static": simulate(jobs, sites, {"r": ("home/a",), "e": ("home/g",)}),
        "plan": simulate(jobs, sites, {"r": ("home/a",), "e": ("home/a",)}),
    }
    out = tmp_path / "plots" / "utilisation.png"
    plot_utilisation(results, sites, out)
    data = out.read_bytes()
    assert data[:8] == b"\x89PNG\r\n\x1a\n" and len(data) > 1000
    assert [p.name for p in out.parent.iterdir()] == ["utilisation.png"]  # no temporary left
    with pytest.raises(ValueError):
        plot_utilisation({}, sites, out)


def random_case(n_jobs=20_000, seed=7, max_nodes=40, max_deps=3):
    rng = random.Random(seed)
    parts = []
    for k in range(20):
        gpus = rng.choice([0, 0, 2, 4])
        parts.append(
            part(f"p{k}", centre=rng.choice(["home", "home", "far"]), nodes=rng.randint(1, max_nodes),
                 cores=rng.choice([16, 32, 64]), mem_mb=rng.choice([64_000, 256_000]), gpus=gpus,
                 queue_wait_s=rng.choice([0, 0, 600]), core_hour_cost=0.01, gpu_hour_cost=1.0)
        )
    sites = sites_of(*parts, transfers={"far": Transfer(cost_per_gb=0.01, gbit_s=10)})
    rules = [(f"rule{r}", rng.choice([1, 2, 4, 8, 16]), rng.choice([1000, 8000, 32000]), rng.choice([0, 0, 0, 1]))
             for r in range(12)]
    placement = {}
    for name, threads, mem, gpus in rules:
        fitting = [p.id for p in parts if p.cores >= threads and p.mem_mb >= mem]
        placement[name] = tuple(rng.sample(fitting, rng.randint(1, 4)))
    jobs = []
    for i in range(n_jobs):
        name, threads, mem, gpus = rng.choice(rules)
        deps = rng.sample(range(max(0, i - 500), i), min(i, rng.randint(0, max_deps)))
        cpu = rng.uniform(10, 3000)
        jobs.append(job(i, rule=name, threads=threads, mem_mb=mem, gpus=gpus, deps=deps, cpu=cpu,
                        gpu=cpu / 10 if gpus else None, input_bytes=rng.randint(0, 10**9), wildcards=str(i)))
    return jobs, sites, placement


def test_large_random_dag_invariants():
    jobs, sites, placement = random_case()
    res = simulate(jobs, sites, placement)
    assert len(res.runs) == len(jobs) and [r.job_id for r in res.runs] == [j.id for j in jobs]
    end = {r.job_id: r.end_s for r in res.runs}
    parts = {p.id: p for p in sites.partitions}
    for j, r in zip(jobs, res.runs):
        assert r.partition in placement[j.rule]
        assert r.start_s >= r.ready_s >= max((end[d] for d in j.deps), default=0.0)
        if j.deps:
            assert r.ready_s == max(end[d] for d in j.deps)
        assert r.start_s >= parts[r.partition].queue_wait_s
        assert r.end_s == r.start_s + j.seconds_on(parts[r.partition], sites)
    # sweep each node's starts and ends (ends first at equal times): never over its cores, memory, GPUs
    events = defaultdict(list)
    for r in res.runs:
        events[(r.partition, r.node)] += [(r.start_s, 1, r), (r.end_s, 0, r)]
    for (pid, n), evs in events.items():
        p = parts[pid]
        assert 0 <= n < p.nodes
        cores = mem = gpus = 0
        for _, is_start, r in sorted(evs, key=lambda e: (e[0], e[1])):
            sign = 1 if is_start else -1
            cores, mem, gpus = cores + sign * r.cores, mem + sign * r.mem_mb, gpus + sign * r.gpus
            assert cores <= p.cores and mem <= p.mem_mb and gpus <= p.gpus
    assert res.makespan_s == max(end.values())
    assert 0 < res.mean_utilisation <= 1
    assert all(0 <= s.core_utilisation <= 1 and 0 <= s.gpu_utilisation <= 1 for s in res.partitions)
    assert sum(s.jobs for s in res.partitions) == len(jobs)


def naive_schedule(jobs, sites, placement):
    """Reference: at every event walk every ready job and scan every node (no queues, no caches)."""
    parts = {p.id: p for p in sites.partitions}
    free = {pid: [[p.cores, p.mem_mb, p.gpus] for _ in range(p.nodes)] for pid, p in parts.items()}
    end, sched, ready = {}, {}, {}
    times = {0.0} | {p.queue_wait_s for p in parts.values()}
    while len(sched) < len(jobs):
        t = min(x for x in times if x >= 0)
        times.discard(t)
        for j in jobs:
            if j.id in sched and end[j.id] == t:
                node = free[sched[j.id][0]][sched[j.id][1]]
                p = parts[sched[j.id][0]]
                node[0] += max(j.threads, 1)
                node[1] += j.mem_mb
                node[2] += j.gpus_in(p)
        for j in jobs:
            if j.id not in ready and all(d in end and end[d] <= t for d in j.deps):
                ready[j.id] = t
        for j in sorted((j for j in jobs if j.id in ready and j.id not in sched), key=lambda j: (ready[j.id], j.id)):
            for pid in placement[j.rule]:
                p = parts[pid]
                if t < p.queue_wait_s or not j.fits(p, sites):
                    continue
                need = (max(j.threads, 1), j.mem_mb, j.gpus_in(p))
                k = next((k for k, n in enumerate(free[pid]) if all(a >= b for a, b in zip(n, need))), None)
                if k is not None:
                    free[pid][k] = [a - b for a, b in zip(free[pid][k], need)]
                    sched[j.id] = (pid, k, t)
                    end[j.id] = t + j.seconds_on(p, sites)
                    times.add(end[j.id])
                    break
    return {i: (pid, k, ready[i], s, end[i]) for i, (pid, k, s) in sched.items()}


@pytest.mark.parametrize("seed", [1, 2])
def test_matches_naive_reference_schedule(seed):
    # same dispatch rules without per-shape queues and node-scan caches: identical schedules
    jobs, sites, placement = random_case(n_jobs=400, seed=seed, max_nodes=2, max_deps=1)  # small: jobs queue
    res = simulate(jobs, sites, placement)
    assert res.mean_wait_s > 600
    got = {r.job_id: (r.partition, r.node, r.ready_s, r.start_s, r.end_s) for r in res.runs}
    assert got == naive_schedule(jobs, sites, placement)


def test_nice_puts_a_later_stage_first():
    # one core; at t=10 an 'align' job (ready at 0, still queued) and a 'call' job (ready at 10)
    # both wait. FIFO: align first. With align nice 10, call 0: call first.
    sites = sites_of(part("a", cores=1))
    jobs = [job(0, rule="align", cpu=10), job(1, rule="align", cpu=10), job(2, rule="call", deps=[0], cpu=5)]
    placement = {"align": ("home/a",), "call": ("home/a",)}
    fifo = starts(simulate(jobs, sites, placement))
    assert fifo == {0: 0, 1: 10, 2: 20}
    nice = starts(simulate(jobs, sites, placement, nice={"align": 10, "call": 0}))
    assert nice == {0: 0, 2: 10, 1: 15}


def test_assignment_overrides_the_rule_placement_per_job():
    sites = sites_of(part("a", cores=1), part("b", cores=1))
    jobs = [job(i, rule="w", cpu=10) for i in range(4)]
    res = simulate(jobs, sites, {"w": ("home/a", "home/b")}, assignment={0: "home/b", 1: "home/b", 2: "home/a", 3: "home/b"})
    assert [(r.partition, r.start_s) for r in res.runs] == [("home/b", 0), ("home/b", 10), ("home/a", 0), ("home/b", 20)]
    with pytest.raises(ValueError, match="unknown partition 'home/z'"):
        simulate(jobs, sites, {"w": ("home/a",)}, assignment={0: "home/z"})


def test_a_dispatch_delay_holds_each_dependant_back_but_not_the_first_jobs():
    sites = sites_of(part("a", cores=4))
    jobs = [job(0, cpu=10), job(1, cpu=5), job(2, deps=[0], cpu=20), job(3, deps=[1, 2], cpu=30)]
    res = simulate(jobs, sites, {"r": ("home/a",)}, dispatch_s=4)
    # 0, 1 at once; 2 ready 10 + 4; 3 after 2 ends at 34, ready at 38
    assert [(r.ready_s, r.start_s, r.end_s) for r in res.runs] == [(0, 0, 10), (0, 0, 5), (14, 14, 34), (38, 38, 68)]
    assert simulate(jobs, sites, {"r": ("home/a",)}).makespan_s == 60


def test_with_backfill_passes_a_job_behind_a_blocked_higher_one_waits_for_the_next_pass():
    sites = sites_of(part("a", cores=3))
    # a: 2 cores 0-10; t: 1 core 0-1, then l (1 core, low priority) is ready at 1; h (2 cores, high
    # priority) is ready at 0 but has no room until a ends
    jobs = [job(0, rule="a", threads=2, cpu=10), job(1, rule="t", cpu=1), job(2, rule="h", threads=2, cpu=5),
            job(3, rule="l", deps=[1], cpu=5)]
    place = {r: ("home/a",) for r in "athl"}
    nice = {"h": 0, "l": 5}
    plain = simulate(jobs, sites, place, nice=nice)
    assert [r.start_s for r in plain.runs] == [0, 0, 10, 1]  # every event backfills: l takes t's core at 1
    passes = simulate(jobs, sites, place, nice=nice, backfill_s=30)
    # at 1 the main scheduler stops at the blocked h; at 10 h starts and l with it
    assert [r.start_s for r in passes.runs] == [0, 0, 10, 10]
    # with nothing to unblock it before the pass, l waits for the pass at 30
    jobs[0] = job(0, rule="a", threads=2, cpu=40)
    assert [r.start_s for r in simulate(jobs, sites, place, nice=nice, backfill_s=30).runs] == [0, 0, 40, 30]
