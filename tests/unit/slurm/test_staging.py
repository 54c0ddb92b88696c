"""Staging between centres without a shared file system: real rsync between two folders of this machine."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from types import SimpleNamespace

import pytest

from aisci.errors import InputError
from aisci.slurm.site import parse_site
from aisci.slurm.staging import (
    LEDGER,
    Stager,
    Staging,
    TransferError,
    centres_with_staging,
    read_ledger,
    record,
    summarise_transfers,
    transfer,
    transfers_text,
)


@pytest.fixture
def centre(tmp_path):
    """A home folder and the centre's disk that holds it at the same paths (seen from here: another folder)."""
    home, disk = tmp_path / "home", tmp_path / "disk"
    home.mkdir()
    disk.mkdir()
    return home, disk, Staging(centre="partner", paths=((str(home), str(disk)),))


def test_push_and_pull_copy_files_under_the_same_paths_and_count_bytes(centre, tmp_path):
    home, disk, staging = centre
    (home / "data").mkdir()
    (home / "data/a.txt").write_text("a" * 1000)
    (home / "b.txt").write_text("b" * 10)
    outside = tmp_path / "outside.txt"  # not under a staged folder: the centre is taken to hold it
    outside.write_text("x")
    old = time.time() - 3600
    os.utime(home / "data/a.txt", (old, old))
    moved = transfer(staging, [home / "data/a.txt", home / "b.txt", outside], push=True)
    assert (moved.files, moved.bytes) == (2, 1010)
    assert (disk / "data/a.txt").read_text() == "a" * 1000
    assert abs((disk / "data/a.txt").stat().st_mtime - old) < 1  # mtimes kept: outputs stay newer than inputs
    assert not (disk / "outside.txt").exists() and not list(disk.rglob("outside.txt"))
    again = transfer(staging, [home / "data/a.txt", home / "b.txt"], push=True)
    assert (again.files, again.bytes) == (0, 0)  # complete at the other end: nothing sent
    # results made at the centre come back; missing ones are skipped when asked
    (disk / "out").mkdir()
    (disk / "out/r.txt").write_text("result")
    back = transfer(staging, [home / "out/r.txt", home / "out/never.txt"], push=False, missing_ok=True)
    assert (back.files, back.bytes) == (1, 6) and (home / "out/r.txt").read_text() == "result"
    assert not (home / "out/never.txt").exists()


def test_a_missing_input_fails_the_transfer_naming_the_centre(centre):
    home, _, staging = centre
    with pytest.raises(TransferError, match=r"to partner .*failed, rsync exit 23"):
        transfer(staging, [home / "nope.bam"], push=True)


def test_a_transfer_killed_midway_leaves_no_partial_file_and_is_redone(centre):
    home, disk, _ = centre
    big = home / "big.bin"
    big.write_bytes(os.urandom(600 * 1024))
    slow = Staging(centre="partner", paths=((str(home), str(disk)),), bwlimit_kb=100)  # ~6 s
    code = ("import sys; from pathlib import Path; from aisci.slurm.staging import Staging, transfer; "
            f"transfer(Staging('partner', (({str(home)!r}, {str(disk)!r}),), bwlimit_kb=100), [Path({str(big)!r})], push=True)")
    proc = subprocess.Popen([sys.executable, "-c", code], start_new_session=True)
    scratch = disk / ".aisci-staging"
    end = time.time() + 30
    while time.time() < end and not (scratch.is_dir() and any(scratch.iterdir())):
        time.sleep(0.05)
    time.sleep(0.5)
    assert proc.poll() is None, "the transfer ended before it could be killed"
    os.killpg(proc.pid, signal.SIGKILL)  # the driver and its rsync, as a crash or kill -9 does
    proc.wait(timeout=10)
    assert not (disk / "big.bin").exists()  # nothing at the path a job reads
    assert [p for p in scratch.iterdir()], "the partial copy sits in the scratch folder"
    moved = transfer(Staging(centre="partner", paths=slow.paths), [big], push=True)
    assert moved.files == 1 and (disk / "big.bin").read_bytes() == big.read_bytes()


def _job(name, cluster, inputs=(), outputs=(), logs=(), group=False):
    job = SimpleNamespace(name=name, rule=SimpleNamespace(name=name), wildcards_dict={"sample": "S1"},
                          resources={"clusters": cluster}, input=list(inputs), output=list(outputs), log=list(logs),
                          benchmark=None, is_group=lambda: group)
    return job


def test_the_driver_stages_a_partner_job_in_and_back_and_leaves_home_jobs_alone(centre):
    home, disk, staging = centre
    work = home / "run"
    (work / "results").mkdir(parents=True)
    (work / "results/in.vcf").write_text("vcf")
    (work / ".snakemake/tmp.abc").mkdir(parents=True)
    (home / "config.yaml").write_text("samples: s.tsv\n")
    stager = Stager({"partner": staging}, work, [home / "config.yaml"])
    job = _job("annotate", "partner", ["results/in.vcf"], ["results/out.parquet"], ["logs/annotate/S1.log"])
    stager.stage_in(job, work / ".snakemake/slurm_logs/rule_annotate/S1/%j.log", "run1")
    there = disk / "run"
    assert (there / "results/in.vcf").read_text() == "vcf" and (disk / "config.yaml").is_file()
    for folder in ("logs/annotate", ".snakemake/slurm_logs/rule_annotate/S1", ".snakemake/tmp.abc"):
        assert (there / folder).is_dir(), folder  # Slurm and the job's Snakemake need them before it runs
    (there / "results/out.parquet").write_text("parquet")
    (there / "logs/annotate/S1.log").write_text("log")
    stager.stage_out(job, None, "run1")
    assert (work / "results/out.parquet").read_text() == "parquet" and (work / "logs/annotate/S1.log").exists()
    home_job = _job("align", "home", ["results/in.vcf"])
    stager.stage_in(home_job, None, "run1")  # not staged: no row
    rows = read_ledger(work / LEDGER)
    assert [(r["rule"], r["direction"], r["files"]) for r in rows] == [("annotate", "in", "2"), ("annotate", "out", "2")]
    summary = summarise_transfers(rows)
    assert summary == [{"rule": "annotate", "centre": "partner", "transfers": 2, "files_in": 2, "bytes_in": int(rows[0]["bytes"]),
                        "files_out": 2, "bytes_out": 10, "seconds": pytest.approx(sum(float(r["seconds"]) for r in rows))}]
    assert "annotate  partner" in transfers_text(summary)
    with pytest.raises(TransferError, match="lets Slurm choose the cluster"):
        stager.staging_of(_job("x", "home,partner"))


def test_usage_reports_transfers_per_rule(tmp_path):
    for direction, nbytes in (("in", 100), ("out", 7), ("in", 5)):
        record(tmp_path / LEDGER, run="r1" if nbytes != 5 else "r2", rule="annotate", centre="partner",
               direction=direction, files=1, bytes=nbytes, seconds=0.5)
    out = subprocess.run([sys.executable, "-m", "aisci.cli", "usage", "--transfers", str(tmp_path), "--run-id", "r1",
                          "--format", "json"], capture_output=True, text=True, check=True)
    doc = json.loads(out.stdout)
    assert [(t["rule"], t["bytes_in"], t["bytes_out"], t["transfers"]) for t in doc["transfers"]] == [("annotate", 100, 7, 2)]


SITE = {
    "home": "home",
    "centres": {
        "home": {"slurm_cluster": "home", "partitions": {"cpu": {"nodes": 1, "cores": 2, "mem_gb": 8},
                                                         "gpu": {"nodes": 1, "cores": 2, "mem_gb": 8, "gpus": 1}}},
        "partner": {"slurm_cluster": "partner", "partitions": {"cpu": {"nodes": 1, "cores": 2, "mem_gb": 8},
                                                               "gpu": {"nodes": 1, "cores": 2, "mem_gb": 8, "gpus": 1}},
                    "staging": {"paths": {"/tmp": "/var/spool/p"}}},
    },
    "transfers": [{"from": "home", "to": "partner"}],
}


def test_the_site_describes_staging_and_refuses_it_at_home():
    site = parse_site(json.loads(json.dumps(SITE)), "site.yaml")
    assert centres_with_staging(site) == {"partner": Staging(centre="partner", paths=(("/tmp", "/var/spool/p"),))}
    bad = json.loads(json.dumps(SITE))
    bad["centres"]["home"]["staging"] = {"paths": {"/tmp": "/x"}}
    with pytest.raises(InputError, match=r"site.yaml: centres.home.staging: the home centre"):
        parse_site(bad, "site.yaml")
    rel = json.loads(json.dumps(SITE))
    rel["centres"]["partner"]["staging"]["paths"] = {"tmp": "/x"}
    with pytest.raises(InputError, match=r"site.yaml: .*centres.partner.staging.paths"):
        parse_site(rel, "site.yaml")


def test_profile_new_refuses_slurm_routing_to_a_centre_without_shared_files(tmp_path):
    import yaml

    from aisci.slurm.profile import write_profile

    (tmp_path / "site.yaml").write_text(yaml.safe_dump(SITE))
    with pytest.raises(InputError, match=r"site.yaml: centres.partner.staging: .*aisci plan"):
        write_profile(tmp_path / "site.yaml", tmp_path / "prof")
    assert write_profile(tmp_path / "site.yaml", tmp_path / "home", home=True)
