"""A pipeline's metadata (`workflows/<name>/pipeline.yaml`): read, validate, locate its lines, list the files it is made of."""

from __future__ import annotations

import os
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

from aisci import yamlfile
from aisci.errors import InputError
from aisci.schema import apply_defaults, describe_error, load_schema, schema_validator

PIPELINE_FILE = "pipeline.yaml"
# semver 2.0.0 without build metadata (the schema's pattern, and the ordering below)
# (ASCII digits only, and matched whole with fullmatch: `$` alone would let a trailing newline through)
SEMVER = re.compile(r"(0|[1-9][0-9]*)\.(0|[1-9][0-9]*)\.(0|[1-9][0-9]*)"
                    r"(?:-((?:0|[1-9][0-9]*|[0-9]*[a-zA-Z-][0-9a-zA-Z-]*)"
                    r"(?:\.(?:0|[1-9][0-9]*|[0-9]*[a-zA-Z-][0-9a-zA-Z-]*))*))?", re.ASCII)
NAME = re.compile(r"[a-z][a-z0-9_-]{0,63}", re.ASCII)
# `include: "../../rules/x.smk"` in a Snakefile; `conda: "../envs/x.yaml"` in a rule, the path on the same line or the next
_INCLUDE = re.compile(r"""^\s*include:\s*["']([^"']+)["']""", re.M)
_CONDA = re.compile(r"""^\s+conda:[ \t]*\n?\s*["']([^"']+)["']""", re.M)


def semver_key(version: str) -> tuple[Any, ...]:
    """Sort key of a semantic version: 1.10.0 > 1.2.0 > 1.2.0-rc.1 > 1.2.0-alpha (semver.org §11).

    Raises:
        InputError: not a semantic version.
    """
    m = SEMVER.fullmatch(version) if isinstance(version, str) else None
    if m is None:
        raise InputError(f"version {version!r} is not a semantic version (MAJOR.MINOR.PATCH[-PRERELEASE])")
    major, minor, patch, pre = m.groups()
    if pre is None:
        return (int(major), int(minor), int(patch), 1, ())
    parts = tuple((0, int(p), "") if p.isdigit() else (1, 0, p) for p in pre.split("."))
    return (int(major), int(minor), int(patch), 0, parts)


def parse_ref(ref: str) -> tuple[str, str | None]:
    """``NAME`` or ``NAME@VERSION`` as (name, version or None), both checked to be path-safe.

    Raises:
        InputError: a name or version that is not one (``../x``, ``a/b``, ``1.0``).
    """
    name, _, version = ref.partition("@")
    if not NAME.fullmatch(name):
        raise InputError(f"{ref!r}: pipeline name {name!r} must match ^{NAME.pattern}$")
    if version:
        semver_key(version)
        return name, version
    if "@" in ref:
        raise InputError(f"{ref!r}: no version after '@'")
    return name, None


def newest(versions: list[str]) -> str:
    """The newest release among ``versions``; the newest prerelease only when there is no release."""
    stable = [v for v in versions if "-" not in v]
    return max(stable or versions, key=semver_key)


def key_lines(text: str) -> dict[str, int]:
    """1-based line of every key of a YAML mapping document, by dotted path (``test.config``, ``outputs.0.path``)."""
    lines: dict[str, int] = {}

    def walk(node: Any, path: str) -> None:
        if isinstance(node, yaml.MappingNode):
            for key, value in node.value:
                sub = f"{path}.{key.value}" if path else str(key.value)
                lines[sub] = key.start_mark.line + 1
                walk(value, sub)
        elif isinstance(node, yaml.SequenceNode):
            for i, item in enumerate(node.value):
                sub = f"{path}.{i}" if path else str(i)
                lines[sub] = item.start_mark.line + 1
                walk(item, sub)

    try:
        walk(yaml.compose(text, Loader=yaml.SafeLoader), "")
    except yaml.YAMLError:
        pass
    return lines


@dataclass(frozen=True)
class Pipeline:
    """A pipeline's folder and its validated metadata (defaults filled in)."""

    folder: Path  # workflows/<name>
    meta: dict[str, Any]
    lines: dict[str, int]  # dotted key -> line of pipeline.yaml

    @property
    def name(self) -> str:
        return str(self.meta["name"])

    @property
    def version(self) -> str:
        return str(self.meta["version"])

    @property
    def root(self) -> Path:
        """The folder holding workflows/, rules/ and envs/ (a checkout, the installed package, a release)."""
        return self.folder.parent.parent

    @property
    def path(self) -> Path:
        """The pipeline.yaml."""
        return self.folder / PIPELINE_FILE

    def line(self, key: str) -> int:
        """Line of a dotted key in pipeline.yaml (its parent's, or 1, when the key is absent)."""
        while key:
            if key in self.lines:
                return self.lines[key]
            key = key.rpartition(".")[0]
        return 1

    def where(self, key: str) -> str:
        """``workflows/x/pipeline.yaml line N`` of a key, relative to the root."""
        return f"{self.relative(self.path)} line {self.line(key)}"

    def relative(self, path: Path) -> str:
        """A path of the pipeline relative to its root (as a release stores it)."""
        try:
            return path.resolve().relative_to(self.root.resolve()).as_posix()
        except ValueError:
            return str(path)


def read_pipeline(folder: Path) -> Pipeline:
    """Read and validate ``folder/pipeline.yaml``.

    Raises:
        InputError: unreadable, not YAML, or not valid against aisci/schemas/pipeline.schema.yaml; one line per
            problem, each naming the file, line and key.
    """
    folder = Path(folder)
    path = folder / PIPELINE_FILE
    if not path.is_file():
        raise InputError(f"{path}: no pipeline metadata (every pipeline folder needs a {PIPELINE_FILE})")
    text = path.read_text(encoding="utf-8")
    return Pipeline(folder, metadata_of(text, str(path)), key_lines(text))


def metadata_of(text: str, path: str) -> dict[str, Any]:
    """A pipeline.yaml's text, validated, with its defaults filled (what `Pipeline.meta` and release.json hold).

    Raises:
        InputError: as `read_pipeline`, naming ``path``.
    """
    data = yamlfile.loads(text, path)
    lines = key_lines(text)
    if not isinstance(data, dict):
        raise InputError(f"{path} line 1: must be a mapping of keys to values")
    problems = []
    for error in sorted(schema_validator("pipeline").iter_errors(data), key=lambda e: [str(p) for p in e.path]):
        key = ".".join(str(p) for p in error.absolute_path)
        line = lines.get(key, 1) if key else 1
        if error.validator == "additionalProperties" and isinstance(error.instance, dict):
            allowed = error.schema.get("properties", {})
            for extra in sorted(set(error.instance) - set(allowed)):
                sub = f"{key}.{extra}" if key else str(extra)
                problems.append(f"{path} line {lines.get(sub, line)}: unknown key '{sub}' (allowed: {', '.join(allowed)})")
            continue
        if key == "version" and error.validator == "pattern":
            problems.append(f"{path} line {line}: version {error.instance!r} is not a semantic version "
                            "(MAJOR.MINOR.PATCH or MAJOR.MINOR.PATCH-PRERELEASE, e.g. 1.2.0 or 2.0.0-rc.1)")
            continue
        for message in describe_error(error, "x").split("\n"):
            problems.append(f"{path} line {line}: {message.removeprefix('x: ')}")
    if problems:
        raise InputError("\n".join(dict.fromkeys(problems)))
    apply_defaults(load_schema("pipeline"), data)
    apply_defaults(load_schema("pipeline")["properties"]["test"], data["test"])
    return data


def schema_file(pipeline: Pipeline, key: str) -> Path | None:
    """The schema file the metadata names under ``key`` (config_schema, samples_schema): the pipeline's own
    ``*.schema.yaml``, or the engine's packaged one of that name; None when the key is null."""
    from importlib import resources

    name = pipeline.meta.get(key)
    if name is None:
        return None
    if name.endswith(".schema.yaml"):
        return pipeline.folder / name
    return Path(str(resources.files("aisci.schemas").joinpath(f"{name}.schema.yaml")))


def load_schema_file(pipeline: Pipeline, key: str) -> dict[str, Any] | None:
    """The parsed schema of `schema_file`, or None when the key is null.

    Raises:
        InputError: the file is missing or not a YAML mapping, naming pipeline.yaml's line.
    """
    path = schema_file(pipeline, key)
    if path is None:
        return None
    if not str(pipeline.meta[key]).endswith(".schema.yaml") and path.is_file():
        return load_schema(pipeline.meta[key])  # the engine's own, parsed once per process
    if not path.is_file():
        raise InputError(f"{pipeline.where(key)}: schema {pipeline.meta[key]!r} not found ({path})")
    data = yamlfile.load(path)
    if not isinstance(data, dict):
        raise InputError(f"{path}: not a JSON schema (a YAML mapping)")
    return data


def snakefile_includes(snakefile: Path) -> list[Path]:
    """The files a Snakefile includes (``include: "..."``), resolved against its folder, in order."""
    return [(snakefile.parent / rel).resolve() for rel in _INCLUDE.findall(snakefile.read_text())]


def rule_envs(smk: Path) -> list[Path]:
    """The conda env files a rule module names (``conda: "../envs/x.yaml"``), resolved, once each."""
    return list(dict.fromkeys((smk.parent / rel).resolve() for rel in _CONDA.findall(smk.read_text())))


def pipeline_files(pipeline: Pipeline) -> dict[str, Path]:
    """Every file a release of the pipeline carries, by its path relative to the root.

    The Snakefile, pipeline.yaml, the default and test configs, the pipeline's own schemas, every included rule
    module and every conda env those name. The engine's schemas a pipeline names are recorded in release.json.

    Raises:
        InputError: a file the pipeline names is missing, or lies outside the root.
    """
    folder = pipeline.folder
    snakefile = folder / "Snakefile"
    wanted = [pipeline.path, snakefile, folder / pipeline.meta["default_config"], folder / pipeline.meta["test"]["config"]]
    wanted += [folder / pipeline.meta[k] for k in ("config_schema", "samples_schema")
               if str(pipeline.meta.get(k)).endswith(".schema.yaml")]  # a pipeline's own schemas travel with it
    missing = [p for p in wanted if not p.is_file()]
    if not missing:
        rules = snakefile_includes(snakefile)
        wanted += rules
        missing = [p for p in rules if not p.is_file()]
        wanted += [env for smk in rules if smk.is_file() for env in rule_envs(smk)]
        missing += [p for p in wanted if not p.is_file()]
    if missing:
        raise InputError("\n".join(f"{pipeline.relative(p)}: named by the pipeline, missing" for p in missing))
    files: dict[str, Path] = {}
    root = Path(os.path.normpath(pipeline.root.absolute()))
    for path in wanted:
        # stored under the path the pipeline names (a symlink keeps its own name), read through the link
        named = Path(os.path.normpath(path.absolute()))
        if not named.is_relative_to(root) or not path.resolve().is_relative_to(root.resolve()):
            raise InputError(f"{path}: outside the pipeline's root {root} (a release carries only files under it)")
        files[named.relative_to(root).as_posix()] = path.resolve()
    return dict(sorted(files.items()))
