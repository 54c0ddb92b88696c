"""`make demo` on its first run, in a fresh copy of the repository (small DEMO_ARGS), as a newcomer runs it.

The copy holds what a clone holds (tracked files and new, not ignored ones); the test environment's
venv is reused (VENV=…, its install step marked done with `make -o`), so what runs is the demo
target's own recipe: simulate, stage the demo model, translate proteins, both pipelines, summaries.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from tests.browser import check_page, screenshot
from tests.conftest import REPO

pytestmark = pytest.mark.slow


def fresh_copy(dest: Path) -> Path:
    """The working tree as a fresh clone of it would be (tracked + untracked, nothing ignored)."""
    files = subprocess.run(["git", "ls-files", "-z", "--cached", "--others", "--exclude-standard"], cwd=REPO,
                           capture_output=True, check=True).stdout.decode().split("\0")
    for name in filter(None, files):
        src = REPO / name
        if src.is_file():
            (dest / name).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(src, dest / name)
    return dest


def test_make_demo_first_run(tmp_path):
    repo = fresh_copy(tmp_path / "aisci")
    venv = Path(sys.executable).parent.parent
    env = dict(os.environ)
    env.pop("MAKEFLAGS", None)
    cmd = ["make", "demo", f"VENV={venv}", "-o", f"{venv}/.installed",
           "DEMO_ARGS=--genome-size 300000 --samples 2 --depth 15 --seed 7", "DEMO_PROTEINS=2"]
    res = subprocess.run(cmd, cwd=repo, env=env, capture_output=True, text=True, timeout=1500)
    out = res.stdout + res.stderr
    assert res.returncode == 0, out[-6000:]
    assert "Demo finished" in out
    # the summaries at the end: SpliceAI effects, protein LM scores, accuracy of both samples
    assert "aisci plm summary: error" not in out and "aisci splice summary: error" not in out
    assert out.count("accuracy of results/eval/") == 2 and "snv\tallele" not in out  # column -t aligned
    results = repo / "results"
    for callset in ("S1", "S2", "cohort"):
        assert (results / "protein" / f"{callset}.parquet").is_file()
    assert len(list((results / "plm" / "mutagenesis").glob("*.parquet"))) == 2
    assert (results / "pipeline_info" / "versions.json").is_file()
    # the run report, opened in a real browser: every section, its charts drawn, no console message, tables sort
    assert f"The run on one page (open it in a browser): {repo}/results/report.html" in out
    seen, console = check_page(results / "report.html", tmp_path)
    assert seen["sections"] == ["run", "qc", "calls", "accuracy", "splice", "protein"], seen
    assert seen["svgs"] >= 12 and seen["broken_images"] == 0 and console == [], (seen, console)
    calls = [int(v) for v in seen["sorted"]["calls"]]  # records per callset, sorted descending by two clicks
    assert calls == sorted(calls, reverse=True) and len(calls) == 3
    screenshot(results / "report.html", tmp_path / "report.png")
    # the protein run's page: the model, both proteins' maps with their heatmaps (PNG, loaded), the embeddings
    assert f"The protein run's page: {repo}/results/plm/report.html" in out
    seen, console = check_page(results / "plm" / "report.html", tmp_path)
    assert seen["sections"] == ["run", "mutagenesis", "embeddings"] and console == [], (seen, console)
    assert seen["images"] == 2 and seen["broken_images"] == 0, seen
    screenshot(results / "plm" / "report.html", tmp_path / "protein-report.png")
