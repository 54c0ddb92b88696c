"""The placement ILP on hand-solvable cases, infeasible inputs, and the profile it writes."""

from __future__ import annotations

import dataclasses
import math

import pytest
import yaml

from aisci.errors import InputError
from aisci.placement.ilp import plan, rule_edges
from aisci.placement.model import Job
from aisci.placement.plan import ordered, profile_config, read_plan, write_plan
from aisci.slurm.site import Partition, Site, Transfer
from tests.unit.slurm.test_profile import snakemake_reads


def with_settings(site: Site, settings: dict) -> Site:
    """``site`` with these profile settings (and name, when given)."""
    settings = dict(settings)
    return dataclasses.replace(site, name=settings.pop("name", site.name), settings={**site.settings, **settings})


def part(name, nodes=1, cores=2, mem_mb=64000, gpus=0, centre="home", **kw):
    return Partition(centre=centre, name=name, nodes=nodes, cores=cores, mem_mb=mem_mb, gpus=gpus,
                     slurm_cluster=kw.pop("slurm_cluster", None if centre == "home" else centre), **kw)


def jobs_of(rule, n, cpu, gpu=None, start=0, deps=lambda i: (), threads=1, mem_mb=1000, input_bytes=0):
    runtime = {"cpu": cpu} | ({"gpu": gpu} if gpu is not None else {})
    return [Job(id=start + i, rule=rule, wildcards=f"s{i}", threads=threads, mem_mb=mem_mb,
                gpus=1 if gpu is not None else 0, deps=tuple(deps(i)), input_bytes=input_bytes, runtime_s=runtime)
            for i in range(n)]


def test_split_across_two_partitions_balances_load():
    # 10 jobs of 100 s; a runs 2 at once, b 3 at once. 4 on a (2 waves = 200 s) and
    # 6 on b (2 waves = 200 s): the optimum is 200 s (any other split leaves one side longer).
    sites = Site("home", (part("a", cores=2), part("b", cores=3)))
    p = plan(jobs_of("work", 10, 100), sites)
    assert p.makespan_s == pytest.approx(200, abs=1)
    assert {d.partition: d.jobs for d in p.decisions} == {"home/a": 4, "home/b": 6}
    assert p.placement == {"work": ("home/b", "home/a")}


def test_gpu_rule_stays_on_gpu_when_faster():
    # 4 GPU jobs: 100 s on the one GPU (400 s in series) vs 1000 s on CPU (10 cores, one wave)
    sites = Site("home", (part("cpu", cores=10), part("gpu", cores=4, gpus=1)))
    p = plan(jobs_of("score", 4, cpu=1000, gpu=100), sites)
    assert p.classes == {"score": ("gpu",)} and p.makespan_s == pytest.approx(400, abs=1)


def test_gpu_rule_spills_onto_cpu_when_gpu_queue_is_the_bottleneck():
    # 50 jobs: 100 s on the one GPU, 1000 s on CPU (20 at once: 50 s per job of throughput).
    # x on GPU, 50 - x on CPU: max(100 x, 50 (50 - x)) is least at x = 16.67 (1666.7 s, against
    # 5000 s all on the GPU); the counts are rounded to 17 and 33.
    sites = Site("home", (part("cpu", cores=20), part("gpu", cores=4, gpus=1)))
    jobs = jobs_of("score", 50, cpu=1000, gpu=100)
    p = plan(jobs, sites)
    assert p.classes == {"score": ("gpu", "cpu")}
    assert p.makespan_s == pytest.approx(1666.7, abs=1)
    split = {d.partition: d.jobs for d in p.decisions}
    assert split == {"home/gpu": 17, "home/cpu": 33}
    assert "GPU rule on CPU" in next(d.why for d in p.decisions if d.partition == "home/cpu")
    # each job is dealt to one partition, in the planned numbers, interleaved
    assigned = p.assignment(jobs)
    assert sorted(assigned) == [j.id for j in jobs]
    assert {pid: list(assigned.values()).count(pid) for pid in split} == split
    first_ten = [assigned[i] for i in range(10)]
    assert 2 <= first_ten.count("home/gpu") <= 5


def test_barrier_then_stage():
    # an index job (50 s) every align job needs, then 4 align jobs of 100 s, 2 at once: 50 + 200
    sites = Site("home", (part("cpu", cores=2),))
    jobs = jobs_of("index", 1, 50) + jobs_of("align", 4, 100, start=1, deps=lambda i: (0,))
    assert rule_edges(jobs) == ({("index", "align")}, set())
    p = plan(jobs, sites)
    assert p.makespan_s == pytest.approx(250, abs=1)
    starts = {d.rule: d.start_s for d in p.decisions}
    assert starts["align"] == pytest.approx(50, abs=1)


def test_a_gather_after_a_barrier_lasts_a_whole_job():
    # 4 jobs of 100 s on 8 cores (one wave), then one gather of 100 s that needs all four: 200 s
    sites = Site("home", (part("cpu", cores=8),))
    jobs = jobs_of("scatter", 4, 100) + jobs_of("gather", 1, 100, start=4, deps=lambda i: (0, 1, 2, 3))
    assert plan(jobs, sites).makespan_s == pytest.approx(200, abs=1)


def test_cpu_rule_stays_off_gpu_nodes_unless_it_fits_nowhere_else():
    # 'big' needs 100 GB: only the GPU nodes have it, so it goes there; 'small' stays on the CPUs
    sites = Site("home", (part("cpu", cores=8, mem_mb=64000), part("gpu", cores=8, mem_mb=256000, gpus=4)))
    p = plan(jobs_of("small", 8, 100) + jobs_of("big", 2, 100, start=8, mem_mb=100000), sites)
    assert p.placement == {"small": ("home/cpu",), "big": ("home/gpu",)}


def test_runtime_asked_covers_the_longest_job_and_declared_gpus_are_kept(tmp_path):
    # job sizes differ: the longest job (300 s) sets the wall time asked for, not the mean (150 s);
    # a rule declaring 2 GPUs keeps 2 on GPU partitions when the plan splits it onto CPUs
    sites = Site("home", (part("cpu", cores=40), part("gpu", cores=8, gpus=2)))
    jobs = [Job(id=i, rule="w", wildcards=f"s{i}", threads=1, mem_mb=1000, gpus=0,
                runtime_s={"cpu": 300.0 if i == 0 else 100.0}) for i in range(4)]
    jobs += [Job(id=10 + i, rule="score", wildcards=f"s{i}", threads=1, mem_mb=1000, gpus=2,
                 runtime_s={"cpu": 1000.0, "gpu": 100.0}) for i in range(40)]
    p = plan(jobs, sites)
    slurm = {"name": "t", "account": None, "qos": None, "max_jobs": 5, "latency_wait": 5, "retries": 0,
             "status_command": "squeue", "first_status_check": 5, "default_runtime": 10}
    res = yaml.safe_load(profile_config(p, jobs, with_settings(sites, slurm)))["set-resources"]
    assert res["w"]["runtime"] == max(10, math.ceil(3 * 300 / 60))
    assert p.classes["score"] == ("gpu", "cpu")
    assigned = p.assignment(jobs)
    for job in jobs[4:]:
        want = 2 if assigned[job.id] == "home/gpu" else 0
        assert eval(res["score"]["gpu"], {"wildcards": [job.wildcards]}) == want


def test_pipelined_stages_overlap():
    # per-sample chain a -> b (each job of b needs one job of a): 4 samples, 100 s each, on 8 cores:
    # everything runs at once, a then b: 200 s (not 4 × 200)
    sites = Site("home", (part("cpu", cores=8),))
    jobs = jobs_of("a", 4, 100) + jobs_of("b", 4, 100, start=4, deps=lambda i: (i,))
    assert rule_edges(jobs) == (set(), {("a", "b")})
    assert plan(jobs, sites).makespan_s == pytest.approx(200, abs=1)


def test_queue_wait_sends_work_elsewhere():
    # two identical partitions, one with a 1000 s backlog: 2 jobs of 100 s go to the free one
    sites = Site("home", (part("busy", queue_wait_s=1000), part("free")))
    p = plan(jobs_of("w", 2, 100), sites)
    assert p.placement == {"w": ("home/free",)} and p.makespan_s == pytest.approx(100, abs=1)


def test_overflow_to_partner_pays_transfer():
    # home: 1 core; partner: 4 cores, inputs take 8e9 bytes / 1 Gbit/s = 64 s to move (164 s a job).
    # 5 jobs of 100 s: all at home = 500 s. Job counts are continuous in the ILP and one partner job
    # lasts 164 s, so M >= 164 s; home takes x >= 1.64 of the 5 jobs (100 x <= M); rounded: 2 and 3.
    # Cheaper plans within 1 % of the fastest are preferred, so M may read up to 1.01 x 164 + 1 s.
    sites = Site("home", (part("cpu", cores=1), part("big", cores=4, centre="partner")),
                  {"partner": Transfer(cost_per_gb=0.5, gbit_s=1)})
    p = plan(jobs_of("w", 5, 100, input_bytes=8 * 10**9), sites)
    assert {d.partition: d.jobs for d in p.decisions} == {"home/cpu": 2, "partner/big": 3}
    assert 164 - 1e-6 <= p.makespan_s <= 1.01 * 164 + 1
    partner = next(d for d in p.decisions if d.partition == "partner/big")
    assert partner.cost == pytest.approx(3 * 4.0)  # 8 GB × 0.5 per job
    assert "overflow to partner" in partner.why


def test_cost_objective_uses_the_cheap_partition_until_the_deadline_forces_otherwise():
    # 4 jobs of 3600 s, 1 core each; cheap: 2 cores at 1/core-h; dear: 2 cores at 3/core-h
    sites = Site("home", (part("cheap", core_hour_cost=1), part("dear", core_hour_cost=3)))
    jobs = jobs_of("w", 4, 3600)
    loose = plan(jobs, sites, objective="cost", deadline_s=3 * 3600)
    assert loose.placement == {"w": ("home/cheap",)} and loose.cost == pytest.approx(4)
    tight = plan(jobs, sites, objective="cost", deadline_s=3600)
    assert {d.partition: d.jobs for d in tight.decisions} == {"home/cheap": 2, "home/dear": 2}
    assert tight.cost == pytest.approx(8)
    with pytest.raises(InputError, match=r"deadline of 0.50 h: the fastest takes 1.0\d h"):
        plan(jobs, sites, objective="cost", deadline_s=1800)
    with pytest.raises(InputError, match="needs --deadline"):
        plan(jobs, sites, objective="cost")


def test_makespan_ties_broken_by_cost():
    sites = Site("home", (part("dear", cores=4, core_hour_cost=5), part("cheap", cores=4, core_hour_cost=1)))
    p = plan(jobs_of("w", 4, 100), sites)
    assert p.placement == {"w": ("home/cheap",)}


@pytest.mark.parametrize("kw, message", [
    ({"threads": 64}, r"rule big fits nowhere: its jobs need 64 threads"),
    ({"mem_mb": 10**7}, r"rule big fits nowhere: .*10000000 MB"),
])
def test_rule_that_fits_nowhere_is_named(kw, message):
    sites = Site("home", (part("cpu", cores=32),))
    with pytest.raises(InputError, match=message):
        plan(jobs_of("small", 2, 10) + jobs_of("big", 1, 10, start=2, **kw), sites)


def test_walltime_limit_excludes_a_partition():
    # the 2 h job cannot run on short (1 h limit) even though short is bigger
    sites = Site("home", (part("short", cores=64, max_walltime_s=3600), part("long", cores=1)))
    p = plan(jobs_of("w", 2, 7200), sites)
    assert p.placement == {"w": ("home/long",)}
    with pytest.raises(InputError, match=r"rule w fits nowhere.*short 1 h"):
        plan(jobs_of("w", 1, 7200), Site("home", (part("short", max_walltime_s=3600),)))


def test_gpu_only_rule_without_cpu_estimate_fits_nowhere_on_cpu_only_site():
    sites = Site("home", (part("cpu", cores=1, max_walltime_s=60),))
    with pytest.raises(InputError, match="rule score fits nowhere"):
        plan(jobs_of("score", 1, cpu=600, gpu=60), sites)


def test_profile_written_from_a_plan(tmp_path):
    sites = Site("home", (part("cpu", cores=20, slurm_cluster="main"), part("gpu", cores=4, gpus=1, slurm_cluster="main"),
                           part("pcpu", cores=8, centre="partner")), {"partner": Transfer()})
    jobs = jobs_of("align_reads", 40, 600) + jobs_of("score_missense", 50, cpu=1000, gpu=100, start=40)
    p = plan(jobs, sites)
    slurm = {"name": "t", "account": "lab", "qos": None, "max_jobs": 50, "latency_wait": 5, "retries": 1,
             "status_command": "squeue", "first_status_check": 40, "default_runtime": 60}
    files = write_plan(p, jobs, with_settings(sites, slurm), tmp_path)
    assert sorted(f.name for f in files) == ["config.yaml", "plan.json", "plan.tsv"]
    config = yaml.safe_load((tmp_path / "config.yaml").read_text())
    assert config["executor"] == "slurm" and eval(config["default-resources"]["slurm_account"]) == "lab"
    res = config["set-resources"]
    # every job's partition, clusters and GPUs, as Snakemake evaluates the profile's expressions
    assigned = p.assignment(jobs)
    for job in jobs:
        where = sites.partition(assigned[job.id])
        wildcards = [job.wildcards]  # one wildcard per job here: its values joined by "_" are the key
        got = {k: (eval(v, {"wildcards": wildcards}) if isinstance(v, str) else v)  # as Snakemake does
               for k, v in res[job.rule].items()}
        assert got["slurm_partition"] == where.name
        assert got.get("clusters") == (None if where.centre == "home" and "clusters" not in res[job.rule]
                                       else where.slurm_cluster)
        if job.gpus:
            assert got.get("gpu", 1) == (1 if where.gpus else 0)
    assert any("clusters" in r for r in res.values()), "the plan should overflow to the partner here"
    assert p.classes["score_missense"] == ("gpu", "cpu"), "the GPU queue is too short for 50 jobs"
    # the wall time asked for covers 3x the longest expected job
    assert res["align_reads"]["runtime"] >= math.ceil(3 * 600 / 60)
    counts, nice, explicit = read_plan(tmp_path / "plan.json")
    assert ordered(counts) == p.placement and nice == p.nice and explicit is None  # the ILP deals counts
    # a rule the plan does not place goes to the home CPU partition
    assert eval(config["default-resources"]["slurm_partition"]) == "cpu"
    # two independent rules: both at the deepest level, nice 0, so no --nice in the profile
    assert p.nice == {"align_reads": 0, "score_missense": 0}
    assert "slurm_extra" not in res["align_reads"]
    rows = (tmp_path / "plan.tsv").read_text().splitlines()
    assert rows[0].split("\t")[:4] == ["rule", "class", "partition", "jobs"]
    assert len(rows) == 1 + len(p.decisions)


def test_priorities_put_later_stages_first_and_groups_agree(tmp_path):
    # check_reads -> align_reads -> call_group (one sample): levels 0, 1, 2 -> nice 20, 10, 0;
    # check_reads and align_reads share the 'align' group, so both get the group's lowest nice
    sites = Site("home", (part("cpu", cores=8),))
    jobs = (jobs_of("check_reads", 1, 10) + jobs_of("align_reads", 1, 100, start=1, deps=lambda i: (0,))
            + jobs_of("call_group", 2, 50, start=2, deps=lambda i: (1,)))
    p = plan(jobs, sites)
    assert p.nice == {"check_reads": 20, "align_reads": 10, "call_group": 0}
    slurm = {"name": "t", "account": None, "qos": None, "max_jobs": 5, "latency_wait": 5, "retries": 0,
             "status_command": "squeue", "first_status_check": 5, "default_runtime": 10}
    config = yaml.safe_load(profile_config(p, jobs, with_settings(sites, slurm)))
    res = config["set-resources"]
    assert config["groups"]["check_reads"] == config["groups"]["align_reads"] == "align"
    assert eval(res["check_reads"]["slurm_extra"]) == eval(res["align_reads"]["slurm_extra"]) == "--nice=10"
    assert "slurm_extra" not in res["call_group"]  # the 'calls' group's nice is 0


def test_split_across_centres_needs_a_home_cluster_name():
    sites = Site("home", (part("cpu", cores=1), part("big", cores=4, centre="partner")), {"partner": Transfer()})
    p = plan(jobs_of("w", 5, 100), sites)
    assert len(p.placement["w"]) == 2
    with pytest.raises(InputError, match=r"rule w is split between .*centres.home.slurm_cluster"):
        profile_config(p, jobs_of("w", 5, 100), sites)


def test_two_clusters_every_rule_names_its_cluster_and_memory_fits_the_partner(tmp_path):
    """With partner centres every job names its cluster (home's by default), and a rule's memory,
    doubling per retry, never outgrows the smallest node it may be sent to."""
    sites = Site("home", (part("cpu", cores=1, mem_mb=64000, slurm_cluster="home"),
                          part("cpu", cores=4, mem_mb=9000, centre="partner", slurm_cluster="partner")),
                 {"partner": Transfer()})
    jobs = jobs_of("w", 5, 100, mem_mb=4000) + jobs_of("x", 1, 10, start=5, mem_mb=500)
    p = plan(jobs, sites)
    assert "partner/cpu" in p.placement["w"]
    config = tmp_path / "config.yaml"
    config.write_text(profile_config(p, jobs, sites))
    args, resources = snakemake_reads(config)
    assert resources["default-resources"]["clusters"] == "home"
    # 4000 MB doubles twice (retries: 2) to 16000: capped at the partner's 9000
    assert dict(args)["set-resources"] and "min(4000 * 2 ** (attempt - 1), 9000)" in config.read_text()
    assert resources["w"]["mem_mb"] == 4000
    # 500 MB * 4 stays below every node: the rule keeps its own memory
    assert "mem_mb" not in resources.get("x", {})


def test_static_mapping_without_home_gpus_and_simulation_errors_name_the_scenario():
    from aisci.placement.model import static_placement
    from aisci.placement.simcli import _simulate

    sites = Site("home", (part("cpu", cores=4), part("gpu", cores=4, gpus=1, centre="partner")), {"partner": Transfer()})
    jobs = jobs_of("w", 2, 10) + jobs_of("score", 2, cpu=100, gpu=10, start=2)
    # no GPU at home: GPU-class rules run on the home CPUs in the static mapping
    assert static_placement(jobs, sites) == {"w": ("home/cpu",), "score": ("home/cpu",)}
    # all four independent jobs fit the 4 cores at once: the CPU runtime of 'score' (100 s) is the makespan
    assert _simulate("the static mapping", jobs, sites, static_placement(jobs, sites)).makespan_s == 100
    with pytest.raises(InputError, match=r"cannot simulate the plan: rule 'w'.* fits none of its partitions"):
        _simulate("the plan", jobs_of("w", 1, 10, threads=64), sites, {"w": ("home/cpu",)})


def test_planned_profile_reads_back_through_snakemake_as_exactly_the_names(tmp_path):
    # partitions named like a number and a builtin, an account like a subtraction, a rule split
    # between the two partitions (a per-job expression): Snakemake reads back exactly the strings
    sites = Site("home", (part("2023-110", cores=2), part("open", cores=3), part("gpu", cores=2, gpus=1)))
    jobs = (jobs_of("work", 10, 100) + jobs_of("check_reads", 1, 10, start=10)
            + jobs_of("align_reads", 1, 100, start=11, deps=lambda i: (10,))
            + jobs_of("call_group", 2, 50, start=12, deps=lambda i: (11,)))
    p = plan(jobs, sites)
    assert p.placement["work"] == ("home/open", "home/2023-110")
    slurm = {"name": "t", "account": "2023-110", "qos": "normal", "max_jobs": 5, "latency_wait": 5, "retries": 0,
             "status_command": "squeue", "first_status_check": 5, "default_runtime": 10}
    write_plan(p, jobs, with_settings(sites, slurm), tmp_path)
    text = (tmp_path / "config.yaml").read_text()
    assert "  slurm_account: \"'2023-110'\"\n" in text
    assigned = p.assignment(jobs)
    for job in jobs:
        args, resources = snakemake_reads(tmp_path / "config.yaml", {"sample": job.wildcards})
        assert resources["default-resources"] == {"runtime": 10, "slurm_account": "2023-110", "slurm_partition": "2023-110"}
        assert resources[job.rule]["slurm_partition"] == sites.partition(assigned[job.id]).name
        assert args["slurm-qos"] == "normal"
    # check_reads (nice 10) and align_reads share the 'align' group: one Slurm job, one --nice
    assert resources["check_reads"]["slurm_extra"] == resources["align_reads"]["slurm_extra"] == "--nice=10"
    # every entry of the profile is commented
    lines = text.splitlines()
    for i, line in enumerate(lines):
        if line and not line.startswith((" ", "#")) and i:
            assert lines[i - 1].startswith("#"), line
