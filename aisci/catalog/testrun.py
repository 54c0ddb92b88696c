"""Run a pipeline's test profile: its commands make small data in a scratch folder, Snakemake runs the pipeline on it."""

from __future__ import annotations

import datetime
import functools
import hashlib
import json
import logging
import os
import shlex
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from aisci import __version__
from aisci.catalog.metadata import Pipeline
from aisci.errors import InputError
from aisci.fileio import user_cache_dir
from aisci.share import profile_template

log = logging.getLogger(__name__)
LOG = "catalog-test.log"  # in the scratch folder: every command's and Snakemake's output


@dataclass(frozen=True)
class TestRun:
    """What a test-profile run did."""

    workdir: Path
    seconds: float
    outputs: dict[str, int]  # declared test output -> bytes


def environment() -> dict[str, str]:
    """This environment with the running Python's bin folder first on PATH."""
    env = dict(os.environ)
    # the commands and the jobs call `aisci` and the tools beside this Python
    env["PATH"] = f"{Path(sys.executable).parent}{os.pathsep}{env.get('PATH', '')}"
    return env


def test_commands(pipeline: Pipeline) -> list[list[str]]:
    """The test profile's data commands as argument lists; only `aisci` commands are allowed.

    Raises:
        InputError: a command that is not an aisci command (a test profile must not reach the network or run
            arbitrary programs), naming pipeline.yaml's line.
    """
    out = []
    for i, command in enumerate(pipeline.meta["test"]["commands"]):
        words = shlex.split(command)
        if not words or words[0] != "aisci":
            raise InputError(f"{pipeline.where(f'test.commands.{i}')}: {command!r}: test commands must be aisci "
                             "commands (the data a test profile uses is made by the pipeline's engine, never fetched)")
        out.append([sys.executable, "-m", "aisci.cli", *words[1:]])
    return out


def snakemake_command(pipeline: Pipeline, workdir: Path, lint: bool = False) -> list[str]:
    """Snakemake on the pipeline's own Snakefile in ``workdir``: its default config, then the test config over it;
    run with the packaged local profile, or ``lint`` (`snakemake --lint json`)."""
    folder, test = pipeline.folder, pipeline.meta["test"]
    base = [sys.executable, "-m", "snakemake", "--snakefile", str(folder / "Snakefile"), "--directory", str(workdir),
            "--configfile", str(folder / pipeline.meta["default_config"]), str(folder / test["config"])]
    if lint:
        return [*base, "--lint", "json"]
    return [*base, "--profile", str(profile_template("local")), "--cores", str(test["cores"])]


def run_test_profile(pipeline: Pipeline, workdir: Path, timeout: int = 3600,
                     between: Callable[[Path], None] | None = None) -> TestRun:
    """Make the test data and run the pipeline on it in ``workdir`` (new or empty); check the declared outputs.

    Args:
        pipeline: the pipeline (a checkout's or an installed release's folder).
        workdir: the scratch folder; everything is written under it, the log to ``workdir/catalog-test.log``.
        timeout: seconds each command may run.
        between: called with ``workdir`` once the data is made, before Snakemake runs (lint's `snakemake --lint`).

    Returns:
        The run: its folder, wall seconds and the outputs' sizes.

    Raises:
        InputError: ``workdir`` holds files, a command failed (its log's tail is in the message), or a declared
            output is missing or empty.
    """
    workdir = Path(workdir).resolve()
    if workdir.exists() and any(workdir.iterdir()):
        raise InputError(f"{workdir}: not empty; the test profile runs in a new or empty folder")
    workdir.mkdir(parents=True, exist_ok=True)
    logfile = workdir / LOG
    start = time.monotonic()
    env = environment()
    with open(logfile, "w") as out:
        for cmd in [*test_commands(pipeline), snakemake_command(pipeline, workdir)]:
            if cmd[2] == "snakemake" and between is not None:
                between(workdir)
            out.write(f"$ {shlex.join(cmd)}\n")
            out.flush()
            try:
                res = subprocess.run(cmd, cwd=workdir, env=env, stdout=out, stderr=subprocess.STDOUT, timeout=timeout)
            except subprocess.TimeoutExpired:
                raise InputError(f"{pipeline.name}@{pipeline.version} test profile: `{shlex.join(cmd[2:])}` ran over "
                                 f"{timeout} s; log {logfile}") from None
            if res.returncode != 0:
                tail = logfile.read_text().splitlines()[-15:]
                raise InputError(f"{pipeline.name}@{pipeline.version} test profile: `{shlex.join(cmd[2:])}` failed "
                                 f"(exit {res.returncode}); log {logfile}:\n" + "\n".join(tail))
    outputs: dict[str, int] = {}
    missing = []
    for rel in pipeline.meta["test"]["outputs"]:
        path = workdir / rel
        size = (sum(p.stat().st_size for p in path.rglob("*") if p.is_file()) if path.is_dir()
                else path.stat().st_size if path.is_file() else 0)
        if size == 0:
            missing.append(rel)
        outputs[rel] = size
    if missing:
        raise InputError(f"{pipeline.name}@{pipeline.version} test profile: declared outputs missing or empty in "
                         f"{workdir}: {', '.join(missing)}")
    return TestRun(workdir, time.monotonic() - start, outputs)


# --- stamps: a test run of the same content on the same engine need not run again -------------------------------
def stamp_dir() -> Path:
    """``$XDG_CACHE_HOME/aisci/catalog-tests`` (``~/.cache/...``): this user's record of passed test runs."""
    return user_cache_dir() / "catalog-tests"


@functools.cache
def engine_fingerprint() -> str:
    """SHA-256 over the running engine's own files (aisci's Python modules and schemas): a stamp of a test run is
    good only for the engine code it ran on, whatever its version number says (a checkout changes between releases)."""
    package = Path(__file__).resolve().parent.parent
    h = hashlib.sha256()
    for path in sorted(p for p in package.rglob("*") if p.suffix in (".py", ".yaml") and "__pycache__" not in p.parts):
        h.update(path.relative_to(package).as_posix().encode() + b"\0" + path.read_bytes() + b"\0")
    return h.hexdigest()


def _stamp(digest: str) -> Path:
    return stamp_dir() / f"{digest}-aisci{__version__}-{engine_fingerprint()[:16]}.json"


def read_stamp(digest: str) -> dict | None:
    """The record of a passed test run of this content on this very engine, if any."""
    try:
        return json.loads(_stamp(digest).read_text())
    except (OSError, ValueError):
        return None


def write_stamp(digest: str, pipeline: Pipeline, run: TestRun) -> None:
    """Record that the content ``digest`` passed its test profile on this engine (a file of its own, renamed into
    place: concurrent lints of the same content each write theirs, the last one stays)."""
    body = {"digest": digest, "pipeline": f"{pipeline.name}@{pipeline.version}", "engine": __version__,
            "engine_fingerprint": engine_fingerprint(), "seconds": round(run.seconds, 1), "outputs": run.outputs,
            "when": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds")}
    final = _stamp(digest)
    final.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{final.name}.", dir=final.parent)
    with os.fdopen(fd, "w") as fh:
        json.dump(body, fh, indent=2)
    os.replace(tmp, final)
