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
from aisci.slurm.profile import GROUPS, load_home_site, partition_limits, profile_text, write_profile
from aisci.slurm.site import Partition, Site
from tests.conftest import REPO

SITE = ("name: t\ncentres:\n  t:\n    partitions:\n      cpu: {nodes: 2, cores: 4, mem_gb: 8}\n"
        "      gpu: {nodes: 1, cores: 4, mem_gb: 8, gpus: 1}\n")


def one_centre(partitions: str) -> str:
    """A site description of one centre, 'c', with these partitions (YAML flow mappings by name)."""
    return "centres:\n  c:\n    partitions:\n" + "".join(f"      {line}\n" for line in partitions.splitlines())


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
    for name in ("slurm", "multicluster", "examples/hpc-institute"):
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
                                 "max_runtime": 1440, "available_gpu_models": ["a100"]}
    assert parts["bigmem"]["max_gpu"] == 0 and parts["compute"]["max_mem_mb"] == 262144
    # every entry of the profile is commented
    lines = files[0].read_text().splitlines()
    for i, line in enumerate(lines):
        if line and not line.startswith((" ", "#")) and i:
            assert lines[i - 1].startswith("#"), line


@pytest.mark.parametrize(
    "text, message",
    [
        ("centres:\n  c:\n    partitions: {}\n", "centres.c.partitions: {} should be non-empty"),
        (one_centre("cpu: {nodes: 1, cores: 4, mem_gb: 8}"), "centres.c.partitions: none has gpus > 0"),
        (one_centre("cpu: {nodes: 1, cores: 4}"), "centres.c.partitions.cpu.mem_gb: required, not set"),
        (one_centre("cpu: {nodes: 1, cores: 4, mem_gb: 8, gpu: 1}"), "unknown key 'centres.c.partitions.cpu.gpu'"),
        ("acount: x\n" + one_centre("g: {nodes: 1, cores: 1, mem_gb: 1, gpus: 1}"), "unknown key 'acount'"),
        ("status_command: qstat\n" + one_centre("g: {nodes: 1, cores: 1, mem_gb: 1, gpus: 1}"),
         "'qstat' is not one of sacct, squeue"),
        ("partitions:\n  g: {cpus: 1, mem_gb: 1, gpus: 1}\n", "partitions: now under centres.<centre>.partitions"),
    ],
)
def test_bad_site_descriptions(tmp_path, text, message):
    path = tmp_path / "site.yaml"
    path.write_text(text)
    with pytest.raises(InputError) as err:
        load_home_site(path)
    assert message in str(err.value) and "site.yaml" in str(err.value)


def test_partition_limits_are_the_home_centres():
    site = Site("home", (Partition("home", "c", nodes=3, cores=8, mem_mb=1536, max_walltime_s=5400.0),
                         Partition("partner", "p", nodes=1, cores=64, mem_mb=9999)))
    assert partition_limits(site) == {"partitions": {"c": {"max_threads": 8, "max_cpus_per_task": 8,
                                                           "max_mem_mb": 1536, "max_gpu": 0, "max_runtime": 90}}}


def test_cli_profile_new(tmp_path, capsys):
    site = tmp_path / "site.yaml"
    site.write_text(one_centre("gpu: {nodes: 1, cores: 8, mem_gb: 64, gpus: 2}") + "status_command: squeue\n")
    assert main(["profile", "new", "--site", str(site), "--out", str(tmp_path / "prof")]) == 0
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
    site = Site("c", (Partition("c", "g", nodes=1, cores=1, mem_mb=1024, gpus=1),),
                settings={"account": account, "qos": "a\nexecutor: local", "max_jobs": 1, "status_command": "squeue",
                          "first_status_check": 1, "latency_wait": 1, "retries": 0, "default_runtime": 1})
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
    assert main(["profile", "new", "--site", str(site), "--out", "prof"]) == 1
    assert capsys.readouterr().err == f"aisci profile: error: site.yaml: {message}\n"
    assert not (tmp_path / "prof").exists() and not (tmp_path / "PWNED").exists()


def test_partition_names_must_be_slurm_names(tmp_path):
    site = tmp_path / "site.yaml"
    site.write_text(one_centre("\"gpu a\": {nodes: 1, cores: 4, mem_gb: 8, gpus: 1}"))
    with pytest.raises(InputError, match=r"site.yaml: centres.c.partitions: 'gpu a' must match \^\[A-Za-z0-9\]"):
        load_home_site(site)


def test_site_schema_uses_the_one_name_pattern():
    site = load_schema("site")["properties"]
    assert site["account"]["pattern"] == site["qos"]["pattern"] == NAME_PATTERN
    centre = site["centres"]["additionalProperties"]["properties"]
    assert centre["slurm_cluster"]["pattern"] == centre["partitions"]["propertyNames"]["pattern"] == NAME_PATTERN
    partition = centre["partitions"]["additionalProperties"]["properties"]
    assert partition["gpu_models"]["items"]["pattern"] == NAME_PATTERN


@pytest.mark.parametrize("data, message", [
    (one_centre("gpu: &g {nodes: 1, cores: 4, mem_gb: 8, gpus: 1}\ngpu2: *g").encode(),
     "line 5: not valid YAML (YAML aliases (*name) are not allowed"),
    (b"name: caf\xe9\n" + one_centre("gpu: {nodes: 1, cores: 4, mem_gb: 8, gpus: 1}").encode(), "not UTF-8 text (byte 9"),
])
def test_site_file_with_an_alias_or_not_utf8_is_refused_naming_the_file(tmp_path, data, message):
    site = tmp_path / "site.yaml"
    site.write_bytes(data)
    with pytest.raises(InputError) as err:
        load_home_site(site)
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
    settings = load_home_site(REPO / "profiles/slurm/site.yaml").settings
    min_job_age = int(re.search(r"^MinJobAge=(\d+)$", (REPO / "scripts/slurm-local").read_text(), re.M).group(1))
    assert settings["status_command"] == "squeue" and 3 * settings["first_status_check"] <= min_job_age
    config = yaml.safe_load((REPO / "profiles/slurm/config.yaml").read_text())
    assert config["slurm-init-seconds-before-status-checks"] == settings["first_status_check"]


def test_profile_status_check_and_groups_reach_snakemake(tmp_path):
    """What Snakemake's own command-line parsing (the plugin's settings included) makes of the profile."""
    from snakemake.cli import parse_args

    write_profile(REPO / "profiles/slurm/site.yaml", tmp_path / "prof")
    _, args = parse_args(["--profile", str(tmp_path / "prof")])
    assert args.executor == "slurm" and args.slurm_status_command == "squeue"
    assert args.slurm_init_seconds_before_status_checks == 1
    assert args.groups == GROUPS
    assert args.slurm_partition_config == tmp_path / "prof" / "partitions.yaml"


TWO_CENTRES = """\
home: home
centres:
  home:
    slurm_cluster: home
    partitions:
      cpu: {nodes: 2, cores: 8, mem_gb: 32, max_walltime: "2-00:00:00"}
      gpu: {nodes: 1, cores: 8, mem_gb: 64, gpus: 2, gpu_models: [a100, h100]}
  partner:
    slurm_cluster: partner
    partitions:
      cpu: {nodes: 4, cores: 4, mem_gb: 16}
      gpu: {nodes: 1, cores: 16, mem_gb: 64, gpus: 4, gpu_models: [h100], max_walltime: "12:00:00"}
transfers:
  - {from: home, to: partner, gbit_s: 10}
status_command: squeue
"""


def test_partner_centres_route_each_job_to_the_cluster_that_starts_it_first(tmp_path):
    site = tmp_path / "site.yaml"
    site.write_text(TWO_CENTRES)
    config, partitions = write_profile(site, tmp_path / "prof")
    limits = yaml.safe_load(partitions.read_text())["partitions"]
    # one entry per partition name, the smallest of the centres', naming both clusters (the plugin
    # offers a job that names clusters only the partitions that name the same)
    assert limits["cpu"] == {"max_threads": 4, "max_cpus_per_task": 4, "max_mem_mb": 16384, "max_gpu": 0,
                             "max_runtime": 2880, "cluster": "home,partner"}
    assert limits["gpu"]["max_gpu"] == 2 and limits["gpu"]["max_runtime"] == 720
    assert limits["gpu"]["available_gpu_models"] == ["h100"] and limits["gpu"]["cluster"] == "home,partner"
    args, resources = snakemake_reads(config)
    assert resources["default-resources"]["clusters"] == "home,partner"
    # squeue names no cluster: with a partner the profile reads states with sacct --clusters all
    assert args["slurm-status-command"] == "sacct"
    # memory never above the smallest node a job may land on
    assert "align_reads: 4" in config.read_text()  # threads: the partner's 4 cores
    assert int(args["cores"]) == 8  # the largest job: the gpu partitions' 8 cores, on either centre
    assert "min(12000 * 2 ** (attempt - 1), 16000)" in config.read_text()


def test_home_only_profile_of_a_site_with_partners(tmp_path):
    site = tmp_path / "site.yaml"
    site.write_text(TWO_CENTRES)
    assert main(["profile", "new", "--site", str(site), "--out", str(tmp_path / "prof"), "--home-only"]) == 0
    limits = yaml.safe_load((tmp_path / "prof" / "partitions.yaml").read_text())["partitions"]
    assert limits["cpu"]["max_threads"] == 8 and "cluster" not in limits["cpu"]
    text = (tmp_path / "prof" / "config.yaml").read_text()
    assert "clusters" not in text and "slurm-status-command: squeue" in text


def test_partner_without_the_home_partition_names_is_refused(tmp_path):
    site = tmp_path / "site.yaml"
    site.write_text(TWO_CENTRES.replace("      cpu: {nodes: 4, cores: 4, mem_gb: 16}", "      compute: {nodes: 4, cores: 4, mem_gb: 16}"))
    with pytest.raises(InputError, match=r"site.yaml: centres.partner.partitions: no partition 'cpu' as at home.*--home-only"):
        write_profile(site, tmp_path / "prof")
