"""Write a plan out: a ready Snakemake profile (per-rule partition and resources), the decision table, plan.json."""

from __future__ import annotations

import csv
import io
import json
import math
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from aisci.errors import InputError
from aisci.fileio import atomic_output
from aisci.placement.ilp import Decision, Plan
from aisci.placement.model import CPU, Job
from aisci.slurm.site import Site
from aisci.slurm.profile import GROUPS, Entry, profile_text, resource_literal, routed_clusters

TABLE_COLUMNS = ("rule", "class", "partition", "jobs", "min_per_job", "at_once", "start_h", "end_h", "cost", "why")
#: Wall time asked for: this many times the longest expected job, at least MIN_RUNTIME_MIN minutes.
RUNTIME_MARGIN = 3.0
MIN_RUNTIME_MIN = 10


def decision_rows(plan: Plan) -> list[dict[str, Any]]:
    """The decision table: one row per rule and partition, in order of expected start."""
    rows = []
    for d in sorted(plan.decisions, key=lambda d: (d.start_s, d.rule, -d.jobs)):
        rows.append({
            "rule": d.rule, "class": d.resource_class, "partition": d.partition, "jobs": d.jobs,
            "min_per_job": round(d.seconds_per_job / 60, 2), "at_once": d.at_once,
            "start_h": round(d.start_s / 3600, 3), "end_h": round(d.end_s / 3600, 3),
            "cost": round(d.cost, 2), "why": d.why,
        })
    return rows


def table_text(plan: Plan) -> str:
    """The decision table as aligned text, with the plan's totals above it."""
    rows = decision_rows(plan)
    head = (f"plan ({plan.objective}{'' if plan.deadline_s is None else f', deadline {plan.deadline_s / 3600:g} h'}): "
            f"makespan {plan.makespan_s / 3600:.2f} h, cost {plan.cost:.2f}, solved in {plan.solve_s:.2f} s ({plan.status})")
    cells = [list(TABLE_COLUMNS)] + [[str(r[c]) for c in TABLE_COLUMNS] for r in rows]
    widths = [max(len(row[i]) for row in cells) for i in range(len(TABLE_COLUMNS) - 1)]
    lines = ["  ".join(c.ljust(w) for c, w in zip(row[:-1], widths)) + "  " + row[-1] for row in cells]
    return "\n".join([head, *lines])


def _per_job(values: dict[str, Any]) -> Any:
    """A resource value for Snakemake, which evaluates profile resources as Python expressions.

    One value for every job: that value (a string as resource_literal(), so that a partition
    named like a builtin or a number stays a string). Otherwise an expression picking each job's
    value by its wildcards, the commonest value being the default.
    """
    distinct = list(dict.fromkeys(values.values()))
    if len(distinct) == 1:
        return _literal(distinct[0])
    common = max(distinct, key=lambda v: (list(values.values()).count(v), str(v)))
    table = ", ".join(f"{_literal(k)}: {_literal(v)}" for k, v in sorted(values.items()) if v != common)
    key = "'_'.join(wildcards).replace('/', '_')"
    return f"{{{table}}}.get({key}, {_literal(common)})"


def _literal(value: Any) -> Any:
    """A string as a Python string literal (resource_literal); a number as it is."""
    return resource_literal(value) if isinstance(value, str) else value


def _rule_resources(
    rule: str, decisions: list[Decision], jobs: dict[str, str], sites: Site, gpus: int, nice: int, mem_mb: int = 0
) -> dict[str, Any]:
    """Resources of one rule: its partition (per job when the plan splits it), clusters, GPUs, runtime, memory.

    Args:
        jobs: the rule's jobs, wildcards -> assigned partition id.
        gpus: the GPUs the rule declares (0: a CPU-class rule).
        mem_mb: the most memory one of its jobs asks for on its first attempt; the rules double it on
            each retry, which must not outgrow the smallest node the plan sends the rule to (a job
            asking more than any node has fails at once, and so does the run).
    """
    parts = {pid: sites.partition(pid) for pid in jobs.values()}
    res: dict[str, Any] = {"slurm_partition": _per_job({w: parts[pid].name for w, pid in jobs.items()})}
    if {p.centre for p in parts.values()} != {sites.home}:
        for p in parts.values():
            if p.slurm_cluster is None:
                centres = " and ".join(sorted({q.centre for q in parts.values()}))
                raise InputError(
                    f"rule {rule} is split between {centres}: give centres.{p.centre}.slurm_cluster "
                    "in the site description so that Slurm can choose between the clusters"
                )
        res["clusters"] = _per_job({w: parts[pid].slurm_cluster for w, pid in jobs.items()})
    if gpus and any(d.resource_class == CPU for d in decisions):
        # a GPU-class rule planned (partly) onto CPUs asks for no GPU there
        res["gpu"] = _per_job({w: (gpus if parts[pid].gpus else 0) for w, pid in jobs.items()})
    longest = max(d.longest_s for d in decisions)
    walltime = min(p.max_walltime_s for p in parts.values())
    minutes = max(MIN_RUNTIME_MIN, math.ceil(RUNTIME_MARGIN * longest / 60))
    if not math.isinf(walltime):
        minutes = min(minutes, int(walltime // 60))
    res["runtime"] = minutes
    cap = min(p.mem_mb for p in parts.values())
    if mem_mb and mem_mb * 2 ** int(sites.settings["retries"]) > cap:
        res["mem_mb"] = f"min({min(mem_mb, cap)} * 2 ** (attempt - 1), {cap})"
    if nice:
        res["slurm_extra"] = resource_literal(f"--nice={nice}")
    return res


def profile_config(plan: Plan, jobs: Sequence[Job], sites: Site, site_file: Path | None = None) -> str:
    """The planned profile's config.yaml (``site_file``: the profile's copy of the site description,
    named in it when a centre shares no file system with home)."""
    by_rule: dict[str, list[Decision]] = {}
    for d in plan.decisions:
        by_rule.setdefault(d.rule, []).append(d)
    assigned = plan.assignment(jobs)
    rule_jobs: dict[str, dict[str, str]] = {}
    gpus: dict[str, int] = {}
    mem: dict[str, int] = {}
    for job in jobs:
        mine = rule_jobs.setdefault(job.rule, {})
        if job.wildcards in mine and mine[job.wildcards] != assigned[job.id]:
            # the plugin's key joins wildcard values with "_": ("a_b", "c") and ("a", "b_c") collide
            raise InputError(f"rule {job.rule}: two jobs share the wildcard key {job.wildcards!r}; "
                             "their partitions cannot be told apart in the profile")
        mine[job.wildcards] = assigned[job.id]
        gpus[job.rule] = max(gpus.get(job.rule, 0), job.gpus)
        mem[job.rule] = max(mem.get(job.rule, 0), job.mem_mb)
    resources = {r: _rule_resources(r, ds, rule_jobs[r], sites, gpus.get(r, 0), plan.nice.get(r, 0), mem.get(r, 0))
                 for r, ds in sorted(by_rule.items())}
    # a group job is one Slurm job: keep a group only when its rules share partitions and class
    groups: dict[str, str] = {}
    dropped = []
    for group in dict.fromkeys(GROUPS.values()):
        members = [r for r, gname in GROUPS.items() if gname == group and r in resources]
        shapes = {(str(resources[r]["slurm_partition"]), str(resources[r].get("clusters")), str(resources[r].get("gpu")))
                  for r in members}
        if len(shapes) == 1:
            groups.update({r: group for r in members})
            # one Slurm job runs the group: its rules must agree on slurm_extra; the most urgent wins
            nice = min(plan.nice.get(r, 0) for r in members)
            for r in members:
                resources[r].pop("slurm_extra", None)
                if nice:
                    resources[r]["slurm_extra"] = resource_literal(f"--nice={nice}")
        elif members:
            # the rules declare their group (`group:`): a group of one each keeps them apart
            groups.update({r: r for r in members})
            dropped.append(group)
    header = [
        f"# Snakemake profile planned by `aisci plan` for {sites.name} ({plan.objective}"
        + ("" if plan.deadline_s is None else f", deadline {plan.deadline_s / 3600:g} h") + ").",
        f"# Expected makespan {plan.makespan_s / 3600:.2f} h, cost {plan.cost:.2f}; every decision is explained in plan.tsv.",
        "# Plan again rather than editing this file. Usage: snakemake --profile <this directory>",
    ]
    defaults = []
    clusters = routed_clusters(sites)
    if clusters:
        defaults.append(Entry("clusters", resource_literal(clusters[0]), (
            "Slurm cluster (sbatch --clusters) of every rule the plan keeps at home; job states are",
            f"read from all of the site's clusters ({', '.join(clusters)}) with sacct --clusters all",)))
    if sites.staging and site_file is not None:
        from aisci.slurm.staging import SITE_RESOURCE

        defaults.append(Entry(SITE_RESOURCE, resource_literal(str(site_file.absolute())), (
            "The site description (a copy): " + ", ".join(sorted(sites.staging)) + " share(s) no file system with",
            "home, so the jobs placed there get their inputs copied in and their results back (docs/slurm.md)",)))
    cpu_home = [p for p in sites.home_partitions if not p.gpus]
    if cpu_home:  # a rule the plan did not place (e.g. planned with --needed) runs on the home CPU partition
        defaults.append(Entry("slurm_partition", resource_literal(cpu_home[0].name),
                              ("partition of any rule the plan does not place",)))
    comment = (
        *([f"groups not kept (their rules were planned onto different partitions): {', '.join(dropped)};",
           "each of their rules is a group of its own (groups: above), one Slurm job per run of it"]
          if dropped else []),
        "Where each rule runs: slurm_partition, clusters (sbatch --clusters) for a partner centre,",
        f"gpu: 0 where a GPU-class rule runs on CPUs, runtime (minutes) = {RUNTIME_MARGIN:g}x the longest job,",
        "mem_mb: doubling on each retry, never above the smallest node the rule is sent to, and",
        "slurm_extra --nice: earlier stages yield to later ones, so samples flow on to the GPU stages.",
        "A rule the plan splits names each job's value by its wildcards (a Python expression of",
        "`wildcards`, which Snakemake evaluates per job; listed jobs differ from the default).",
    )
    return profile_text(sites, None, groups=groups, header=header, cores=max(p.cores for p in sites.partitions),
                        defaults=defaults, extra=[Entry("set-resources", resources, comment)])


def job_key(job: Job) -> str:
    """A job as plan.json names it: ``rule`` or ``rule:wildcards`` (stable across DAG builds)."""
    return f"{job.rule}:{job.wildcards}" if job.wildcards else job.rule


def plan_json(plan: Plan, jobs: Sequence[Job] = ()) -> dict[str, Any]:
    """What `aisci simulate-cluster --plan` reads back: objective, totals, placement, decisions, and
    for a plan that places jobs one by one (HEFT) each job's partition."""
    out = {
        "objective": plan.objective,
        "deadline_s": plan.deadline_s,
        "status": plan.status,
        "makespan_s": plan.makespan_s,
        "cost": plan.cost,
        "solve_s": plan.solve_s,
        "placement": {r: list(p) for r, p in plan.placement.items()},
        "nice": dict(plan.nice),
        "decisions": decision_rows(plan),
    }
    if plan.explicit is not None:
        out["assignment"] = {job_key(j): pid for j, pid in zip(jobs, (plan.explicit[j.id] for j in jobs))}
    return out


def read_plan(path: Path) -> tuple[dict[str, dict[str, int]], dict[str, int], dict[str, str] | None]:
    """From a plan.json: rule -> partition id -> planned jobs, rule -> Slurm nice, and the job
    (job_key) -> partition id of a plan that places jobs one by one (None for one that deals counts).

    Raises:
        InputError: naming the file.
    """
    try:
        data = json.loads(path.read_text())
        counts: dict[str, dict[str, int]] = {}
        for row in data["decisions"]:
            counts.setdefault(str(row["rule"]), {})[str(row["partition"])] = int(row["jobs"])
        nice = {str(r): int(n) for r, n in data.get("nice", {}).items()}
        explicit = data.get("assignment")
        if explicit is not None:
            explicit = {str(k): str(v) for k, v in explicit.items()}
        return counts, nice, explicit
    except FileNotFoundError:
        raise InputError(f"plan {path}: file not found") from None
    except (ValueError, KeyError, TypeError, AttributeError) as exc:
        raise InputError(f"plan {path}: not a plan.json written by `aisci plan` ({exc})") from None


def ordered(counts: dict[str, dict[str, int]]) -> dict[str, tuple[str, ...]]:
    """rule -> partition ids, most planned jobs first."""
    return {r: tuple(sorted(c, key=lambda p: (-c[p], p))) for r, c in counts.items()}


def write_plan(plan: Plan, jobs: Sequence[Job], sites: Site, out_dir: Path, site_text: str | None = None) -> list[Path]:
    """Write ``config.yaml`` (the profile), ``plan.tsv`` (decisions) and ``plan.json`` into ``out_dir``,
    and ``site.yaml`` (``site_text``, the site description) when a centre shares no file system with home.

    Returns:
        The files written.
    """
    staged = bool(sites.staging) and site_text is not None
    config = profile_config(plan, jobs, sites, out_dir / "site.yaml" if staged else None)
    out_dir.mkdir(parents=True, exist_ok=True)
    buf = io.StringIO()
    writer = csv.DictWriter(buf, fieldnames=TABLE_COLUMNS, delimiter="\t", lineterminator="\n")
    writer.writeheader()
    writer.writerows(decision_rows(plan))
    outputs = {"config.yaml": config, "plan.tsv": buf.getvalue(), "plan.json": json.dumps(plan_json(plan, jobs), indent=1) + "\n"}
    if staged:
        outputs["site.yaml"] = site_text or ""
    written = []
    for name, text in outputs.items():
        with atomic_output(out_dir / name) as tmp:
            tmp.write_text(text)
        written.append(out_dir / name)
    return written
