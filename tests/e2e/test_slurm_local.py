"""The local Slurm cluster behaves like a site's: partitions, GPU GRES, accounting, memory limits."""

from __future__ import annotations

import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path

import pytest

from aisci.slurm.sacct import parse_size

from tests.slurm_cluster import SLURM_LOCAL, ensure_cluster, sacct_rows

pytestmark = pytest.mark.slow

# States after which a job changes no more (sacct's spelling; CANCELLED may read "CANCELLED by 0").
FINAL = (
    "COMPLETED",
    "FAILED",
    "CANCELLED",
    "OUT_OF_MEMORY",
    "TIMEOUT",
    "NODE_FAIL",
    "PREEMPTED",
    "BOOT_FAIL",
    "DEADLINE",
)
COLUMNS = "JobID,Partition,State,ExitCode,AllocTRES,Comment,MaxRSS"
MEM_LIMIT_MB = 100
ALLOC_MB = 500


@dataclass(frozen=True)
class Job:
    """A submitted test job: its id, its working directory and the --comment it carried."""

    id: str
    workdir: Path
    comment: str


def sbatch(workdir: Path, name: str, script: str, *options: str) -> Job:
    """Submit ``script`` as a batch job running in its own directory under ``workdir``."""
    jobdir = workdir / name
    jobdir.mkdir()
    (jobdir / "job.sh").write_text("#!/bin/bash\nset -euo pipefail\n" + script)
    # The comment mimics the Snakemake Slurm plugin's, which sacct must show (job_comment flag).
    comment = f"rule_{name}_wildcards_test"
    out = subprocess.run(
        [
            "sbatch",
            "--parsable",
            f"--job-name=aisci_{name}",
            f"--comment={comment}",
            f"--chdir={jobdir}",
            "--output=slurm-%j.out",
            "--time=2",
            "--ntasks=1",
            "--cpus-per-task=1",
            *options,
            str(jobdir / "job.sh"),
        ],
        capture_output=True,
        text=True,
        check=True,
        timeout=60,
    ).stdout.strip()
    return Job(id=out.split(";")[0], workdir=jobdir, comment=comment)


def wait_done(jobs: list[Job], timeout: float = 90) -> None:
    """Wait until sacct holds every job's and every batch step's final record."""
    deadline = time.monotonic() + timeout
    ids = ",".join(job.id for job in jobs)
    while True:
        rows = sacct_rows("-j", ids, "-o", "JobID,State,Partition")
        # slurmdbd may store a job that ran in milliseconds with its end before its start record:
        # for a second or two sacct shows it COMPLETED with no partition yet.
        done = {
            row["JobID"]
            for row in rows
            if row["State"].startswith(FINAL)
            and ("." in row["JobID"] or row["Partition"])
        }
        # Steps (".batch") are recorded apart from the job: their MaxRSS is what we check.
        if all(job.id in done and f"{job.id}.batch" in done for job in jobs):
            return
        if time.monotonic() > deadline:
            raise AssertionError(f"jobs not finished after {timeout}s: {rows}")
        time.sleep(1)


def job_row(job: Job) -> dict[str, str]:
    """The job's allocation-level sacct row (-X: no steps)."""
    rows = sacct_rows("-j", job.id, "-X", "-o", COLUMNS)
    assert len(rows) == 1, rows
    return rows[0]


@pytest.fixture(scope="module")
def jobs(tmp_path_factory) -> dict[str, Job]:
    """One CPU job, one GPU job and one job exceeding its --mem, submitted together and finished."""
    ensure_cluster()
    work = tmp_path_factory.mktemp("slurm_local")
    submitted = {
        # No --mem: DefMemPerCPU must give it a small share, not the whole node.
        "cpu": sbatch(work, "cpu", "echo ok > result.txt\n", "--partition=cpu"),
        "gpu": sbatch(
            work,
            "gpu",
            'echo "${CUDA_VISIBLE_DEVICES-unset}" > cuda.txt\n',
            "--partition=gpu",
            "--gres=gpu:1",
        ),
        # Touches every page (b"x" * n), so the RSS really is ALLOC_MB, and holds it for several
        # accounting samples (JobAcctGatherFrequency=1 s) before it could finish.
        "oom": sbatch(
            work,
            "oom",
            f"{sys.executable} -c 'import time; b = b\"x\" * ({ALLOC_MB} * 2**20); time.sleep(20)'\n"
            "echo survived > result.txt\n",
            "--partition=cpu",
            f"--mem={MEM_LIMIT_MB}M",
        ),
    }
    wait_done(list(submitted.values()))
    return submitted


def test_cpu_job_on_cpu_partition(jobs):
    job = jobs["cpu"]
    row = job_row(job)
    assert (row["Partition"], row["State"], row["ExitCode"]) == (
        "cpu",
        "COMPLETED",
        "0:0",
    ), row
    assert (job.workdir / "result.txt").read_text() == "ok\n"
    assert "gres/gpu" not in row["AllocTRES"], row
    # DefMemPerCPU=2048 for a 1-CPU job without --mem.
    assert "mem=2G" in row["AllocTRES"].split(","), row
    assert row["Comment"] == job.comment


def test_finished_job_still_in_squeue(jobs):
    """MinJobAge=300: profiles that poll squeue still see a just-finished job and its state."""
    out = subprocess.run(
        ["squeue", "-h", "-t", "all", "-j", jobs["cpu"].id, "-o", "%T"],
        capture_output=True,
        text=True,
        check=True,
        timeout=30,
    ).stdout.split()
    assert out == ["COMPLETED"]


def test_gpu_job_gets_one_gpu(jobs):
    job = jobs["gpu"]
    row = job_row(job)
    assert (row["Partition"], row["State"], row["ExitCode"]) == (
        "gpu",
        "COMPLETED",
        "0:0",
    ), row
    assert "gres/gpu=1" in row["AllocTRES"].split(","), row
    assert row["Comment"] == job.comment
    # Slurm's gpu GRES plugin exports the index of the device it handed out.
    assert (job.workdir / "cuda.txt").read_text().strip() in {"0", "1"}


def test_job_over_its_memory_is_killed(jobs):
    """Without cgroups, OverMemoryKill polls RSS and SIGKILLs the step: the job ends FAILED with
    signal 9 (OUT_OF_MEMORY needs cgroup OOM events), the batch step CANCELLED, its MaxRSS recorded."""
    job = jobs["oom"]
    row = job_row(job)
    assert (row["Partition"], row["State"], row["ExitCode"]) == (
        "cpu",
        "FAILED",
        "0:9",
    ), row
    assert row["Comment"] == job.comment
    assert not (job.workdir / "result.txt").exists(), (
        "the script went on after the allocation"
    )
    batch = sacct_rows("-j", f"{job.id}.batch", "-o", "JobID,State,ExitCode,MaxRSS")
    assert len(batch) == 1 and batch[0]["State"].startswith("CANCELLED"), batch
    # Recorded, and above the limit it was killed for.
    assert batch[0]["MaxRSS"], batch
    assert parse_size(batch[0]["MaxRSS"])[0] > MEM_LIMIT_MB * 2**20, batch
    log = next(job.workdir.glob("slurm-*.out")).read_text()
    assert "exceeded memory limit" in log


def test_status_reports_healthy(jobs):
    proc = subprocess.run(
        [str(SLURM_LOCAL), "status"],
        check=False,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert "FAILING" not in proc.stdout
