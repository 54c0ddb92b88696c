"""The report page: sections of headings, key numbers, sortable tables and inline SVG charts, in one HTML file.

The file needs nothing else: the style and the few lines of script (table sorting) are inline, the charts
are inline SVG, and nothing is fetched from a network.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from html import escape
from typing import Any

_STYLE = """
:root { --fg: #1d2330; --muted: #5b6475; --bg: #ffffff; --panel: #f4f6f9; --line: #d5dae3;
        --accent: #2f6db5; --s0: #2f6db5; --s1: #d9822b; --s2: #2e9e6a; --s3: #b8407a; --s4: #7a5cc2; --s5: #8a8f2a; }
@media (prefers-color-scheme: dark) {
  :root { --fg: #e6e9ef; --muted: #a2aab8; --bg: #161a21; --panel: #1f252e; --line: #39414e; --accent: #6ea6e8;
          --s0: #6ea6e8; --s1: #f0a75c; --s2: #5cc796; --s3: #e07aad; --s4: #a58ce6; --s5: #c4c95a; } }
@media print { :root { --fg: #000; --muted: #333; --bg: #fff; --panel: #fff; --line: #999; }
  nav { display: none; } section { break-inside: avoid-page; } }
body { font: 14px/1.45 system-ui, sans-serif; color: var(--fg); background: var(--bg); margin: 0 auto;
       max-width: 1100px; padding: 0 20px 40px; }
h1 { font-size: 22px; margin: 24px 0 4px; } h2 { font-size: 18px; margin: 32px 0 8px; border-bottom: 1px solid var(--line); }
h3 { font-size: 15px; margin: 18px 0 6px; } p.note { color: var(--muted); margin: 4px 0; }
nav { position: sticky; top: 0; background: var(--bg); padding: 6px 0; border-bottom: 1px solid var(--line); }
nav a { margin-right: 14px; color: var(--accent); text-decoration: none; }
.numbers { display: flex; flex-wrap: wrap; gap: 10px; margin: 8px 0; }
.numbers div { background: var(--panel); border: 1px solid var(--line); border-radius: 6px; padding: 6px 12px; }
.numbers b { display: block; font-size: 18px; } .numbers span { color: var(--muted); font-size: 12px; }
table { border-collapse: collapse; margin: 6px 0 12px; font-variant-numeric: tabular-nums; }
th, td { border-bottom: 1px solid var(--line); padding: 3px 10px; text-align: left; }
td.n { text-align: right; } th { cursor: pointer; user-select: none; background: var(--panel); }
th[data-dir="asc"]::after { content: " \\25B2"; } th[data-dir="desc"]::after { content: " \\25BC"; }
.charts { display: flex; flex-wrap: wrap; gap: 8px; }
.charts svg.chart { flex: 1 1 460px; max-width: 640px; }
.figures { display: flex; flex-direction: column; gap: 10px; } figure { margin: 0; }
figure img { width: 100%; height: auto; background: #fff; border-radius: 6px; } figcaption { color: var(--muted); font-size: 12px; }
svg.gantt { background: var(--panel); border-radius: 6px; } svg.gantt text { fill: var(--fg); }
svg.gantt line { stroke: var(--line); }
svg.chart { width: 100%; max-width: 640px; height: auto; background: var(--panel); border-radius: 6px; }
svg .title { font-weight: 600; font-size: 13px; fill: var(--fg); } svg .tick, svg .axis { font-size: 11px; fill: var(--muted); }
svg .grid { stroke: var(--line); stroke-width: 1; } svg .bar, svg .cell { fill: var(--accent); }
svg .line { fill: none; stroke-width: 1.5; } svg .legend { font-size: 11px; }
""" + "".join(f"svg .line.s{i} {{ stroke: var(--s{i}); }} svg .legend.s{i} {{ fill: var(--s{i}); }}\n" for i in range(6))

# Click a header to sort its table by that column (numbers as numbers); click again to reverse.
_SCRIPT = """
document.querySelectorAll("table.sortable th").forEach((th, col) => th.addEventListener("click", () => {
  const table = th.closest("table"), body = table.tBodies[0], dir = th.dataset.dir === "asc" ? "desc" : "asc";
  table.querySelectorAll("th").forEach(h => delete h.dataset.dir); th.dataset.dir = dir;
  const key = r => { const c = r.cells[th.cellIndex]; const v = c.dataset.v ?? c.textContent; const n = parseFloat(v);
                     return isNaN(n) ? v : n; };
  const rows = Array.from(body.rows).sort((a, b) => { const x = key(a), y = key(b);
    return (x < y ? -1 : x > y ? 1 : 0) * (dir === "asc" ? 1 : -1); });
  rows.forEach(r => body.appendChild(r));
}));
"""


def _cell(value: Any) -> str:
    if value is None:
        return '<td class="n" data-v="">–</td>'
    if isinstance(value, bool):
        return f"<td>{'yes' if value else 'no'}</td>"
    if isinstance(value, int):
        return f'<td class="n" data-v="{value}">{value:,}</td>'
    if isinstance(value, float):
        text = f"{value:.4g}" if abs(value) < 1e5 else f"{value:,.0f}"
        return f'<td class="n" data-v="{value!r}">{text}</td>'
    return f"<td>{escape(str(value))}</td>"


def table(columns: Sequence[str], rows: Sequence[Sequence[Any]], *, caption: str = "") -> str:
    """A sortable table; numbers right-aligned and sorted as numbers, None shown as a dash."""
    head = "".join(f"<th>{escape(c)}</th>" for c in columns)
    body = "".join("<tr>" + "".join(_cell(v) for v in row) + "</tr>" for row in rows)
    cap = f"<caption>{escape(caption)}</caption>" if caption else ""
    return f'<table class="sortable">{cap}<thead><tr>{head}</tr></thead><tbody>{body}</tbody></table>'


def numbers(items: Sequence[tuple[str, Any]]) -> str:
    """Key numbers in boxes: (label, value)."""
    def show(v: Any) -> str:
        if isinstance(v, float):
            return f"{v:.4g}"
        if isinstance(v, int):
            return f"{v:,}"
        return escape(str(v))
    return '<div class="numbers">' + "".join(f"<div><b>{show(v)}</b><span>{escape(k)}</span></div>" for k, v in items) + "</div>"


@dataclass
class Section:
    """One part of the report: an id (anchor), a heading, and its HTML blocks in order."""

    id: str
    title: str
    blocks: list[str] = field(default_factory=list)

    def note(self, text: str) -> None:
        self.blocks.append(f'<p class="note">{escape(text)}</p>')

    def heading(self, text: str) -> None:
        self.blocks.append(f"<h3>{escape(text)}</h3>")

    def charts(self, *svgs: str) -> None:
        self.blocks.append('<div class="charts">' + "".join(svgs) + "</div>")


def render(title: str, subtitle: str, sections: Sequence[Section]) -> str:
    """The whole page: title, a bar of links to the sections, the sections."""
    nav = "".join(f'<a href="#{s.id}">{escape(s.title)}</a>' for s in sections)
    body = "".join(f'<section id="{s.id}"><h2>{escape(s.title)}</h2>{"".join(s.blocks)}</section>' for s in sections)
    return (f'<!DOCTYPE html>\n<html lang="en"><head><meta charset="utf-8">'
            f'<meta name="viewport" content="width=device-width, initial-scale=1">'
            f"<title>{escape(title)}</title><style>{_STYLE}</style></head>"
            f'<body><h1>{escape(title)}</h1><p class="note">{escape(subtitle)}</p><nav>{nav}</nav>{body}'
            f"<script>{_SCRIPT}</script></body></html>\n")
