"""site.yaml: the one site description: schema, defaults, Slurm times, old keys, and errors naming the file and key."""

from __future__ import annotations

import math

import pytest
import yaml

from aisci.errors import InputError
from aisci.slurm.site import load_site, parse_site, slurm_minutes

SITES = """
home: hpc
centres:
  hpc:
    slurm_cluster: hpc
    partitions:
      cpu: {nodes: 10, cores: 32, mem_gb: 128, max_walltime: "2-00:00:00", core_hour_cost: 0.01}
      gpu: {nodes: 1, cores: 32, mem_gb: 256, gpus: 4, gpu_models: [a100], gpu_hour_cost: 1.0, queue_wait: 60}
  partner:
    slurm_cluster: partner
    partitions:
      pcpu: {nodes: 10, cores: 64, mem_gb: 256}
transfers:
  - {from: hpc, to: partner, cost_per_gb: 0.05, gbit_s: 10}
account: lab
"""


def test_site_parsed_with_defaults(tmp_path):
    path = tmp_path / "site.yaml"
    path.write_text(SITES)
    site = load_site(path)
    assert [p.id for p in site.partitions] == ["hpc/cpu", "hpc/gpu", "partner/pcpu"]
    assert [p.id for p in site.home_partitions] == ["hpc/cpu", "hpc/gpu"]
    cpu, gpu, pcpu = site.partitions
    assert cpu.max_walltime_s == 48 * 3600 and cpu.mem_mb == 128 * 1024 and cpu.gpus == 0
    assert gpu.queue_wait_s == 3600 and gpu.total_gpus == 4 and math.isinf(gpu.max_walltime_s)
    assert gpu.gpu_models == ("a100",) and cpu.gpu_models == ()
    assert pcpu.slurm_cluster == "partner" and site.transfer("partner").cost(2e9) == pytest.approx(0.1)
    assert site.transfer("partner").seconds(10e9) == pytest.approx(8.0)
    settings = site.settings
    assert settings["account"] == "lab" and settings["max_jobs"] == 100 and settings["status_command"] == "squeue"
    assert settings["qos"] is None and site.name == "site"


def test_one_centre_is_home_without_naming_it():
    site = parse_site(yaml.safe_load("centres:\n  lab:\n    partitions:\n      cpu: {nodes: 2, cores: 8, mem_gb: 32}\n"),
                      "site.yaml")
    assert site.home == "lab" and [p.id for p in site.home_partitions] == ["lab/cpu"]
    assert site.partitions[0].slurm_cluster is None and site.transfers == {}


@pytest.mark.parametrize("text, message", [
    # the two formats this one replaced: one line each, naming the key and what to write instead
    ("partitions:\n  cpu: {cpus: 4, mem_gb: 8}\n",
     "site.yaml: partitions: now under centres.<centre>.partitions (one centre for a single "
     "cluster), with cores, max_walltime and gpu_models for cpus, max_runtime and gpu_model, and nodes"),
    ("slurm: {account: lab}\ncentres: {}\n", "site.yaml: slurm: its keys (account, qos, max_jobs, ...) now sit at the top "
     "level of the site description"),
    ("centres:\n  c:\n    partitions:\n      p: {nodes: 1, cpus: 4, mem_gb: 8}\n",
     "site.yaml: centres.c.partitions.p.cpus: now called cores"),
    ("centres:\n  c:\n    partitions:\n      p: {nodes: 1, cores: 4, mem_gb: 8, max_runtime: 60}\n",
     "site.yaml: centres.c.partitions.p.max_runtime: now called max_walltime"),
    ("centres:\n  c:\n    partitions:\n      p: {nodes: 1, cores: 4, mem_gb: 8, gpus: 1, gpu_model: a100}\n",
     "site.yaml: centres.c.partitions.p.gpu_model: now called gpu_models (a list)"),
    ("centres:\n  a: {partitions: {p: {nodes: 1, cores: 1, mem_gb: 1}}}\n  b: {partitions: {p: {nodes: 1, cores: 1, mem_gb: 1}}}\n",
     "site.yaml: home: required with more than one centre (the centre where the data lives; one of a, b)"),
    ("centres:\n  c:\n    partitions:\n      p: {cores: 4, mem_gb: 8}\n", "site.yaml: centres.c.partitions.p.nodes: required, not set"),
    ("centres:\n  c:\n    partitions:\n      p: {nodes: 1, cores: 4, mem_gb: 8, gpu_models: [a 100]}\n",
     "site.yaml: centres.c.partitions.p.gpu_models.0: 'a 100' must match"),
])
def test_old_and_incomplete_site_descriptions_are_refused_in_one_line(text, message):
    with pytest.raises(InputError) as err:
        parse_site(yaml.safe_load(text), "site.yaml")
    assert str(err.value).startswith(message) and "\n" not in str(err.value)


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
    (lambda d: d.update(status_command="scontrol"), r"site.yaml: status_command"),
    # Snakemake evaluates profile resources as Python: only plain Slurm names reach the profile
    (lambda d: d.update(account="__import__('os').system('touch PWNED')"),
     r"site.yaml: account: \"__import__\('os'\).*\" must match \^\[A-Za-z0-9\]"),
    (lambda d: d.update(qos="normal\nexecutor: local"), r"site.yaml: qos: 'normal\\nexecutor: local' must"),
    (lambda d: d["centres"]["hpc"].update(slurm_cluster="hpc x"), r"site.yaml: centres.hpc.slurm_cluster: 'hpc x' must"),
    (lambda d: d["centres"]["hpc"]["partitions"].update({"a'b": {"nodes": 1, "cores": 1, "mem_gb": 1}}),
     r"site.yaml: centres.hpc.partitions: \"a'b\" must match"),
    (lambda d: d["centres"]["hpc"]["partitions"].update(cpu2=d["centres"]["hpc"]["partitions"]["cpu"]),
     r"site.yaml: centres.hpc.partitions.cpu2?: YAML aliases"),
])
def test_bad_site_names_the_key(edit, message):
    data = yaml.safe_load(SITES)
    edit(data)
    with pytest.raises(InputError, match=message):
        parse_site(data, "site.yaml")


def test_site_file_with_an_alias_is_refused_naming_the_file(tmp_path):
    path = tmp_path / "site.yaml"
    path.write_text(SITES.replace("  partner:\n", "  partner: &p\n") + "again: *p\n")
    with pytest.raises(InputError) as err:
        load_site(path)
    assert str(err.value).startswith(f"{path} line 16: not valid YAML") and "YAML aliases (*name) are not allowed" in str(err.value)


def test_missing_site_file(tmp_path):
    with pytest.raises(InputError, match="file not found"):
        load_site(tmp_path / "none.yaml")


@pytest.mark.parametrize("text, minutes", [(90, 90), ("90", 90), ("1:30:00", 90), ("2-00:00:00", 2880),
                                           ("1-12", 2160), ("10:30", 10.5), ("UNLIMITED", math.inf)])
def test_slurm_minutes(text, minutes):
    assert slurm_minutes(text, "x") == minutes
