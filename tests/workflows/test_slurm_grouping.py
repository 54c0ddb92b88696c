"""Dry-runs through the Slurm profile: the jobs a 1,000-sample cohort submits, and what each group job holds."""

from __future__ import annotations

import re

import pytest

from aisci.slurm.profile import GROUPS
from tests.conftest import REPO, run_snakemake, write_config
from tests.workflows.grch38 import many_samples
from tests.workflows.test_dryrun import job_counts

TARGET_RULES = {"all", "write_regions", "pipeline_info"}  # local rules: never submitted


def slurm_jobs(stdout: str) -> int:
    """Jobs the Slurm executor would submit: one per group job, one per ungrouped non-local job."""
    group_jobs = len(re.findall(r"^\[.*\] Group job \w+", stdout, re.M)) or stdout.count("Group job ")
    ungrouped = sum(n for rule, n in job_counts(stdout).items() if rule not in GROUPS and rule not in TARGET_RULES)
    return group_jobs + ungrouped


def group_members(stdout: str) -> list[tuple[str, list[str]]]:
    """Each group job of a dry-run: its group and the rules of its jobs (listed indented under its header,
    up to the next job's header)."""
    out: list[tuple[str, list[str]]] = []
    current: list[str] | None = None
    for line in stdout.splitlines():
        if m := re.match(r"^\[.*\] Group job (\w+) ", line):
            current = []
            out.append((m.group(1), current))
        elif line.startswith(("[", "Job stats:")):
            current = None
        elif current is not None and (m := re.match(r"^    rule (\w+):$", line)):
            current.append(m.group(1))
    return [(g, sorted(rules)) for g, rules in out]


def test_thousand_samples_submit_four_jobs_each(sim_data, tmp_path):
    fq1, fq2 = sim_data.reads["S1"]
    sheet = tmp_path / "cohort.tsv"
    many_samples(sheet, fq1, fq2, 1000, prefix="s")
    # joint calling on: the cohort call adds one more group job
    cfg = write_config(tmp_path / "c.yaml", samples=str(sheet), reference=str(sim_data.reference),
                       calling={"joint": True, "chunk_size": 100000}, report={"multiqc": True})
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
    # per sample: 'align' group, 'calls' group, annotate_context (GPU), and the 'splice' group (its
    # SpliceAI scores from the cache in each of 4 scoring groups, gathered); the cohort's 'calls' and
    # 'splice' groups; once per run: the 'reference' group and SpliceAI itself, one GPU job per
    # scoring group over every callset (parallel on the GPU partition), and the run report (each
    # callset's bcftools stats run in its 'calls' group), and MultiQC after it
    assert counts["score_splicing"] == 4 * 1001 and counts["gather_splicing"] == 1001
    assert counts["cache_splicing"] == 4 and counts["bcftools_stats"] == 1001 and counts["report"] == 1
    assert counts["multiqc"] == 1
    assert submitted == 4 * 1000 + 2 + 1 + 4 + 1 + 1
    assert total_rule_jobs > 4 * submitted  # grouping really merged jobs (18,020 rule jobs here)


@pytest.mark.parametrize("aligner", ["minimap2", "bwa"])
def test_reference_preparation_is_one_slurm_job_per_run(sim_data, tmp_path, aligner):
    """The reference's plain copy and its aligner index run as one group job (on a compute node, not
    locally), once for the whole cohort: the per-sample groups neither join it nor each other."""
    cfg = write_config(tmp_path / "c.yaml", samples=str(sim_data.sample_sheet), reference=str(sim_data.reference),
                       aligner=aligner)
    res = run_snakemake(tmp_path / "run", "--dry-run", "--profile", str(REPO / "profiles" / "slurm"),
                        "--configfile", str(cfg))
    assert res.returncode == 0, res.stderr[-3000:]
    groups = group_members(res.stdout)
    assert [rules for g, rules in groups if g == "reference"] == [sorted(["prepare_reference", f"index_{aligner}"])]
    # one 'align' group per sample (FASTQ input: no bam_to_fastq); one 'calls' group per callset
    # (the samples and, joint calling being on with 2 samples, the cohort)
    n = len(sim_data.samples)
    assert [rules for g, rules in groups if g == "align"] == [
        ["align_reads", "check_reads", "samtools_flagstat", "samtools_stats"]] * n
    assert [g for g, _ in groups].count("calls") == n + 1
    # per callset, its SpliceAI scores from the cache (one job per scoring group) and their gather
    splice = [rules for g, rules in groups if g == "splice"]
    assert len(splice) == n + 1 and all(set(rules) == {"score_splicing", "gather_splicing"} for rules in splice)
    # the local rules stay local: never part of a Slurm job
    assert not any(set(rules) & TARGET_RULES for _, rules in groups)
