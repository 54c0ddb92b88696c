"""Where the pipelines live: the installed package's copy of workflows/, rules/, envs/ and profiles/, or a checkout's."""

from __future__ import annotations

from pathlib import Path

from aisci.errors import InputError

PACKAGE = Path(__file__).resolve().parent
# Pipelines a project can run: the germline one by default, the others by name.
PIPELINES = ("germline", "protein", "reanalysis")
DEFAULT_PIPELINE = "germline"


def root() -> Path:
    """The folder holding ``workflows/``, ``rules/``, ``envs/`` and ``profiles/``.

    A wheel maps those repository folders into the package (pyproject.toml's package-dir), so an
    installed aisci finds them beside this module; an editable install or a checkout finds them one
    level up, in the repository.
    """
    for candidate in (PACKAGE, PACKAGE.parent):
        if (candidate / "workflows" / DEFAULT_PIPELINE / "Snakefile").is_file() and (candidate / "rules").is_dir():
            return candidate
    raise InputError(f"the aisci installation at {PACKAGE} has no workflows/ folder (a broken install? reinstall aisci)")


def workflow_snakefile(name: str = DEFAULT_PIPELINE) -> Path:
    """The packaged Snakefile of a pipeline.

    Raises:
        InputError: an unknown pipeline name.
    """
    if name not in PIPELINES:
        raise InputError(f"unknown pipeline '{name}' (pipelines: {', '.join(PIPELINES)})")
    return root() / "workflows" / name / "Snakefile"


def profile_template(name: str) -> Path:
    """A packaged profile folder (``local``, ``slurm``, ``examples/hpc-institute``)."""
    path = root() / "profiles" / name
    if not (path / "config.yaml").is_file():
        known = sorted(p.parent.relative_to(root() / "profiles").as_posix()
                       for p in (root() / "profiles").rglob("config.yaml"))
        raise InputError(f"no packaged profile '{name}' (packaged: {', '.join(known)})")
    return path
