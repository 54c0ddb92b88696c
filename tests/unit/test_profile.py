"""Tests for aisci.profile: site description -> commented Slurm profile and partition limits."""

import yaml
import pytest

from aisci.cli import main
from aisci.errors import InputError
from aisci.profile import GROUPS, load_site, partition_limits, write_profile
from tests.conftest import REPO


def test_committed_profiles_are_what_the_generator_writes(tmp_path):
    for name in ("slurm", "examples/hpc-institute"):
        src = REPO / "profiles" / name
        out = tmp_path / name
        write_profile(src / "site.yaml", out)
        assert yaml.safe_load((out / "partitions.yaml").read_text()) == yaml.safe_load((src / "partitions.yaml").read_text())
        got = (out / "config.yaml").read_text().replace(str(out), f"profiles/{name}")
        assert got == (src / "config.yaml").read_text()


def test_example_site_maps_partitions_account_and_qos(tmp_path):
    files = write_profile(REPO / "profiles/examples/hpc-institute/site.yaml", tmp_path / "p")
    config = yaml.safe_load(files[0].read_text())
    assert config["executor"] == "slurm" and config["slurm-qos"] == "normal"
    assert config["cores"] == 64  # the largest partition: group jobs never ask for more
    assert config["default-resources"]["slurm_account"] == "genomics-core"
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
        ("partitions:\n  cpu: {cpus: 4}\n", "'mem_gb' is a required property"),
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
