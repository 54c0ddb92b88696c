"""sites.yaml: schema, defaults, Slurm times, and errors naming the file and key."""

from __future__ import annotations

import argparse
import math

import pytest
import yaml

from aisci.errors import InputError
from aisci.placement.cli import _runtime_table, duration_s
from aisci.placement.sites import load_sites, parse_sites, slurm_minutes

SITES = """
home: hpc
centres:
  hpc:
    slurm_cluster: hpc
    partitions:
      cpu: {nodes: 10, cores: 32, mem_gb: 128, max_walltime: "2-00:00:00", core_hour_cost: 0.01}
      gpu: {nodes: 1, cores: 32, mem_gb: 256, gpus: 4, gpu_model: a100, gpu_hour_cost: 1.0, queue_wait: 60}
  partner:
    slurm_cluster: partner
    partitions:
      pcpu: {nodes: 10, cores: 64, mem_gb: 256}
transfers:
  - {from: hpc, to: partner, cost_per_gb: 0.05, gbit_s: 10}
slurm: {account: lab}
"""


def test_sites_parsed_with_defaults(tmp_path):
    path = tmp_path / "sites.yaml"
    path.write_text(SITES)
    sites, slurm = load_sites(path)
    assert [p.id for p in sites.partitions] == ["hpc/cpu", "hpc/gpu", "partner/pcpu"]
    cpu, gpu, pcpu = sites.partitions
    assert cpu.max_walltime_s == 48 * 3600 and cpu.mem_mb == 128 * 1024 and cpu.gpus == 0
    assert gpu.queue_wait_s == 3600 and gpu.total_gpus == 4 and math.isinf(gpu.max_walltime_s)
    assert pcpu.slurm_cluster == "partner" and sites.transfer("partner").cost(2e9) == pytest.approx(0.1)
    assert sites.transfer("partner").seconds(10e9) == pytest.approx(8.0)
    assert slurm["account"] == "lab" and slurm["max_jobs"] == 100 and slurm["status_command"] == "squeue"


@pytest.mark.parametrize("edit, message", [
    (lambda d: d.update(home="nowhere"), r"home: 'nowhere' is not a centre"),
    (lambda d: d["centres"]["hpc"]["partitions"]["cpu"].update(cores=0), r"centres.hpc.partitions.cpu.cores"),
    (lambda d: d["centres"]["hpc"]["partitions"]["cpu"].update(gpu=1), r"unknown key 'centres.hpc.partitions.cpu.gpu'"),
    (lambda d: d.update(transfers=[]), r"centres.partner: no transfer from hpc to partner"),
    (lambda d: d["centres"]["partner"].pop("slurm_cluster"), r"centres.partner.slurm_cluster"),
    (lambda d: d["centres"]["hpc"].pop("slurm_cluster"), r"centres.hpc.slurm_cluster: with partner centres"),
    (lambda d: d["centres"]["hpc"]["partitions"]["cpu"].update(max_walltime=0), r"max_walltime"),
    (lambda d: d["centres"]["hpc"]["partitions"]["cpu"].update(max_walltime="0:00:00"), r"longer than zero"),
    (lambda d: d["centres"]["hpc"]["partitions"]["cpu"].update(max_walltime="2 days"), r"max_walltime: '2 days'"),
    (lambda d: d["transfers"][0].update(to="moon"), r"transfers.0.to: 'moon' is not a centre"),
    (lambda d: d["slurm"].update(status_command="scontrol"), r"sites.yaml: slurm: status_command"),
    # Snakemake evaluates profile resources as Python: only plain Slurm names reach the profile
    (lambda d: d["slurm"].update(account="__import__('os').system('touch PWNED')"),
     r"sites.yaml: slurm: account: \"__import__\('os'\).*\" must match \^\[A-Za-z0-9\]"),
    (lambda d: d["slurm"].update(qos="normal\nexecutor: local"), r"sites.yaml: slurm: qos: 'normal\\nexecutor: local' must"),
    (lambda d: d["centres"]["hpc"].update(slurm_cluster="hpc x"), r"sites.yaml: centres.hpc.slurm_cluster: 'hpc x' must"),
    (lambda d: d["centres"]["hpc"]["partitions"].update({"a'b": {"nodes": 1, "cores": 1, "mem_gb": 1}}),
     r"sites.yaml: centres.hpc.partitions: \"a'b\" must match"),
    (lambda d: d["centres"]["hpc"]["partitions"].update(cpu2=d["centres"]["hpc"]["partitions"]["cpu"]),
     r"sites.yaml: centres.hpc.partitions.cpu2?: YAML aliases"),
])
def test_bad_sites_name_the_key(edit, message):
    data = yaml.safe_load(SITES)
    edit(data)
    with pytest.raises(InputError, match=message):
        parse_sites(data, "sites.yaml")


def test_sites_file_with_an_alias_is_refused_naming_the_file(tmp_path):
    path = tmp_path / "sites.yaml"
    path.write_text(SITES.replace("  partner:\n", "  partner: &p\n") + "again: *p\n")
    with pytest.raises(InputError) as err:
        load_sites(path)
    assert str(err.value).startswith(f"{path} line 16: not valid YAML") and "YAML aliases (*name) are not allowed" in str(err.value)


def test_missing_sites_file(tmp_path):
    with pytest.raises(InputError, match="file not found"):
        load_sites(tmp_path / "none.yaml")


@pytest.mark.parametrize("text, minutes", [(90, 90), ("90", 90), ("1:30:00", 90), ("2-00:00:00", 2880),
                                           ("1-12", 2160), ("10:30", 10.5), ("UNLIMITED", math.inf)])
def test_slurm_minutes(text, minutes):
    assert slurm_minutes(text, "x") == minutes


def test_durations_and_runtime_tables(tmp_path):
    assert duration_s("12h") == 43200 and duration_s("90m") == 5400 and duration_s("2d") == 172800
    for bad in ("soon", "2", "0h", "-3h"):  # a bare number would be ambiguous (s? min? h?)
        with pytest.raises(argparse.ArgumentTypeError):
            duration_s(bad)
    good = tmp_path / "r.yaml"
    good.write_text("align_reads: {cpu: 3600}\nscore_missense: {cpu: 7200, gpu: 600}\n")
    assert _runtime_table(good) == {"align_reads": {"cpu": 3600.0}, "score_missense": {"cpu": 7200.0, "gpu": 600.0}}
    bad = tmp_path / "b.yaml"
    bad.write_text("align_reads: {cpu: -1}\n")
    with pytest.raises(InputError, match=r"b.yaml: align_reads.cpu: -1 is not a positive number"):
        _runtime_table(bad)
    bad.write_text("align_reads: {tpu: 5}\n")
    with pytest.raises(InputError, match=r"align_reads: expected"):
        _runtime_table(bad)
