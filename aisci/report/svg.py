"""Small inline SVG charts for the run report: bars, histograms, lines and heatmaps, no library, no network.

Every chart is a self-contained ``<svg>`` element with a title, labelled axes and a ``<title>`` tooltip on
each mark; colours come from CSS variables of the page so that the report prints and reads in light or dark.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from html import escape

WIDTH = 640
HEIGHT = 240
_LEFT, _RIGHT, _TOP, _BOTTOM = 64, 16, 28, 44


def _fmt(value: float) -> str:
    if value == 0:
        return "0"
    if abs(value) >= 1e6:
        return f"{value / 1e6:.3g}M"
    if abs(value) >= 1e4:
        return f"{value / 1e3:.3g}k"
    return f"{value:.3g}" if isinstance(value, float) else str(value)


def _ticks(top: float, n: int = 4) -> list[float]:
    """Round tick values from 0 to at least ``top``."""
    if top <= 0:
        return [0.0]
    raw = top / n
    step = 10 ** math.floor(math.log10(raw))
    for m in (1, 2, 5, 10):
        if m * step >= raw:
            step *= m
            break
    return [i * step for i in range(int(math.ceil(top / step)) + 1)]


def _frame(title: str, x_label: str, y_label: str, y_top: float, body: list[str], x_ticks: list[str]) -> str:
    """The chart's outer ``<svg>``: title, y grid with values, x tick labels and the marks in ``body``."""
    plot_h = HEIGHT - _TOP - _BOTTOM
    ticks = _ticks(y_top)
    top = ticks[-1] or 1.0
    out = [f'<svg class="chart" viewBox="0 0 {WIDTH} {HEIGHT}" role="img" aria-label="{escape(title)}" '
           f'xmlns="http://www.w3.org/2000/svg">',
           f'<text class="title" x="{_LEFT}" y="16">{escape(title)}</text>']
    for t in ticks:
        y = _TOP + plot_h * (1 - t / top)
        out.append(f'<line class="grid" x1="{_LEFT}" x2="{WIDTH - _RIGHT}" y1="{y:.1f}" y2="{y:.1f}"/>'
                   f'<text class="tick" x="{_LEFT - 6}" y="{y + 4:.1f}" text-anchor="end">{_fmt(t)}</text>')
    out += body
    out += x_ticks
    out.append(f'<text class="axis" x="{(_LEFT + WIDTH - _RIGHT) / 2}" y="{HEIGHT - 6}" text-anchor="middle">'
               f'{escape(x_label)}</text>')
    out.append(f'<text class="axis" transform="translate(14 {_TOP + plot_h / 2}) rotate(-90)" text-anchor="middle">'
               f'{escape(y_label)}</text>')
    out.append("</svg>")
    return "".join(out)


def bars(title: str, labels: Sequence[str], values: Sequence[float], *, x_label: str = "", y_label: str = "") -> str:
    """A bar per label (categories, e.g. consequence terms); each bar's tooltip gives its exact value."""
    plot_w, plot_h = WIDTH - _LEFT - _RIGHT, HEIGHT - _TOP - _BOTTOM
    top = _ticks(max(values, default=0))[-1] or 1.0
    n = max(len(values), 1)
    slot = plot_w / n
    body, xt = [], []
    for i, (label, v) in enumerate(zip(labels, values)):
        h = plot_h * v / top
        x = _LEFT + i * slot + slot * 0.1
        body.append(f'<rect class="bar" x="{x:.1f}" y="{_TOP + plot_h - h:.1f}" width="{slot * 0.8:.1f}" '
                    f'height="{h:.1f}"><title>{escape(label)}: {v:,}</title></rect>')
        if n <= 16:
            room = max(3, int(slot / 6.5))  # characters that fit under the bar at 11 px
            short = label if len(label) <= room else label[:room - 1] + "…"
            xt.append(f'<text class="tick" x="{x + slot * 0.4:.1f}" y="{_TOP + plot_h + 14}" text-anchor="middle">'
                      f'{escape(short)}</text>')
    return _frame(title, x_label, y_label, top, body, xt)


def binned(points: Sequence[tuple[float, float]], max_bins: int) -> list[tuple[float, float]]:
    """At most ``max_bins`` points: equal-width bins (whole numbers wide when every x is one), each at its
    start and holding the sum of its points' y. Fewer points are returned as they are."""
    if len(points) <= max_bins:
        return list(points)
    lo, hi = min(x for x, _ in points), max(x for x, _ in points)
    whole = all(float(x).is_integer() for x, _ in points)
    width = math.ceil((hi - lo + 1) / max_bins) if whole else (hi - lo) / max_bins or 1.0
    sums: dict[int, float] = {}
    for x, y in points:
        i = min(int((x - lo) // width), max_bins - 1)
        sums[i] = sums.get(i, 0) + y
    return [(lo + i * width, sums.get(i, 0)) for i in range(max(sums) + 1)]


def histogram(title: str, points: Sequence[tuple[float, float]], *, x_label: str = "", y_label: str = "",
              max_bins: int = 64) -> str:
    """Columns at x positions (e.g. depth -> bases, QUAL -> sites); x ticks at round values. More than
    ``max_bins`` points are summed into that many equal-width bins (a page of many callsets stays small)."""
    plot_w, plot_h = WIDTH - _LEFT - _RIGHT, HEIGHT - _TOP - _BOTTOM
    points = binned(points, max_bins)
    if not points:
        return _frame(title, x_label, y_label, 1.0, [], [])
    xs = [x for x, _ in points]
    lo, hi = min(xs), max(xs)
    span = (hi - lo) or 1.0
    top = _ticks(max(y for _, y in points))[-1] or 1.0
    width = max(plot_w / max(len(points), 1) * 0.9, 1.0)
    body = []
    for (x, y), xv in zip(points, xs):
        h = plot_h * y / top
        px = _LEFT + (xv - lo) / span * (plot_w - width)
        body.append(f'<rect class="bar" x="{px:.1f}" y="{_TOP + plot_h - h:.1f}" width="{width:.1f}" height="{h:.1f}">'
                    f'<title>{_fmt(x)}: {y:,}</title></rect>')
    xt = []
    for i in range(5):
        xv = lo + span * i / 4
        px = _LEFT + (xv - lo) / span * (plot_w - width) + width / 2
        xt.append(f'<text class="tick" x="{px:.1f}" y="{_TOP + plot_h + 14}" text-anchor="middle">{_fmt(round(xv, 2))}</text>')
    return _frame(title, x_label, y_label, top, body, xt)


def lines(title: str, series: dict[str, Sequence[tuple[float, float]]], *, x_label: str = "", y_label: str = "") -> str:
    """One polyline per series (e.g. insert size per sample), with a legend."""
    plot_w, plot_h = WIDTH - _LEFT - _RIGHT, HEIGHT - _TOP - _BOTTOM
    points = [p for s in series.values() for p in s]
    if not points:
        return _frame(title, x_label, y_label, 1.0, [], [])
    lo, hi = min(x for x, _ in points), max(x for x, _ in points)
    span = (hi - lo) or 1.0
    top = _ticks(max(y for _, y in points))[-1] or 1.0
    body = []
    for i, (name, pts) in enumerate(series.items()):
        path = " ".join(f"{_LEFT + (x - lo) / span * plot_w:.1f},{_TOP + plot_h * (1 - y / top):.1f}" for x, y in pts)
        body.append(f'<polyline class="line s{i % 6}" points="{path}"><title>{escape(name)}</title></polyline>')
        body.append(f'<text class="legend s{i % 6}" x="{WIDTH - _RIGHT - 4}" y="{_TOP + 12 + 14 * i}" '
                    f'text-anchor="end">{escape(name)}</text>')
    xt = [f'<text class="tick" x="{_LEFT + plot_w * i / 4:.1f}" y="{_TOP + plot_h + 14}" text-anchor="middle">'
          f'{_fmt(round(lo + span * i / 4, 2))}</text>' for i in range(5)]
    return _frame(title, x_label, y_label, top, body, xt)


def heatmap(title: str, rows: Sequence[str], columns: Sequence[str], values: Sequence[Sequence[float | None]], *,
            x_label: str = "", y_label: str = "") -> str:
    """A cell per (row, column), shaded from the lowest (light) to the highest (dark) value; None cells are blank."""
    left = max(_LEFT, 12 + 6.5 * max((len(r) for r in rows), default=0))  # room for the row names
    top = _TOP + 16  # the title, then the shading legend
    cell_w = max(4.0, min(24.0, (WIDTH - left - _RIGHT) / max(len(columns), 1)))
    cell_h = 14.0
    width = max(WIDTH, left + cell_w * len(columns) + _RIGHT)
    bottom = 30 + 4 * max((len(c) for c in columns), default=0)  # room for the slanted column names
    height = top + cell_h * len(rows) + bottom
    flat = [v for r in values for v in r if v is not None]
    lo, hi = (min(flat), max(flat)) if flat else (0.0, 1.0)
    span = (hi - lo) or 1.0
    out = [f'<svg class="chart" viewBox="0 0 {width:.0f} {height:.0f}" role="img" aria-label="{escape(title)}" '
           f'xmlns="http://www.w3.org/2000/svg">', f'<text class="title" x="{left}" y="16">{escape(title)}</text>',
           f'<text class="axis" x="{left}" y="{top - 8}">{escape(y_label)}: shaded light {lo:.2f} … dark {hi:.2f}</text>']
    for i, (name, row) in enumerate(zip(rows, values)):
        y = top + i * cell_h
        out.append(f'<text class="tick" x="{left - 4}" y="{y + cell_h - 3:.1f}" text-anchor="end">{escape(name)}</text>')
        for j, v in enumerate(row):
            if v is None:
                continue
            shade = (v - lo) / span
            out.append(f'<rect class="cell" x="{left + j * cell_w:.1f}" y="{y:.1f}" width="{cell_w:.1f}" '
                       f'height="{cell_h:.1f}" fill-opacity="{0.08 + 0.92 * shade:.2f}">'
                       f'<title>{escape(name)} {escape(columns[j])}: {v:.3f}</title></rect>')
    step = max(1, len(columns) // 20)
    for j in range(0, len(columns), step):
        out.append(f'<text class="tick" x="{left + (j + 0.5) * cell_w:.1f}" y="{top + len(rows) * cell_h + 14:.1f}" '
                   f'text-anchor="end" transform="rotate(-35 {left + (j + 0.5) * cell_w:.1f} '
                   f'{top + len(rows) * cell_h + 14:.1f})">{escape(columns[j])}</text>')
    out.append(f'<text class="axis" x="{left + cell_w * len(columns) / 2:.0f}" y="{height - 4:.0f}" '
               f'text-anchor="middle">{escape(x_label)}</text>')
    out.append("</svg>")
    return "".join(out)
