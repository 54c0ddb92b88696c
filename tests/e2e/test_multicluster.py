"""Two real Slurm clusters (scripts/slurm-local: home and partner): a planned profile sends rules
to the partner, the driver follows, cancels and retries jobs on both, and `aisci usage` reports both."""

from __future__ import annotations

import gzip
import os
import re
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import pytest
import yaml

from aisci.slurm.sacct import RUN_ID_DEFAULT_SINCE
from aisci.slurm.staging import LEDGER, read_ledger
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
    # no file system shared under /tmp (scripts/slurm-local): the partner's own disk is there
    staging:
      paths: {/tmp: /var/spool/slurm-local/partner/tmp}
      bwlimit_kb: 0
transfers:
  - {from: home, to: partner, cost_per_gb: 0, gbit_s: 10}
max_jobs: 20
latency_wait: 5
status_command: sacct
first_status_check: 1
default_runtime: 60
"""
GPU_RULES = ("annotate_context",)
PARTNER_TMP = Path("/var/spool/slurm-local/partner/tmp")  # the partner's /tmp (scripts/slurm-local)


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


def partner_view(path: Path) -> Path:
    """Where the partner's jobs' /tmp is, seen from home."""
    return PARTNER_TMP / path.relative_to("/tmp")


def start_driver(workdir: Path, profile: Path, cfg: Path, env: dict[str, str], log: Path) -> subprocess.Popen:
    """The germline pipeline's Snakemake driver in a session of its own, its output in ``log``."""
    with open(log, "w") as fh:
        return subprocess.Popen(
            [sys.executable, "-m", "snakemake", "--snakefile", str(REPO / "workflows/germline/Snakefile"),
             "--directory", str(workdir), "--profile", str(profile), "--configfile", str(cfg)],
            stdout=fh, stderr=subprocess.STDOUT, env=env, start_new_session=True)


def kill_mid_transfer(tmp: Path, workdir: Path, profile: Path, cfg: Path, env: dict[str, str]) -> None:
    """Start the run with transfers slowed down, kill the driver (and its rsync) while a file is on its
    way to the partner, and clean up as a user would (cancel the run's jobs, unlock)."""
    site = profile / "site.yaml"
    fast = site.read_text()
    site.write_text(fast.replace("bwlimit_kb: 0", "bwlimit_kb: 20"))
    # this session's files on the partner's disk, and what killed transfers of earlier sessions left
    shutil.rmtree(partner_view(tmp.parent), ignore_errors=True)
    scratch = PARTNER_TMP / ".aisci-staging"
    shutil.rmtree(scratch, ignore_errors=True)
    log = tmp / "killed.driver.log"
    proc = start_driver(workdir, profile, cfg, env, log)
    try:
        end = time.time() + 300
        while time.time() < end and proc.poll() is None and not (scratch.is_dir() and any(scratch.iterdir())):
            time.sleep(0.2)
        assert proc.poll() is None, "the driver ended before any transfer:\n" + log.read_text()[-3000:]
        assert scratch.is_dir() and any(scratch.iterdir()), "no transfer to the partner started"
        time.sleep(1)
        os.killpg(proc.pid, signal.SIGKILL)
        proc.wait(timeout=30)
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGKILL)
        site.write_text(fast)
    # killed mid-file: its partial copy sits in the scratch folder under a temporary name...
    assert any(scratch.iterdir()), "the kill came after the transfer"
    # ...and no partial file is at any path the partner's jobs see: each is absent or whole
    for there in [p for p in partner_view(tmp.parent).rglob("*") if p.is_file()]:
        here = Path("/tmp") / there.relative_to(PARTNER_TMP)
        assert here.is_file() and here.stat().st_size == there.stat().st_size, f"partial file {there}"
    subprocess.run(["scancel", "-M", "home,partner", "--name", run_id(log.read_text())], check=False)
    res = subprocess.run([sys.executable, "-m", "snakemake", "--snakefile", str(REPO / "workflows/germline/Snakefile"),
                          "--directory", str(workdir), "--configfile", str(cfg), "--unlock"],
                         capture_output=True, text=True, env=env, check=False)
    assert res.returncode == 0, res.stderr[-2000:]


def test_planned_rules_run_on_the_partner_with_gpus_and_survive_a_cancel(planned, sim_data):
    """The partner shares no file system with home under /tmp: its jobs get their data by staging. The
    driver is killed mid-transfer first; the next run redoes the transfer, and survives a cancel."""
    tmp, cfg, profile = planned
    config = yaml.safe_load((profile / "config.yaml").read_text())
    assert config["default-resources"]["clusters"] == "'home'"
    assert config["default-resources"]["aisci_site"] == f"'{profile / 'site.yaml'}'"
    for rule in GPU_RULES:
        assert config["set-resources"][rule]["clusters"] == "'partner'", config["set-resources"][rule]
    workdir = tmp / "run"
    workdir.mkdir()
    env = dict(os.environ, PATH=f"{Path(sys.executable).parent}{os.pathsep}{os.environ['PATH']}")
    env.pop("SLURM_CLUSTERS", None)
    kill_mid_transfer(tmp, workdir, profile, cfg, env)
    log = tmp / "run.driver.log"
    proc = start_driver(workdir, profile, cfg, env, log)
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

    # staged: inputs went to the partner's disk (the killed transfer redone), results came back
    rows = read_ledger(workdir / LEDGER)
    staged_in = [r for r in rows if r["direction"] == "in" and int(r["bytes"]) > 0]
    assert staged_in and all(r["centre"] == "partner" for r in rows), rows
    assert any(r["direction"] == "out" and r["rule"] == "annotate_context" and int(r["files"]) >= 2 for r in rows), rows
    for sample in sim_data.samples:
        there = partner_view(workdir / f"results/context/{sample}.context.parquet")
        assert there.read_bytes() == (workdir / f"results/context/{sample}.context.parquet").read_bytes()
    assert not partner_view(workdir / "results/report.html").exists()  # made at home, never sent
    out = subprocess.run([sys.executable, "-m", "aisci.cli", "usage", "--transfers", str(workdir), "--format", "json"],
                         capture_output=True, text=True, check=False)
    assert out.returncode == 0, out.stderr
    import json

    moved = json.loads(out.stdout)["transfers"]
    assert {(m["rule"], m["centre"]) for m in moved} >= {("annotate_context", "partner")}
    assert sum(m["bytes_in"] for m in moved) == sum(int(r["bytes"]) for r in rows if r["direction"] == "in")

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


def test_slurm_routing_profile_runs_across_both_clusters(sim_data):
    """profiles/multicluster as `aisci profile new` writes it: every job to whichever cluster starts it
    first (sacct status over both, partition limits naming both). The read checks only: a few jobs."""
    # Slurm picks the cluster after submission: the project must be on a file system both share, which
    # on the local clusters is anywhere but /tmp (scripts/slurm-local)
    shared = Path(tempfile.mkdtemp(prefix="aisci-routed-", dir="/var/tmp"))
    try:
        data = shared / "data"
        shutil.copytree(sim_data.sample_sheet.parent, data)
        cfg = write_config(shared / "c.yaml", samples=str(data / sim_data.sample_sheet.name),
                           reference=str(data / sim_data.reference.name), splice={"enabled": False})
        targets = [f"results/qc/{s}.reads.json" for s in sim_data.samples]
        res = run_snakemake(shared / "routed", *targets, "--profile", str(REPO / "profiles/multicluster"),
                            "--configfile", str(cfg), timeout=600)
        assert res.returncode == 0, res.stderr[-5000:]
        for target in targets:
            assert (shared / "routed" / target).exists()
    finally:
        shutil.rmtree(shared, ignore_errors=True)
    jobs = sacct_all(run_id(res.stdout + res.stderr), "JobID", "Cluster", "State", "Comment")
    assert len(jobs) == len(targets) and all(j["State"] == "COMPLETED" for j in jobs), jobs
    assert {j["Cluster"] for j in jobs} <= {"home", "partner"}
