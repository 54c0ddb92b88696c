"""Tests for aisci.slurm.profile: site description -> commented Slurm profile and partition limits."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import yaml
import pytest

from aisci.cli import main
from aisci.schema import load_schema
from aisci.errors import InputError
from aisci.names import NAME_PATTERN
from aisci.slurm.profile import GROUPS, load_site, partition_limits, profile_text, write_profile
from tests.conftest import REPO

SITE = "name: t\npartitions:\n  cpu: {cpus: 4, mem_gb: 8}\n  gpu: {cpus: 4, mem_gb: 8, gpus: 1}\n"


def snakemake_reads(config: Path, wildcards: dict[str, str] | None = None) -> tuple[dict[str, Any], dict[str, Any]]:
    """What Snakemake makes of a profile's config.yaml, with Snakemake's own code.

    The profile parser turns the YAML into command-line arguments; --default-resources and
    --set-resources parse those; each resource is then evaluated as for a job (Resource.evaluate,
    which evaluates a string as a Python expression).

    Returns:
        The arguments, and the evaluated resources: {"default-resources": {name: value}, rule: {name: value}}.
    """
    from snakemake.cli import parse_set_resources
    from snakemake.iocontainers import Wildcards
    from snakemake.profiles import ProfileConfigFileParser
    from snakemake.resources import Resources

    with config.open() as stream:
        args = ProfileConfigFileParser().parse(stream)
    job = {"wildcards": Wildcards(fromdict=wildcards or {}), "input": [], "attempt": 1, "threads": 1,
           "rulename": "r", "async_run": None}
    parsed = {"default-resources": Resources.parse(args.get("default-resources", []), allow_expressions=True),
              **parse_set_resources(args.get("set-resources"))}
    return args, {where: {name: res.evaluate(**job).value for name, res in resources.items()}
                  for where, resources in parsed.items()}


def test_committed_profiles_are_what_the_generator_writes(tmp_path):
    for name in ("slurm", "examples/hpc-institute"):
        src = REPO / "profiles" / name
        out = tmp_path / name
        write_profile(src / "site.yaml", out)
        assert yaml.safe_load((out / "partitions.yaml").read_text()) == yaml.safe_load((src / "partitions.yaml").read_text())
        assert (out / "config.yaml").read_text() == (src / "config.yaml").read_text()


def test_a_written_profile_works_from_anywhere(tmp_path, monkeypatch):
    """The partition file is named relative to the profile: a copied profile (to ~/.config/snakemake/,
    a project directory) still finds its own, whatever the working directory."""
    from snakemake.profiles import ProfileConfigFileParser

    write_profile(REPO / "profiles/slurm/site.yaml", tmp_path / "made")
    copy = tmp_path / "elsewhere" / "site-profile"
    copy.mkdir(parents=True)
    for f in (tmp_path / "made").iterdir():
        (copy / f.name).write_bytes(f.read_bytes())
    monkeypatch.chdir(tmp_path)
    with open(copy / "config.yaml") as stream:
        parsed = ProfileConfigFileParser().parse(stream)
    assert parsed["slurm-partition-config"] == str(copy / "partitions.yaml")


def test_example_site_maps_partitions_account_and_qos(tmp_path):
    files = write_profile(REPO / "profiles/examples/hpc-institute/site.yaml", tmp_path / "p")
    config = yaml.safe_load(files[0].read_text())
    assert config["executor"] == "slurm" and config["slurm-qos"] == "normal"
    assert config["cores"] == 64  # the largest partition: group jobs never ask for more
    assert config["default-resources"]["slurm_account"] == "'genomics-core'"  # a Python literal: Snakemake evaluates it
    assert config["groups"] == GROUPS
    parts = yaml.safe_load(files[1].read_text())["partitions"]
    assert parts["gpu_a100"] == {"max_threads": 32, "max_cpus_per_task": 32, "max_mem_mb": 524288, "max_gpu": 4,
                                 "max_runtime": "1-00:00:00", "available_gpu_models": ["a100"]}
    assert parts["bigmem"]["max_gpu"] == 0 and parts["compute"]["max_mem_mb"] == 262144
    # every entry of the profile is commented
    lines = files[0].read_text().splitlines()
    for i, line in enumerate(lines):
        if line and not line.startswith((" ", "#")) and i:
            assert lines[i - 1].startswith("#"), line


@pytest.mark.parametrize(
    "text, message",
    [
        ("partitions: {}\n", "partitions: {} should be non-empty"),
        ("partitions:\n  cpu: {cpus: 4, mem_gb: 8}\n", "no partition has gpus > 0"),
        ("partitions:\n  cpu: {cpus: 4}\n", "partitions.cpu.mem_gb: required, not set"),
        ("partitions:\n  cpu: {cpus: 4, mem_gb: 8, gpu: 1}\n", "unknown key 'partitions.cpu.gpu'"),
        ("acount: x\npartitions:\n  g: {cpus: 1, mem_gb: 1, gpus: 1}\n", "unknown key 'acount'"),
        ("status_command: qstat\npartitions:\n  g: {cpus: 1, mem_gb: 1, gpus: 1}\n", "'qstat' is not one of sacct, squeue"),
    ],
)
def test_bad_site_descriptions(tmp_path, text, message):
    path = tmp_path / "site.yaml"
    path.write_text(text)
    with pytest.raises(InputError) as err:
        load_site(path)
    assert message in str(err.value) and "site.yaml" in str(err.value)


def test_partition_limits_of_a_cpu_only_partition():
    site = {"partitions": {"c": {"cpus": 8, "mem_gb": 1.5, "gpus": 0}}}
    assert partition_limits(site) == {"partitions": {"c": {"max_threads": 8, "max_cpus_per_task": 8,
                                                           "max_mem_mb": 1536, "max_gpu": 0}}}


def test_cli_profile_new(tmp_path, capsys):
    site = tmp_path / "site.yaml"
    site.write_text("partitions:\n  gpu: {cpus: 8, mem_gb: 64, gpus: 2}\nstatus_command: squeue\n")
    assert main(["profile", "new", "--partitions", str(site), "--out", str(tmp_path / "prof")]) == 0
    assert "wrote" in capsys.readouterr().out
    assert "slurm-status-command: squeue" in (tmp_path / "prof" / "config.yaml").read_text()


@pytest.mark.parametrize("written, account", [
    ("2023-110", "2023-110"),  # bare, Snakemake used to evaluate it to 1913 and charge that account
    ("'007'", "007"),
    ("'1e5'", "1e5"),
    ("'True'", "True"),
    ("open", "open"),  # a builtin's name
    ("genomics-core.v2_a", "genomics-core.v2_a"),
])
def test_account_reaches_snakemake_as_exactly_its_string(tmp_path, written, account):
    site = tmp_path / "site.yaml"
    site.write_text(SITE + f"account: {written}\nqos: normal-2024.q_1\n")
    config, _ = write_profile(site, tmp_path / "prof")
    assert f"  slurm_account: \"'{account}'\"\n" in config.read_text()
    args, resources = snakemake_reads(config)
    assert resources["default-resources"] == {"runtime": 120, "slurm_account": account}
    assert args["slurm-qos"] == "normal-2024.q_1"  # an executor setting: passed on as it is, not evaluated


def test_literal_keeps_an_expression_a_string_even_past_the_schema(tmp_path, monkeypatch):
    # the schema refuses such an account (next test); were one to slip through, Snakemake still reads a string
    monkeypatch.chdir(tmp_path)
    account = "__import__('os').system('touch PWNED')"
    site = {"account": account, "qos": "a\nexecutor: local", "max_jobs": 1, "status_command": "squeue",
            "first_status_check": 1, "latency_wait": 1, "retries": 0, "default_runtime": 1,
            "partitions": {"g": {"cpus": 1, "mem_gb": 1, "gpus": 1}}}
    config = tmp_path / "config.yaml"
    config.write_text(profile_text(site, None))
    args, resources = snakemake_reads(config)
    assert resources["default-resources"]["slurm_account"] == account
    assert args["executor"] == "slurm" and args["slurm-qos"] == "a\nexecutor: local"  # no key injected
    assert not (tmp_path / "PWNED").exists()


@pytest.mark.parametrize("line, message", [
    ("account: \"__import__('os').system('touch PWNED')\"",
     f"account: \"__import__('os').system('touch PWNED')\" must match {NAME_PATTERN}"),
    ("qos: \"normal\\nexecutor: local\"", f"qos: 'normal\\nexecutor: local' must match {NAME_PATTERN}"),
    ("account: \"lab x\"", f"account: 'lab x' must match {NAME_PATTERN}"),
    ("account: \"$HOME\"", f"account: '$HOME' must match {NAME_PATTERN}"),
    ("qos: \"'normal'\"", f"qos: \"'normal'\" must match {NAME_PATTERN}"),
    ("qos: -normal", f"qos: '-normal' must match {NAME_PATTERN}"),
    ("account: 2023-01-10", "account: datetime.date(2023, 1, 10) is not of type 'string', 'null'"),  # YAML's date
])
def test_account_and_qos_must_be_slurm_names(tmp_path, monkeypatch, capsys, line, message):
    monkeypatch.chdir(tmp_path)
    site = tmp_path / "site.yaml"
    site.write_text(SITE + line + "\n")
    assert main(["profile", "new", "--partitions", str(site), "--out", "prof"]) == 1
    assert capsys.readouterr().err == f"aisci profile: error: site.yaml: {message}\n"
    assert not (tmp_path / "prof").exists() and not (tmp_path / "PWNED").exists()


def test_partition_names_must_be_slurm_names(tmp_path):
    site = tmp_path / "site.yaml"
    site.write_text("partitions:\n  \"gpu a\": {cpus: 4, mem_gb: 8, gpus: 1}\n")
    with pytest.raises(InputError, match=r"site.yaml: partitions: 'gpu a' must match \^\[A-Za-z0-9\]"):
        load_site(site)


def test_site_schemas_use_the_one_name_pattern():
    site = load_schema("site")["properties"]
    assert site["account"]["pattern"] == site["qos"]["pattern"] == NAME_PATTERN
    assert site["partitions"]["propertyNames"]["pattern"] == NAME_PATTERN
    centre = load_schema("sites")["properties"]["centres"]["additionalProperties"]["properties"]
    assert centre["slurm_cluster"]["pattern"] == NAME_PATTERN


@pytest.mark.parametrize("data, message", [
    (b"partitions:\n  gpu: &g {cpus: 4, mem_gb: 8, gpus: 1}\n  gpu2: *g\n", "line 3: not valid YAML (YAML aliases (*name) are not allowed"),
    (b"name: caf\xe9\npartitions:\n  gpu: {cpus: 4, mem_gb: 8, gpus: 1}\n", "not UTF-8 text (byte 9"),
])
def test_site_file_with_an_alias_or_not_utf8_is_refused_naming_the_file(tmp_path, data, message):
    site = tmp_path / "site.yaml"
    site.write_bytes(data)
    with pytest.raises(InputError) as err:
        load_site(site)
    assert str(err.value).startswith(f"{site}") and message in str(err.value) and "\n" not in str(err.value)


def test_the_rules_declare_the_groups_of_the_profile():
    """The Snakemake inside a Slurm job reads no profile: only a rule's own `group:` makes it run a group job's
    rules in one process (else one job step, with Snakemake started again, per rule)."""
    declared = {}
    for smk in (REPO / "rules").glob("*.smk"):
        for block in re.split(r"^(?=rule \w+:)", smk.read_text(), flags=re.M)[1:]:
            rule = re.match(r"rule (\w+):", block).group(1)
            group = re.search(r'^    group:\n        "(\w+)"$', block, re.M)
            if group:
                declared[rule] = group.group(1)
    assert declared == GROUPS


def test_every_grouped_rule_is_a_rule_of_the_workflows():
    """A misspelt rule in GROUPS would silently leave that rule ungrouped: one Slurm job per run of it."""
    rules = set()
    for smk in (REPO / "rules").glob("*.smk"):
        rules |= set(re.findall(r"^rule (\w+):", smk.read_text(), re.M))
    assert set(GROUPS) <= rules, set(GROUPS) - rules
    # the reference is prepared in one job (its rules run one after the other anyway), on a compute
    # node like any grouped rule: none of them is a local rule of the germline workflow
    assert {r for r, g in GROUPS.items() if g == "reference"} == {"prepare_reference", "index_minimap2", "index_bwa"}
    snakefile = (REPO / "workflows/germline/Snakefile").read_text()
    localrules = re.search(r"^localrules:\n((?:    \w+,\n)+)", snakefile, re.M)
    assert localrules and not set(re.findall(r"\w+", localrules.group(1))) & set(GROUPS)


def test_local_cluster_keeps_squeue_for_job_states():
    """The plugin turns to sacct when MinJobAge < 3x the first status check; the local cluster's profile
    reads states with squeue (sacct misses 'CANCELLED by <uid>', see site.schema.yaml), so its
    MinJobAge (scripts/slurm-local) must stay above that."""
    site = load_site(REPO / "profiles/slurm/site.yaml")
    min_job_age = int(re.search(r"^MinJobAge=(\d+)$", (REPO / "scripts/slurm-local").read_text(), re.M).group(1))
    assert site["status_command"] == "squeue" and 3 * site["first_status_check"] <= min_job_age
    config = yaml.safe_load((REPO / "profiles/slurm/config.yaml").read_text())
    assert config["slurm-init-seconds-before-status-checks"] == site["first_status_check"]


def test_profile_status_check_and_groups_reach_snakemake(tmp_path):
    """What Snakemake's own command-line parsing (the plugin's settings included) makes of the profile."""
    from snakemake.cli import parse_args

    write_profile(REPO / "profiles/slurm/site.yaml", tmp_path / "prof")
    _, args = parse_args(["--profile", str(tmp_path / "prof")])
    assert args.executor == "slurm" and args.slurm_status_command == "squeue"
    assert args.slurm_init_seconds_before_status_checks == 1
    assert args.groups == GROUPS
    assert args.slurm_partition_config == tmp_path / "prof" / "partitions.yaml"
