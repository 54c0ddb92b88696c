"""Gantt charts of a workflow run's Slurm jobs: PNG through matplotlib, HTML as a self-contained inline SVG."""

from __future__ import annotations

import html
from dataclasses import dataclass
from datetime import datetime, timedelta
from pathlib import Path

from aisci.errors import InputError
from aisci.fileio import atomic_output
from aisci.slurm.sacct import Job

# Colours by rule (matplotlib's tab20, so PNG and HTML agree); cycled past 20 rules.
PALETTE = (
    "#1f77b4", "#ff7f0e", "#2ca02c", "#d62728", "#9467bd", "#8c564b", "#e377c2", "#7f7f7f",
    "#bcbd22", "#17becf", "#aec7e8", "#ffbb78", "#98df8a", "#ff9896", "#c5b0d5", "#c49c94",
    "#f7b6d2", "#c7c7c7", "#dbdb8d", "#9edae5",
)
_TICK_STEPS_MIN = (0.25, 0.5, 1, 2, 5, 10, 15, 30, 60, 120, 240, 360, 720, 1440, 2880, 10080)


@dataclass(frozen=True)
class Bar:
    """One job on the chart: its row and its extent in minutes since the first start."""

    job: Job
    row: int
    start_min: float
    end_min: float


@dataclass(frozen=True)
class Layout:
    """Everything both renderers draw."""

    bars: list[Bar]
    groups: list[tuple[str, int, int]]  # (partition, first row, number of rows)
    colours: dict[str, str]  # rule -> colour
    origin: datetime | None  # first start
    span_min: float
    not_started: int


def _end(job: Job, start: datetime) -> datetime:
    # a running job has End=Unknown; draw it up to its elapsed time so far
    if job.end is not None and job.end >= start:
        return job.end
    return start + timedelta(seconds=job.elapsed_s)


def layout(jobs: list[Job]) -> Layout:
    """One row per started job, rows grouped by partition and ordered by start time.

    Args:
        jobs: jobs from aisci.slurm.usage.load_jobs / parse_sacct.

    Returns:
        Bars, partition groups, a colour per rule, the time origin and span.
    """
    started = sorted(
        (j for j in jobs if j.start is not None), key=lambda j: (j.partition, j.start, j.job_id)
    )
    colours = {rule: PALETTE[i % len(PALETTE)] for i, rule in enumerate(sorted({j.rule for j in started}))}
    origin = min((j.start for j in started), default=None)  # type: ignore[type-var]
    bars: list[Bar] = []
    groups: list[tuple[str, int, int]] = []
    for row, job in enumerate(started):
        assert job.start is not None and origin is not None
        if not groups or groups[-1][0] != job.partition:
            groups.append((job.partition, row, 0))
        name, first, n = groups[-1]
        groups[-1] = (name, first, n + 1)
        x0 = (job.start - origin).total_seconds() / 60
        x1 = (_end(job, job.start) - origin).total_seconds() / 60
        bars.append(Bar(job, row, x0, x1))
    span = max((b.end_min for b in bars), default=0.0)
    return Layout(bars, groups, colours, origin, span or 1.0, len(jobs) - len(started))


def duration(seconds: float) -> str:
    """`1:02:03`, or `1-02:03:04` beyond a day."""
    s = round(seconds)
    days, s = divmod(s, 86400)
    text = f"{s // 3600}:{s % 3600 // 60:02d}:{s % 60:02d}"
    return f"{days}-{text.zfill(8)}" if days else text


def tooltip(job: Job) -> str:
    """What hovering a bar shows: rule, job id, partition, wall time, state."""
    return (
        f"rule: {job.rule}\njob: {job.job_id}\npartition: {job.partition}\n"
        f"wall: {duration(job.elapsed_s)} ({job.elapsed_s} s)\nstate: {job.state}"
    )


def _title(lay: Layout) -> str:
    if not lay.bars:
        return f"{lay.not_started} Slurm jobs, none started: nothing to draw"
    pending = f" (+{lay.not_started} not started)" if lay.not_started else ""
    return f"{len(lay.bars)} Slurm jobs{pending}, {len(lay.colours)} rules, first start {lay.origin:%Y-%m-%d %H:%M:%S}"


def _tick_step(span_min: float, max_ticks: int = 10) -> float:
    return next((s for s in _TICK_STEPS_MIN if span_min / s <= max_ticks), span_min / max_ticks)


def _png(lay: Layout, path: Path) -> None:
    # The Agg canvas is used directly, not through pyplot: no global backend switch, no GUI,
    # and the (slow) matplotlib import only happens when a PNG is asked for.
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure
    from matplotlib.patches import Patch

    n_rows = max(len(lay.bars), 1)
    fig = Figure(figsize=(12, min(2.5 + 0.22 * n_rows, 40)), dpi=100)
    FigureCanvasAgg(fig)
    ax = fig.add_subplot()
    min_width = lay.span_min / 500  # keep zero-length (failed at once) jobs visible
    if lay.bars:  # one call for all bars: per-bar calls are slow for thousands of jobs
        ax.barh([b.row for b in lay.bars], [max(b.end_min - b.start_min, min_width) for b in lay.bars],
                left=[b.start_min for b in lay.bars], height=0.8,
                color=[lay.colours[b.job.rule] for b in lay.bars], edgecolor="none")
    ax.set_ylim(n_rows - 0.5, -0.5)
    ax.set_yticks([first + (n - 1) / 2 for _, first, n in lay.groups], [p or "-" for p, _, _ in lay.groups])
    for _, first, _n in lay.groups[1:]:
        ax.axhline(first - 0.5, color="#888888", linewidth=0.8)
    ax.set_xlim(0, lay.span_min * 1.02)
    ax.set_xlabel("minutes since the first job start")
    ax.set_ylabel("partition")
    ax.set_title(_title(lay))
    ax.grid(axis="x", color="#dddddd", linewidth=0.6)
    ax.set_axisbelow(True)
    if lay.colours:
        handles = [Patch(color=c, label=r) for r, c in lay.colours.items()]
        ax.legend(handles=handles, loc="upper left", bbox_to_anchor=(1.01, 1), fontsize="small", title="rule")
    fig.tight_layout()
    with atomic_output(path) as tmp:
        fig.savefig(tmp, format="png")


def _svg(lay: Layout) -> str:
    left, plot_w, top, row_h, legend_w = 130, 820, 50, 16, 260
    n_rows = max(len(lay.bars), 1)
    plot_h = n_rows * row_h
    height = max(top + plot_h + 50, top + 22 * len(lay.colours) + 30)
    width = left + plot_w + legend_w
    scale = plot_w / (lay.span_min * 1.02)
    esc = html.escape
    out = [
        (f'<svg xmlns="http://www.w3.org/2000/svg" width="{width}" height="{height}" '
         f'viewBox="0 0 {width} {height}" font-family="sans-serif" font-size="12">'),
        f'<text x="{left}" y="24" font-size="16" font-weight="bold">{esc(_title(lay))}</text>',
    ]
    step = _tick_step(lay.span_min)
    for i in range(int(lay.span_min * 1.02 / step) + 1):
        x = left + i * step * scale
        out.append(f'<line x1="{x:.1f}" y1="{top}" x2="{x:.1f}" y2="{top + plot_h}" stroke="#e0e0e0"/>')
        out.append(f'<text x="{x:.1f}" y="{top + plot_h + 16}" text-anchor="middle">{i * step:g}</text>')
    out.append(f'<line x1="{left}" y1="{top + plot_h}" x2="{left + plot_w}" y2="{top + plot_h}" stroke="#000"/>')
    out.append(f'<text x="{left + plot_w / 2}" y="{top + plot_h + 36}" text-anchor="middle">'
               "minutes since the first job start</text>")
    for i, (partition, first, n) in enumerate(lay.groups):
        y_mid = top + (first + n / 2) * row_h
        out.append(f'<text x="{left - 8}" y="{y_mid + 4:.1f}" text-anchor="end">{esc(partition or "-")}</text>')
        if i:
            y = top + first * row_h
            out.append(f'<line x1="{left - 120}" y1="{y}" x2="{left + plot_w}" y2="{y}" stroke="#888"/>')
    for b in lay.bars:
        x = left + b.start_min * scale
        w = max((b.end_min - b.start_min) * scale, 1.0)
        y = top + b.row * row_h + 2
        out.append(f'<rect x="{x:.2f}" y="{y}" width="{w:.2f}" height="{row_h - 4}" '
                   f'fill="{lay.colours[b.job.rule]}"><title>{esc(tooltip(b.job))}</title></rect>')
    # legend swatches are circles, so that the SVG holds exactly one <rect> per job
    lx = left + plot_w + 24
    out.append(f'<text x="{lx}" y="{top - 8}" font-weight="bold">rule</text>')
    for i, (rule, colour) in enumerate(lay.colours.items()):
        y = top + 22 * i + 8
        out.append(f'<circle cx="{lx + 6}" cy="{y}" r="6" fill="{colour}"/>')
        out.append(f'<text x="{lx + 18}" y="{y + 4}">{esc(rule)}</text>')
    out.append("</svg>")
    return "\n".join(out)


def gantt_svg(jobs: list[Job]) -> str:
    """The Gantt chart as one inline ``<svg>`` element (for a page that holds it, e.g. the run report)."""
    return _svg(layout(jobs)).replace("<svg ", '<svg class="gantt" style="max-width:100%;height:auto" ', 1)


def _html(lay: Layout) -> str:
    note = f"<p>{lay.not_started} job(s) had not started and are not drawn.</p>\n" if lay.not_started else ""
    return (
        "<!DOCTYPE html>\n<html lang=\"en\">\n<head>\n<meta charset=\"utf-8\">\n"
        f"<title>{html.escape(_title(lay))}</title>\n"
        "<style>body{font-family:sans-serif;margin:1em} svg rect:hover{stroke:#000;stroke-width:1}</style>\n"
        f"</head>\n<body>\n{_svg(lay)}\n{note}</body>\n</html>\n"
    )


def plot_gantt(jobs: list[Job], path: Path) -> None:
    """Draw one bar per started job from Start to End, rows grouped by partition, coloured by rule.

    Args:
        jobs: the jobs (pending ones are counted, not drawn).
        path: output file; `.png` is drawn with matplotlib, `.html`/`.htm` is a standalone page
            whose inline SVG has one `<rect>` per job with a `<title>` tooltip.

    Raises:
        InputError: when the suffix is neither .png nor .html/.htm.
    """
    path = Path(path)
    suffix = path.suffix.lower()
    if suffix not in (".png", ".html", ".htm"):
        raise InputError(f"{path}: a Gantt chart is written as .png or .html")
    lay = layout(jobs)
    if suffix == ".png":
        _png(lay, path)
    else:
        with atomic_output(path) as tmp:
            tmp.write_text(_html(lay), encoding="utf-8")
