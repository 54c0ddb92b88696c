"""The catalog's static web pages: index.html and one page per pipeline version, regenerated after every publish."""

from __future__ import annotations

import json
import re
from html import escape
from pathlib import Path
from typing import Any
from urllib.parse import quote

from aisci.catalog.metadata import SEMVER, newest, semver_key
from aisci.fileio import atomic_output

_UTC = re.compile(r"^(\d{4}-\d{2}-\d{2})T(\d{2}:\d{2})(?::\d{2}(?:\.\d+)?)?Z$")

# One row of a parameters table: dotted key, type, default, description, required within its parent object.
Row = tuple[str, str, str, str, bool]

_STYLE = """
:root { color-scheme: light dark; --fg: #1d2330; --muted: #5b6475; --bg: #fff; --panel: #f4f6f9; --line: #d5dae3;
        --accent: #2f6db5; --ok: #1f7a4d; --bad: #b3261e; }
@media (prefers-color-scheme: dark) {
  :root { --fg: #e6e9ef; --muted: #a2aab8; --bg: #161a21; --panel: #1f252e; --line: #39414e; --accent: #6ea6e8;
          --ok: #5cc796; --bad: #f08a80; } }
body { font: 14px/1.45 system-ui, sans-serif; color: var(--fg); background: var(--bg); margin: 0 auto;
       max-width: 1100px; padding: 0 20px 40px; } a { color: var(--accent); }
h1 { font-size: 22px; margin: 20px 0 4px; } h3 { font-size: 15px; margin: 16px 0 6px; }
h2 { font-size: 18px; margin: 30px 0 8px; border-bottom: 1px solid var(--line); }
.note, .crumbs { color: var(--muted); margin: 4px 0; } .summary { font-size: 16px; margin: 4px 0 10px; }
nav { position: sticky; top: 0; background: var(--bg); padding: 6px 0; border-bottom: 1px solid var(--line); }
nav a { margin-right: 12px; text-decoration: none; }
table { border-collapse: collapse; margin: 6px 0 12px; font-variant-numeric: tabular-nums; }
th, td { border-bottom: 1px solid var(--line); padding: 3px 10px; text-align: left; vertical-align: top; }
th { background: var(--panel); } td.n { text-align: right; white-space: nowrap; } .skip { color: var(--muted); }
dl { display: grid; grid-template-columns: max-content 1fr; gap: 2px 16px; } dt { color: var(--muted); }
dd { margin: 0; } code, pre { font: 12.5px ui-monospace, monospace; } .hash { word-break: break-all; }
pre { background: var(--panel); padding: 8px 12px; border-radius: 6px; overflow-x: auto; }
.tag { font-size: 11px; border: 1px solid var(--line); border-radius: 8px; padding: 0 6px; margin-left: 6px;
       color: var(--muted); }
.ok { color: var(--ok); font-weight: 600; } .bad { color: var(--bad); font-weight: 600; }
td ul { margin: 0; padding-left: 16px; } li.current { font-weight: 600; }
"""

# Put the catalog's own address (its folder, or its URL when served) in place of CATALOG in the commands, quoted
# for a shell as shlex.quote would. The pages never hold the folder the publisher wrote to: publishers that mount
# the catalog at different paths would otherwise rewrite every page in turn.
_SCRIPT = """
document.querySelectorAll("[data-root]").forEach(el => {
  const u = new URL(el.dataset.root, document.baseURI);
  const t = (u.protocol === "file:" ? decodeURIComponent(u.pathname) : u.href).replace(/\\/$/, "");
  el.textContent = /[^\\w@%+=:,.\\/-]/.test(t) ? "'" + t.replace(/'/g, "'\\"'\\"'") + "'" : t;
});
"""


def _latest(versions: Any) -> str:
    """The version a listing leads with: the newest release, else (prereleases only) the newest prerelease."""
    return newest(list(versions))


def schema_rows(schema: dict[str, Any], prefix: str = "") -> list[Row]:
    """Every key of a JSON schema's ``properties``, depth first: array items as ``key[].sub``, maps ``key.<name>.sub``.

    Args:
        schema: a JSON schema of an object.
        prefix: the dotted path of ``schema`` itself ("" at the top).

    Returns:
        (dotted key, type, default, description, required) rows.
    """
    rows: list[Row] = []
    required = set(schema.get("required", []))
    for key, sub in schema.get("properties", {}).items():
        path = f"{prefix}{key}"
        default = _value(sub["default"]) if "default" in sub else ""
        rows.append((path, _type(sub), default, " ".join(str(sub.get("description", "")).split()), key in required))
        rows += schema_rows(sub, f"{path}.")
        if isinstance(sub.get("items"), dict):
            rows += schema_rows(sub["items"], f"{path}[].")
        if isinstance(sub.get("additionalProperties"), dict):
            rows += schema_rows(sub["additionalProperties"], f"{path}.<name>.")
    return rows


def _type(schema: dict[str, Any]) -> str:
    kinds = schema.get("type", "any")
    text = " or ".join(kinds) if isinstance(kinds, list) else str(kinds)
    if text == "array" and isinstance(schema.get("items"), dict) and "type" in schema["items"]:
        text += f" of {_type(schema['items'])}"
    if "enum" in schema:
        text += ": " + " | ".join(_value(v) for v in schema["enum"])
    bounds = [f"{sign} {schema[k]}" for k, sign in (("minimum", "≥"), ("exclusiveMinimum", ">"), ("maximum", "≤"),
                                                    ("exclusiveMaximum", "<")) if k in schema]
    return text + (f" ({', '.join(bounds)})" if bounds else "")


def _value(value: Any) -> str:
    return value if isinstance(value, str) and value else json.dumps(value, default=str)


def _words(value: Any) -> str:
    """Text from the data, escaped, its white space (YAML folding) made single spaces."""
    return escape(" ".join(str(value or "").split()))


def _check_part(part: str, what: str) -> str:
    """Refuse a name or version that would leave its folder when used in a path."""
    if not part or "/" in part or "\\" in part or part.startswith("."):
        raise ValueError(f"{what} {part!r} cannot name a page: it is empty, holds '/' or '\\' or starts with '.'")
    return part


def _table(columns: list[str], rows: list[list[str]]) -> str:
    """A table of already-escaped cells; a cell starting with '<td' is taken as the whole cell."""
    head = "".join(f"<th>{escape(c)}</th>" for c in columns)
    body = "".join("<tr>" + "".join(c if c.startswith("<td") else f"<td>{c}</td>" for c in row) + "</tr>"
                   for row in rows)
    return f"<table><thead><tr>{head}</tr></thead><tbody>{body}</tbody></table>"


def _items(texts: list[str]) -> str:
    return "<ul>" + "".join(f"<li>{escape(t)}</li>" for t in texts) + "</ul>" if texts else ""


def _bytes(n: int) -> str:
    """A byte count for people (512 B, 1.23 MB), the exact count in its title."""
    value, unit = float(n), "B"
    for unit in ("B", "kB", "MB", "GB", "TB"):
        if value < 999.5 or unit == "TB":  # 999,999 bytes: 1 MB, not 1e+03 kB
            break
        value /= 1000
    return f'<span title="{int(n)} bytes">' + (f"{n} B" if unit == "B" else f"{value:.3g} {unit}") + "</span>"


def _when(iso: str) -> str:
    m = _UTC.match(iso)
    return f'<time datetime="{escape(iso)}">{escape(f"{m[1]} {m[2]} UTC" if m else iso)}</time>'


def _root(rel: str) -> str:
    return f'<span data-root="{rel}">CATALOG</span>'


_WHERE = ('<p class="note">The catalog is a plain folder: give <code>--catalog</code> its path or, when a web server '
          "serves it, its URL, as your browser fills them in below (CATALOG where scripts are off).</p>")


def _page(title: str, head: str, parts: list[tuple[str, str, str]]) -> str:
    """A whole page: its head, a bar of links to its sections, the (id, title, HTML) sections."""
    nav = "".join(f'<a href="#{i}">{escape(t)}</a>' for i, t, _ in parts)
    body = "".join(f'<section id="{i}"><h2>{escape(t)}</h2>{html}</section>' for i, t, html in parts)
    return ('<!DOCTYPE html>\n<html lang="en"><head><meta charset="utf-8">'
            '<meta name="viewport" content="width=device-width, initial-scale=1"><link rel="icon" href="data:,">'
            f"<title>{escape(title)}</title><style>{_STYLE}</style></head><body>{head}<nav>{nav}</nav>{body}"
            f"<script>{_SCRIPT}</script></body></html>\n")


def _pipelines(index: dict[str, Any]) -> list[tuple[str, dict[str, dict[str, Any]]]]:
    """(name, versions) of every pipeline in the index, by name; names and versions checked for use in paths."""
    if index.get("format") != 1:
        raise ValueError(f"catalog index format {index.get('format')!r} is not 1: this engine cannot draw its pages")
    found = []
    for name, entry in sorted(index.get("pipelines", {}).items()):
        versions = entry.get("versions", {})
        for version in versions:
            _check_part(version, f"version of pipeline {name!r}")
        found.append((_check_part(name, "pipeline name"), versions))
    return found


def _release(releases: dict[str, dict[str, Any]], name: str, version: str, entry: dict[str, Any]) -> dict[str, Any]:
    release = releases.get(entry["digest"])
    if release is None or (release.get("name"), release.get("version")) != (name, version):
        raise ValueError(f"the index lists {name}@{version} as release {entry['digest']}, "
                         "but no release.json of that name and version was given")
    return release


def _index_page(index: dict[str, Any], releases: dict[str, dict[str, Any]]) -> str:
    """The catalog's front page: its pipelines and how to use it."""
    rows = []
    for name, versions in _pipelines(index):
        if not versions:
            continue
        top = _latest(versions)
        meta = _release(releases, name, top, versions[top])["metadata"]
        href = f"pipelines/{quote(name)}/{quote(top)}.html"
        rows.append([f'<a href="{href}">{escape(name)}</a>', escape(top), escape(versions[top].get("summary", "")),
                     f'<td class="n">{len(versions)}</td>', escape(", ".join(meta.get("resources", []))),
                     _when(max(v.get("published", "") for v in versions.values()))])
    listing = _table(["pipeline", "latest", "summary", "versions", "resources", "last published"], rows) if rows else \
        '<p class="note">No pipeline is published here yet.</p>'
    cat = _root("./")
    usage = (f"{_WHERE}<pre>aisci catalog list --catalog {cat}\n"
             f"aisci catalog install NAME@VERSION --catalog {cat}\n"
             f"aisci init DIR --pipeline NAME@VERSION --catalog {cat}</pre>")
    count = f"{len(rows)} pipeline{'' if len(rows) == 1 else 's'}"
    head = f'<h1>Pipeline catalog</h1><p class="note">{count}, in versioned releases published by platform teams.</p>'
    return _page("Pipeline catalog", head, [("pipelines", "Pipelines", listing), ("use", "How to use it", usage)])


def _version_page(name: str, version: str, versions: dict[str, dict[str, Any]], release: dict[str, Any],
                  fits: list[dict[str, Any]]) -> str:
    """The page of one release: what it is, needs and makes, where it can run, its lint, its files; ``versions``: the
    index's entries of every version of the pipeline."""
    meta, ref = release["metadata"], f"{name}@{version}"
    parts = [
        ("overview", "Overview", _overview(meta, release)),
        ("versions", "Versions", _versions(version, versions)),
        ("use", "Use it", _usage(ref)),
        ("parameters", "Parameters", _parameters(release.get("config_schema") or {})),
        ("inputs", "Inputs", _inputs(meta.get("inputs", []), release.get("samples_schema"))),
        ("outputs", "Outputs", _table(["path", "description"], [[f"<code>{escape(o['path'])}</code>",
                                                                  escape(o["description"])] for o in meta["outputs"]])),
        ("resources", "Resources", _resources(meta.get("resources", []))),
        ("models", "Models", _models(meta.get("models", []))),
        ("references", "References", _table(["name", "description", "when"], [
            [escape(r["name"]), escape(r["description"]), escape(r["when"])] for r in meta.get("references", [])])
         if meta.get("references") else '<p class="note">No reference data.</p>'),
        ("sites", "Where it can run", _sites(fits)),
        ("lint", "Lint", _lint(release.get("lint", {}))),
        ("changelog", "Changelog", _changelog(meta.get("changelog", {}))),
        ("files", "Files", _files(release.get("files", {}))),
    ]
    tags = "".join(f' <span class="tag">{t}</span>' for t, on in (("prerelease", "-" in version),
                                                                  ("latest", version == _latest(versions))) if on)
    head = (f'<p class="crumbs"><a href="../../index.html">Pipeline catalog</a> / {escape(name)}</p>'
            f"<h1>{escape(ref)}{tags}</h1><p class=\"summary\">{escape(meta.get('summary', ''))}</p>")
    return _page(ref, head, parts)


def _overview(meta: dict[str, Any], release: dict[str, Any]) -> str:
    paras = "".join(f"<p>{_words(p)}</p>" for p in re.split(r"\n\s*\n", meta.get("description") or "")
                    if p.strip())
    authors = "<br>".join(escape(a["name"]) + (f" &lt;{escape(a['email'])}&gt;" if a.get("email") else "")
                          + (f", {escape(a['affiliation'])}" if a.get("affiliation") else "") for a in meta["authors"])
    home = escape(meta.get("homepage") or "") or "—"
    if re.match(r"^https?://", home):  # an external link, never followed by the pages' tests
        home = f'<a href="{home}" rel="noopener noreferrer" target="_blank">{home}</a>'
    items = [("Authors", authors), ("Licence", escape(meta["licence"])), ("Homepage", home),
             ("Engine", f"<code>aisci {escape(meta['engine'])}</code>"), ("Published", _when(release["published"])),
             ("Published with", f"aisci {escape(release.get('publisher_engine', '?'))}"),
             ("Digest", f'<code class="hash">{escape(release["digest"])}</code>')]
    return paras + "<dl>" + "".join(f"<dt>{k}</dt><dd>{v}</dd>" for k, v in items) + "</dl>"


def _versions(current: str, versions: dict[str, dict[str, Any]]) -> str:
    items = []
    for v in sorted(versions, key=semver_key, reverse=True):  # newest first
        pre = ' <span class="tag">prerelease</span>' if "-" in v else ""
        when = _when(versions[v].get("published", ""))
        if v == current:
            items.append(f'<li class="current" aria-current="page">{escape(v)} (this page){pre} — {when}</li>')
        else:
            items.append(f'<li><a href="{quote(v)}.html">{escape(v)}</a>{pre} — {when}</li>')
    return f"<ul>{''.join(items)}</ul>"


def _usage(ref: str) -> str:
    cat, ref = _root("../../"), escape(ref)
    return (f"{_WHERE}<pre>aisci catalog install {ref} --catalog {cat}\naisci catalog test {ref} --catalog {cat}\n"
            f"aisci init DIR --pipeline {ref} --catalog {cat}</pre>"
            '<p class="note">install copies the release and checks every file\'s SHA-256; test runs its test profile '
            "in a scratch folder from the installed copy; init makes a project folder with its default config.</p>")


def _parameters(schema: dict[str, Any]) -> str:
    rows = [[f"<code>{escape(k)}</code>" + (' <span class="tag">required</span>' if req else ""), escape(t),
             f"<code>{escape(d)}</code>" if d else "", escape(text)] for k, t, d, text, req in schema_rows(schema)]
    note = f'<p class="note">{_words(schema.get("description"))}</p>'
    return note + (_table(["key", "type", "default", "description"], rows) if rows else
                   '<p class="note">The config has no settings.</p>')


def _inputs(inputs: list[dict[str, Any]], samples: dict[str, Any] | None) -> str:
    html = _table(["input", "description"], [[escape(i["name"]), escape(i["description"])] for i in inputs]) \
        if inputs else '<p class="note">No inputs besides the config.</p>'
    if not samples:
        return html
    required = set(samples.get("required", []))
    rows = [[f"<code>{escape(k)}</code>", escape(_type(s)), "yes" if k in required else "",
             _words(s.get("description"))] for k, s in samples.get("properties", {}).items()]
    choices = [" and ".join(c["required"]) for c in samples.get("oneOf", []) if c.get("required")]
    either = f'<p class="note">Each row gives exactly one of: {escape("; ".join(choices))}.</p>' if choices else ""
    return (html + "<h3>Sample sheet columns</h3>"
            f'<p class="note">{_words(samples.get("description"))}</p>'
            + either + _table(["column", "type", "required", "description"], rows))


def _resources(classes: list[str]) -> str:
    what = {"cpu": "CPU nodes", "gpu": "a GPU: some rules ask for resources gpu=1"}
    return "<ul>" + "".join(f"<li><b>{escape(c)}</b>: {escape(what.get(c, ''))}</li>" for c in classes) + "</ul>"


def _models(models: list[dict[str, Any]]) -> str:
    if not models:
        return '<p class="note">No model weights.</p>'
    rows = []
    for m in models:
        files = "".join(f'<li><code>{escape(p)}</code> {_bytes(f["size"])} '
                        f'<code title="{escape(f["sha256"])}">{escape(f["sha256"][:12])}</code></li>'
                        for p, f in sorted(m["files"].items()))
        rows.append([escape(m["name"]), escape(m["kind"]), escape(m["when"]), escape(m.get("source", "")),
                     escape(m.get("licence", "")), f"<ul>{files}</ul>"])
    return _table(["model", "kind", "when", "source", "licence", "files (size, SHA-256)"], rows)


def _sites(fits: list[dict[str, Any]]) -> str:
    if not fits:
        return ('<p class="note">No site is registered in this catalog. A platform team registers its site when it '
                "publishes: <code>aisci catalog publish ... --site site.yaml</code>.</p>")
    can = {True: '<td class="ok">yes</td>', False: '<td class="bad">no</td>'}
    rows = [[escape(f["site"]), escape(f["centre"]), can[bool(f["ok"])], _items(f.get("met", [])),
             _items(f.get("missing", []))] for f in fits]
    ok = sum(bool(f["ok"]) for f in fits)
    return (f'<p class="note">Runs at {ok} of {len(fits)} centres of the sites registered here.</p>'
            + _table(["site", "centre", "can run", "met", "missing"], rows))


def _lint(lint: dict[str, Any]) -> str:
    checks = lint.get("checks", [])
    status = {"pass": "ok", "fail": "bad", "skip": "skip"}
    rows = [[f"<code>{escape(c['id'])}</code>", escape(c["title"]),
             f'<td class="{status.get(c["status"], "")}">{escape(c["status"])}</td>',
             f'<td class="n">{int(c.get("findings", 0))}</td>'] for c in checks]
    return (f'<p>{int(lint.get("passed", 0))} of {len(checks)} checks passed, {int(lint.get("failed", 0))} failed.</p>'
            + _table(["check", "title", "status", "findings"], rows))


def _changelog(changelog: dict[str, list[str]]) -> str:
    def key(v: str) -> tuple[int, Any]:
        return (1, semver_key(v)) if SEMVER.fullmatch(v) else (0, v)
    return "".join(f"<h3>{escape(v)}</h3>{_items(changelog[v])}" for v in sorted(changelog, key=key, reverse=True))


def _files(files: dict[str, dict[str, Any]]) -> str:
    rows = [[f"<code>{escape(p)}</code>", f'<td class="n">{_bytes(f["size"])}</td>',
             f'<code class="hash">{escape(f["sha256"])}</code>'] for p, f in sorted(files.items())]
    total = sum(int(f["size"]) for f in files.values())
    return (f'<p class="note">{len(files)} files, {total:,} bytes; install checks each SHA-256.</p>'
            + _table(["path", "size", "SHA-256"], rows))


def write_pages(catalog: Path, index: dict, releases: dict[str, dict], fits: dict[str, list[dict]]) -> list[Path]:
    """Regenerate every page of the catalog; return the pages written.

    A page whose text is unchanged is left alone, so that publishers running one after another do not churn files;
    each page written is replaced atomically.

    Args:
        catalog: the catalog's folder.
        index: the parsed ``<catalog>/index.json``.
        releases: the parsed ``releases/<digest>/release.json`` of every release, by digest.
        fits: where each release can run (one dict per centre of each registered site), by digest.

    Returns:
        The pages written (index.html and pipelines/<name>/<version>.html whose text changed).

    Raises:
        ValueError: a name or version unfit for a path, an index of another format, or a release missing.
    """
    catalog = Path(catalog)
    pages = {catalog / "index.html": _index_page(index, releases)}
    for name, versions in _pipelines(index):
        for version, entry in versions.items():
            release = _release(releases, name, version, entry)
            pages[catalog / "pipelines" / name / f"{version}.html"] = _version_page(
                name, version, versions, release, fits.get(entry["digest"], []))
    written = []
    for path, text in pages.items():
        data = text.encode("utf-8")
        if path.is_file() and path.read_bytes() == data:
            continue
        with atomic_output(path) as tmp:
            tmp.write_bytes(data)
        written.append(path)
    return written
