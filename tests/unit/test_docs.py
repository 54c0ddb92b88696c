"""The front page and the guides: README.md fits on a page, and every link of README.md and docs/ resolves."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from tests.conftest import REPO

PAGES = sorted([REPO / "README.md", *(REPO / "docs").glob("*.md"), *(REPO / "benchmarks").glob("*/README.md")])
LINK = re.compile(r"(?<!!)\[[^\]]*\]\(([^)\s]+)\)")
FENCE = re.compile(r"^```.*?^```", re.S | re.M)


def slug(heading: str) -> str:
    """The anchor GitHub gives a heading: lower case, spaces to '-', other punctuation dropped."""
    text = re.sub(r"[`*_]|\[([^\]]*)\]\([^)]*\)", lambda m: m.group(1) or "", heading.strip().lower())
    return "".join(c for c in text.replace(" ", "-") if c.isalnum() or c in "-_")


def anchors(page: Path) -> set[str]:
    text = FENCE.sub("", page.read_text())
    return {slug(m.group(1)) for m in re.finditer(r"^#{1,6}\s+(.*)$", text, re.M)}


def links(page: Path) -> list[str]:
    return LINK.findall(FENCE.sub("", page.read_text()))


def test_the_readme_is_a_front_page():
    assert len((REPO / "README.md").read_text().splitlines()) <= 150


def test_every_guide_is_linked_from_the_readme():
    readme = (REPO / "README.md").read_text()
    assert [p.name for p in (REPO / "docs").glob("*.md") if f"docs/{p.name}" not in readme] == []


@pytest.mark.parametrize("page", PAGES, ids=lambda p: str(p.relative_to(REPO)))
def test_every_link_resolves(page):
    broken = []
    for target in links(page):
        if re.match(r"[a-z]+:", target):  # http(s), mailto: not followed (no network)
            continue
        path, _, anchor = target.partition("#")
        dest = (page.parent / path).resolve() if path else page
        if not dest.exists():
            broken.append(f"{target}: no such file")
        elif anchor and dest.suffix == ".md" and anchor not in anchors(dest):
            broken.append(f"{target}: no heading #{anchor} in {dest.relative_to(REPO)}")
    assert broken == []


def test_a_broken_link_is_caught(tmp_path):
    """The check itself: a missing file and a missing anchor are both reported."""
    page = tmp_path / "p.md"
    page.write_text("# Top\n\n[a](nope.md) [b](#top) [c](#nowhere)\n")
    assert links(page) == ["nope.md", "#top", "#nowhere"]
    assert "top" in anchors(page) and "nowhere" not in anchors(page)


def test_the_output_tree_is_told_the_same_in_the_snakefile_and_the_guide():
    """Every results/ folder a germline rule writes is drawn atop the Snakefile and in docs/output.md (the demo
    prints the Snakefile's drawing), so a new output cannot be missing from either."""
    snakefile = (REPO / "workflows" / "germline" / "Snakefile").read_text()
    included = re.findall(r'^include: "\.\./\.\./rules/(\w+)\.smk"', snakefile, re.M)
    rules = "".join((REPO / "rules" / f"{name}.smk").read_text() for name in included)
    # outputs only: folders of temp() intermediates (results/reads/) are not part of the tree
    written = set(re.findall(r'^\s+\w+=(?:temp\(|report\()?"results/(\w+)/', rules, re.M)) - {"reads"}
    tree = snakefile.split("\n# results/\n", 1)[1].split("\n# logs/", 1)[0]  # what `make demo` prints
    drawn = set(re.findall(r"^#\s+(\w+)/", tree, re.M))
    guide = (REPO / "docs" / "output.md").read_text()
    assert written and written <= drawn
    assert [f for f in sorted(drawn) if f"results/{f}/" not in guide] == []
