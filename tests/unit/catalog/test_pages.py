"""The catalog's web pages (aisci.catalog.pages): each section from the data, escaped, linked, read in a browser."""

from __future__ import annotations

import hashlib
import re
from html.parser import HTMLParser
from pathlib import Path
from typing import Any
from urllib.parse import unquote, urlsplit

import pytest

from aisci.catalog.metadata import semver_key
from aisci.catalog.pages import write_pages
from aisci.errors import InputError
from aisci.schema import load_schema
from tests.browser import rendered, screenshot

HOSTILE = '<script>alert("pwned")</script> & friends, a summary'
DEMO_VERSIONS = ["1.0.0", "1.10.0", "1.2.0-rc.1"]  # the index's order: not the order of the pages
WEIGHTS = hashlib.sha256(b"weights").hexdigest()


class _Parsed(HTMLParser):
    """A page as the tests read it: hrefs, ids, and the rows of each section's tables (cell texts)."""

    def __init__(self, text: str) -> None:
        super().__init__()
        self.hrefs: list[str] = []
        self.ids: set[str] = set()
        self.tables: dict[str, list[list[list[str]]]] = {}
        self.items: dict[str, list[str]] = {}
        self._section, self._cell, self._li = "", None, None
        self.feed(text)

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        a = dict(attrs)
        if a.get("id"):
            self.ids.add(a["id"])
        if tag == "a" and a.get("href") is not None:
            self.hrefs.append(a["href"])
        if tag == "section":
            self._section = a["id"]
        elif tag == "table":
            self.tables.setdefault(self._section, []).append([])
        elif tag == "tr":
            self.tables[self._section][-1].append([])
        elif tag == "td":
            self._cell = []
        elif tag == "li" and self._cell is None:
            self._li = []
        elif tag == "li" and "".join(self._cell).strip():
            self._cell.append("; ")  # list items inside a cell

    def handle_endtag(self, tag: str) -> None:
        if tag == "td":
            self.tables[self._section][-1][-1].append(" ".join("".join(self._cell).split()))
            self._cell = None
        elif tag == "li" and self._li is not None:
            self.items.setdefault(self._section, []).append(" ".join("".join(self._li).split()))
            self._li = None

    def handle_data(self, data: str) -> None:
        for buf in (self._cell, self._li):
            if buf is not None:
                buf.append(data)

    def rows(self, section: str, table: int = 0) -> list[list[str]]:
        """The body rows of one table of a section (the header row has no td)."""
        return [r for r in self.tables[section][table] if r]


def _release(name: str, version: str, summary: str, *, samples: bool, models: list[dict[str, Any]]) -> dict[str, Any]:
    digest = hashlib.sha256(f"{name}@{version}".encode()).hexdigest()
    metadata = {
        "name": name, "version": version, "summary": summary,
        "description": "First paragraph of the description.\n\nSecond paragraph, after a blank line.",
        "authors": [{"name": "Platform team", "email": "platform@example.org", "affiliation": "Institute"}],
        "licence": "MIT", "homepage": "https://example.org/pipelines", "engine": ">=0.1,<0.2",
        "config_schema": "protein", "samples_schema": "samples" if samples else None, "default_config": "config.yaml",
        "inputs": [{"name": "protein FASTA", "description": "named by the config's proteins key"}],
        "outputs": [{"path": "results/plm/embeddings.parquet", "description": "one embedding per protein"}],
        "resources": ["cpu", "gpu"] if models else ["cpu"], "models": models,
        "references": [{"name": "grch38", "description": "the human genome", "when": "always"}],
        "test": {"commands": ["aisci demo-protein --out data"], "config": "test.yaml", "cores": 2,
                 "outputs": ["results/plm/embeddings.parquet"]},
        "changelog": {"1.0.0": ["first release"], "1.10.0": ["the tenth minor"], "1.2.0-rc.1": ["a candidate"]},
    }
    checks = [{"id": "rule_log", "title": "every rule has a log", "status": "pass", "findings": 0},
              {"id": "rule_bench", "title": "every rule has a benchmark", "status": "fail", "findings": 2},
              {"id": "gpu_rule", "title": "GPU rules ask for gpu=1", "status": "skip", "findings": 0}]
    files = {"Snakefile": {"sha256": hashlib.sha256(b"s").hexdigest(), "size": 812},
             "rules/plm.smk": {"sha256": hashlib.sha256(b"r").hexdigest(), "size": 2_345_678}}
    return {"format": 1, "name": name, "version": version, "digest": digest, "published": "2026-12-07T15:00:00Z",
            "publisher_engine": "0.1.0", "metadata": metadata, "files": files,
            "lint": {"checks": checks, "passed": 1, "failed": 1}, "config_schema": load_schema("protein"),
            "samples_schema": load_schema("samples") if samples else None}


def _catalog(tmp_path: Path) -> tuple[Path, dict, dict, dict]:
    """A catalog of demo-pipe (three versions, one with a model and two centres) and other-pipe (hostile summary)."""
    model = {"name": "esm2-demo", "kind": "store", "source": "hf:facebook/esm2_t6_8M_UR50D", "licence": "MIT",
             "when": "always", "files": {"model.pt": {"sha256": WEIGHTS, "size": 31_400_000}}}
    made = [_release("demo-pipe", v, f"Embeds proteins, version {v}.", samples=True,
                     models=[model] if v == "1.10.0" else []) for v in DEMO_VERSIONS]
    made.append(_release("other-pipe", "0.3.0", HOSTILE, samples=False, models=[]))
    index: dict[str, Any] = {"format": 1, "pipelines": {}}
    for i, r in enumerate(made):
        entry = {"digest": r["digest"], "published": f"2026-12-0{i + 1}T15:00:00Z", "summary": r["metadata"]["summary"],
                 "engine": ">=0.1,<0.2", "lint": {"passed": 1, "checks": 3}}
        index["pipelines"].setdefault(r["name"], {"versions": {}})["versions"][r["version"]] = entry
    releases = {r["digest"]: r for r in made}
    top = made[1]["digest"]
    fits = {top: [{"site": "hpc-institute", "centre": "hpc-institute", "ok": True,
                   "met": ["GPU partition gpu_a100", "model esm2-demo staged"], "missing": []},
                  {"site": "cloud", "centre": "cloud-eu", "ok": False, "met": ["CPU partition std"],
                   "missing": ["model esm2-demo: not staged in /shared/models", "no GPU partition"]}]}
    return tmp_path / "pipeline catalog", index, releases, fits  # a space: links and commands must survive it


@pytest.fixture
def catalog(tmp_path: Path) -> tuple[Path, dict, dict, dict, list[Path]]:
    root, index, releases, fits = _catalog(tmp_path)
    return root, index, releases, fits, write_pages(root, index, releases, fits)


def _page(root: Path, name: str, version: str) -> _Parsed:
    return _Parsed((root / "pipelines" / name / f"{version}.html").read_text())


def _keys(schema: dict[str, Any], prefix: str = "") -> list[str]:
    """The test's own flattening: dotted keys of properties, nested objects, array items as key[].sub."""
    out = []
    for key, sub in schema.get("properties", {}).items():
        out += [prefix + key] + _keys(sub, f"{prefix}{key}.") + _keys(sub.get("items") or {}, f"{prefix}{key}[].")
    return out


def test_writes_the_index_and_a_page_per_version(catalog):
    root, *_, written = catalog
    expected = {root / "index.html", root / "pipelines/other-pipe/0.3.0.html",
                *(root / "pipelines/demo-pipe" / f"{v}.html" for v in DEMO_VERSIONS)}
    assert set(written) == expected and len(written) == 5
    rows = _Parsed((root / "index.html").read_text()).rows("pipelines")
    # name (links to the latest), latest, summary, versions, resources, last published
    assert rows[0] == ["demo-pipe", "1.10.0", "Embeds proteins, version 1.10.0.", "3", "cpu, gpu",
                       "2026-12-03 15:00 UTC"]
    assert rows[1][:4] == ["other-pipe", "0.3.0", HOSTILE, "1"]
    assert 'href="pipelines/demo-pipe/1.10.0.html"' in (root / "index.html").read_text()


def test_parameters_table_has_a_row_per_schema_key(catalog):
    root, *_ = catalog
    schema = load_schema("protein")
    rows = _page(root, "demo-pipe", "1.0.0").rows("parameters")
    assert [r[0].split()[0] for r in rows] == _keys(schema) and len(rows) == 7
    by_key = {r[0].split()[0]: r for r in rows}
    assert by_key["mutagenesis.strategy"][1:3] == ["string: wt-marginals | masked-marginals", "wt-marginals"]
    assert by_key["model"][2] == "esm2_t33_650M" and by_key["model_store"][2] == "null"
    assert by_key["proteins"][0] == "proteins required" and by_key["proteins"][2] == ""  # required: no default
    assert [k for k, r in by_key.items() if r[0].endswith("required")] == ["proteins"]
    assert by_key["embeddings"][3].startswith("Write results/plm/embeddings.parquet")


def test_inputs_list_the_sample_sheet_columns(catalog):
    root, *_ = catalog
    page = _page(root, "demo-pipe", "1.0.0")
    assert page.rows("inputs", 0) == [["protein FASTA", "named by the config's proteins key"]]
    columns = page.rows("inputs", 1)
    assert [c[0] for c in columns] == list(load_schema("samples")["properties"])
    assert [c[0] for c in columns] == ["sample", "lane", "fq1", "fq2", "bam", "truth"]
    assert [c[0] for c in columns if c[2] == "yes"] == ["sample"]
    assert "Each row gives exactly one of: fq1 and fq2; bam." in (root / "pipelines/demo-pipe/1.0.0.html").read_text()
    assert len(_page(root, "other-pipe", "0.3.0").tables["inputs"]) == 1  # no sample sheet: no columns table


def test_versions_newest_first_by_semantic_version(catalog):
    root, *_ = catalog
    order = ["1.10.0", "1.2.0-rc.1", "1.0.0"]
    for current in DEMO_VERSIONS:
        page = _page(root, "demo-pipe", current)
        assert [item.split()[0] for item in page.items["versions"]] == order
        assert f"{current} (this page)" in " ".join(page.items["versions"])
        assert sorted(h for h in page.hrefs if h.endswith(".html") and "/" not in h) == sorted(
            f"{v}.html" for v in order if v != current)
    spec = ["1.0.0-alpha", "1.0.0-alpha.1", "1.0.0-alpha.beta", "1.0.0-beta", "1.0.0-beta.2", "1.0.0-beta.11",
            "1.0.0-rc.1", "1.0.0", "1.2.0", "1.10.0", "2.0.0"]  # semver.org §11's example, then minors past 9
    assert sorted(reversed(spec), key=semver_key) == spec
    with pytest.raises(InputError, match="not a semantic version"):
        semver_key("1.0")


def test_the_index_leads_with_the_newest_release_not_a_newer_prerelease(tmp_path):
    root, index, releases, fits = _catalog(tmp_path)
    beta = _release("demo-pipe", "2.0.0-beta", "A beta of the next major.", samples=False, models=[])
    releases[beta["digest"]] = beta
    versions = index["pipelines"]["demo-pipe"]["versions"]
    versions["2.0.0-beta"] = {"digest": beta["digest"], "published": "2026-12-09T15:00:00Z",
                              "summary": "A beta of the next major.", "engine": ">=0.1,<0.2"}
    write_pages(root, index, releases, fits)
    assert _Parsed((root / "index.html").read_text()).rows("pipelines")[0][:4] == [
        "demo-pipe", "1.10.0", "Embeds proteins, version 1.10.0.", "4"]
    assert [i.split()[0] for i in _page(root, "demo-pipe", "1.0.0").items["versions"]] == [
        "2.0.0-beta", "1.10.0", "1.2.0-rc.1", "1.0.0"]
    assert "latest</span>" in (root / "pipelines/demo-pipe/1.10.0.html").read_text()
    assert "latest</span>" not in (root / "pipelines/demo-pipe/2.0.0-beta.html").read_text()
    pre = {v: versions[v] for v in ("1.2.0-rc.1", "2.0.0-beta")}
    only = {"format": 1, "pipelines": {"demo-pipe": {"versions": pre}}}
    write_pages(tmp_path / "prereleases", only, releases, {})  # prereleases only: the newest leads
    assert _Parsed((tmp_path / "prereleases/index.html").read_text()).rows("pipelines")[0][1] == "2.0.0-beta"


def test_every_relative_link_resolves(catalog):
    root, *_, written = catalog
    checked = 0
    for page in written:
        parsed = _Parsed(page.read_text())
        for href in parsed.hrefs:
            if href.startswith("#"):
                assert href[1:] in parsed.ids, f"{page}: no anchor {href}"
            elif not urlsplit(href).scheme:
                assert (page.parent / unquote(href)).resolve().is_file(), f"{page}: {href} does not resolve"
                checked += 1
            else:
                assert href == "https://example.org/pipelines"  # the one external link: the homepage
    assert checked == 2 + 4 * 1 + 2 * 3  # index: 2 pipelines; 4 pages link back; demo-pipe's pages link 2 siblings
    text = (root / "pipelines/demo-pipe/1.0.0.html").read_text()
    assert 'href="../../index.html"' in text and 'rel="noopener noreferrer"' in text


def test_hostile_text_is_escaped(catalog):
    root, *_, written = catalog
    for page in written:
        text = page.read_text()
        assert "pwned" not in text or "&lt;script&gt;alert(&quot;pwned&quot;)&lt;/script&gt; &amp; friends" in text
        assert text.count("<script") == 1 and '<script>alert("pwned")' not in text
    for page in (root / "index.html", root / "pipelines/other-pipe/0.3.0.html"):
        assert "pwned" in page.read_text()


def test_where_it_can_run(catalog):
    root, *_ = catalog
    rows = _page(root, "demo-pipe", "1.10.0").rows("sites")
    assert rows == [["hpc-institute", "hpc-institute", "yes", "GPU partition gpu_a100; model esm2-demo staged", ""],
                    ["cloud", "cloud-eu", "no", "CPU partition std",
                     "model esm2-demo: not staged in /shared/models; no GPU partition"]]
    text = (root / "pipelines/demo-pipe/1.10.0.html").read_text()
    assert "Runs at 1 of 2 centres" in text
    bare = (root / "pipelines/demo-pipe/1.0.0.html").read_text()
    assert "No site is registered" in bare and "aisci catalog publish ... --site site.yaml" in bare


def test_models_lint_changelog_files_and_commands(catalog):
    root, *_ = catalog
    page, text = _page(root, "demo-pipe", "1.10.0"), (root / "pipelines/demo-pipe/1.10.0.html").read_text()
    model = page.rows("models")
    assert model[0][:5] == ["esm2-demo", "store", "always", "hf:facebook/esm2_t6_8M_UR50D", "MIT"]
    assert model[0][5] == f"model.pt 31.4 MB {WEIGHTS[:12]}" and f'title="{WEIGHTS}"' in text
    assert "1 of 3 checks passed, 1 failed." in text
    assert [r[2] for r in page.rows("lint")] == ["pass", "fail", "skip"] and page.rows("lint")[1][3] == "2"
    assert [i for i in page.items["changelog"]] == ["the tenth minor", "a candidate", "first release"]
    assert [r[:2] for r in page.rows("files")] == [["Snakefile", "812 B"], ["rules/plm.smk", "2.35 MB"]]
    for command in ("aisci catalog install demo-pipe@1.10.0 --catalog ", "aisci catalog test demo-pipe@1.10.0",
                    "aisci init DIR --pipeline demo-pipe@1.10.0 --catalog "):
        assert command in re.sub(r"<[^>]+>", "", text)
    assert text.count('<span data-root="../../">CATALOG</span>') == 3  # install, test, init: the browser puts the catalog's place there
    assert "Licence" in text and "MIT" in text and "First paragraph" in text and "&lt;platform@example.org&gt;" in text
    # self-contained: light and dark styles inline, nothing fetched (the icon is data:, the homepage only a link)
    assert "@media (prefers-color-scheme: dark)" in text
    assert not re.search(r'(src|href)="(?!https://example|#|\.\.|data:|\d)', text)


def test_an_unchanged_catalog_writes_no_page(catalog):
    root, index, releases, fits, written = catalog
    stamps = {p: p.stat().st_mtime_ns for p in written}
    assert write_pages(root, index, releases, fits) == []
    assert {p: p.stat().st_mtime_ns for p in written} == stamps
    digest = index["pipelines"]["demo-pipe"]["versions"]["1.0.0"]["digest"]
    releases[digest]["metadata"]["description"] = "A new description."
    assert write_pages(root, index, releases, fits) == [root / "pipelines/demo-pipe/1.0.0.html"]
    assert not list(root.rglob("*.tmp*"))


@pytest.mark.parametrize("bad", ["../escape", "a/b", "a\\b", ".hidden"])
def test_refuses_a_name_or_version_that_leaves_its_folder(tmp_path, bad):
    root, index, releases, fits = _catalog(tmp_path)
    as_name = {"format": 1, "pipelines": {bad: index["pipelines"]["other-pipe"]}}
    entry = index["pipelines"]["other-pipe"]["versions"]["0.3.0"]
    as_version = {"format": 1, "pipelines": {"other-pipe": {"versions": {bad: entry}}}}
    for broken in (as_name, as_version):
        with pytest.raises(ValueError, match="cannot name a page"):
            write_pages(root, broken, releases, fits)
    assert not root.exists()


def test_pages_in_a_real_browser(catalog, tmp_path):
    root, *_ = catalog
    version = root / "pipelines/demo-pipe/1.10.0.html"
    sections = ["overview", "versions", "use", "parameters", "inputs", "outputs", "resources", "models", "references",
                "sites", "lint", "changelog", "files"]
    names = {}
    for page, expected in ((root / "index.html", ["pipelines", "use"]), (version, sections)):
        dom, links, console = rendered(page, tmp_path)
        assert re.findall(r'<section id="([^"]+)"', dom) == expected and console == []
        assert ">CATALOG</span>" not in dom and f">'{root.resolve()}'</span>" in dom  # filled in, quoted
        local = [Path(unquote(urlsplit(u).path)) for u in links if u.startswith("file:")]
        assert local and all(p.is_file() for p in local), local
        assert all(u.startswith(("file:", "https://example.org/")) for u in links), links
        names[page.name] = {p.relative_to(root.resolve()).as_posix() for p in local}
    assert names["index.html"] == {"index.html", "pipelines/demo-pipe/1.10.0.html", "pipelines/other-pipe/0.3.0.html"}
    # back to the index, the two sibling versions, and the page's own sections
    assert names["1.10.0.html"] == {"index.html", *(f"pipelines/demo-pipe/{v}.html" for v in DEMO_VERSIONS)}
    png = screenshot(version, tmp_path / "version.png")
    assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n" and png.stat().st_size > 10_000
