"""Dry-run through the Slurm profile: how many Slurm jobs a 1,000-sample cohort submits."""

from __future__ import annotations

import re

from aisci.profile import GROUPS
from tests.conftest import REPO, run_snakemake, write_config
from tests.workflows.grch38 import many_samples
from tests.workflows.test_dryrun import job_counts

TARGET_RULES = {"all", "write_regions", "pipeline_info"}  # local rules: never submitted


def slurm_jobs(stdout: str) -> int:
    """Jobs the Slurm executor would submit: one per group job, one per ungrouped non-local job."""
    group_jobs = len(re.findall(r"^\[.*\] Group job \w+", stdout, re.M)) or stdout.count("Group job ")
    ungrouped = sum(n for rule, n in job_counts(stdout).items() if rule not in GROUPS and rule not in TARGET_RULES)
    return group_jobs + ungrouped


def test_thousand_samples_submit_eight_jobs_each(sim_data, tmp_path):
    fq1, fq2 = sim_data.reads["S1"]
    sheet = tmp_path / "cohort.tsv"
    many_samples(sheet, fq1, fq2, 1000, prefix="s")
    # joint calling on: the cohort call adds one more group job
    cfg = write_config(tmp_path / "c.yaml", samples=str(sheet), reference=str(sim_data.reference),
                       calling={"joint": True, "chunk_size": 100000})
    res = run_snakemake(
        tmp_path / "run", "--dry-run", "--profile", str(REPO / "profiles" / "slurm"), "--configfile", str(cfg),
        "--slurm-partition-config", str(REPO / "profiles" / "slurm" / "partitions.yaml"),
        timeout=600,
    )
    assert res.returncode == 0, res.stderr[-3000:]
    counts = job_counts(res.stdout)
    # 300 kb in 100 kb chunks: 4 chunks, each its own group, per callset -> 4,004 calling jobs, all
    # inside 'calls' groups
    assert counts["call_group"] == 4 * 1001 and counts["align_reads"] == 1000
    total_rule_jobs = sum(n for rule, n in counts.items() if rule not in TARGET_RULES)
    submitted = slurm_jobs(res.stdout)
    # per sample: 'align' group, 'calls' group, annotate_context, SpliceAI on each of 4 scoring groups
    # (GPU jobs: parallel on the GPU partition) and their gather; plus reference prep (2) and the
    # cohort's 'calls' group, 4 scoring jobs and gather
    assert counts["score_splicing"] == 4 * 1001 and counts["gather_splicing"] == 1001
    assert submitted == 8 * 1000 + 2 + 6
    assert total_rule_jobs > 2 * submitted  # grouping really merged jobs (17,013 rule jobs here)
