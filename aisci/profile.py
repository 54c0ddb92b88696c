"""Site profiles: write a commented Snakemake Slurm profile from a short description of a site's partitions."""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any

import yaml

from aisci.config import _describe, _validator, _apply_defaults, load_schema
from aisci.errors import InputError
from aisci.fileio import atomic_output

# Per-sample rules grouped into one Slurm job each, so that a cohort of N samples submits a few
# jobs per sample instead of one per rule and chunk. Order: rule -> group.
GROUPS = {
    "bam_to_fastq": "align",
    "check_reads": "align",
    "align_reads": "align",
    "samtools_stats": "align",
    "samtools_flagstat": "align",
    "call_chunk": "calls",
    "gather_calls": "calls",
    "filter_calls": "calls",
    "evaluate_calls": "calls",
}


def load_site(path: Path) -> dict[str, Any]:
    """Read and validate a site description (schema: aisci/schemas/site.schema.yaml).

    Raises:
        InputError: naming the file and the key at fault.
    """
    if not path.is_file():
        raise InputError(f"site description {path}: file not found")
    try:
        site = yaml.safe_load(path.read_text())
    except yaml.YAMLError as exc:
        raise InputError(f"{path}: not valid YAML ({exc})") from exc
    if not isinstance(site, dict):
        raise InputError(f"{path}: must be a mapping")
    errors = sorted(_validator("site").iter_errors(site), key=lambda e: list(e.absolute_path))
    if errors:
        raise InputError(_describe(errors[0], path.name))
    _apply_defaults(load_schema("site"), site)
    for part in site["partitions"].values():
        part.setdefault("gpus", 0)
    if not any(p["gpus"] for p in site["partitions"].values()):
        raise InputError(f"{path.name}: no partition has gpus > 0; GPU-class rules would have nowhere to run")
    return site


def partition_limits(site: dict[str, Any]) -> dict[str, Any]:
    """The plugin's partition file (`--slurm-partition-config`): limits it matches jobs against.

    A GPU job only fits partitions with max_gpu > 0, and the plugin penalises GPU partitions for
    CPU-only jobs, so each class lands on its own partitions without naming rules.
    """
    out = {}
    for name, p in site["partitions"].items():
        limits: dict[str, Any] = {
            "max_threads": p["cpus"],
            "max_cpus_per_task": p["cpus"],
            "max_mem_mb": int(p["mem_gb"] * 1024),
            "max_gpu": p["gpus"],
        }
        if "max_runtime" in p:
            limits["max_runtime"] = p["max_runtime"]
        if p.get("gpu_models"):
            limits["available_gpu_models"] = list(p["gpu_models"])
        out[name] = limits
    return {"partitions": out}


def profile_text(
    site: dict[str, Any],
    partitions_file: str | None,
    *,
    groups: dict[str, str] | None = None,
    header: list[str] | None = None,
    cores: int | None = None,
) -> str:
    """The profile's config.yaml, every entry commented.

    Args:
        site: a validated site description (defaults filled).
        partitions_file: the plugin's partition limits, or None when every rule names its partition.
        groups: rule -> group (default: GROUPS).
        header: comment lines opening the file (default: written by `aisci profile new`).
        cores: most cores one job may request (default: the largest partition's).
    """
    name = site.get("name", "site")
    groups = GROUPS if groups is None else groups
    lines = header or [
        f"# Snakemake profile for {name}, written by `aisci profile new` (edit the site description and",
        "# run it again rather than editing this file). Usage: snakemake --profile <this directory>",
    ]
    lines = [
        *lines,
        "",
        "# Submit every job through Slurm (snakemake-executor-plugin-slurm).",
        "executor: slurm",
        "# Jobs queued or running at once.",
        f"jobs: {site['max_jobs']}",
        "# Most cores one job may request (the largest partition's): a group job whose parallel",
        "# parts (e.g. hundreds of calling chunks) would need more runs them in series instead.",
        f"cores: {cores or max(p['cpus'] for p in site['partitions'].values())}",
    ]
    if partitions_file:
        lines += [
            "# Partition limits; the plugin picks, per job, the partition that fits it best: GPU-class",
            "# rules (resources: gpu) go to partitions with GPUs, CPU-class rules to the others.",
            f"slurm-partition-config: {partitions_file}",
        ]
    lines += [
        "# How job states are read. squeue: finished jobs stay visible for MinJobAge (>= 3x the first",
        "# status delay). sacct: needs accounting, and plugin 2.8 does not recognise sacct's",
        "# 'CANCELLED by <uid>', so a cancelled job would leave the workflow waiting forever.",
        f"slurm-status-command: {site['status_command']}",
        "# Seconds before the first status query (Slurm needs a moment to register new jobs).",
        f"slurm-init-seconds-before-status-checks: {site['first_status_check']}",
        "# Wait this long (s) for outputs to appear: shared file systems cache directory listings.",
        f"latency-wait: {site['latency_wait']}",
        "# Resubmit a failed job this often; each rule's mem_mb grows with the attempt number, so a",
        "# job killed for running out of memory comes back with more.",
        f"retries: {site['retries']}",
        "# After an interruption, redo the jobs that were running rather than trusting their outputs.",
        "rerun-incomplete: true",
        "# Keep going with independent jobs when one fails.",
        "keep-going: true",
        "# Print each job's shell command.",
        "printshellcmds: true",
        "# Defaults for what a rule does not declare.",
        "default-resources:",
        "  # wall time in minutes",
        f"  runtime: {site['default_runtime']}",
    ]
    if site["account"]:
        lines += ["  # account charged for every job", f"  slurm_account: {site['account']}"]
    if site["qos"]:
        lines += ["# Quality of service for every job.", f"slurm-qos: {site['qos']}"]
    if groups:
        lines += [
            "# Per-sample rules run together as one Slurm job per group and sample (few, larger jobs",
            "# instead of thousands of tiny ones): 'align' = read checks, alignment and QC; 'calls' =",
            "# every calling chunk, gathering, filtering and evaluation.",
            "groups:",
            *(f"  {rule}: {group}" for rule, group in groups.items()),
        ]
    return "\n".join([*lines, ""])


def write_profile(site_path: Path, out_dir: Path) -> list[Path]:
    """Write ``config.yaml`` and ``partitions.yaml`` for a site into ``out_dir``.

    Returns:
        The files written.
    """
    site = load_site(site_path)
    out_dir.mkdir(parents=True, exist_ok=True)
    partitions = out_dir / "partitions.yaml"
    config = out_dir / "config.yaml"
    header = f"# Partition limits for the Slurm plugin, written by `aisci profile new` from {site_path.name}.\n"
    with atomic_output(partitions) as tmp:
        tmp.write_text(header + yaml.safe_dump(partition_limits(site), sort_keys=False))
    # a relative out_dir stays relative: the plugin reads the path from where snakemake runs
    with atomic_output(config) as tmp:
        tmp.write_text(profile_text(site, str(partitions)))
    return [config, partitions]


def configure_parser(parser: argparse.ArgumentParser) -> None:
    """Options of `aisci profile`."""
    sub = parser.add_subparsers(dest="action", required=True, metavar="ACTION")
    new = sub.add_parser("new", help="write a Slurm profile from a site description")
    new.add_argument("--partitions", required=True, type=Path, help="site description YAML")
    new.add_argument("--out", required=True, type=Path, help="profile directory, e.g. profiles/mysite")


def run(args: argparse.Namespace) -> int:
    """Write a site profile."""
    for path in write_profile(args.partitions, args.out):
        print(f"wrote {path}")
    return 0
