"""Utilisation report of a workflow run: per-rule, per-partition and per-centre metrics from Slurm accounting
(sacct over every cluster of the accounting database)."""

from __future__ import annotations

import argparse
import json
import logging
import sys
from collections import Counter, defaultdict
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import TextIO

from aisci.errors import InputError
from aisci.fileio import atomic_output
from aisci.slurm.sacct import Job, load_jobs

log = logging.getLogger(__name__)

FORMATS = ("table", "tsv", "json")
PLOT_SUFFIXES = (".png", ".html", ".htm")


@dataclass(frozen=True)
class Row:
    """Metrics of a set of jobs: one rule (scope "rule"), partition ("partition") or centre ("centre").

    With jobs on several clusters a partition is named ``cluster/partition``; a centre is a Slurm cluster.
    """

    scope: str
    name: str
    jobs: int
    partitions: str
    states: str
    wall_s: int
    wall_h: float
    core_h: float
    mean_queue_s: float | None
    cpu_eff: float | None
    mem_eff: float | None
    gpu_h: float


@dataclass(frozen=True)
class Report:
    """What `aisci usage` reports: per-rule rows, per-partition and per-centre totals, the time window."""

    rules: list[Row]
    partitions: list[Row]
    jobs: int
    window: dict[str, str | None] = field(default_factory=dict)
    centres: list[Row] = field(default_factory=list)


# --------------------------------------------------------------------------- parsing


def _row(scope: str, name: str, jobs: list[Job], several: bool = False) -> Row:
    waits = [w for j in jobs if (w := j.queue_wait_s) is not None]
    ratios = [r for j in jobs if (r := j.mem_ratio) is not None]
    core_s = sum(j.alloc_cpus * j.elapsed_s for j in jobs)
    wall_s = sum(j.elapsed_s for j in jobs)
    states = Counter(j.state for j in jobs)
    return Row(
        scope=scope,
        name=name,
        jobs=len(jobs),
        partitions=",".join(sorted({j.where if several else j.partition for j in jobs})),
        states=",".join(f"{s}:{states[s]}" for s in sorted(states)),
        wall_s=wall_s,
        wall_h=wall_s / 3600,
        core_h=core_s / 3600,
        mean_queue_s=sum(waits) / len(waits) if waits else None,
        cpu_eff=sum(j.total_cpu_s for j in jobs) / core_s if core_s else None,
        mem_eff=sum(ratios) / len(ratios) if ratios else None,
        gpu_h=sum(j.gpus * j.elapsed_s for j in jobs) / 3600,
    )


def summarise(jobs: list[Job]) -> Report:
    """Per-rule rows and per-partition totals (both sorted by name) of a list of jobs.

    Args:
        jobs: jobs from parse_sacct / load_jobs.

    Returns:
        The report; its window holds the first submit/start and last end seen.
    """
    by_rule: dict[str, list[Job]] = defaultdict(list)
    by_partition: dict[str, list[Job]] = defaultdict(list)
    by_centre: dict[str, list[Job]] = defaultdict(list)
    several = len({j.cluster for j in jobs}) > 1
    for j in jobs:
        by_rule[j.rule].append(j)
        by_partition[j.where if several else j.partition].append(j)
        if j.cluster:
            by_centre[j.cluster].append(j)
    submits = [j.submit for j in jobs if j.submit]
    starts = [j.start for j in jobs if j.start]
    ends = [j.end for j in jobs if j.end]
    return Report(
        rules=[_row("rule", k, by_rule[k], several) for k in sorted(by_rule)],
        partitions=[_row("partition", k, by_partition[k], several) for k in sorted(by_partition)],
        centres=[_row("centre", k, by_centre[k], several) for k in sorted(by_centre)],
        jobs=len(jobs),
        window={
            "first_submit": min(submits).isoformat() if submits else None,
            "first_start": min(starts).isoformat() if starts else None,
            "last_end": max(ends).isoformat() if ends else None,
        },
    )


# --------------------------------------------------------------------------- output

_COLUMNS = [f for f in Row.__dataclass_fields__ if f not in ("scope", "name")]


def _plain(value: object) -> object:
    return round(value, 6) if isinstance(value, float) else value


def _table_cell(column: str, value: object) -> str:
    if value is None:
        return "NA"
    if column in ("cpu_eff", "mem_eff"):
        return f"{100 * value:.1f}%"  # type: ignore[operator]
    if isinstance(value, float):
        return f"{value:.1f}" if column == "mean_queue_s" else f"{value:.3f}"
    return str(value) or "-"


def _json_rows(rows: list[Row], key: str) -> list[dict[str, object]]:
    return [{key: r.name} | {c: _plain(getattr(r, c)) for c in _COLUMNS} for r in rows]


def _table(title: str, rows: list[Row]) -> list[str]:
    columns = [c for c in _COLUMNS if not (title == "partition" and c == "partitions")]
    grid = [[title] + columns] + [[r.name] + [_table_cell(c, getattr(r, c)) for c in columns] for r in rows]
    widths = [max(len(x[i]) for x in grid) for i in range(len(grid[0]))]
    left = {0, grid[0].index("states")} | ({2} if "partitions" in columns else set())
    return ["  ".join(x[i].ljust(w) if i in left else x[i].rjust(w) for i, w in enumerate(widths)).rstrip() for x in grid]


def write_report(report: Report, fmt: str, out: TextIO) -> None:
    """Write the report as `table` (aligned text), `tsv` (with a `scope` column) or `json`.

    Unknown values (a division by zero, no job with both MaxRSS and ReqMem) are `NA` in
    table/tsv and `null` in JSON. Efficiencies are fractions (table: percentages).

    Raises:
        InputError: on an unknown format.
    """
    if fmt == "json":
        doc = {
            "rules": _json_rows(report.rules, "rule"),
            "partitions": _json_rows(report.partitions, "partition"),
            "centres": _json_rows(report.centres, "centre"),
            "jobs": report.jobs,
            "window": report.window,
        }
        out.write(json.dumps(doc, indent=2) + "\n")
    elif fmt == "tsv":
        out.write("\t".join(["scope", "name"] + _COLUMNS) + "\n")
        for r in report.rules + report.partitions + report.centres:
            cells = ["NA" if (x := getattr(r, c)) is None else str(_plain(x)) for c in _COLUMNS]
            out.write("\t".join([r.scope, r.name, *cells]) + "\n")
    elif fmt == "table":
        w = report.window
        span = f"{w.get('first_start') or '?'} .. {w.get('last_end') or '?'}"
        query = ", ".join(f"{k} {w[k]}" for k in ("run_id", "since", "until") if w.get(k))
        lines = [f"{report.jobs} Slurm jobs ({query or 'given jobs'}), ran {span}", ""]
        lines += _table("rule", report.rules) + [""] + _table("partition", report.partitions)
        if report.centres:
            lines += [""] + _table("centre", report.centres)
        out.write("\n".join(lines) + "\n")
    else:
        raise InputError(f"--format {fmt!r}: expected one of {', '.join(FORMATS)}")


def plot_gantt(jobs: list[Job], path: Path) -> None:
    """Gantt chart of the jobs that started: PNG (matplotlib) or standalone HTML (inline SVG).

    Raises:
        InputError: when the suffix is neither .png nor .html/.htm.
    """
    from aisci.slurm import usage_plot  # matplotlib is imported lazily there

    usage_plot.plot_gantt(jobs, path)


# --------------------------------------------------------------------------- sacct + CLI


def configure_parser(parser: argparse.ArgumentParser) -> None:
    """Options of `aisci usage`."""
    parser.add_argument("--run-id", help="Snakemake run UUID (the Slurm job name of every job of the run)")
    parser.add_argument("--since", help="window start, sacct -S syntax (e.g. 2026-11-21T07:00, now-2days)")
    parser.add_argument("--until", help="window end, sacct -E syntax (needs --run-id or --since)")
    parser.add_argument("--format", choices=FORMATS, default="table", help="report format (default: table)")
    parser.add_argument("--out", type=Path, help="write the report here instead of stdout")
    parser.add_argument("--plot", type=Path, help="Gantt chart of the jobs: FILE.png or FILE.html")
    parser.add_argument("--sacct", default="sacct", help="sacct executable (default: sacct on PATH)")
    parser.add_argument("--transfers", type=Path, metavar="PROJECT",
                        help="instead: the data staged to and from centres without a shared file system, per rule "
                             "and centre, from PROJECT/.snakemake/aisci/transfers.tsv (of --run-id only, if given)")
    parser.add_argument("--record", type=Path, metavar="HISTORY",
                        help="also add the run's completed jobs to this run history (e.g. .aisci/history.tsv), "
                             "from which `aisci plan` estimates the next run's runtimes")


def run(args: argparse.Namespace) -> int:
    """Query sacct, write the utilisation report and, if asked, the Gantt chart."""
    if getattr(args, "transfers", None) is not None:
        return _transfers(args)
    if not args.run_id and not args.since:
        raise InputError("give --run-id UUID or --since TIME (with --until TIME for a closed window)")
    if args.run_id is not None and (not args.run_id.strip() or any(c.isspace() for c in args.run_id)):
        raise InputError(f"--run-id {args.run_id!r}: expected the run UUID, without spaces")
    if args.plot is not None and args.plot.suffix.lower() not in PLOT_SUFFIXES:
        raise InputError(f"--plot {args.plot}: expected a .png or .html file")
    jobs = load_jobs(run_id=args.run_id, since=args.since, until=args.until, sacct=args.sacct)
    report = summarise(jobs)
    report = replace(report, window={"run_id": args.run_id, "since": args.since, "until": args.until} | report.window)
    if args.out is None:
        write_report(report, args.format, sys.stdout)
    else:
        with atomic_output(args.out) as tmp, open(tmp, "w") as fh:
            write_report(report, args.format, fh)
        print(f"{report.jobs} jobs, {len(report.rules)} rules: report written to {args.out}")
    if args.plot is not None:
        plot_gantt(jobs, args.plot)
        log.info("Gantt chart written to %s", args.plot)
    if args.record is not None:
        from aisci.slurm.history import record, rows_from_sacct

        rows = rows_from_sacct(jobs)
        added = record(args.record, rows)
        print(f"run history {args.record}: {added} of {len(rows)} completed jobs added")
    return 0


def _transfers(args: argparse.Namespace) -> int:
    from aisci.slurm.staging import LEDGER, read_ledger, summarise_transfers, transfers_text

    ledger = args.transfers / LEDGER
    if not args.transfers.is_dir():
        raise InputError(f"--transfers {args.transfers}: not a directory (the project directory of a run)")
    summary = summarise_transfers(read_ledger(ledger), args.run_id)
    if args.format == "json":
        text = json.dumps({"transfers": summary, "ledger": str(ledger)}, indent=2) + "\n"
    elif args.format == "tsv":
        cols = list(summary[0]) if summary else ["rule", "centre"]
        text = "\n".join(["\t".join(cols), *("\t".join(str(r[c]) for c in cols) for r in summary)]) + "\n"
    else:
        text = transfers_text(summary) if summary else f"no transfers recorded in {ledger}\n"
    if args.out is None:
        sys.stdout.write(text)
    else:
        with atomic_output(args.out) as tmp:
            tmp.write_text(text)
    return 0
