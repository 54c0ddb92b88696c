"""Tests for aisci.slurm.clusters: the clusters a profile names, and sacct's job states read by their first word."""

from __future__ import annotations

import asyncio
import logging
from types import SimpleNamespace

import pytest

from aisci.slurm.clusters import clusters_in, first_word, follow_states, profile_clusters, workflow_clusters


@pytest.mark.parametrize("value, names", [
    ("'partner'", {"partner"}),
    ("'home,partner'", {"home", "partner"}),
    ("partner", {"partner"}),  # a bare word from a command line
    ("{'S1': 'partner', 'S2_0001': 'other'}.get('_'.join(wildcards).replace('/', '_'), 'home')",
     {"partner", "other", "home"}),
    (None, set()),
])
def test_clusters_in_a_resource_value(value, names):
    assert clusters_in(value) == names


def test_profile_clusters_from_defaults_and_rules():
    assert profile_clusters({"clusters": "'home'", "runtime": 60},
                            {"a": {"slurm_cluster": "'partner'"}, "b": {"mem_mb": 5}}) == ["home", "partner"]
    assert profile_clusters({"runtime": 60}, {}) == []


def test_first_word_of_a_state():
    assert first_word("CANCELLED by 0") == "CANCELLED"
    assert first_word("COMPLETED") == "COMPLETED" and first_word("") == ""


class _Resource:
    def __init__(self, raw):
        self.raw = raw


def workflow(mode="DEFAULT", default=None, rules=None):
    settings = SimpleNamespace(default_resources={k: _Resource(v) for k, v in (default or {}).items()},
                               overwrite_resources={r: {k: _Resource(v) for k, v in m.items()} for r, m in (rules or {}).items()})
    return SimpleNamespace(exec_mode=SimpleNamespace(name=mode), resource_settings=settings)


def test_workflow_clusters_read_the_profile_as_written():
    wf = workflow(default={"clusters": "'home'"}, rules={"score": {"clusters": "'partner'"}})
    assert workflow_clusters(wf) == ["home", "partner"]


def test_follow_states_reads_cancelled_by_uid_as_cancelled(monkeypatch):
    plugin = pytest.importorskip("snakemake_executor_plugin_slurm")
    monkeypatch.setattr(plugin, "query_job_status", plugin.query_job_status)  # restored after the test
    assert follow_states(workflow(default={"clusters": "'home'"})) == ["home"]
    follow_states(workflow())  # a second call wraps nothing twice
    query = plugin.query_job_status
    assert getattr(query, "aisci_normalised", False) and not getattr(query.__wrapped__, "aisci_normalised", False)
    # the plugin runs the status command and parses "<id>|<state>" lines: sacct's real spelling here
    states, seconds = asyncio.run(query("printf '50000016|CANCELLED by 0\\n7|COMPLETED\\n'", logging.getLogger()))
    assert states == {"50000016": "CANCELLED", "7": "COMPLETED"} and seconds >= 0
    failed, _ = asyncio.run(query("false", logging.getLogger()))
    assert failed is None  # a failing query stays a failure


def test_follow_states_leaves_jobs_alone(monkeypatch):
    plugin = pytest.importorskip("snakemake_executor_plugin_slurm")
    original = plugin.query_job_status
    monkeypatch.setattr(plugin, "query_job_status", original)
    # the Snakemake that runs inside a Slurm job (remote mode) reads the Snakefile too
    assert follow_states(workflow(mode="REMOTE", default={"clusters": "'home'"})) == []
    assert plugin.query_job_status is original
