"""The report page: one self-contained HTML file whose tables sort and whose text is escaped."""

from __future__ import annotations

import re
from html.parser import HTMLParser

from aisci.report import page, svg


class _Collect(HTMLParser):
    def __init__(self) -> None:
        super().__init__()
        self.tags: list[tuple[str, dict[str, str | None]]] = []

    def handle_starttag(self, tag, attrs):
        self.tags.append((tag, dict(attrs)))


def test_page_is_self_contained_and_escaped():
    s = page.Section("calls", "Calls <b>")
    s.blocks.append(page.table(["name", "n", "rate"], [["<script>x</script>", 1234, 0.5], ["b", None, 2.0]]))
    s.charts(svg.bars("t", ["a", "b"], [1, 3]), svg.histogram("h", [(1, 2), (2, 5)]),
             svg.lines("l", {"S1": [(0, 1), (1, 2)]}), svg.heatmap("m", ["r"], ["A", "C"], [[0.1, None]]))
    html = page.render("title & more", "sub", [s])
    p = _Collect()
    p.feed(html)
    tags = {t for t, _ in p.tags}
    # nothing fetched: no external script, stylesheet, image or font
    assert not [a for t, a in p.tags if t in ("script", "img", "link", "iframe") and (a.get("src") or a.get("href"))]
    assert "<script>x</script>" not in html and "&lt;script&gt;x&lt;/script&gt;" in html
    assert "Calls &lt;b&gt;" in html and "title &amp; more" in html
    assert {"svg", "table", "nav", "section"} <= tags
    assert '<td class="n" data-v="1234">1,234</td>' in html and '<td class="n" data-v="">–</td>' in html
    assert len(re.findall(r"<svg", html)) == 4


def test_bars_scale_to_the_largest_value():
    chart = svg.bars("t", ["a", "b"], [5, 10])
    heights = [float(h) for h in re.findall(r'class="bar"[^>]*height="([\d.]+)"', chart)]
    assert heights[1] == 2 * heights[0] and "a: 5" in chart and "b: 10" in chart
