"""The checks of `aisci catalog lint` on a pipeline's rules, conda envs, outputs and models."""

from __future__ import annotations

import re
from collections.abc import Callable
from pathlib import Path

import yaml

from aisci.catalog.checks import Check, Context, Finding, check, finding
from aisci.catalog.smk import Rule


# --- rules ---------------------------------------------------------------------------------------------------------
def _rule_check(check_id: str, wants: Callable[[Rule], bool], bad: Callable[[Rule], bool], message: str, fix: str) -> Check:
    def run(ctx: Context) -> list[Finding]:
        return [Finding(check_id, ctx.rel(r.file), r.line, f"rule {r.name}: {message}", fix.format(rule=r.name))
                for r in ctx.rules if wants(r) and bad(r)]
    return run


def _job(rule: Rule) -> bool:
    """A rule that runs a command as a job (not a target rule)."""
    return rule.runs_command


check("rule_log", "every rule that runs a command writes a log")(_rule_check(
    "rule_log", _job, lambda r: not r.has("log"), "no log:", 'add `log: "logs/{rule}/{{wildcards}}.log"` and > {{log}} 2>&1'))
check("rule_benchmark", "every rule that runs a command as a job records a benchmark")(_rule_check(
    "rule_benchmark", lambda r: _job(r) and not r.local, lambda r: not r.has("benchmark"), "no benchmark:",
    'add `benchmark: "benchmarks/{rule}/{{wildcards}}.tsv"`'))
check("rule_threads", "every job rule declares its threads")(_rule_check(
    "rule_threads", lambda r: _job(r) and not r.local, lambda r: not r.has("threads"), "no threads:",
    "add `threads: N` (the profile maps them to cpus_per_task)"))
check("rule_memory_runtime", "every job rule declares memory and runtime")(_rule_check(
    "rule_memory_runtime", lambda r: _job(r) and not r.local,
    lambda r: not (re.search(r"\bmem_mb\s*=", r.text("resources")) and re.search(r"\bruntime\s*=", r.text("resources"))),
    "resources lack mem_mb and runtime", "add `resources: mem_mb=..., runtime=...` (aisci.resources helpers)"))
check("rule_conda", "every rule with a shell command has a conda env")(_rule_check(
    "rule_conda", lambda r: r.has("shell"), lambda r: not r.has("conda"), "no conda:",
    'add `conda: "../envs/<tool>.yaml"` with pinned versions'))


@check("rule_names", "rule names are snake_case and unique")
def _rule_names(ctx: Context) -> list[Finding]:
    out, seen = [], set()
    for r in ctx.rules:
        if not re.match(r"^[a-z][a-z0-9]*(_[a-z0-9]+)*$", r.name):
            out.append(Finding("rule_names", ctx.rel(r.file), r.line, f"rule {r.name}: not snake_case",
                               "rename it verb_object in snake_case"))
        if r.name in seen:
            out.append(Finding("rule_names", ctx.rel(r.file), r.line, f"rule {r.name}: defined twice", "rename one"))
        seen.add(r.name)
    return out


@check("resource_classes", "the declared resource classes are the ones the rules use")
def _classes(ctx: Context) -> list[Finding]:
    jobs = [r for r in ctx.rules if _job(r) and not r.local]
    used = {"gpu" for r in jobs if r.gpu} | {"cpu" for r in jobs if not r.gpu}
    declared = set(ctx.pipeline.meta["resources"])
    if used == declared:
        return []
    return [finding(ctx, "resource_classes", "resources",
                  f"rules use {sorted(used)}, pipeline.yaml declares {sorted(declared)}",
                  f"set `resources: [{', '.join(sorted(used))}]`")]


_PIN = re.compile(r"^[A-Za-z0-9_.\-\[\]]+\s*(==|=)\s*[0-9][^\s,*]*$")


@check("env_pinned", "every conda env pins the version of each dependency")
def _pinned(ctx: Context) -> list[Finding]:
    out = []
    for rel, path in ctx.files.items():
        if not rel.startswith("envs/"):
            continue
        lines = path.read_text().split("\n")
        start = next((n for n, line in enumerate(lines) if line.startswith("dependencies:")), len(lines))
        for n, line in enumerate(lines[start + 1:], start + 2):
            m = re.match(r"^\s*-\s+([^#\s][^#]*?)\s*(#.*)?$", line)
            # `- pip` is the installer of the env's pip: section (whose packages are pinned), not a dependency
            if not m or m.group(1).endswith(":") or m.group(1) == "pip":
                continue
            dep = m.group(1).strip("'\"")
            if dep.startswith(("-e ", "git+", ".", "/")) or not _PIN.match(dep):
                out.append(Finding("env_pinned", rel, n, f"dependency {dep!r} is not pinned",
                                   "pin it: tool=1.2.3 (conda) or package==1.2.3 (pip)"))
    return out


@check("env_channels", "every conda env names its channels and not Anaconda's defaults")
def _channels(ctx: Context) -> list[Finding]:
    out = []
    for rel, path in ctx.files.items():
        if rel.startswith("envs/"):
            data = yaml.safe_load(path.read_text()) or {}
            channels = data.get("channels") or []
            if not channels or "defaults" in channels:
                out.append(Finding("env_channels", rel, 1, f"channels {channels}: need conda-forge/bioconda, no defaults",
                                   "channels: [conda-forge, bioconda, nodefaults]"))
    return out


_NETWORK = re.compile(r"\b(curl|wget|git\s+clone|pip\s+install|aisci\s+models\s+pull|scp|rsync)\b|https?://|ftp://"
                      r"|^\s*wrapper:|\bHTTP\(|\bremote\(", re.M)


@check("no_network", "no rule and no test command reaches the network")
def _network(ctx: Context) -> list[Finding]:
    out = []
    for rule in ctx.rules:
        for directive in ("shell", "run", "script", "wrapper", "input", "params"):
            text = rule.text(directive)
            if text and _NETWORK.search(text):
                out.append(Finding("no_network", ctx.rel(rule.file), rule.directives[directive][0],
                                   f"rule {rule.name}: {directive} reaches the network ({_NETWORK.search(text).group(0)!r})",
                                   "compute nodes are offline: stage data and weights before the run (aisci models)"))
    for i, command in enumerate(ctx.pipeline.meta["test"]["commands"]):
        if _NETWORK.search(command) or not command.startswith("aisci "):
            out.append(finding(ctx, "no_network", f"test.commands.{i}", f"test command {command!r} is not an offline "
                             "aisci command", "make the test data with aisci commands (simulate, models demo)"))
    return out


@check("outputs_drawn", "every declared output is drawn in the Snakefile's output tree")
def _outputs_drawn(ctx: Context) -> list[Finding]:
    snakefile = ctx.pipeline.folder / "Snakefile"
    head = "\n".join(line for line in snakefile.read_text().split("\n") if line.startswith("#"))
    out = []
    for i, output in enumerate(ctx.pipeline.meta["outputs"]):
        leaf = output["path"].rstrip("/").split("/")[-1]
        if leaf not in head:
            out.append(finding(ctx, "outputs_drawn", f"outputs.{i}.path", f"output {output['path']} is not in the "
                             "output tree atop the Snakefile", "draw it there, or fix the declared path"))
    return out


@check("test_outputs_declared", "every test output is one of the declared outputs")
def _test_outputs(ctx: Context) -> list[Finding]:
    patterns = [re.compile("^" + re.sub(r"\\\{[^}]*\\\}", "[^/]+", re.escape(o["path"])) + "$")
                for o in ctx.pipeline.meta["outputs"]]
    return [finding(ctx, "test_outputs_declared", f"test.outputs.{i}", f"test output {o} matches no declared output",
                  "declare it under outputs, or test a declared one")
            for i, o in enumerate(ctx.pipeline.meta["test"]["outputs"]) if not any(p.match(o) for p in patterns)]


# --- models --------------------------------------------------------------------------------------------------------
@check("models_manifest_form", "every model is declared in the model store's manifest form")
def _models_form(ctx: Context) -> list[Finding]:
    from aisci.protein.layout import STORED_FILES

    out = []
    for i, model in enumerate(ctx.pipeline.meta["models"]):
        if model["kind"] != "store":
            continue
        files = set(model["files"])
        unknown = sorted(files - set(STORED_FILES))
        if unknown or "config.json" not in files or not files & {"model.safetensors", "pytorch_model.bin"}:
            out.append(finding(ctx, "models_manifest_form", f"models.{i}.files",
                             f"model {model['name']}: files {sorted(files)} are not a model store entry's",
                             f"list config.json, the weights and the tokenizer files, as `aisci models list` shows "
                             f"them (allowed: {', '.join(sorted(STORED_FILES))})"))
    return out


@check("models_package_present", "the weights shipped in packages are installed with the declared checksums")
def _models_package(ctx: Context) -> list[Finding]:
    from importlib import metadata

    from aisci.fileio import sha256

    out = []
    for i, model in enumerate(ctx.pipeline.meta["models"]):
        if model["kind"] != "package":
            continue
        try:
            dist = metadata.distribution(model["name"])
        except metadata.PackageNotFoundError:
            out.append(finding(ctx, "models_package_present", f"models.{i}.name", f"package {model['name']} is not "
                             "installed", f"pip install {model['name']}"))
            continue
        for rel, want in model["files"].items():
            path = Path(str(dist.locate_file(rel)))
            if not path.is_file() or path.stat().st_size != want["size"] or sha256(path) != want["sha256"]:
                out.append(finding(ctx, "models_package_present", f"models.{i}.files.{rel}",
                                 f"{rel} of package {model['name']} is missing or differs from the declared SHA-256",
                                 "declare the installed package's files (size and SHA-256), or install the right version"))
    return out
