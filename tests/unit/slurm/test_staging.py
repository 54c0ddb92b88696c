"""Staging between centres without a shared file system: real rsync between two folders of this machine."""

from __future__ import annotations

import dataclasses
import getpass
import json
import os
import signal
import socket
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


@pytest.fixture(scope="module")
def sshd(tmp_path_factory):
    """A real sshd on a free port of 127.0.0.1 standing in for a centre's transfer node, with a key for root."""
    d = tmp_path_factory.mktemp("sshd")
    for key in ("host", "client"):
        subprocess.run(["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-f", str(d / key)], check=True)
    (d / "authorized_keys").write_text((d / "client.pub").read_text())
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    (d / "sshd_config").write_text(
        f"Port {port}\nListenAddress 127.0.0.1\nHostKey {d / 'host'}\nAuthorizedKeysFile {d / 'authorized_keys'}\n"
        f"PasswordAuthentication no\nKbdInteractiveAuthentication no\nUsePAM no\nStrictModes no\n"
        f"PermitRootLogin prohibit-password\nPidFile {d / 'sshd.pid'}\n")
    os.makedirs("/run/sshd", exist_ok=True)  # its privilege separation directory
    proc = subprocess.Popen(["/usr/sbin/sshd", "-D", "-e", "-f", str(d / "sshd_config")], stderr=subprocess.PIPE)
    options = f"-p {port} -i {d / 'client'} -o StrictHostKeyChecking=no -o UserKnownHostsFile=/dev/null -o LogLevel=ERROR"
    end = time.time() + 20
    while subprocess.run(["ssh", "-o", "BatchMode=yes", *options.split(), f"{getpass.getuser()}@127.0.0.1", "true"],
                         capture_output=True).returncode != 0:
        assert proc.poll() is None and time.time() < end, f"sshd did not come up: {proc.stderr.read().decode() if proc.poll() is not None else ''}"
        time.sleep(0.2)
    yield f"{getpass.getuser()}@127.0.0.1", options
    proc.terminate()
    proc.wait(timeout=10)


@pytest.fixture(params=["local", "ssh"])
def centre(request, tmp_path):
    """A home folder and the centre's disk that holds it at the same paths (seen from here: another folder),
    reached directly or through rsync over ssh to a real sshd."""
    home, disk = tmp_path / "home", tmp_path / "disk"
    home.mkdir()
    disk.mkdir()
    if request.param == "local":
        return home, disk, Staging(centre="partner", paths=((str(home), str(disk)),))
    host, options = request.getfixturevalue("sshd")
    return home, disk, Staging(centre="partner", paths=((str(home), str(disk)),), host=host, ssh_options=options)


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
    home, disk, staging = centre
    big = home / "sub/big.bin"
    big.parent.mkdir()
    big.write_bytes(os.urandom(600 * 1024))
    slow = dataclasses.replace(staging, bwlimit_kb=100)  # ~6 s
    code = ("import json, sys; from pathlib import Path; from aisci.slurm.staging import Staging, transfer; "
            "s = json.loads(sys.argv[1]); s['paths'] = tuple(map(tuple, s['paths'])); "
            "transfer(Staging(**s), [Path(sys.argv[2])], push=True)")
    proc = subprocess.Popen([sys.executable, "-c", code, json.dumps(dataclasses.asdict(slow)), str(big)],
                            start_new_session=True)
    scratch = disk / ".aisci-staging"
    end = time.time() + 30
    while time.time() < end and not (scratch.is_dir() and any(scratch.iterdir())):
        time.sleep(0.05)
    time.sleep(0.5)
    assert proc.poll() is None, "the transfer ended before it could be killed"
    os.killpg(proc.pid, signal.SIGKILL)  # the driver and its rsync (and ssh), as a crash or kill -9 does
    proc.wait(timeout=10)
    time.sleep(0.5)  # over ssh, the receiving rsync notices the lost connection
    assert not (disk / "sub/big.bin").exists()  # nothing at the path a job reads
    # what arrived waits under a temporary name: in the scratch folder, or (a receiver that saw its
    # connection drop) kept in .aisci-partial/ to resume from
    assert list(scratch.iterdir()) or list((disk / "sub/.aisci-partial").glob("big.bin"))
    moved = transfer(staging, [big], push=True)
    assert moved.files == 1 and (disk / "sub/big.bin").read_bytes() == big.read_bytes()
    assert not (disk / "sub/.aisci-partial").exists()


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
