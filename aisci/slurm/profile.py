"""Site profiles: write a commented Snakemake Slurm profile for the home centre of a site description."""

from __future__ import annotations

import argparse
import math
import re
from collections.abc import Sequence
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

import yaml

from aisci.errors import InputError
from aisci.fileio import atomic_output
from aisci.slurm.site import Site, load_site

# Rules grouped into one Slurm job each, so that a cohort of N samples submits a few jobs per sample
# instead of one per rule and chunk, and a chain of rules waits for one status check, not one per
# rule. 'reference' is once per run (its rules are serial anyway); 'align' and 'calls' once per
# sample; 'splice' and 'protein' once per callset (writing the scores the GPU jobs cached). The
# rules declare them (`group:` in rules/*.smk), read here rather than listed again: the Snakemake
# that runs inside a Slurm job reads the Snakefile but no profile (plugin 2.8 passes no --groups to
# it), and without the directive it would start every grouped rule as a job step of its own, each
# starting Snakemake again.
_RULE = re.compile(r"^rule (\w+):\n(?:    group:\n        \"(\w+)\"\n)?", re.M)


def rule_groups(rules_dir: Path | None = None) -> dict[str, str]:
    """rule -> group, as the rules of ``rules_dir`` (default: the packaged rules/) declare them."""
    from aisci import share

    folder = rules_dir or share.root() / "rules"
    return {m[1]: m[2] for smk in sorted(folder.glob("*.smk")) for m in _RULE.finditer(smk.read_text()) if m[2]}


GROUPS = rule_groups()


def resource_literal(value: str) -> str:
    """A string resource value as a profile must hold it: a Python string literal.

    Snakemake evaluates every default-resources / set-resources value of a profile as a Python
    expression (snakemake.resources.Resource.cli_evaluator), so an account written bare, 2023-110,
    would be charged as 1913, and a value such as __import__('os')... would run. The literal
    evaluates to exactly ``value``.

    Raises:
        InputError: ``value`` holds '$', which Snakemake expands as an environment variable before
            evaluating, so no literal could keep it.
    """
    if "$" in value:
        raise InputError(f"{value!r}: Snakemake expands '$' in resource values; a Slurm name cannot hold it")
    return repr(value)


@dataclass(frozen=True)
class Entry:
    """One key of a generated profile with the comment lines written above it (without '# ').

    ``value`` is any YAML value, or a list of Entry for a mapping whose keys are commented one by one.
    """

    key: str
    value: Any
    comment: tuple[str, ...] = ()


class _ProfileDumper(yaml.SafeDumper):
    """SafeDumper writing strings that hold a single quote (the Python literals) double-quoted:
    ``"'2023-110'"`` reads better than YAML's ``'''2023-110'''``."""


def _represent_str(dumper: yaml.SafeDumper, value: str) -> Any:
    return dumper.represent_scalar("tag:yaml.org,2002:str", value, style='"' if "'" in value else None)


_ProfileDumper.add_representer(str, _represent_str)


def _dump(key: str, value: Any, indent: str) -> list[str]:
    """``key: value`` as YAML lines (the YAML writer quotes whatever needs it), indented."""
    text = yaml.dump({key: value}, Dumper=_ProfileDumper, sort_keys=False, default_flow_style=False,
                     width=10**9)
    return [indent + line for line in text.splitlines()]


def render_profile(header: Sequence[str], entries: Sequence[Entry]) -> str:
    """A profile's text: the header comment lines, a blank line, then every entry under its comments.

    Args:
        header: comment lines, each starting with '#'.
        entries: the profile's keys in order; their values are written by the YAML writer.
    """

    def lines(items: Sequence[Entry], indent: str) -> list[str]:
        out = []
        for e in items:
            out += [f"{indent}# {line}" for line in e.comment]
            if isinstance(e.value, list) and e.value and all(isinstance(v, Entry) for v in e.value):
                out.append(f"{indent}{e.key}:")  # a fixed key of ours; what follows comes from the writer
                out += lines(e.value, indent + "  ")
            else:
                out += _dump(e.key, e.value, indent)
        return out

    return "\n".join([*header, "", *lines(entries, ""), ""])


def load_home_site(path: Path) -> Site:
    """A site description (aisci/schemas/site.schema.yaml) whose home centre a profile can be written for.

    Raises:
        InputError: naming the file and the key at fault; or when no home partition has GPUs.
    """
    site = load_site(path)
    if not any(p.gpus for p in site.home_partitions):
        raise InputError(f"{path.name}: centres.{site.home}.partitions: none has gpus > 0; GPU-class rules "
                         "would have nowhere to run")
    return site


def routed_clusters(site: Site) -> list[str]:
    """The Slurm clusters of a site with partner centres, home's first; [] for one centre or without cluster names."""
    by_centre = {p.centre: p.slurm_cluster for p in site.partitions}
    if len(site.centres) < 2 or any(not by_centre.get(c) for c in site.centres):
        return []
    return [str(by_centre[c]) for c in site.centres]


def home_only(site: Site) -> Site:
    """The site without its partner centres (a profile for the home cluster alone)."""
    return replace(site, partitions=site.home_partitions, transfers={})


def _largest_job_cores(site: Site) -> int:
    """Most cores one job may ask for: the largest home partition's; with partners, of the partition
    limits (the smallest of the centres' partitions of that name)."""
    if not routed_clusters(site):
        return max(p.cores for p in site.home_partitions)
    return max(min(q.cores for q in site.partitions if q.name == p.name) for p in site.home_partitions)


def partition_limits(site: Site) -> dict[str, Any]:
    """The plugin's partition file (`--slurm-partition-config`): limits it matches jobs against.

    A GPU job only fits partitions with max_gpu > 0, and the plugin penalises GPU partitions for
    CPU-only jobs, so each class lands on its own partitions without naming rules. With partner
    centres, each partition is the one of that name on every centre (Slurm's multi-cluster routing,
    ``sbatch --clusters home,partner -p cpu``, picks the cluster that can start the job first): its
    limits are the smallest of them, and it carries the clusters (the plugin only offers a job that
    names clusters the partitions that name the same).

    Raises:
        InputError: with partner centres, a home partition that some centre lacks.
    """
    clusters = routed_clusters(site)
    out = {}
    for p in site.home_partitions:
        same = [q for q in site.partitions if q.name == p.name] if clusters else [p]
        missing = [c for c in site.centres if clusters and c not in {q.centre for q in same}]
        if missing:
            raise InputError(
                f"centres.{missing[0]}.partitions: no partition {p.name!r} as at {site.home}: Slurm's multi-cluster "
                "routing sends a job to one partition name on every cluster. Give the centres the same "
                "partition names, place rules per centre with `aisci plan`, or write a home-only profile (--home-only)"
            )
        limits: dict[str, Any] = {
            "max_threads": min(q.cores for q in same),
            "max_cpus_per_task": min(q.cores for q in same),
            "max_mem_mb": min(q.mem_mb for q in same),
            "max_gpu": min(q.gpus for q in same),
        }
        walltime = min(q.max_walltime_s for q in same)
        if not math.isinf(walltime):
            limits["max_runtime"] = math.floor(walltime / 60)  # minutes
        models = [m for m in p.gpu_models if all(m in q.gpu_models for q in same)]
        if models:
            limits["available_gpu_models"] = models
        if clusters:
            limits["cluster"] = ",".join(clusters)
        out[p.name] = limits
    return {"partitions": out}


def profile_text(
    site: Site,
    partitions_file: str | None,
    *,
    groups: dict[str, str] | None = None,
    header: list[str] | None = None,
    cores: int | None = None,
    defaults: Sequence[Entry] = (),
    extra: Sequence[Entry] = (),
) -> str:
    """The profile's config.yaml, every entry commented, every value written by the YAML writer.

    Args:
        site: a validated site description; the profile is its home centre's.
        partitions_file: the plugin's partition limits, or None when every rule names its partition.
        groups: rule -> group (default: GROUPS).
        header: comment lines opening the file (default: written by `aisci profile new`).
        cores: most cores one job may request (default: the largest partition's).
        defaults: more default resources (string values as resource_literal()).
        extra: entries after the groups (e.g. the plan's set-resources).
    """
    name = site.name
    settings = site.settings
    groups = GROUPS if groups is None else groups
    header = header or [
        f"# Snakemake profile for {name}, written by `aisci profile new` (edit the site description and",
        "# run it again rather than editing this file). Usage: snakemake --profile <this directory>",
    ]
    entries = [
        Entry("executor", "slurm", ("Submit every job through Slurm (snakemake-executor-plugin-slurm).",)),
        Entry("jobs", settings["max_jobs"], ("Jobs queued or running at once.",)),
        Entry("cores", cores or _largest_job_cores(site), (
            "Most cores one job may request (the largest partition's): a group job whose parallel",
            "parts (e.g. dozens of calling groups) would need more runs them in series instead.")),
    ]
    if partitions_file:
        entries.append(Entry("slurm-partition-config", partitions_file, (
            "Partition limits; the plugin picks, per job, the partition that fits it best: GPU-class",
            "rules (resources: gpu) go to partitions with GPUs, CPU-class rules to the others.")))
    resources = [Entry("runtime", settings["default_runtime"], ("wall time in minutes",))]
    clusters = routed_clusters(site)
    if clusters and partitions_file:
        resources.append(Entry("clusters", resource_literal(",".join(clusters)), (
            "sbatch --clusters: Slurm sends each job to the cluster that can start it first (its",
            "multi-cluster routing, without lookahead). For placement by plan: `aisci plan`.")))
    if settings["account"]:
        resources.append(Entry("slurm_account", resource_literal(settings["account"]), ("account charged for every job",)))
    if routed_clusters(site):
        status = Entry("slurm-status-command", "sacct", (
            "How job states are read: sacct --clusters all (the plugin's squeue names no cluster and",
            "would never see a partner's jobs end). The workflow reads sacct's 'CANCELLED by <uid>'",
            "as CANCELLED (plugin 2.8 does not), so a job cancelled on any cluster is retried."))
    else:
        status = Entry("slurm-status-command", settings["status_command"], (
            "How job states are read. squeue: finished jobs stay visible for MinJobAge (>= 3x the first",
            "status delay). sacct: needs accounting; the workflow reads sacct's 'CANCELLED by <uid>' as",
            "CANCELLED (plugin 2.8 does not, and would wait forever for a cancelled job)."))
    entries += [
        status,
        Entry("slurm-init-seconds-before-status-checks", settings["first_status_check"], (
            "Seconds to the first status query, and between queries after one that saw a job end; after",
            "each query that saw none end, the plugin (2.8) waits 10 s longer (at most 180 s), so a job",
            "is seen done x, 2x + 10, 3x + 30, ... s after its submission. The plugin ignores",
            "Snakemake's seconds-between-status-checks.")),
        Entry("latency-wait", settings["latency_wait"],
              ("Wait this long (s) for outputs to appear: shared file systems cache directory listings.",)),
        Entry("retries", settings["retries"], (
            "Resubmit a failed job this often; each rule's mem_mb grows with the attempt number, so a",
            "job killed for running out of memory comes back with more.")),
        Entry("rerun-incomplete", True,
              ("After an interruption, redo the jobs that were running rather than trusting their outputs.",)),
        Entry("keep-going", True, ("Keep going with independent jobs when one fails.",)),
        Entry("printshellcmds", True, ("Print each job's shell command.",)),
        # values Snakemake evaluates as Python: strings go in as resource_literal()
        Entry("default-resources", [*resources, *defaults], ("Defaults for what a rule does not declare.",)),
    ]
    if settings["qos"]:
        # an executor setting, passed to sbatch as it is (not evaluated): a plain string
        entries.append(Entry("slurm-qos", settings["qos"], ("Quality of service for every job.",)))
    if groups:
        entries.append(Entry("groups", dict(groups), (
            "Rules run together as one Slurm job per group (few, larger jobs instead of thousands of",
            "tiny ones, and one status-check wait per group instead of one per rule). Once per run:",
            "'reference' = the reference's plain copy, then its aligner index (serial anyway; still on",
            "a compute node). Per sample: 'align' = read checks, alignment and QC; 'calls' = every",
            "calling group, gathering, filtering, evaluation and coding consequences. Per callset:",
            "'splice', 'protein' = the callset's scores from the cache, gathered. The rules declare",
            "the same groups (the Snakemake inside each job reads no profile); a rule given another",
            "group here runs in a Slurm job of that group.")))
    return render_profile(header, [*entries, *extra])


def sizing_entries(site: Site) -> list[Entry]:
    """Threads and memory of the heavy rules, sized to the home centre's largest CPU partition.

    The rules declare what a laptop has (2 threads); a cluster's profile scales the rules whose
    tools use many cores: alignment and calling (a group's chunks run `threads` at a time). Memory
    grows with threads and doubles on each retry, never past the partition's.
    """
    home = site.home_partitions
    largest = max([p for p in home if not p.gpus] or home, key=lambda p: (p.cores, p.mem_mb))
    # with partner centres a job may land on any centre's partition of that name: size it for the smallest
    same = [q for q in site.partitions if q.name == largest.name] if routed_clusters(site) else [largest]
    threads = max(1, min(16, *(q.cores for q in same)))
    cap = min(q.mem_mb for q in same) * 1000 // 1024

    def mem(base_mb: int) -> str:
        return f"min({min(base_mb, cap)} * 2 ** (attempt - 1), {cap})"

    return [
        Entry("set-threads", [
            Entry("align_reads", threads, ("minimap2/bwa and samtools sort/markdup",)),
            Entry("call_group", threads, ("chunks of a calling group called at once",)),
            Entry("bam_to_fastq", min(4, threads)),
        ], ("Threads per rule (the rules declare 2): the largest CPU partition's cores, at most 16.",)),
        Entry("set-resources", [
            Entry("align_reads", {"mem_mb": mem(8000 + 1000 * threads)}),
            Entry("call_group", {"mem_mb": mem(1000 * threads)}),
        ], ("Memory (MB) of the rules above: grows with threads, doubles on each retry (attempt), never",
            "above the partition's.")),
    ]


def write_profile(site_path: Path, out_dir: Path, *, home: bool = False) -> list[Path]:
    """Write ``config.yaml`` and ``partitions.yaml`` for a site into ``out_dir``.

    With partner centres the profile sends each job to whichever cluster can start it first
    (Slurm's multi-cluster routing); ``home`` (or a site of one centre): the home cluster alone.

    Returns:
        The files written.
    """
    site = load_home_site(site_path)
    if home:
        site = home_only(site)
    elif routed_clusters(site) and site.staging:
        centre = sorted(site.staging)[0]
        raise InputError(
            f"{site_path.name}: centres.{centre}.staging: {centre} shares no file system with home, and Slurm's "
            "multi-cluster routing picks a job's cluster only after it is submitted, too late to copy its "
            "inputs there: plan the placement (`aisci plan --site ...`), or write the home cluster's profile "
            "(`aisci profile new --home-only`)")
    out_dir.mkdir(parents=True, exist_ok=True)
    partitions = out_dir / "partitions.yaml"
    config = out_dir / "config.yaml"
    header = f"# Partition limits for the Slurm plugin, written by `aisci profile new` from {site_path.name}.\n"
    try:
        limits = partition_limits(site)
    except InputError as exc:
        raise InputError(f"{site_path.name}: {exc}") from None
    with atomic_output(partitions) as tmp:
        tmp.write_text(header + yaml.safe_dump(limits, sort_keys=False))
    # The file's name only: Snakemake reads a profile value naming a file in the profile's folder as
    # that file, so the profile can be copied (to ~/.config/snakemake/, a project) and used from anywhere.
    with atomic_output(config) as tmp:
        tmp.write_text(profile_text(site, partitions.name, extra=sizing_entries(site)))
    return [config, partitions]


def configure_parser(parser: argparse.ArgumentParser) -> None:
    """Options of `aisci profile`."""
    sub = parser.add_subparsers(dest="action", required=True, metavar="ACTION")
    new = sub.add_parser("new", help="write a Slurm profile from a site description")
    new.add_argument("--site", required=True, type=Path, help="site description (site.yaml): its home centre, and partner centres reached by multi-cluster Slurm")
    new.add_argument("--out", required=True, type=Path, help="profile directory, e.g. profiles/mysite")
    new.add_argument("--home-only", action="store_true",
                     help="the home cluster alone, even when the site describes partner centres (default: "
                          "each job to the cluster that can start it first)")


def run(args: argparse.Namespace) -> int:
    """Write a site profile."""
    for path in write_profile(args.site, args.out, home=args.home_only):
        print(f"wrote {path}")
    return 0
