"""Job profile of a workflow run, taken from Snakemake's own DAG (its API): jobs, resources, dependencies."""

from __future__ import annotations

import logging
import os
from collections import deque
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from aisci.errors import InputError
from aisci.placement.model import Job

log = logging.getLogger(__name__)

#: Memory of a job whose rule declares none (Snakemake's own default-resources: 1000 MB at least).
DEFAULT_MEM_MB = 1000


@dataclass(frozen=True)
class WorkflowJobs:
    """The jobs of a run (local rules left out), and each job's benchmark file (None without one)."""

    jobs: tuple[Job, ...]
    benchmarks: Mapping[int, str | None]


def wildcard_string(values: Iterable[str]) -> str:
    """Wildcards as the Slurm executor plugin writes them into a job's comment (values joined by "_")."""
    return "_".join(values).replace("/", "_")


def from_dag(dag: Any, is_local: Any) -> WorkflowJobs:
    """Turn a built Snakemake DAG into jobs.

    Each job's ``input_bytes`` is the size of the source files (inputs no job writes) it derives
    from, leaving out shared files: those that jobs of more than half of the distinct first
    wildcard values (samples, callsets, and "" for jobs without wildcards) derive from, such as the
    reference and model weights, staged once per centre. A sample's reads travel with every job of
    that sample (and of a cohort it is part of).

    Args:
        dag: snakemake.dag.DAG after ``init()``.
        is_local: function of a rule telling whether it runs on the submit host (left out).
    """
    all_jobs = list(dag.jobs)
    deps = {job: list(dag.dependencies[job]) for job in all_jobs}
    # topological order (Kahn), stable in Snakemake's own job order
    indegree = {job: len(deps[job]) for job in all_jobs}
    children: dict[Any, list[Any]] = {job: [] for job in all_jobs}
    for job in all_jobs:
        for dep in deps[job]:
            children.setdefault(dep, []).append(job)
    order, frontier = [], deque(j for j in all_jobs if indegree[j] == 0)
    while frontier:
        job = frontier.popleft()
        order.append(job)
        for child in children[job]:
            indegree[child] -= 1
            if indegree[child] == 0:
                frontier.append(child)
    sources: dict[Any, frozenset[str]] = {}
    for job in order:
        produced = {str(f) for files in dag.dependencies[job].values() for f in files}
        own = frozenset(str(f) for f in job.input if str(f) not in produced)
        # a scoring group's job over every callset (cache_splicing, cache_missense) derives from every
        # sample's files, but what it hands on (a cache) does not carry them to its dependents
        sources[job] = own.union(*(sources[d] for d in deps[job] if d in sources and not _over_callsets(d)))
    reach: dict[str, set[str]] = {}
    units = set()
    for job in order:
        if is_local(job.rule):  # a target rule such as 'all' derives from everything
            continue
        # derives from every sample's files (a scoring group over all callsets, the run report): that does
        # not make them shared
        if _over_callsets(job) or _over_run(job, deps[job]):
            continue
        unit = str(job.wildcards[0]) if len(job.wildcards) else ""
        units.add(unit)
        for f in sources[job]:
            reach.setdefault(f, set()).add(unit)
    # with a single unit (one sample, nothing else) every file would be "shared": keep them all
    shared = {f for f, seen in reach.items() if len(seen) > len(units) / 2} if len(units) > 1 else set()
    sizes = {f: (os.path.getsize(f) if os.path.isfile(f) else 0) for f in reach}
    sizes.update({f: 0 for job in order for f in sources[job] if f not in sizes})

    index: dict[Any, int] = {}
    kept_deps: dict[Any, frozenset[int]] = {}
    jobs, benchmarks = [], {}
    for job in order:
        # a local job is left out; its dependents inherit its dependencies
        through = frozenset().union(*(
            ({index[d]} if d in index else kept_deps.get(d, frozenset())) for d in deps[job]
        )) if deps[job] else frozenset()
        if is_local(job.rule):
            kept_deps[job] = through
            continue
        jid = len(jobs)
        index[job] = jid
        resources = job.resources
        jobs.append(Job(
            id=jid,
            rule=job.rule.name,
            wildcards=wildcard_string(str(v) for v in job.wildcards),
            threads=int(job.threads),
            mem_mb=int(resources.get("mem_mb", DEFAULT_MEM_MB) or DEFAULT_MEM_MB),
            gpus=int(resources.get("gpu", 0) or 0),
            deps=tuple(sorted(through)),
            input_bytes=sum(sizes[f] for f in sources[job] if f not in shared),
        ))
        benchmarks[jid] = str(job.benchmark) if job.benchmark else None
    return WorkflowJobs(jobs=tuple(jobs), benchmarks=benchmarks)


def workflow_jobs(
    snakefile: Path,
    *,
    configfiles: Iterable[Path] = (),
    config: Mapping[str, Any] | None = None,
    workdir: Path | None = None,
    forceall: bool = True,
    cores: int = 1024,
) -> WorkflowJobs:
    """Build the workflow's DAG with Snakemake's API (nothing runs) and return its jobs.

    Args:
        snakefile: the pipeline's Snakefile.
        configfiles: --configfile files.
        config: --config overrides.
        workdir: working directory (default: the current one).
        forceall: every job of the workflow (True), or only those whose outputs are missing or stale.
        cores: most threads a job may get (threads above it are capped, as Snakemake does).

    Raises:
        InputError: the Snakefile is missing or Snakemake cannot build the DAG (the config or a
            sample sheet is wrong); the message is Snakemake's.
    """
    from snakemake.api import SnakemakeApi
    from snakemake.settings.enums import Quietness
    from snakemake.settings.types import (
        ConfigSettings,
        DAGSettings,
        OutputSettings,
        ResourceSettings,
    )

    if not snakefile.is_file():
        raise InputError(f"Snakefile {snakefile}: file not found")
    here = Path.cwd()
    try:
        with SnakemakeApi(OutputSettings(quiet={Quietness.ALL, Quietness.PROGRESS, Quietness.RULES})) as api:
            wf_api = api.workflow(
                resource_settings=ResourceSettings(cores=cores, nodes=cores),
                config_settings=ConfigSettings(
                    config=dict(config or {}), configfiles=[Path(f).absolute() for f in configfiles]
                ),
                snakefile=snakefile.absolute(),
                workdir=workdir.absolute() if workdir else None,
            )
            wf_api.dag(DAGSettings(forceall=forceall))
            workflow = wf_api._workflow  # Snakemake exposes the DAG itself only here
            workflow._prepare_dag(forceall=forceall, ignore_incomplete=True, lock_warn_only=True, nolock=True)
            workflow._build_dag()
            # workflow.is_local() is True for every rule without a cluster executor: ask for localrules
            local = workflow._localrules
            result = from_dag(workflow.dag, lambda rule: rule.name in local or rule.norun)
    except InputError:
        raise
    except Exception as exc:  # Snakemake's WorkflowError and friends carry the reason
        raise InputError(f"{snakefile}: Snakemake could not build the DAG: {exc}") from exc
    finally:
        os.chdir(here)
    log.info("%d jobs of %d rules from %s", len(result.jobs), len({j.rule for j in result.jobs}), snakefile)
    return result


def _over_run(job: Any, deps: list[Any]) -> bool:
    """A job without wildcards after jobs with them: it reads the whole run (the run report)."""
    return not len(job.wildcards) and any(len(d.wildcards) for d in deps)


def _over_callsets(job: Any) -> bool:
    """A job of one scoring group over every callset: its only wildcard is ``group``."""
    return set(job.wildcards.keys()) == {"group"}
