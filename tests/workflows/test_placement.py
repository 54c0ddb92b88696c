"""Placement on a real workflow: the job profile from Snakemake's DAG, `aisci plan` and `aisci simulate-cluster`."""

from __future__ import annotations

import ast
import json
import re
import subprocess
import sys
from collections import Counter
from pathlib import Path

import pytest
import yaml

from tests.conftest import GERMLINE, write_config

SITE = """
name: test
home: home
centres:
  home:
    slurm_cluster: home
    partitions:
      cpu: {nodes: 1, cores: 2, mem_gb: 20, max_walltime: "1:00:00", core_hour_cost: 0.01}
      gpu: {nodes: 1, cores: 2, mem_gb: 20, gpus: 2, gpu_hour_cost: 0.5}
  partner:
    slurm_cluster: partner
    partitions:
      big: {nodes: 4, cores: 16, mem_gb: 64, core_hour_cost: 0.02, queue_wait: 5}
transfers:
  - {from: home, to: partner, cost_per_gb: 0.01, gbit_s: 1}
max_jobs: 50
latency_wait: 5
"""


@pytest.fixture
def config(sim_data, tmp_path) -> Path:
    return write_config(tmp_path / "c.yaml", samples=str(sim_data.sample_sheet), reference=str(sim_data.reference),
                        calling={"joint": True, "chunk_size": 100000}, splice={"annotation": str(sim_data.annotation)},
                        report={"multiqc": True})


def aisci(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "aisci.cli", *args], capture_output=True, text=True, timeout=600,
                          check=False)


def test_job_profile_from_snakemakes_dag(sim_data, config, tmp_path):
    from aisci.placement.dag import workflow_jobs

    wf = workflow_jobs(GERMLINE, configfiles=[config], workdir=tmp_path / "run")
    jobs = {j.id: j for j in wf.jobs}
    counts = Counter(j.rule for j in wf.jobs)
    # 2 contigs of 150 kb in 100 kb chunks: 4 chunks, each its own group, per callset (2 samples +
    # cohort); the local rules 'all', 'write_regions' and 'pipeline_info' are left out
    assert counts == {"prepare_reference": 1, "index_minimap2": 1, "check_reads": 2, "align_reads": 2,
                      "samtools_stats": 2, "samtools_flagstat": 2, "call_group": 12, "gather_calls": 3,
                      "filter_calls": 3, "stamp_calls": 3, "evaluate_calls": 2, "annotate_context": 2,
                      "cache_splicing": 4, "score_splicing": 12, "gather_splicing": 3, "bcftools_stats": 3,
                      "report": 1, "multiqc": 1}
    reads = {s: sum(p.stat().st_size for p in sim_data.reads[s]) for s in sim_data.samples}
    for j in wf.jobs:
        deps = Counter(jobs[d].rule for d in j.deps)
        if j.rule == "align_reads":
            assert deps == {"check_reads": 1, "index_minimap2": 1}
            assert jobs[next(d for d in j.deps if jobs[d].rule == "check_reads")].wildcards == j.wildcards
            # a sample's reads travel with its jobs; the shared reference does not count
            assert j.input_bytes == reads[j.wildcards] and (j.threads, j.mem_mb, j.gpus) == (2, 8000, 0)
        if j.rule == "call_group" and j.wildcards.startswith("cohort"):
            assert deps["align_reads"] == 2 and j.input_bytes == sum(reads.values())
        if j.rule == "cache_splicing":  # one per scoring group, over the three callsets: the GPU job
            assert j.gpus == 1 and deps["stamp_calls"] == 3
        if j.rule == "score_splicing":  # its scores come from the cache
            assert j.gpus == 0 and deps == {"prepare_reference": 1, "stamp_calls": 1, "cache_splicing": 1}
        assert wf.benchmarks[j.id] is not None and wf.benchmarks[j.id].startswith(f"benchmarks/{j.rule}/")
    assert jobs[0].deps == () and not (tmp_path / "run" / "results").exists()


def test_plan_writes_a_profile_and_simulate_cluster_compares(config, tmp_path):
    (tmp_path / "site.yaml").write_text(SITE)
    common = ["--site", str(tmp_path / "site.yaml"), "--snakefile", str(GERMLINE), "--configfile", str(config),
              "--directory", str(tmp_path / "run")]
    out = aisci("plan", *common, "--out", str(tmp_path / "planned"))
    assert out.returncode == 0, out.stderr[-3000:]
    assert "rule" in out.stdout and "why" in out.stdout and "profile written to" in out.stdout
    profile = yaml.safe_load((tmp_path / "planned" / "config.yaml").read_text())
    plan = json.loads((tmp_path / "planned" / "plan.json").read_text())
    rules = {"prepare_reference", "index_minimap2", "check_reads", "align_reads", "samtools_stats",
             "samtools_flagstat", "call_group", "gather_calls", "filter_calls", "stamp_calls", "evaluate_calls",
             "gather_splicing", "bcftools_stats", "report", "multiqc",
             "annotate_context", "cache_splicing", "score_splicing"}
    assert set(profile["set-resources"]) == set(plan["placement"]) == rules
    assert profile["executor"] == "slurm" and profile["jobs"] == 50
    # every planned job count adds up to the DAG's, and each runtime request is within the wall time limit
    assert sum(row["jobs"] for row in plan["decisions"]) == 59  # 3 bcftools_stats, the report and MultiQC since 54
    for res in profile["set-resources"].values():
        try:
            partition = ast.literal_eval(res["slurm_partition"])  # a Python literal, as Snakemake evaluates it
        except ValueError:
            continue  # a rule split over partitions: an expression of the job's wildcards
        if partition == "cpu":
            assert res["runtime"] <= 60
    rows = (tmp_path / "planned" / "plan.tsv").read_text().splitlines()
    assert rows[0].startswith("rule\tclass\tpartition\tjobs") and len(rows) == 1 + len(plan["decisions"])

    out = aisci("simulate-cluster", *common, "--plan", str(tmp_path / "planned" / "plan.json"),
                "--png", str(tmp_path / "util.png"), "--json", str(tmp_path / "sim.json"))
    assert out.returncode == 0, out.stderr[-3000:]
    assert "plan / static: makespan" in out.stdout
    sim = json.loads((tmp_path / "sim.json").read_text())
    assert set(sim) == {"static", "earliest", "plan"}  # a partner centre: Slurm's own routing too
    assert sim["plan"]["makespan_s"] > 0 and sim["static"]["makespan_s"] > 0
    assert (tmp_path / "util.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    # the plan as `aisci plan` chose it (the ILP's or HEFT's, which it names): replayed exactly
    chosen = re.search(r"the plan uses (HEFT|the ILP)", out_plan := aisci("plan", *common, "--out", str(tmp_path / "again")).stdout)
    assert chosen, out_plan[-2000:]
    again = json.loads((tmp_path / "again" / "plan.json").read_text())
    assert ("assignment" in again) == (chosen.group(1) == "HEFT")
    # planning now, with a partner centre: Slurm's own multi-cluster routing is simulated too
    out = aisci("simulate-cluster", *common, "--json", str(tmp_path / "now.json"))
    assert out.returncode == 0, out.stderr[-3000:]
    assert set(json.loads((tmp_path / "now.json").read_text())) == {"static", "earliest", "plan"}
    assert "plan / Slurm's multi-cluster routing (earliest): makespan" in out.stdout


def test_bad_input_stops_before_any_job(config, tmp_path):
    bad = yaml.safe_load(SITE)
    bad["centres"]["home"]["partitions"]["cpu"]["cores"] = "two"
    (tmp_path / "bad.yaml").write_text(yaml.safe_dump(bad))
    common = ["--snakefile", str(GERMLINE), "--configfile", str(config), "--directory", str(tmp_path / "run")]
    out = aisci("plan", "--site", str(tmp_path / "bad.yaml"), *common, "--out", str(tmp_path / "p"))
    assert out.returncode == 1 and "bad.yaml: centres.home.partitions.cpu.cores" in out.stderr, out.stderr
    # nodes too small for align_reads (8000 MB) and index_minimap2
    small = yaml.safe_load(SITE)
    small["centres"] = {"home": {"partitions": {"tiny": {"nodes": 4, "cores": 2, "mem_gb": 4}}}}
    small["transfers"] = []
    (tmp_path / "small.yaml").write_text(yaml.safe_dump(small))
    out = aisci("plan", "--site", str(tmp_path / "small.yaml"), *common, "--out", str(tmp_path / "p"))
    assert out.returncode == 1 and "fits nowhere: its jobs need 2 threads, 8000 MB" in out.stderr, out.stderr
    assert not (tmp_path / "p").exists() and not (tmp_path / "run" / "results").exists()
