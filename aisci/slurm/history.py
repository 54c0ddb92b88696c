"""Run history for placement: the measured runtime of every completed job, recorded from sacct.

Closing the loop: ``aisci usage`` reads a finished run's jobs from Slurm accounting, and the rows
recorded here make the next plan's runtime estimates (aisci.placement.estimates) exact for the
jobs that have run before, in the resource class they ran in.

The history is a TSV file with a header line and one row per Slurm job::

    rule  wildcards  class  partition  seconds  job_id  recorded

It is de-duplicated by job id, so recording the same run twice adds nothing.
"""

from __future__ import annotations

import logging
import math
import re
from collections import Counter
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path

from aisci.errors import InputError
from aisci.fileio import atomic_output
from aisci.resources import CPU, GPU
from aisci.slurm.sacct import Job as SacctJob
from aisci.slurm.sacct import rule_of

log = logging.getLogger(__name__)

#: Columns of the history file, in the order they are written.
COLUMNS = ("rule", "wildcards", "class", "partition", "seconds", "job_id", "recorded")

_RULE_PREFIX, _WILDCARDS = "rule_", "_wildcards_"
# an array task's JobID: <array job id>_<task id>
_ARRAY_TASK = re.compile(r"^\d+_\d+$")


@dataclass(frozen=True)
class HistoryRow:
    """One completed job: where it ran and for how long.

    ``wildcards`` is the Slurm executor plugin's form (values joined by "_", "" without any);
    ``recorded`` is an ISO 8601 timestamp (the job's end), so rows sort by it in time order.
    """

    rule: str
    wildcards: str
    resource_class: str
    partition: str
    seconds: float
    recorded: str
    job_id: str


def _parse_comment(comment: str, job_name: str) -> tuple[str, str] | None:
    """(rule, wildcards) from ``rule_<rule>[_wildcards_<values>]``; None for group jobs and others."""
    if not comment.startswith(_RULE_PREFIX) or rule_of(comment, job_name).startswith("group:"):
        return None
    rule, _, wildcards = comment[len(_RULE_PREFIX):].partition(_WILDCARDS)
    return (rule, wildcards) if rule else None


def rows_from_sacct(jobs: Iterable[SacctJob]) -> list[HistoryRow]:
    """History rows of the completed single-rule jobs of a run.

    Only COMPLETED jobs count (a failed or timed-out job says nothing about how long the rule
    needs). Rule and wildcards come from the comment the Slurm executor plugin submits with,
    ``rule_<rule>[_wildcards_<values>]``; group jobs (several rules in one allocation) and jobs
    without that comment are skipped, and how many were is logged. The comment of an array job
    carries the wildcards of its first task only (the plugin's own warning), so an array task's
    row gets wildcards "" (unknown: it counts for its rule, not for one job).

    Args:
        jobs: Slurm jobs, e.g. from aisci.slurm.sacct.parse_sacct or load_jobs.

    Returns:
        One row per completed job, in the order given; class "gpu" where the job had GPUs.
    """
    rows: list[HistoryRow] = []
    skipped: Counter[str] = Counter()
    for job in jobs:
        if job.state != "COMPLETED":
            skipped["not COMPLETED"] += 1
            continue
        if not job.comment:
            skipped["without a comment"] += 1
            continue
        parsed = _parse_comment(job.comment, job.name)
        if parsed is None:
            skipped["group or other comment"] += 1
            continue
        rule, wildcards = parsed
        if wildcards and _ARRAY_TASK.match(job.job_id):
            wildcards = ""
        recorded = job.end or job.start
        rows.append(HistoryRow(
            rule=rule,
            wildcards=wildcards,
            resource_class=GPU if job.gpus > 0 else CPU,
            partition=job.where,
            seconds=float(job.elapsed_s),
            recorded=recorded.isoformat(timespec="seconds") if recorded else "",
            # clusters number their jobs independently: a job is its cluster and id
            job_id=f"{job.cluster}:{job.job_id}" if job.cluster else job.job_id,
        ))
    if skipped:
        log.info("run history: %d job(s) recorded, %d skipped (%s)", len(rows), sum(skipped.values()),
                 ", ".join(f"{n} {why}" for why, n in sorted(skipped.items())))
    return rows


def _line(row: HistoryRow) -> str:
    fields = (row.rule, row.wildcards, row.resource_class, row.partition, repr(float(row.seconds)),
              row.job_id, row.recorded)
    for value in fields:
        if "\t" in value or "\n" in value:
            raise InputError(f"job {row.job_id}: a tab or newline in history field {value!r}")
    return "\t".join(fields)


def record(path: Path, rows: Iterable[HistoryRow]) -> int:
    """Add rows to the history file, leaving out job ids it already holds.

    The file is rewritten whole through a temporary file, so a reader never sees half of it.

    Args:
        path: the history TSV (created with its header when missing).
        rows: rows to add, e.g. from rows_from_sacct.

    Returns:
        How many rows were added.

    Raises:
        InputError: the existing file is malformed (see load_history).
    """
    existing = load_history(path)
    seen = {row.job_id for row in existing}
    new: list[HistoryRow] = []
    for row in rows:
        if row.job_id not in seen:
            seen.add(row.job_id)
            new.append(row)
    if new or not path.exists():
        lines = ["\t".join(COLUMNS)] + [_line(row) for row in [*existing, *new]]
        with atomic_output(path) as tmp:
            tmp.write_text("\n".join(lines) + "\n")
    log.info("run history %s: %d row(s) added, %d already there", path, len(new), len(existing))
    return len(new)


def _row(path: Path, line_no: int, values: dict[str, str]) -> HistoryRow:
    where = f"{path} line {line_no}"
    if not values["rule"]:
        raise InputError(f"{where}: empty rule")
    if not values["job_id"]:
        raise InputError(f"{where}: empty job_id")
    if values["class"] not in (CPU, GPU):
        raise InputError(f"{where}: class {values['class']!r} must be {CPU!r} or {GPU!r}")
    try:
        seconds = float(values["seconds"])
    except ValueError:
        raise InputError(f"{where}: seconds {values['seconds']!r} is not a number") from None
    if not math.isfinite(seconds) or seconds < 0:
        raise InputError(f"{where}: seconds {values['seconds']!r} must be a finite number >= 0")
    return HistoryRow(rule=values["rule"], wildcards=values["wildcards"], resource_class=values["class"],
                      partition=values["partition"], seconds=seconds, recorded=values["recorded"],
                      job_id=values["job_id"])


def load_history(path: Path) -> list[HistoryRow]:
    """Read the history file; columns are found by the header's names (extra columns are ignored).

    Args:
        path: the history TSV.

    Returns:
        Its rows in file order; [] when the file does not exist.

    Raises:
        InputError: naming the file and line, for a missing column, a row with the wrong number
            of fields, an unknown class or a seconds value that is not a number.
    """
    if not path.exists():
        return []
    lines = [(n, line) for n, line in enumerate(path.read_text().splitlines(), 1) if line.strip()]
    if not lines:
        return []
    header_no, header_line = lines[0]
    header = header_line.split("\t")
    missing = [c for c in COLUMNS if c not in header]
    if missing:
        raise InputError(f"{path} line {header_no}: header lacks column(s) {', '.join(missing)}")
    rows = []
    for line_no, line in lines[1:]:
        fields = line.split("\t")
        if len(fields) != len(header):
            raise InputError(f"{path} line {line_no}: {len(fields)} fields, the header has {len(header)}")
        rows.append(_row(path, line_no, dict(zip(header, fields))))
    return rows


def latest(rows: Sequence[HistoryRow]) -> dict[tuple[str, str, str], HistoryRow]:
    """The latest row per (rule, wildcards, class): by ``recorded``, then by position in ``rows``."""
    out: dict[tuple[str, str, str], HistoryRow] = {}
    for row in rows:
        key = (row.rule, row.wildcards, row.resource_class)
        if key not in out or row.recorded >= out[key].recorded:
            out[key] = row
    return out
