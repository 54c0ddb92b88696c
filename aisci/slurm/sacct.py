"""Slurm accounting: run sacct for a workflow run and parse its parsable output into jobs."""

from __future__ import annotations

import logging
import os
import re
import subprocess
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime
from typing import TypeVar

from aisci.errors import InputError, ToolError

log = logging.getLogger(__name__)
T = TypeVar("T")

#: Columns requested from sacct, in this order (the parser reads them by header name).
SACCT_FIELDS = (
    "JobID,Cluster,JobName,Partition,State,Submit,Start,End,ElapsedRaw,AllocCPUS,"
    "TotalCPU,ReqMem,MaxRSS,AllocTRES,Comment,ExitCode"
)
# sacct's -S defaults to midnight *today* (src/sacct/options.c), so a run id alone would miss
# every job of an older run; a run UUID is unique, so search the whole accounting history.
RUN_ID_DEFAULT_SINCE = "2000-01-01T00:00:00"
SACCT_TIMEOUT_S = 600
_UNKNOWN_TIMES = {"", "Unknown", "None"}
_UNITS = {"": 1, "K": 1024, "M": 1024**2, "G": 1024**3, "T": 1024**4, "P": 1024**5}
_SIZE = re.compile(r"^(\d+(?:\.\d+)?)([KMGTP]?)([nc]?)$")
_CPU_TIME = re.compile(r"^(?:(\d+)-)?(\d+):(\d+)(?::(\d+))?(?:\.(\d+))?$")


@dataclass(frozen=True)
class Job:
    """One Slurm job (allocation) with the figures of its steps folded in."""

    job_id: str
    name: str
    rule: str
    partition: str
    state: str
    submit: datetime | None
    start: datetime | None
    end: datetime | None
    elapsed_s: int
    alloc_cpus: int
    total_cpu_s: float
    req_mem: int | None  # bytes, whole job
    max_rss: int | None  # bytes, max over the job's steps
    gpus: int
    exit_code: str = ""
    comment: str = ""
    cluster: str = ""  # the Slurm cluster that ran it (sacct --clusters all)

    @property
    def where(self) -> str:
        """``cluster/partition`` (the partition alone when sacct named no cluster)."""
        return f"{self.cluster}/{self.partition}" if self.cluster else self.partition

    @property
    def queue_wait_s(self) -> float | None:
        """Seconds from submission to start, or None for a job that never started."""
        if self.submit is None or self.start is None:
            return None
        return (self.start - self.submit).total_seconds()

    @property
    def mem_ratio(self) -> float | None:
        """MaxRSS / ReqMem, or None unless both are known."""
        if self.max_rss is None or not self.req_mem:
            return None
        return self.max_rss / self.req_mem


def parse_cpu_time(text: str) -> float | None:
    """Seconds of a sacct CPU time: `MM:SS.mmm`, `HH:MM:SS` or `D-HH:MM:SS`; None when empty.

    Raises:
        ValueError: on any other text.
    """
    if not text:
        return None
    m = _CPU_TIME.match(text)
    if not m:
        raise ValueError("expected [D-][HH:]MM:SS[.mmm]")
    days, first, second, third, frac = m.groups()
    if third is None:  # MM:SS[.mmm]; sacct only prints this form below one hour
        if days:
            raise ValueError("a day count needs HH:MM:SS")
        hours, minutes, seconds = 0, int(first), int(second)
    else:
        hours, minutes, seconds = int(first), int(second), int(third)
    total = int(days or 0) * 86400 + hours * 3600 + minutes * 60 + seconds
    return total + (float(f"0.{frac}") if frac else 0.0)


def parse_size(text: str, bare_unit: str = "") -> tuple[int, str] | None:
    """Bytes and per-unit suffix of a sacct size (`868K`, `1.50G`, `2000Mc`); None when empty.

    Args:
        text: the field; sacct prints MaxRSS in bytes without a suffix and ReqMem in MiB.
        bare_unit: unit of a number printed without a suffix.

    Returns:
        (bytes, basis) where basis is "c" (per CPU), "n" (per node, Slurm < 21.08) or "".

    Raises:
        ValueError: on text that is not a size.
    """
    if not text:
        return None
    m = _SIZE.match(text)
    if not m:
        raise ValueError("expected a number with an optional K/M/G/T/P suffix")
    number, unit, basis = m.groups()
    return round(float(number) * _UNITS[unit or bare_unit]), basis


def parse_tres(text: str) -> dict[str, str]:
    """`billing=2,cpu=2,gres/gpu=1,mem=2000M,node=1` as a dict."""
    out: dict[str, str] = {}
    for item in filter(None, text.split(",")):
        key, _, value = item.partition("=")
        out[key] = value
    return out


def gpu_count(tres: dict[str, str]) -> int:
    """GPUs in an AllocTRES dict; typed entries (gres/gpu:a100) only count when untyped is absent."""
    if "gres/gpu" in tres:
        return int(tres["gres/gpu"])
    return sum(int(v) for k, v in tres.items() if k.startswith("gres/gpu:"))


def _gpus_nodes(text: str) -> tuple[int, int]:
    tres = parse_tres(text)
    return gpu_count(tres), int(tres.get("node") or 1)


def _group_of(name: str) -> str | None:
    """``align_align_reads_check_reads`` -> ``align`` when it is one of our profile groups.

    Snakemake names a group job ``<group>_<member rules, sorted>`` (the first five, then ``...``) and
    the plugin comments it as ``rule_<that name>``; only the known groups (aisci.slurm.profile.GROUPS) can be
    told apart safely.
    """
    from aisci.slurm.profile import GROUPS

    for group in sorted(set(GROUPS.values()), key=len, reverse=True):
        members = name[len(group) + 1:].removesuffix("_...")
        if name.startswith(group + "_") and members and all(
            rule in GROUPS for rule in _split_rules(members)
        ):
            return group
    return None


def _alone(name: str) -> str | None:
    """``align_reads_align_reads`` -> ``align_reads``: a grouped rule given a group of its own (aisci plan)."""
    from aisci.slurm.profile import GROUPS

    rule = name[: len(name) // 2]
    return rule if rule in GROUPS and name == f"{rule}_{rule}" else None


def _split_rules(members: str) -> list[str]:
    """Split ``align_reads_check_reads`` into known rule names, greedily from the left."""
    from aisci.slurm.profile import GROUPS

    out, rest = [], members
    while rest:
        match = next((r for r in sorted(GROUPS, key=len, reverse=True) if rest == r or rest.startswith(r + "_")), None)
        if match is None:
            return [rest]
        out.append(match)
        rest = rest[len(match) + 1:]
    return out


def rule_of(comment: str, job_name: str) -> str:
    """Rule name from the comment the Slurm executor plugin sets.

    The plugin submits with `--comment rule_<rule>[_wildcards_<values>]`; a job of one of our
    profile groups (``rule_<group>_<member rules>``) or commented ``group_<group>`` becomes
    ``group:<group>``. Any other job is named after its JobName.
    """
    for prefix, label in (("rule_", ""), ("group_", "group:")):
        if comment.startswith(prefix):
            name = comment[len(prefix) :].split("_wildcards_", 1)[0]
            if name and not label and (group := _group_of(name)):
                return f"group:{group}"
            if not label and (rule := _alone(name)):
                return rule
            if name:
                return label + name
    return job_name


def _time(text: str) -> datetime | None:
    return None if text in _UNKNOWN_TIMES else datetime.fromisoformat(text)


def _int(text: str) -> int:
    return int(text) if text else 0


@dataclass
class _Record:
    """An allocation line being assembled with its steps."""

    line_no: int
    values: dict[str, str]
    step_rss: list[int] = field(default_factory=list)
    step_cpu: list[float] = field(default_factory=list)


def _field(line_no: int, values: dict[str, str], column: str, parse: Callable[[str], T]) -> T:
    text = values.get(column, "").strip()
    try:
        return parse(text)
    except ValueError as exc:
        raise InputError(f"sacct output line {line_no}: {column} {text!r}: {exc}") from None


def _split(line: str, n_columns: int, comment_at: int | None, line_no: int) -> list[str]:
    fields = line.split("|")
    if len(fields) > n_columns and comment_at is not None:
        # --parsable2 does not escape '|'; only the free-text Comment can contain one
        extra = len(fields) - n_columns
        fields[comment_at : comment_at + extra + 1] = ["|".join(fields[comment_at : comment_at + extra + 1])]
    if len(fields) != n_columns:
        raise InputError(f"sacct output line {line_no}: {len(fields)} fields, the header has {n_columns}")
    return fields


def parse_sacct(text: str) -> list[Job]:
    """Parse `sacct --parsable2` output (with its header line) into one Job per allocation.

    Step lines (`123.batch`, `123.extern`, `123.0`) follow their allocation line; their MaxRSS
    (never printed on the allocation line) is folded in as a maximum, and their TotalCPU is
    summed when the allocation line's own TotalCPU (the sum over steps) is empty or zero.
    With `--duplicates`, a requeued job appears once per run under the same JobID; each run
    is its own Job, and steps attach to the latest allocation line with their JobID.

    Args:
        text: sacct's standard output.

    Returns:
        The jobs in sacct's order.

    Raises:
        InputError: on a missing header, a line with the wrong number of fields, or a value
            whose format sacct never prints.
    """
    lines = [(n, line) for n, line in enumerate(text.splitlines(), 1) if line.strip()]
    if not lines:
        return []
    header_no, header_line = lines[0]
    header = header_line.split("|")
    trailing = header[-1] == ""  # --parsable (not 2) ends every line with '|'
    if trailing:
        header = header[:-1]
    if "JobID" not in header:
        raise InputError(f"sacct output line {header_no}: no header with a JobID column: {header_line!r}")
    comment_at = header.index("Comment") if "Comment" in header else None
    records: list[_Record] = []
    # two clusters may number their jobs alike: a job is its cluster and id
    latest: dict[tuple[str, str], _Record] = {}
    for line_no, line in lines[1:]:
        if trailing and line.endswith("|"):
            line = line[:-1]
        values = dict(zip(header, _split(line, len(header), comment_at, line_no)))
        job_id, dot, _step = values["JobID"].partition(".")
        key = (values.get("Cluster", ""), job_id)
        if not dot:
            latest[key] = _Record(line_no, values)
            records.append(latest[key])
            continue
        parent = latest.get(key)
        if parent is None:
            log.debug("sacct line %d: step %s without its allocation line, ignored", line_no, values["JobID"])
            continue
        rss = _field(line_no, values, "MaxRSS", parse_size)
        if rss is not None:
            parent.step_rss.append(rss[0])
        cpu = _field(line_no, values, "TotalCPU", parse_cpu_time)
        if cpu is not None:
            parent.step_cpu.append(cpu)
    return [_job(r) for r in records]


def _job(rec: _Record) -> Job:
    v, n = rec.values, rec.line_no
    alloc_cpus = _field(n, v, "AllocCPUS", _int)
    gpus, nodes = _field(n, v, "AllocTRES", _gpus_nodes)
    total_cpu = _field(n, v, "TotalCPU", parse_cpu_time)
    if not total_cpu:
        total_cpu = sum(rec.step_cpu)
    rss = _field(n, v, "MaxRSS", parse_size)  # empty on allocation lines, but older Slurm filled it
    rss_values = rec.step_rss + ([rss[0]] if rss else [])
    req = _field(n, v, "ReqMem", lambda t: parse_size(t, bare_unit="M"))
    req_mem: int | None = None
    if req is not None and req[0] > 0:
        per = {"c": alloc_cpus, "n": nodes}.get(req[1], 1)
        req_mem = req[0] * per or None  # a per-CPU request of a pending job (0 CPUs) is unknown
    comment = v.get("Comment", "")
    elapsed = _field(n, v, "ElapsedRaw", _int)
    start = _field(n, v, "Start", _time)
    if not v.get("AllocTRES") and not elapsed:
        # cancelled while pending: slurmctld stamps Start=End=cancel time on a job that was
        # never allocated (no AllocTRES); it neither waited its way into a start nor ran
        start = None
    return Job(
        job_id=v["JobID"],
        name=v.get("JobName", ""),
        rule=rule_of(comment, v.get("JobName", "")),
        partition=v.get("Partition", ""),
        # "CANCELLED by 1000" -> "CANCELLED"
        state=(v.get("State", "").split() or ["UNKNOWN"])[0],
        submit=_field(n, v, "Submit", _time),
        start=start,
        end=_field(n, v, "End", _time),
        elapsed_s=elapsed,
        alloc_cpus=alloc_cpus,
        total_cpu_s=total_cpu,
        req_mem=req_mem,
        max_rss=max(rss_values) if rss_values else None,
        gpus=gpus,
        exit_code=v.get("ExitCode", ""),
        comment=comment,
        cluster=v.get("Cluster", ""),
    )


# --------------------------------------------------------------------------- metrics


def load_jobs(
    *, run_id: str | None = None, since: str | None = None, until: str | None = None, sacct: str = "sacct"
) -> list[Job]:
    """Query sacct for a run (the job name the Slurm plugin submits with) and/or a time window.

    Args:
        run_id: Snakemake run UUID; searched from RUN_ID_DEFAULT_SINCE unless `since` is given.
        since: window start (sacct -S syntax, e.g. 2026-11-21T07:00 or now-2days).
        until: window end (sacct -E).
        sacct: the sacct executable.

    Returns:
        The jobs, including every retried (new job id) and requeued (--duplicates) run.

    Raises:
        InputError: neither run_id nor since, or no job found.
        ToolError: sacct missing, failing or timing out.
    """
    if not run_id and not since:
        raise InputError("give --run-id or --since")
    # every cluster of the accounting database: a run may send jobs to partner clusters (sbatch -M)
    cmd = [sacct, "--parsable2", "--allusers", "--duplicates", "--clusters", "all", "--format", SACCT_FIELDS]
    if run_id:
        cmd += ["--name", run_id]
    cmd += ["--starttime", since or RUN_ID_DEFAULT_SINCE]
    if until:
        cmd += ["--endtime", until]
    # pin the timestamp format: a user's SLURM_TIME_FORMAT would change Submit/Start/End
    env = dict(os.environ, SLURM_TIME_FORMAT="standard")
    log.debug("running %s", " ".join(cmd))
    try:
        proc = subprocess.run(cmd, check=False, capture_output=True, text=True, env=env, timeout=SACCT_TIMEOUT_S)
    except FileNotFoundError:
        raise ToolError(f"sacct not found: {sacct!r} (install the Slurm client or pass --sacct PATH)") from None
    except subprocess.TimeoutExpired:
        raise ToolError(f"sacct did not answer within {SACCT_TIMEOUT_S} s (is slurmdbd reachable?)") from None
    if proc.returncode != 0:
        raise ToolError(f"sacct failed (exit {proc.returncode}): {proc.stderr.strip() or proc.stdout.strip()}")
    jobs = parse_sacct(proc.stdout)
    if not jobs:
        what = f"run id {run_id}" if run_id else "the window"
        window = f" between {since or RUN_ID_DEFAULT_SINCE} and {until or 'now'}"
        raise InputError(
            f"sacct found no jobs for {what}{window}. Check the run id (the Slurm job name the "
            "executor plugin prints/logs) and the window; sacct needs job accounting in slurmdbd "
            "(AccountingStorageType=accounting_storage/slurmdbd), and rule names need "
            "AccountingStoreFlags=job_comment in slurm.conf."
        )
    if not any(j.comment for j in jobs):
        log.warning("no job has a comment: rules are named after the job name; "
                    "set AccountingStoreFlags=job_comment in slurm.conf to record rule names")
    return jobs


def own_run_id(env: dict[str, str] | None = None, squeue: str = "squeue") -> str | None:
    """The Snakemake run this process belongs to when it runs inside a Slurm job, else None.

    The Slurm executor plugin names every job of a run by the run's id. Inside the job the rule's
    environment does not say it: the job step plugin (snakemake-executor-plugin-slurm-jobstep) drops
    SLURM_JOB_NAME, and the srun it starts the rule with sets it to the step's command ("python"). It
    keeps SLURM_JOB_ID, so the job's name is read back from squeue (the job is running: squeue lists it).
    """
    env = os.environ if env is None else env
    job_id = env.get("SLURM_JOB_ID", "")
    if not job_id.isdigit():
        return None
    try:
        proc = subprocess.run([squeue, "--noheader", "--jobs", job_id, "--format", "%j"], capture_output=True,
                              text=True, timeout=60, check=False)
    except (OSError, subprocess.TimeoutExpired) as exc:
        log.warning("squeue for job %s: %s", job_id, exc)
        return None
    name = proc.stdout.strip()
    return name if proc.returncode == 0 and name else None
