"""Data between centres that share no file system: inputs copied in before a job is submitted there,
results copied back when it ends, by rsync.

A centre's ``staging`` (site description) names home folders and, for each, where its transfer
reaches the centre's own disk, which the centre's jobs see at the *same path* as home (data moves,
paths do not: the job runs the same command line, config and sample sheet as at home). The driver
(the Snakemake process on home's side):

* before ``sbatch`` of a job whose ``clusters`` resource names such a centre, copies the job's inputs
  and the files every job reads when it parses the workflow (config files, sample sheet, reference),
  and makes its log folders there;
* when Slurm reports it done, copies back its outputs, logs and benchmarks (each job's of a group),
  and the Slurm log, before Snakemake looks at them; a failed job's logs come back too;
* appends one row per transfer to ``.snakemake/aisci/transfers.tsv`` (rule, files, bytes, seconds),
  which ``aisci usage --transfers`` sums per rule and centre.

Why rsync: it runs over ssh to any centre's transfer node with nothing installed there, skips files
already complete at the other end (size and mtime: a reference staged once is not sent again, nor
a result the centre made itself), keeps mtimes (Snakemake's order of outputs after inputs), and
writes every file under a temporary name in a scratch folder of the receiving side
(``--temp-dir``), renaming it into place only when complete: a transfer killed midway (the driver
killed with it) leaves no partial file at its path, and the next run sends it again. A transfer
interrupted by a signal rsync catches keeps what it had in ``.aisci-partial/`` and resumes from it.
A Snakemake storage plugin was the other candidate; it copies from inside the job, on the centre's
side, which then needs a route back to home, and it applies to every job of a run, not to the
ones placed at another centre.
"""

from __future__ import annotations

import csv
import functools
import logging
import os
import re
import shlex
import subprocess
import threading
import time
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from aisci.errors import InputError

log = logging.getLogger(__name__)

#: Per-run ledger of transfers, under the project directory.
LEDGER = Path(".snakemake/aisci/transfers.tsv")
LEDGER_FIELDS = ("time", "run", "rule", "wildcards", "centre", "direction", "files", "bytes", "seconds")
#: Scratch folder of the receiving side, inside each staged folder (rsync --temp-dir).
SCRATCH = ".aisci-staging"
#: Resource of a profile that names its site description (written by ``aisci plan``).
SITE_RESOURCE = "aisci_site"


class TransferError(RuntimeError):
    """A transfer between centres failed; the message names the centre, the direction and rsync's words."""


@dataclass(frozen=True)
class Staging:
    """How files reach one centre that shares no file system with home."""

    centre: str
    paths: tuple[tuple[str, str], ...]  # (home folder, that folder's place on the centre's disk)
    host: str | None = None  # ssh destination of the transfer node; None: a folder of this machine
    bwlimit_kb: int = 0
    ssh_options: str | None = None  # further ssh options (-p PORT, -i KEY, ...)

    @classmethod
    def from_site(cls, centre: str, spec: Mapping[str, Any]) -> "Staging":
        paths = tuple(sorted(((os.path.normpath(k), os.path.normpath(v)) for k, v in spec["paths"].items()),
                             key=lambda kv: -len(kv[0])))
        return cls(centre=centre, paths=paths, host=spec.get("host"), bwlimit_kb=int(spec.get("bwlimit_kb", 0)),
                   ssh_options=spec.get("ssh_options"))

    @property
    def ssh(self) -> list[str]:
        """The ssh command (without the destination) that reaches the transfer node."""
        return ["ssh", "-o", "BatchMode=yes", *shlex.split(self.ssh_options or "")]

    def folder(self, path: Path) -> tuple[str, str] | None:
        """The staged (home, centre) folders holding ``path`` (absolute), the deepest first; None: not staged."""
        text = str(path)
        for home, there in self.paths:
            if text == home or text.startswith(home.rstrip("/") + "/"):
                return home, there
        return None

    def remote(self, folder: str) -> str:
        return f"{self.host}:{folder}" if self.host else folder


@dataclass
class Moved:
    """What one transfer moved."""

    files: int = 0
    bytes: int = 0
    seconds: float = 0.0

    def __iadd__(self, other: "Moved") -> "Moved":
        self.files += other.files
        self.bytes += other.bytes
        self.seconds += other.seconds
        return self


_STAT = {
    "files": re.compile(r"^Number of regular files transferred: ([\d,]+)", re.M),
    "bytes": re.compile(r"^Total transferred file size: ([\d,]+)", re.M),
}


def _stat(out: str, key: str) -> int:
    m = _STAT[key].search(out)
    return int(m.group(1).replace(",", "")) if m else 0


def _run(cmd: Sequence[str], what: str) -> subprocess.CompletedProcess[str]:
    res = subprocess.run(list(cmd), capture_output=True, text=True, check=False)
    if res.returncode != 0:
        raise TransferError(f"{what}: {' '.join(shlex.quote(c) for c in cmd[:2])} ... exited {res.returncode}: "
                            f"{res.stderr.strip()[-800:]}")
    return res


def _make_dirs(staging: Staging, folders: Iterable[str]) -> None:
    folders = sorted(set(folders))
    if not folders:
        return
    if staging.host:
        _run([*staging.ssh, staging.host, "mkdir -p " + " ".join(shlex.quote(f) for f in folders)],
             f"making folders at {staging.centre}")
    else:
        for f in folders:
            os.makedirs(f, exist_ok=True)


def transfer(staging: Staging, paths: Iterable[Path], *, push: bool, missing_ok: bool = False) -> Moved:
    """Copy files (or folders) to the centre (``push``) or back home, at the same paths.

    Files outside every staged folder are left alone (the centre holds them). Each receiving file is
    written under a temporary name in the staged folder's scratch folder and renamed into place
    when complete.

    Args:
        staging: the centre's staging.
        paths: absolute paths, as home names them.
        push: to the centre; else from it.
        missing_ok: skip paths the sending side lacks (a job's outputs that it did not make); else a
            missing path fails the transfer.

    Raises:
        TransferError: rsync failed (its message, the centre and the direction).
    """
    groups: dict[tuple[str, str], list[str]] = {}
    for path in paths:
        where = staging.folder(Path(os.path.normpath(path)))
        if where is not None:
            groups.setdefault(where, []).append(os.path.relpath(os.path.normpath(path), where[0]))
    moved = Moved()
    direction = f"to {staging.centre}" if push else f"from {staging.centre}"
    for (home, there), rels in sorted(groups.items()):
        scratch_home, scratch_there = os.path.join(home, SCRATCH), os.path.join(there, SCRATCH)
        if push:
            _make_dirs(staging, [scratch_there])
            src, dst, scratch = home + "/", staging.remote(there) + "/", scratch_there
        else:
            os.makedirs(scratch_home, exist_ok=True)
            src, dst, scratch = staging.remote(there) + "/", home + "/", scratch_home
        cmd = ["rsync", "--archive", "--recursive", "--from0", "--files-from=-", f"--temp-dir={scratch}",
               "--partial-dir=.aisci-partial", "--stats", "--no-human-readable"]
        if missing_ok:
            cmd.append("--ignore-missing-args")
        if staging.bwlimit_kb:
            cmd.append(f"--bwlimit={staging.bwlimit_kb}")
        if staging.host:
            cmd += ["-e", shlex.join(staging.ssh)]
        cmd += [src, dst]
        listing = "\0".join(sorted(set(rels))) + "\0"
        t0 = time.monotonic()
        res = subprocess.run(cmd, input=listing, capture_output=True, text=True, check=False)
        seconds = time.monotonic() - t0
        if res.returncode != 0:
            raise TransferError(f"copying {len(set(rels))} path(s) {direction} ({home} <-> {staging.remote(there)}) "
                                f"failed, rsync exit {res.returncode}: {res.stderr.strip()[-800:]}")
        moved += Moved(files=_stat(res.stdout, "files"), bytes=_stat(res.stdout, "bytes"), seconds=seconds)
    return moved


_LEDGER_LOCK = threading.Lock()  # jobs are submitted from several threads


def record(ledger: Path, **row: Any) -> None:
    """Append one transfer to the run's ledger (header written with the first row)."""
    with _LEDGER_LOCK:
        _append(ledger, row)


def _append(ledger: Path, row: Mapping[str, Any]) -> None:
    ledger.parent.mkdir(parents=True, exist_ok=True)
    new = not ledger.exists() or ledger.stat().st_size == 0
    with open(ledger, "a", newline="") as fh:
        w = csv.DictWriter(fh, fieldnames=LEDGER_FIELDS, delimiter="\t", lineterminator="\n")
        if new:
            w.writeheader()
        w.writerow({k: row.get(k, "") for k in LEDGER_FIELDS})


def read_ledger(path: Path) -> list[dict[str, str]]:
    """The rows of a transfers ledger; [] when there is none."""
    if not path.is_file():
        return []
    with open(path, newline="") as fh:
        return list(csv.DictReader(fh, delimiter="\t"))


def summarise_transfers(rows: Sequence[Mapping[str, str]], run: str | None = None) -> list[dict[str, Any]]:
    """Transfers per rule and centre (of one run, or all): files and bytes in and back, seconds."""
    out: dict[tuple[str, str], dict[str, Any]] = {}
    for r in rows:
        if run and r.get("run") != run:
            continue
        key = (r["rule"], r["centre"])
        row = out.setdefault(key, {"rule": key[0], "centre": key[1], "transfers": 0, "files_in": 0, "bytes_in": 0,
                                   "files_out": 0, "bytes_out": 0, "seconds": 0.0})
        way = "in" if r["direction"] == "in" else "out"
        row["transfers"] += 1
        row[f"files_{way}"] += int(r["files"] or 0)
        row[f"bytes_{way}"] += int(r["bytes"] or 0)
        row["seconds"] += float(r["seconds"] or 0)
    return [out[k] for k in sorted(out)]


def transfers_text(summary: Sequence[Mapping[str, Any]]) -> str:
    """The per-rule transfer summary as an aligned table."""
    cols = ["rule", "centre", "transfers", "files_in", "bytes_in", "files_out", "bytes_out", "seconds"]
    grid = [cols] + [[f"{r[c]:.1f}" if c == "seconds" else str(r[c]) for c in cols] for r in summary]
    widths = [max(len(x[i]) for x in grid) for i in range(len(cols))]
    lines = ["  ".join(x[i].ljust(w) if i < 2 else x[i].rjust(w) for i, w in enumerate(widths)).rstrip() for x in grid]
    total_in = sum(r["bytes_in"] for r in summary)
    total_out = sum(r["bytes_out"] for r in summary)
    return "\n".join([*lines, "", f"{total_in} bytes staged in, {total_out} bytes back"]) + "\n"


# --------------------------------------------------------------------- the Snakemake driver's side
def _jobs(job: Any) -> list[Any]:
    return list(job.jobs) if getattr(job, "is_group", lambda: False)() else [job]


def _absolute(paths: Iterable[Any], workdir: Path) -> list[Path]:
    out = []
    for p in paths:
        path = Path(str(p))
        out.append(path if path.is_absolute() else workdir / path)
    return out


def job_inputs(job: Any) -> list[str]:
    """The files a job (or a group job, from outside the group) reads."""
    return [str(f) for f in job.input]


def job_products(job: Any) -> list[str]:
    """Everything a job (each job of a group) writes: outputs, logs and benchmarks."""
    out: list[str] = []
    for j in _jobs(job):
        out += [str(f) for f in j.output]
        out += [str(f) for f in j.log]
        if getattr(j, "benchmark", None):
            out.append(str(j.benchmark))
    return out


def job_cluster(job: Any) -> str | None:
    from aisci.slurm.clusters import CLUSTER_RESOURCES

    for key in CLUSTER_RESOURCES:
        value = job.resources.get(key)
        if value:
            return str(value)
    return None


def _label(job: Any) -> tuple[str, str]:
    """(rule, wildcards) of a job; a group job's rules joined by '+', its jobs' wildcards by ';'."""
    jobs = _jobs(job)
    rules = "+".join(sorted({j.rule.name for j in jobs}))
    wildcards = ";".join(sorted({",".join(f"{k}={v}" for k, v in dict(j.wildcards_dict).items()) for j in jobs}))
    return rules, wildcards


class Stager:
    """The driver's transfers for the jobs of one run that go to centres without a shared file system."""

    def __init__(self, centres: Mapping[str, Staging], workdir: Path, parse_files: Sequence[Path]):
        self.centres = dict(centres)  # by Slurm cluster name
        self.workdir = workdir
        self.parse_files = [p for p in parse_files if p.exists()]
        self.ledger = workdir / LEDGER

    def staging_of(self, job: Any) -> Staging | None:
        cluster = job_cluster(job)
        if cluster is None:
            return None
        names = {c.strip() for c in cluster.split(",")}
        staged = [self.centres[n] for n in names if n in self.centres]
        if staged and len(names) > 1:
            raise TransferError(f"rule {job.name}: clusters {cluster!r} lets Slurm choose the cluster after submission, "
                                f"but {staged[0].centre} shares no file system with home (staging): name one cluster "
                                "per job (`aisci plan`)")
        return staged[0] if staged else None

    def _note(self, job: Any, staging: Staging, direction: str, moved: Moved, run: str) -> None:
        rule, wildcards = _label(job)
        record(self.ledger, time=time.strftime("%Y-%m-%dT%H:%M:%S"), run=run, rule=rule, wildcards=wildcards,
               centre=staging.centre, direction=direction, files=moved.files, bytes=moved.bytes,
               seconds=f"{moved.seconds:.3f}")
        log.info("aisci staging: %s %s %s: %d file(s), %d bytes in %.1f s", rule, wildcards,
                 "in to" if direction == "in" else "back from", moved.files, moved.bytes, moved.seconds)

    def stage_in(self, job: Any, slurm_log: Path | None, run: str) -> None:
        staging = self.staging_of(job)
        if staging is None:
            return
        files = _absolute(job_inputs(job), self.workdir) + self.parse_files
        # the folders the job writes into: Slurm opens its log before anything runs
        folders = {p.parent for p in _absolute(job_products(job), self.workdir)}
        if slurm_log is not None:
            folders.add(Path(slurm_log).parent)
        # the executor's scratch folder, which the job waits for (--wait-for-files) as proof of a shared file system
        folders.update(p for p in (self.workdir / ".snakemake").glob("tmp.*") if p.is_dir())
        places = []
        for folder in folders:
            where = staging.folder(folder)
            if where is not None:
                places.append(os.path.join(where[1], os.path.relpath(folder, where[0])))
        _make_dirs(staging, places)
        moved = transfer(staging, files, push=True)
        self._note(job, staging, "in", moved, run)

    def stage_out(self, job: Any, slurm_log: Path | None, run: str, *, failed: bool = False) -> None:
        staging = self.staging_of(job)
        if staging is None:
            return
        paths = [] if failed else _absolute(job_products(job), self.workdir)
        if failed:  # what explains the failure: logs only
            paths = _absolute([f for j in _jobs(job) for f in j.log], self.workdir)
        if slurm_log is not None:
            paths.append(Path(slurm_log))
        moved = transfer(staging, paths, push=False, missing_ok=True)
        self._note(job, staging, "out" if not failed else "logs", moved, run)


def centres_with_staging(site: Any) -> dict[str, Staging]:
    """A site's centres that share no file system with home, by their Slurm cluster name."""
    out = {}
    for centre, spec in dict(getattr(site, "staging", {}) or {}).items():
        if spec:
            cluster = next((p.slurm_cluster for p in site.partitions if p.centre == centre and p.slurm_cluster), centre)
            out[cluster] = Staging.from_site(centre, spec)
    return out


def _site_path(workflow: Any) -> Path | None:
    from aisci.slurm.clusters import resource_items

    settings = getattr(workflow, "resource_settings", None)
    if settings is None:
        return None
    value = resource_items(settings.default_resources).get(SITE_RESOURCE)
    if value is None:
        return None
    text = str(value).strip()
    if len(text) >= 2 and text[0] == text[-1] and text[0] in "'\"":
        text = text[1:-1]
    return Path(text)


def _slurm_log(job_info: Any) -> Path | None:
    aux = getattr(job_info, "aux", None) or {}
    value = aux.get("slurm_logfile")
    return Path(value) if value else None


def stage_partner_jobs(workflow: Any, parse_files: Sequence[Path]) -> Stager | None:
    """In the Snakemake driver: copy the data of jobs placed at centres without a shared file system.

    Reads the site description that the profile names (default resource ``aisci_site``); does nothing
    without one, inside a job, or without the Slurm plugin.

    Raises:
        InputError: the site description cannot be read (its path and the reason).
    """
    mode = getattr(getattr(workflow, "exec_mode", None), "name", "DEFAULT")
    if mode != "DEFAULT":
        return None
    site_path = _site_path(workflow)
    if site_path is None:
        return None
    from aisci.slurm.site import load_site

    try:
        site = load_site(site_path)
    except InputError as exc:
        raise InputError(f"the profile's {SITE_RESOURCE} resource names {site_path}: {exc}") from None
    centres = centres_with_staging(site)
    if not centres:
        return None
    try:
        import snakemake_executor_plugin_slurm as plugin
    except ImportError:
        return None
    stager = Stager(centres, Path(workflow.workdir_init), [Path(p).absolute() for p in parse_files])
    _install(plugin, stager)
    return stager


_STAGER: list[Stager] = []  # the run's stager, which the plugin's wrapped methods reach


def _install(plugin: Any, stager: Stager) -> None:
    _STAGER[:] = [stager]
    if getattr(plugin.get_submit_command, "aisci_staging", False):
        return
    submit = plugin.get_submit_command

    @functools.wraps(submit)
    def get_submit_command(job: Any, params: Any, *args: Any, **kwargs: Any) -> str:
        current = _STAGER[0]
        if kwargs.get("array_job") and current.staging_of(job) is not None:
            raise TransferError(f"rule {job.name}: array jobs cannot be staged to another centre; turn off "
                                "job arrays for it")
        params_log = params.get("slurm_logfile") if isinstance(params, Mapping) else getattr(params, "slurm_logfile", None)
        current.stage_in(job, Path(str(params_log)) if params_log else None, str(
            params.get("run_uuid", "") if isinstance(params, Mapping) else getattr(params, "run_uuid", "")))
        return submit(job, params, *args, **kwargs)

    get_submit_command.aisci_staging = True  # type: ignore[attr-defined]
    plugin.get_submit_command = get_submit_command
    executor = plugin.Executor
    success, error = executor.report_job_success, executor.report_job_error

    def report_job_success(self: Any, job_info: Any) -> None:
        current = _STAGER[0]
        try:
            current.stage_out(job_info.job, _slurm_log(job_info), getattr(self, "run_uuid", ""))
        except TransferError as exc:
            return error(self, job_info, msg=f"the job ran, but its results did not come back: {exc}")
        return success(self, job_info)

    def report_job_error(self: Any, job_info: Any, msg: Any = None, **kwargs: Any) -> None:
        current = _STAGER[0]
        try:
            current.stage_out(job_info.job, _slurm_log(job_info), getattr(self, "run_uuid", ""), failed=True)
        except TransferError as exc:
            log.warning("aisci staging: the failed job's logs did not come back: %s", exc)
        return error(self, job_info, msg=msg, **kwargs)

    executor.report_job_success = report_job_success
    executor.report_job_error = report_job_error
