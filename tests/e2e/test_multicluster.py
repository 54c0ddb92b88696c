"""Two real Slurm clusters (scripts/slurm-local: home and partner): a planned profile sends rules
to the partner, the driver follows, cancels and retries jobs on both, and `aisci usage` reports both."""

from __future__ import annotations

import gzip
import os
import re
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import yaml

from aisci.slurm.sacct import RUN_ID_DEFAULT_SINCE
from tests.conftest import REPO, run_snakemake, write_config
from tests.slurm_cluster import ensure_cluster, sacct_rows

pytestmark = pytest.mark.slow

# The two local clusters, but the home centre without GPUs: every GPU-class rule must go to the
# partner, the CPU rules may go to either (the plan decides).
SITE = """\
name: home-without-gpus
home: home
centres:
  home:
    slurm_cluster: home
    partitions:
      cpu: {nodes: 1, cores: 2, mem_gb: 20}
  partner:
    slurm_cluster: partner
    partitions:
      cpu: {nodes: 1, cores: 2, mem_gb: 9}
      gpu: {nodes: 1, cores: 2, mem_gb: 9, gpus: 2}
transfers:
  - {from: home, to: partner, cost_per_gb: 0, gbit_s: 10}
max_jobs: 20
latency_wait: 5
status_command: sacct
first_status_check: 1
default_runtime: 60
"""
GPU_RULES = ("annotate_context",)


@pytest.fixture(scope="module", autouse=True)
def clusters():
    ensure_cluster()


def sacct_all(run: str, *fields: str) -> list[dict[str, str]]:
    """One row per job of a run on every cluster."""
    return sacct_rows("--clusters", "all", "--name", run, "-X", "--allusers", "-S", RUN_ID_DEFAULT_SINCE,
                      "-o", ",".join(fields))


def run_id(text: str) -> str:
    m = re.search(r"SLURM run ID: (\S+)", text)
    assert m, "no SLURM run ID in the output"
    return m.group(1)


def rule_of(comment: str) -> str:
    m = re.match(r"rule_(.+?)(?:_wildcards_.*)?$", comment)
    return m.group(1) if m else comment


def vcf_records(path: Path) -> list[str]:
    """A VCF's records and its header without the lines that name the run (dates, commands)."""
    with gzip.open(path, "rt") as fh:
        return [line for line in fh if not line.startswith(("##fileDate", "##bcftools", "##source"))]


@pytest.fixture(scope="module")
def planned(sim_data, tmp_path_factory):
    """A plan on the two clusters for the small simulated data set; its GPU-class stage is the context
    (the SpliceAI stage's placement is tested in test_slurm_pipeline; here it would only add minutes)."""
    tmp = tmp_path_factory.mktemp("multicluster")
    (tmp / "site.yaml").write_text(SITE)
    cfg = write_config(tmp / "c.yaml", samples=str(sim_data.sample_sheet), reference=str(sim_data.reference),
                       calling={"joint": False, "chunk_size": 1000000}, splice={"enabled": False})
    out = subprocess.run(
        [sys.executable, "-m", "aisci.cli", "plan", "--site", str(tmp / "site.yaml"),
         "--snakefile", str(REPO / "workflows/germline/Snakefile"), "--configfile", str(cfg),
         "--directory", str(tmp / "plan-dir"), "--out", str(tmp / "planned")],
        capture_output=True, text=True, timeout=300, check=False,
    )
    assert out.returncode == 0, out.stderr[-3000:]
    return tmp, cfg, tmp / "planned"


def test_planned_rules_run_on_the_partner_with_gpus_and_survive_a_cancel(planned, sim_data):
    tmp, cfg, profile = planned
    config = yaml.safe_load((profile / "config.yaml").read_text())
    assert config["default-resources"]["clusters"] == "'home'"
    for rule in GPU_RULES:
        assert config["set-resources"][rule]["clusters"] == "'partner'", config["set-resources"][rule]
    workdir = tmp / "run"
    workdir.mkdir()
    env = dict(os.environ, PATH=f"{Path(sys.executable).parent}{os.pathsep}{os.environ['PATH']}")
    env.pop("SLURM_CLUSTERS", None)
    log = tmp / "run.driver.log"
    with open(log, "w") as fh:
        proc = subprocess.Popen(
            [sys.executable, "-m", "snakemake", "--snakefile", str(REPO / "workflows/germline/Snakefile"),
             "--directory", str(workdir), "--profile", str(profile), "--configfile", str(cfg)],
            stdout=fh, stderr=subprocess.STDOUT, env=env, start_new_session=True)
    try:
        # cancel the first job seen running on the partner: the driver must see it end and retry it
        victim = None
        end = time.time() + 600
        while victim is None and time.time() < end and proc.poll() is None:
            out = subprocess.run(["squeue", "-M", "partner", "-h", "-t", "RUNNING", "-o", "%i|%k"],
                                 capture_output=True, text=True).stdout
            victim = next((line.split("|")[0] for line in out.splitlines() if "|rule_" in line), None)
            time.sleep(0.5)
        assert victim, "no job ran on the partner:\n" + log.read_text()[-3000:]
        subprocess.run(["scancel", "-M", "partner", victim], check=True)
        assert proc.wait(timeout=900) == 0, log.read_text()[-5000:]
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGKILL)
    run = run_id(log.read_text())
    jobs = sacct_all(run, "JobID", "Cluster", "Partition", "State", "AllocTRES", "Comment")
    where = {}
    for j in jobs:
        where.setdefault(rule_of(j["Comment"]), set()).add(j["Cluster"])
    for rule in GPU_RULES:
        assert where.get(rule) == {"partner"}, (rule, where)
        for j in jobs:
            if rule_of(j["Comment"]) == rule and j["State"] == "COMPLETED":
                assert "gres/gpu=1" in j["AllocTRES"] and j["Partition"] == "gpu", j
    assert "home" in set().union(*where.values()), where
    cancelled = [j for j in jobs if j["JobID"] == victim]
    assert cancelled and cancelled[0]["State"].startswith("CANCELLED") and cancelled[0]["Cluster"] == "partner"
    retried = rule_of(cancelled[0]["Comment"])
    assert any(rule_of(j["Comment"]) == retried and j["State"] == "COMPLETED" for j in jobs), jobs

    # the same outputs as a run on one machine
    local = tmp / "local"
    res = run_snakemake(local, "--profile", str(REPO / "profiles/local"), "--configfile", str(cfg), timeout=900)
    assert res.returncode == 0, res.stderr[-3000:]
    for sample in sim_data.samples:
        assert vcf_records(workdir / f"results/calls/{sample}.vcf.gz") == vcf_records(local / f"results/calls/{sample}.vcf.gz")
        for table in (f"context/{sample}.context.parquet",):
            import pyarrow.parquet as pq

            assert pq.read_table(workdir / "results" / table).equals(pq.read_table(local / "results" / table))

    # aisci usage over both clusters
    out = subprocess.run([sys.executable, "-m", "aisci.cli", "usage", "--run-id", run, "--format", "json"],
                         capture_output=True, text=True, check=False)
    assert out.returncode == 0, out.stderr
    import json

    report = json.loads(out.stdout)
    centres = {c["centre"] for c in report["centres"]}
    assert centres == {"home", "partner"}, report["centres"]
    assert {p["partition"] for p in report["partitions"]} >= {"home/cpu", "partner/gpu"}
    assert report["jobs"] == len(jobs)


def test_slurm_routing_profile_runs_across_both_clusters(planned, sim_data):
    """profiles/multicluster as `aisci profile new` writes it: every job to whichever cluster starts it
    first (sacct status over both, partition limits naming both). The read checks only: a few jobs."""
    tmp, cfg, _ = planned
    targets = [f"results/qc/{s}.reads.json" for s in sim_data.samples]
    res = run_snakemake(tmp / "routed", *targets, "--profile", str(REPO / "profiles/multicluster"), "--configfile", str(cfg),
                        timeout=600)
    assert res.returncode == 0, res.stderr[-5000:]
    jobs = sacct_all(run_id(res.stdout + res.stderr), "JobID", "Cluster", "State", "Comment")
    assert len(jobs) == len(targets) and all(j["State"] == "COMPLETED" for j in jobs), jobs
    assert {j["Cluster"] for j in jobs} <= {"home", "partner"}
    for target in targets:
        assert (tmp / "routed" / target).exists()
