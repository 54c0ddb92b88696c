"""envs/*.yaml agree with pyproject.toml, with the installed packages' own requirements and with each other.

No conda and no network: the env files are read as YAML and their version specs compared as PEP 440 ranges.
Each check returns a list of problems, so the negative cases at the bottom can show that it catches a broken env
(the old esm.yaml, pytorch 2.5 with transformers 5, among them).
"""
from __future__ import annotations

import copy
import importlib.metadata as md
import re
import tomllib
from pathlib import Path

import pytest
import yaml
from packaging.requirements import Requirement
from packaging.specifiers import SpecifierSet
from packaging.utils import canonicalize_name
from packaging.version import Version

ROOT = Path(__file__).resolve().parents[2]
CHANNELS = ["conda-forge", "bioconda", "nodefaults"]  # bioconda's documented order; nodefaults keeps anaconda's out
# conda-forge names whose PyPI name differs (after PEP 503 normalisation: huggingface_hub is already huggingface-hub)
CONDA_TO_PYPI = {"pytorch": "torch", "matplotlib-base": "matplotlib"}
# Extras the code relies on: aisci runs transformers' PyTorch models, so transformers[torch]'s requirements apply.
EXTRAS_USED = {"transformers": {"torch"}}
# transformers' torch floor when the installed transformers declares none: transformers 5.25 needs torch>=2.6
# (METADATA `torch>=2.6; extra == "torch"`, and utils/import_utils.py is_torch_available(): "Disabling PyTorch
# because PyTorch >= 2.6 is required").
TORCH_FLOOR_FALLBACK = Version("2.6")
HTS_TOOLS = ("htslib", "samtools", "bcftools")  # released together; bioconda's samtools/bcftools X.Y need htslib X.Y


# ---- parsing -----------------------------------------------------------------------------------------------------

def conda_spec(spec: str) -> SpecifierSet:
    """A conda version spec as a PEP 440 set: `=2.6` is conda's prefix match 2.6.*, `>=5,<6` stays a range.
    Anything else raises (InvalidSpecifier), so an unfamiliar form fails loudly instead of passing unchecked."""
    spec = spec.replace(" ", "")
    if m := re.fullmatch(r"=(\d[\w.]*?)(\.\*)?", spec):
        return SpecifierSet(f"=={m.group(1)}.*")
    return SpecifierSet(spec)


def packages(env: dict) -> dict[str, SpecifierSet]:
    """PyPI-normalised name -> allowed versions, for the conda list and its pip: section; `python` keeps its name."""
    out = {}
    for dep in env["dependencies"]:
        if isinstance(dep, dict):  # the pip: section holds PyPI requirements
            for line in dep.get("pip", []):
                req = Requirement(line)
                out[canonicalize_name(req.name)] = req.specifier
            continue
        name, spec = re.fullmatch(r"(?:[\w-]+::)?([\w.-]+)\s*(.*)", dep.strip()).groups()
        out[canonicalize_name(CONDA_TO_PYPI.get(name, name))] = conda_spec(spec)
    return out


def pin(spec: SpecifierSet) -> Version | None:
    """The version an exact (==2.6.1) or prefix (==2.6.*) pin names; None for a range."""
    specs = list(spec)
    if len(specs) == 1 and specs[0].operator == "==":
        return Version(specs[0].version.removesuffix(".*"))
    return None


def bounds(spec: SpecifierSet):
    """(lower, upper) of the interval a set allows, each (version or None for unbounded, inclusive).
    != is ignored (it removes a point, not a range), so overlap is judged generously and containment strictly."""
    lo, hi = (None, True), (None, True)
    for s in spec:
        op, v = s.operator, s.version
        if op == "==" and v.endswith(".*"):
            rel = Version(v[:-2]).release
            new_lo, new_hi = (Version(v[:-2]), True), (Version(".".join(map(str, rel[:-1] + (rel[-1] + 1,)))), False)
        elif op == "~=":
            rel = Version(v).release
            new_lo, new_hi = (Version(v), True), (Version(".".join(map(str, rel[:-2] + (rel[-2] + 1,)))), False)
        elif op in ("==", "==="):
            new_lo = new_hi = (Version(v), True)
        elif op in (">=", ">"):
            new_lo, new_hi = (Version(v), op == ">="), (None, True)
        elif op in ("<=", "<"):
            new_lo, new_hi = (None, True), (Version(v), op == "<=")
        else:
            continue
        if new_lo[0] is not None and (lo[0] is None or new_lo[0] > lo[0] or (new_lo[0] == lo[0] and not new_lo[1])):
            lo = new_lo
        if new_hi[0] is not None and (hi[0] is None or new_hi[0] < hi[0] or (new_hi[0] == hi[0] and not new_hi[1])):
            hi = new_hi
    return lo, hi


def overlaps(a: SpecifierSet, b: SpecifierSet) -> bool:
    (lo, lo_in), (hi, hi_in) = bounds(a & b)
    return lo is None or hi is None or lo < hi or (lo == hi and lo_in and hi_in)


def within(a: SpecifierSet, b: SpecifierSet) -> bool:
    """Every version a allows, b allows too: intersecting with b leaves a's interval unchanged."""
    return overlaps(a, b) and bounds(a & b) == bounds(a)


def load_envs() -> dict[str, dict]:
    return {p.name: yaml.safe_load(p.read_text()) for p in sorted((ROOT / "envs").glob("*.yaml"))}


def pyproject() -> tuple[dict[str, SpecifierSet], SpecifierSet]:
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    deps = {canonicalize_name(r.name): r.specifier for r in map(Requirement, project["dependencies"])}
    return deps, SpecifierSet(project["requires-python"])


def installed(name: str) -> Version | None:
    try:
        return Version(Version(md.version(name)).base_version)  # 2.13.0+cpu -> 2.13.0
    except md.PackageNotFoundError:
        return None


def torch_floor() -> tuple[SpecifierSet, str]:
    """What transformers[torch] asks of torch: from the installed transformers' metadata, else the documented floor."""
    lines = md.requires("transformers") or [] if installed("transformers") else []
    for req in map(Requirement, lines):
        if canonicalize_name(req.name) == "torch" and req.marker and req.marker.evaluate({"extra": "torch"}):
            return req.specifier, f"transformers {installed('transformers')} requires torch{req.specifier}"
    return SpecifierSet(f">={TORCH_FLOOR_FALLBACK}"), f"transformers 5 needs torch>={TORCH_FLOOR_FALLBACK}"


# ---- checks: each returns its problems ---------------------------------------------------------------------------

def check_layout(name: str, env: dict) -> list[str]:
    problems = []
    if not isinstance(env, dict) or env.get("channels") != CHANNELS:
        return [f"{name}: channels must be exactly {CHANNELS}"]
    deps = env.get("dependencies")
    if not isinstance(deps, list) or not deps:
        return [f"{name}: dependencies must be a non-empty list"]
    for dep in deps:
        if isinstance(dep, dict):
            if set(dep) != {"pip"} or "pip" not in deps:
                problems.append(f"{name}: only a pip: section may be a mapping, and `- pip` itself must be listed")
        elif not isinstance(dep, str) or (dep.strip() != "pip" and not re.search(r"[=<>]", dep)):
            problems.append(f"{name}: {dep!r} carries no version")  # every package but pip is pinned
    try:
        packages(env)
    except Exception as exc:  # an unparsable spec
        problems.append(f"{name}: {exc}")
    return problems


def check_pyproject(name: str, env: dict) -> list[str]:
    """A package pyproject.toml lists may be pinned only inside pyproject's range; python within requires-python."""
    deps, requires_python = pyproject()
    problems = []
    for pkg, spec in packages(env).items():
        allowed = requires_python if pkg == "python" else deps.get(pkg)
        if allowed is None:
            continue
        if not overlaps(spec, allowed):
            problems.append(f"{name}: {pkg}{spec} shares no version with pyproject's {pkg}{allowed}")
        elif (v := pin(spec)) is not None and not allowed.contains(v, prereleases=True):
            problems.append(f"{name}: {pkg} pinned to {v}, outside pyproject's {pkg}{allowed}")
    if "python" not in packages(env) and any(p in deps for p in packages(env)):
        problems.append(f"{name}: has Python packages but pins no python")
    return problems


def check_torch_floor(name: str, env: dict) -> list[str]:
    """transformers' torch floor holds for every torch the env allows (conda-forge's transformers does not depend
    on pytorch, so the solver would happily pair transformers 5 with torch 2.5, and transformers disables torch)."""
    pkgs = packages(env)
    if "transformers" not in pkgs:
        return []
    need, why = torch_floor()
    if "torch" not in pkgs or not within(pkgs["torch"], need):
        return [f"{name}: torch{pkgs.get('torch', '')} allows versions below the floor: {why}"]
    return []


def check_installed_requirements(name: str, env: dict) -> list[str]:
    """For each package whose installed (tested) version the env allows, what that version requires of the env's
    other packages (and of python) holds for every version the env allows: the tested combination is the one
    conda installs, not an older one the solver falls back to."""
    pkgs = packages(env)
    problems = []
    for pkg, spec in pkgs.items():
        v = installed(pkg)
        if pkg == "python" or v is None or not spec.contains(v, prereleases=True):
            continue
        meta = md.metadata(pkg)
        py = pkgs.get("python")
        if meta["Requires-Python"] and py is not None and not within(py, SpecifierSet(meta["Requires-Python"])):
            problems.append(f"{name}: python{py}, but {pkg} {v} requires python{meta['Requires-Python']}")
        for line in md.requires(pkg) or []:
            req = Requirement(line)
            dep = canonicalize_name(req.name)
            extras = {""} | EXTRAS_USED.get(pkg, set())
            if dep not in pkgs or (req.marker and not any(req.marker.evaluate({"extra": e}) for e in extras)):
                continue
            if not within(pkgs[dep], req.specifier):
                problems.append(f"{name}: {dep}{pkgs[dep]}, but {pkg} {v} requires {dep}{req.specifier}")
    return problems


def check_across_envs(envs: dict[str, dict]) -> list[str]:
    """One version of each package across the pipeline, and htslib/samtools/bcftools on one major.minor."""
    seen: dict[str, dict[str, str]] = {}
    for name, env in envs.items():
        for pkg, spec in packages(env).items():
            seen.setdefault(pkg, {})[name] = str(spec)
    problems = [f"{pkg} differs between envs: {by}" for pkg, by in seen.items() if len(set(by.values())) > 1]
    lines = {}
    for tool in HTS_TOOLS:
        for name, spec in seen.get(tool, {}).items():
            v = pin(SpecifierSet(spec))
            lines.setdefault(v.release[:2] if v else spec, set()).add(f"{tool} in {name}")
    if len(lines) > 1:
        problems.append(f"htslib/samtools/bcftools not on one major.minor: {lines}")
    return problems


# ---- the real envs -----------------------------------------------------------------------------------------------

ENVS = load_envs()
PER_ENV = [check_layout, check_pyproject, check_torch_floor, check_installed_requirements]


def test_envs_found():
    assert {"esm.yaml", "spliceai.yaml", "aisci.yaml", "bcftools.yaml", "samtools.yaml"} <= set(ENVS)


@pytest.mark.parametrize("check", PER_ENV, ids=lambda c: c.__name__)
@pytest.mark.parametrize("name", sorted(ENVS))
def test_env(name, check):
    assert check(name, ENVS[name]) == []


def test_envs_agree_with_each_other():
    assert check_across_envs(ENVS) == []


def test_torch_floor_read_from_installed_transformers():
    # the floor comes from metadata where transformers declares one; it is never below the documented 2.6
    need, _ = torch_floor()
    assert not need.contains("2.5.1") and need.contains("2.6.0")


def test_pyproject_torch_floor():
    """pip does not apply transformers' torch extra: pyproject's own floor must be transformers'."""
    deps, _ = pyproject()
    assert within(deps["torch"], torch_floor()[0])


# ---- each check catches a broken env -----------------------------------------------------------------------------

OLD_ESM = """
channels: [conda-forge, bioconda, nodefaults]
dependencies: [python =3.11, pytorch =2.5, "transformers >=5,<6", safetensors =0.4, "huggingface_hub >=1.0",
               numpy =2.1, pysam =0.22, pyarrow =18, biopython =1.84, matplotlib-base =3.9]
"""


def edited(name: str, old: str, new: str) -> dict:
    env = copy.deepcopy(ENVS[name])
    env["dependencies"] = [new if d == old else d for d in env["dependencies"]]
    assert env != ENVS[name], f"{old!r} not in {name}"
    return env


BROKEN = {  # id: (check, env name, broken env, words the complaint holds)
    "old-esm-torch-2.5": (check_torch_floor, "esm.yaml", yaml.safe_load(OLD_ESM), "below the floor"),
    "old-esm-safetensors-0.4": (check_installed_requirements, "esm.yaml", yaml.safe_load(OLD_ESM), "safetensors"),
    "torch-unpinned": (check_torch_floor, "esm.yaml", edited("esm.yaml", "pytorch =2.13", "pytorch"), "floor"),
    "transformers-4": (check_pyproject, "esm.yaml", edited("esm.yaml", "transformers =5.25", "transformers =4.57"),
                       "shares no version"),
    # 4.* overlaps pyproject's jsonschema>=4.18, but the pin itself (4.0) lies below it
    "jsonschema-4": (check_pyproject, "aisci.yaml", edited("aisci.yaml", "jsonschema =4.26", "jsonschema =4"),
                     "outside pyproject"),
    "transformers-6": (check_pyproject, "esm.yaml", edited("esm.yaml", "transformers =5.25", "transformers >=6"),
                       "shares no version"),
    "python-3.10": (check_pyproject, "esm.yaml", edited("esm.yaml", "python =3.11", "python =3.10"), "python"),
    "numpy-needs-newer-python": (check_installed_requirements, "aisci.yaml",
                                 edited("aisci.yaml", "python =3.11", "python >=3.9,<3.12"), "requires python"),
    "no-nodefaults": (check_layout, "bwa.yaml", {**ENVS["bwa.yaml"], "channels": CHANNELS[:2]}, "channels"),
    "unpinned": (check_layout, "bwa.yaml", {**ENVS["bwa.yaml"], "dependencies": ["bwa"]}, "no version"),
}


@pytest.mark.parametrize("case", BROKEN, ids=str)
def test_check_catches(case):
    check, name, env, words = BROKEN[case]
    problems = check(name, env)
    assert any(words in p for p in problems), problems


@pytest.mark.parametrize("pkg, new, everywhere, words", [
    ("pysam", "=0.23", False, "differs between envs"),     # one env moved, the others not
    ("samtools", "=1.22", False, "differs between envs"),
    ("bcftools", "=1.20", True, "major.minor"),            # moved in every env, but off htslib's 1.21
])
def test_across_envs_catches(pkg, new, everywhere, words):
    envs = copy.deepcopy(ENVS)
    for env in [e for e in envs.values() if any(str(d).startswith(pkg + " ") for d in e["dependencies"])][
            : None if everywhere else 1]:
        env["dependencies"] = [f"{pkg} {new}" if str(d).startswith(pkg + " ") else d for d in env["dependencies"]]
    assert any(words in p for p in check_across_envs(envs)), check_across_envs(envs)
