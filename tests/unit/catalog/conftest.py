"""Fixtures of the catalog tests: a pipeline's files copied out of the checkout, to edit and publish."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from aisci.catalog.metadata import pipeline_files, read_pipeline
from tests.conftest import REPO


def copy_pipeline(name: str, root: Path) -> Path:
    """Copy the files a release of a packaged pipeline carries into ``root`` (same layout); return its folder."""
    for rel, src in pipeline_files(read_pipeline(REPO / "workflows" / name)).items():
        dst = root / rel
        dst.parent.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(src, dst)
    return root / "workflows" / name


def set_version(folder: Path, version: str, change: str) -> None:
    """Raise a copied pipeline's version and add its changelog entry."""
    path = folder / "pipeline.yaml"
    text = path.read_text().replace("version: 1.0.0", f"version: {version}", 1)
    path.write_text(text.replace("changelog:\n", f"changelog:\n  {version}:\n    - {change}\n", 1))


@pytest.fixture
def protein_copy(tmp_path) -> Path:
    """workflows/protein with its rules and envs, in a folder of its own."""
    return copy_pipeline("protein", tmp_path / "src")
