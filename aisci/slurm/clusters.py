"""Several Slurm clusters from one Snakemake driver: which clusters a profile sends jobs to, and job
states read from all of them.

The Slurm executor plugin submits a job to another cluster when its resources name one
(``clusters``, ``cluster`` or ``slurm_cluster``: ``sbatch --clusters``). Reading the states back:

* its ``squeue`` status mode names no cluster, so a job on a partner cluster is never seen to end
  and the run waits forever. SLURM_CLUSTERS would make squeue list every cluster, but the plugin
  also runs ``scontrol show config``, which refuses more than one cluster, and then falls back to
  sacct anyway: profiles that send jobs to several clusters use the ``sacct`` mode;
* its ``sacct`` mode does query ``--clusters all``, but (plugin 2.8) compares the state with
  ``CANCELLED``, while sacct spells a cancelled job ``CANCELLED by <uid>``: the job is never seen
  to fail and the run waits forever. :func:`follow_states` fixes that in the driver, by reading
  the state's first word, as sacct's own documentation defines the field.

``scancel`` gets ``--clusters=all`` from the plugin once a job named a cluster. The profiles that
``aisci plan`` and ``aisci profile new`` write give every rule its cluster (a default of home).
"""

from __future__ import annotations

import ast
import functools
import logging
from collections.abc import Iterable, Mapping
from typing import Any

log = logging.getLogger(__name__)

#: Resource names the Slurm plugin reads as ``sbatch --clusters`` (its own order of preference).
CLUSTER_RESOURCES = ("cluster", "clusters", "slurm_cluster")


def _names(text: str) -> set[str]:
    """Cluster names in one resource value: ``home``, ``home,partner``."""
    return {part.strip() for part in text.split(",") if part.strip()}


def clusters_in(value: Any) -> set[str]:
    """The clusters a resource value can name.

    A profile's value is a Python expression that Snakemake evaluates per job: a string literal
    (``'partner'``) or, where the plan splits a rule, a dict of wildcards to clusters with a default
    (``{'s1': 'partner'}.get(<key>, 'home')``). The names are the literal, the dict's values and the
    default; anything else in the expression (the key's joins) is not a cluster.
    """
    if value is None:
        return set()
    text = value if isinstance(value, str) else str(value)
    try:
        tree = ast.parse(text, mode="eval").body
    except SyntaxError:
        return _names(text)  # a bare word list, as a command line's --default-resources may give it
    found: set[str] = set()

    def strings(node: ast.AST) -> None:
        if isinstance(node, ast.Constant) and isinstance(node.value, str):
            found.update(_names(node.value))
        elif isinstance(node, ast.Dict):
            for v in node.values:
                strings(v)
        elif isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute) and node.func.attr == "get":
            strings(node.func.value)
            for arg in node.args[1:]:
                strings(arg)

    strings(tree)
    if not found and isinstance(tree, ast.Name):
        found = _names(tree.id)
    return found


def profile_clusters(default_resources: Mapping[str, Any] | None,
                     rule_resources: Mapping[str, Mapping[str, Any]] | None) -> list[str]:
    """Every cluster that a profile's default-resources and set-resources name, sorted."""
    found: set[str] = set()
    mappings: Iterable[Mapping[str, Any]] = [default_resources or {}, *(rule_resources or {}).values()]
    for resources in mappings:
        for key in CLUSTER_RESOURCES:
            if key in resources:
                found |= clusters_in(resources[key])
    return sorted(found)


def resource_items(resources: Any) -> dict[str, Any]:
    """A Snakemake Resources mapping (or a plain one) as {name: value, or the expression as written}."""
    # snakemake.resources.Resource keeps the profile's text in .raw
    return {name: getattr(res, "raw", res) for name, res in dict(resources or {}).items()}


def workflow_clusters(workflow: Any) -> list[str]:
    """The clusters that the run's profile or command line sends jobs to ([] for none named)."""
    settings = getattr(workflow, "resource_settings", None)
    if settings is None:
        return []
    rules = {rule: resource_items(res) for rule, res in dict(settings.overwrite_resources or {}).items()}
    return profile_clusters(resource_items(settings.default_resources), rules)


def first_word(status: str) -> str:
    """A job state as the plugin compares it: ``CANCELLED by 0`` -> ``CANCELLED``."""
    words = status.split()
    return words[0] if words else status


def _normalised(query: Any) -> Any:
    @functools.wraps(query)
    async def wrapper(*args: Any, **kwargs: Any) -> Any:
        states, seconds = await query(*args, **kwargs)
        if states is not None:
            states = {job: first_word(state) for job, state in states.items()}
        return states, seconds

    wrapper.aisci_normalised = True  # type: ignore[attr-defined]
    return wrapper


def follow_states(workflow: Any) -> list[str]:
    """In the Snakemake driver: read sacct's job states by their first word; return the clusters named.

    Does nothing inside a job (the Snakemake a group job starts reads the Snakefile too) or without
    the Slurm plugin. The plugin's status query is wrapped once per process; a plugin without it
    (another version) is left alone with a warning when the profile names clusters.
    """
    mode = getattr(getattr(workflow, "exec_mode", None), "name", "DEFAULT")
    if mode != "DEFAULT":
        return []
    clusters = workflow_clusters(workflow)
    try:
        import snakemake_executor_plugin_slurm as plugin
    except ImportError:
        return clusters
    query = getattr(plugin, "query_job_status", None)
    if query is None:
        if clusters:
            log.warning("Slurm plugin without query_job_status: a job cancelled on a cluster ('CANCELLED by "
                        "<uid>' in sacct) may not be noticed; use snakemake-executor-plugin-slurm 2.8")
        return clusters
    if not getattr(query, "aisci_normalised", False):
        plugin.query_job_status = _normalised(query)
    return clusters
