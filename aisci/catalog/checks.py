"""The checks of `aisci catalog lint` on a pipeline's metadata, schemas and configs, and the registry every check joins."""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from aisci.catalog.metadata import SEMVER, Pipeline, key_lines, pipeline_files, schema_file, semver_key
from aisci.catalog.smk import Rule
from aisci.errors import InputError


@dataclass(frozen=True)
class Finding:
    """One problem: the check, where (file relative to the pipeline's root, line), what, and how to fix it."""

    check: str
    file: str
    line: int
    message: str
    fix: str

    def __str__(self) -> str:
        return f"{self.file}:{self.line}: [{self.check}] {self.message}\n    fix: {self.fix}"


@dataclass
class Context:
    """What the checks read: the pipeline, its rules, and the schemas and files it names."""

    pipeline: Pipeline
    rules: list[Rule] = field(default_factory=list)
    files: dict[str, Path] = field(default_factory=dict)
    fix: bool = False
    fixed: list[str] = field(default_factory=list)

    def rel(self, path: Path) -> str:
        return self.pipeline.relative(path)

    def where(self, key: str) -> tuple[str, int]:
        return self.pipeline.relative(self.pipeline.path), self.pipeline.line(key)

    def schemas(self) -> list[tuple[str, Path, dict[str, Any]]]:
        """(metadata key, file, schema) of the config and sample-sheet schemas the pipeline names and has."""
        out = []
        for key in ("config_schema", "samples_schema"):
            path = schema_file(self.pipeline, key)
            if path is not None and path.is_file():
                out.append((key, path, yaml.safe_load(path.read_text())))
        return out


Check = Callable[[Context], list[Finding]]
CHECKS: dict[str, tuple[str, Check]] = {}
FIXABLE = {"meta_name", "text_whitespace", "schema_closed"}


def check(check_id: str, title: str) -> Callable[[Check], Check]:
    """Register a check under its id and one-line title (the order of registration is the order of the report)."""
    def register(func: Check) -> Check:
        CHECKS[check_id] = (title, func)
        return func
    return register


def finding(ctx: Context, check_id: str, key: str, message: str, fix: str) -> Finding:
    file, line = ctx.where(key)
    return Finding(check_id, file, line, message, fix)


# --- metadata ------------------------------------------------------------------------------------------------------
@check("meta_name", "the name in pipeline.yaml is the pipeline folder's name")
def _meta_name(ctx: Context) -> list[Finding]:
    folder = ctx.pipeline.folder.name
    if ctx.pipeline.name == folder:
        return []
    if ctx.fix:
        path = ctx.pipeline.path
        path.write_text(re.sub(r"^name:.*$", f"name: {folder}", path.read_text(), count=1, flags=re.M))
        ctx.fixed.append(f"{ctx.rel(path)}: name set to {folder}")
        return []
    return [finding(ctx, "meta_name", "name", f"name {ctx.pipeline.name!r} differs from its folder {folder!r}",
                  f"set `name: {folder}` (or --fix)")]


@check("changelog_entry", "the version has a changelog entry")
def _changelog_entry(ctx: Context) -> list[Finding]:
    version = ctx.pipeline.version
    if ctx.pipeline.meta["changelog"].get(version):
        return []
    return [finding(ctx, "changelog_entry", "changelog", f"no changelog entry for version {version}",
                  f"add `{version}: [what changed]` under changelog")]


@check("changelog_versions", "changelog versions are semantic versions, the current one the newest")
def _changelog_versions(ctx: Context) -> list[Finding]:
    out = []
    versions = [str(v) for v in ctx.pipeline.meta["changelog"]]
    good = [v for v in versions if SEMVER.fullmatch(v)]
    for v in versions:
        if not SEMVER.fullmatch(v):
            out.append(finding(ctx, "changelog_versions", f"changelog.{v}", f"changelog version {v!r} is not semver",
                             "write MAJOR.MINOR.PATCH, quoted if YAML would read it as a number"))
    if good and max(good, key=semver_key) != ctx.pipeline.version:
        out.append(finding(ctx, "changelog_versions", "version",
                         f"version {ctx.pipeline.version} is older than changelog entry {max(good, key=semver_key)}",
                         "raise `version` to the newest changelog entry"))
    return out


SPDX = {"MIT", "Apache-2.0", "BSD-2-Clause", "BSD-3-Clause", "GPL-2.0-only", "GPL-2.0-or-later", "GPL-3.0-only",
        "GPL-3.0-or-later", "LGPL-2.1-only", "LGPL-2.1-or-later", "LGPL-3.0-only", "LGPL-3.0-or-later", "AGPL-3.0-only",
        "AGPL-3.0-or-later", "MPL-2.0", "ISC", "CC0-1.0", "CC-BY-4.0", "Unlicense", "EPL-2.0", "Artistic-2.0"}


@check("licence_spdx", "the licence is an SPDX identifier of an open licence")
def _licence(ctx: Context) -> list[Finding]:
    licence = ctx.pipeline.meta["licence"]
    if licence in SPDX:
        return []
    return [finding(ctx, "licence_spdx", "licence", f"licence {licence!r} is not one of the known SPDX identifiers",
                  f"use one of {', '.join(sorted(SPDX))}")]


@check("engine_range", "this engine's version is in the pipeline's engine range")
def _engine(ctx: Context) -> list[Finding]:
    from aisci.catalog.release import check_engine

    try:
        check_engine(ctx.pipeline.meta["engine"], ctx.pipeline.name)
    except InputError as exc:
        return [finding(ctx, "engine_range", "engine", str(exc), "widen `engine`, or lint with the engine it names")]
    return []


@check("files_present", "every file the pipeline names exists under its root")
def _files(ctx: Context) -> list[Finding]:
    try:
        ctx.files = pipeline_files(ctx.pipeline)
    except InputError as exc:
        return [Finding("files_present", line.split(":")[0], 1, line, "add the file or fix the path that names it")
                for line in str(exc).split("\n")]
    return []


@check("text_whitespace", "text files end with a newline and have no trailing spaces or tabs in YAML")
def _whitespace(ctx: Context) -> list[Finding]:
    out = []
    for rel, path in ctx.files.items():
        text = path.read_text()
        bad = [n for n, line in enumerate(text.split("\n"), 1) if line != line.rstrip()
               or (path.suffix in (".yaml", ".smk") and "\t" in line and not line.lstrip().startswith("#"))]
        if text and not text.endswith("\n"):
            bad.append(text.count("\n") + 1)
        if not bad:
            continue
        if ctx.fix:
            fixed = "\n".join(line.rstrip() for line in text.split("\n")).rstrip("\n") + "\n"
            path.write_text(fixed.expandtabs(2) if path.suffix == ".yaml" else fixed)
            ctx.fixed.append(f"{rel}: whitespace of {len(bad)} lines")
            continue
        out += [Finding("text_whitespace", rel, n, "trailing whitespace, a tab, or no final newline", "strip it (or --fix)")
                for n in bad[:5]]
    return out


# --- schemas -------------------------------------------------------------------------------------------------------
def _walk(schema: dict[str, Any], prefix: str = "") -> list[tuple[str, dict[str, Any]]]:
    """(dotted key, subschema) of every property, depth first, array items included."""
    out = []
    for key, sub in schema.get("properties", {}).items():
        path = f"{prefix}{key}"
        out.append((path, sub))
        out += _walk(sub, f"{path}.")
        items = sub.get("items")
        if isinstance(items, dict):
            out += _walk(items, f"{path}[].")
        extra = sub.get("additionalProperties")
        if isinstance(extra, dict):
            out += _walk(extra, f"{path}.*.")
    return out


def _schema_line(path: Path, key: str) -> int:
    """Line of a schema key (its last part, first match after its parents') in the schema file."""
    line, lines = 0, path.read_text().split("\n")
    for part in key.replace("[]", "").replace(".*", "").split("."):
        for n in range(line, len(lines)):
            if re.match(rf"^\s*{re.escape(part)}:", lines[n]):
                line = n
                break
    return line + 1


@check("schema_descriptions", "every key of the config and sample-sheet schemas has a description")
def _descriptions(ctx: Context) -> list[Finding]:
    return [Finding("schema_descriptions", ctx.rel(path), _schema_line(path, key), f"{key}: no description",
                    "add `description:` saying what the key does, its unit and an example")
            for _, path, schema in ctx.schemas() for key, sub in _walk(schema) if not sub.get("description")]


@check("schema_types", "every key of the schemas has a type")
def _types(ctx: Context) -> list[Finding]:
    return [Finding("schema_types", ctx.rel(path), _schema_line(path, key), f"{key}: no type",
                    "add `type:` (string, integer, number, boolean, array, object, or a list of them)")
            for _, path, schema in ctx.schemas() for key, sub in _walk(schema)
            if not any(k in sub for k in ("type", "enum", "const", "oneOf", "anyOf"))]


def _objects(schema: dict[str, Any], prefix: str = "") -> list[tuple[str, dict[str, Any]]]:
    found = [(prefix or "(top level)", schema)] if schema.get("type") == "object" or "properties" in schema else []
    return found + [(key, sub) for key, sub in _walk(schema, "")
                    if (sub.get("type") == "object" or (isinstance(sub.get("type"), list) and "object" in sub["type"]))]


@check("schema_closed", "every object of the schemas is closed (additionalProperties: false or a schema)")
def _closed(ctx: Context) -> list[Finding]:
    out = []
    for _, path, schema in ctx.schemas():
        open_keys = [key for key, sub in _objects(schema)
                     if sub.get("additionalProperties", True) is True and "patternProperties" not in sub]
        if open_keys and ctx.fix:
            ctx.fixed.append(f"{ctx.rel(path)}: closed {_close(path, open_keys)} of {len(open_keys)} open objects")
            schema = yaml.safe_load(path.read_text())
            open_keys = [key for key, sub in _objects(schema)
                         if sub.get("additionalProperties", True) is True and "patternProperties" not in sub]
        out += [Finding("schema_closed", ctx.rel(path), _schema_line(path, key) if key != "(top level)" else 1,
                        f"{key}: open object: a misspelt key would pass silently",
                        "add `additionalProperties: false` (or --fix)") for key in open_keys]
    return out


def _close(path: Path, keys: list[str]) -> int:
    """Insert ``additionalProperties: false`` after the ``type: object`` line of each open object, looking only inside
    the key's own block (mechanical fix); return how many were closed (a block it cannot read is left as it is)."""
    lines = path.read_text().split("\n")
    inserted = 0
    object_type = re.compile(r"^(\s*)type:\s*(object|\[[^\]]*\bobject\b[^\]]*\])\s*$")
    for key in sorted(keys, key=lambda k: -_schema_line(path, k) if k != "(top level)" else 0):
        start = 0 if key == "(top level)" else _schema_line(path, key) - 1
        indent = -1 if key == "(top level)" else len(lines[start]) - len(lines[start].lstrip())
        for n in range(start + (key != "(top level)"), len(lines)):
            line = lines[n]
            if line.strip() and not line.lstrip().startswith("#") and len(line) - len(line.lstrip()) <= indent:
                break  # left the key's block
            m = object_type.match(line)
            if m and len(m.group(1)) == indent + 2 or (m and indent < 0 and not m.group(1)):
                lines.insert(n + 1, f"{m.group(1)}additionalProperties: false")
                inserted += 1
                break
    path.write_text("\n".join(lines))
    return inserted


@check("schema_defaults", "every default in the schemas is valid against its own key")
def _defaults(ctx: Context) -> list[Finding]:
    from jsonschema import Draft202012Validator

    out = []
    for _, path, schema in ctx.schemas():
        for key, sub in _walk(schema):
            if "default" in sub:
                rest = {k: v for k, v in sub.items() if k != "default"}
                errors = list(Draft202012Validator(rest).iter_errors(sub["default"]))
                if errors:
                    out.append(Finding("schema_defaults", ctx.rel(path), _schema_line(path, key),
                                       f"{key}: default {sub['default']!r}: {errors[0].message}",
                                       "make the default satisfy the key's own type and bounds"))
    return out


def _config_findings(ctx: Context, check_id: str, meta_key: str) -> list[Finding]:
    from jsonschema import Draft202012Validator

    found = [s for k, _, s in ctx.schemas() if k == "config_schema"]
    path = ctx.pipeline.folder / ctx.pipeline.meta[meta_key] if meta_key == "default_config" else \
        ctx.pipeline.folder / ctx.pipeline.meta["test"]["config"]
    if not found or not path.is_file():
        return []
    text = path.read_text()
    data = yaml.safe_load(text) or {}
    lines = key_lines(text)
    out = []
    for error in Draft202012Validator(found[0]).iter_errors(data):
        if error.validator == "required":
            continue  # a default config leaves the user's own paths (reference, samples) to set
        key = ".".join(str(p) for p in error.absolute_path)
        if error.validator == "additionalProperties" and isinstance(error.instance, dict):
            extra = sorted(set(error.instance) - set(error.schema.get("properties", {})))
            key = ".".join([key, str(extra[0])] if key else [str(extra[0])]) if extra else key
        out.append(Finding(check_id, ctx.rel(path), lines.get(key, 1), f"{key or '(top level)'}: {error.message}",
                           f"make {path.name} valid against the {found[0].get('title', 'config')} schema"))
    return out


@check("default_config_valid", "the default config's keys and values are valid against the config schema")
def _default_config(ctx: Context) -> list[Finding]:
    return _config_findings(ctx, "default_config_valid", "default_config")


@check("test_config_valid", "the test config is valid against the config schema")
def _test_config(ctx: Context) -> list[Finding]:
    return _config_findings(ctx, "test_config_valid", "test")
