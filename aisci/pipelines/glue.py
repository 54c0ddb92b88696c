"""The one shape of a pipeline's glue: a validated plan built inside its Snakefile, before any job is planned.

Each pipeline (`germline`, `protein`, `reanalysis`) has one class here, a `Glue`: built from the
config's layers (``Glue(config, source)``; `Glue.from_snakemake` inside a Snakefile, which turns an
InputError into a message Snakemake prints without a traceback), with ``targets()`` and the input and
params functions its rules call with ``wildcards``. What they share (the model store's checked model)
is here, once.
"""

from __future__ import annotations

import shlex
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, TypeVar

from aisci.errors import InputError
from aisci.layers import Sources

T = TypeVar("T")
G = TypeVar("G", bound="Glue")


def for_snakemake(build: Callable[[Sources], T], workflow: Any) -> T:
    """Build a workflow's validated plan from inside its Snakefile, before any job is planned.

    Args:
        build: makes the plan from the config's layers (which file set which key, for messages).
        workflow: Snakemake's ``workflow`` object (or a list of config files, lowest first).

    Returns:
        What ``build`` returns.

    Raises:
        snakemake.exceptions.WorkflowError: for an InputError, with the file, line and field at fault,
            so that Snakemake prints the message without a traceback and submits nothing.
    """
    from snakemake.exceptions import WorkflowError

    from aisci.pipelines.inputs import FILE_CHECKS

    driver = True
    if hasattr(workflow, "config_settings"):
        from aisci.slurm.clusters import follow_states

        # the Slurm plugin's sacct status mode must notice a cancelled job ("CANCELLED by <uid>")
        follow_states(workflow)
        sources = Sources.from_workflow(workflow)
        driver = getattr(getattr(workflow, "exec_mode", None), "name", "DEFAULT") == "DEFAULT"
    else:
        sources = Sources.from_files(list(workflow))
    token = FILE_CHECKS.set(driver)
    try:
        built = build(sources)
        if driver and hasattr(workflow, "config_settings"):
            from aisci.slurm.staging import stage_partner_jobs

            # jobs placed at a centre without a shared file system: their data is copied there and back
            parse = [*workflow_configfiles(workflow), *getattr(built, "parse_files", list)()]
            stage_partner_jobs(workflow, [Path(p) for p in parse])
        return built
    except InputError as exc:
        raise WorkflowError(describe_problems(str(exc))) from None
    finally:
        FILE_CHECKS.reset(token)


def workflow_configfiles(workflow: Any) -> list[str]:
    """The config files of a run: the Snakefile's configfile directives and the command line's."""
    settings = getattr(workflow, "config_settings", None)
    files = [*getattr(workflow, "configfiles", []), *(getattr(settings, "configfiles", None) or [])]
    return list(dict.fromkeys(str(Path(f).absolute()) for f in files))


def describe_problems(message: str) -> str:
    """'invalid input: ...' for one problem, or a numbered list when several were found at once."""
    problems = message.split("\n")
    if len(problems) == 1:
        return f"invalid input: {message}"
    return f"invalid input, {len(problems)} problems:\n" + "\n".join(f"  {p}" for p in problems)


def _check_release_engine(snakefile: Path) -> None:
    """Refuse to run an installed catalog release on an engine outside its ``engine`` range.

    Raises:
        InputError: naming the release, its range and this engine's version.
    """
    if not (snakefile.resolve().parent.parent.parent / "release.json").is_file():
        return  # a checkout's or the installed package's Snakefile: no release, nothing to import on every parse
    from aisci.catalog.release import check_engine, installed_release

    release = installed_release(snakefile)
    if release is not None and release.get("engine"):
        check_engine(release["engine"], f"{release['name']}@{release['version']} (installed at {snakefile.parents[2]})")


class Glue:
    """A pipeline's plan for one config. Subclasses validate in ``__init__`` and list their ``targets``.

    Attributes:
        config: the validated config, every default filled in.
        configfiles: the run's config files, lowest first (set by `from_snakemake`; provenance records them).
    """

    config: dict[str, Any]
    configfiles: list[str]
    snakefile: Path | None = None  # the Snakefile that built it (from_snakemake)

    def __init__(self, config: dict[str, Any], source: "str | Sources" = "config") -> None:
        raise NotImplementedError

    @classmethod
    def from_snakemake(cls: type[G], config: dict[str, Any], workflow: Any) -> G:
        """Validate ``config`` (as Snakemake loaded it) and every file it names, before any job is planned.

        Raises:
            snakemake.exceptions.WorkflowError: with the file, line and field at fault, so that Snakemake
                prints the message without a traceback and submits nothing.
        """
        import sys

        # the calling Snakefile (Snakemake compiles it under its path): an installed catalog release's, or not
        snakefile = Path(sys._getframe(1).f_code.co_filename)

        def build(sources: Sources) -> G:
            _check_release_engine(snakefile)
            return cls(config, sources)

        glue = for_snakemake(build, workflow)
        glue.configfiles = [str(f) for f in getattr(workflow, "configfiles", workflow)]
        glue.snakefile = snakefile
        return glue

    def parse_files(self) -> list[str]:
        """Files besides the config files that parsing the Snakefile reads (a job at a centre without a
        shared file system needs them there too)."""
        return []

    def release_file(self) -> Path | None:
        """The release.json of the installed catalog release this run's Snakefile belongs to, if any."""
        from aisci.catalog.release import RELEASE, installed_release

        if self.snakefile is None or installed_release(self.snakefile) is None:
            return None
        return self.snakefile.resolve().parent.parent.parent / RELEASE

    def targets(self) -> list[str]:
        """Every final output of the pipeline."""
        raise NotImplementedError


@dataclass(frozen=True)
class StagedModel:
    """A protein language model checked in the site's model store (`aisci.protein.store.check_model`)."""

    name: str
    store: Path  # absolute

    @property
    def config_json(self) -> str:
        """The model's config.json: replacing (re-adding) the model re-runs every job that names it as input."""
        return str(self.store / self.name / "config.json")

    @property
    def files(self) -> list[str]:
        """`config_json` as a rule's input list."""
        return [self.config_json]

    def options(self) -> str:
        """``--model NAME --model-store ABS`` for `aisci plm` and `aisci cohort score`."""
        return f"--model {shlex.quote(self.name)} --model-store {shlex.quote(str(self.store))}"


def staged_model(section: dict[str, Any], where: str) -> StagedModel:
    """The model of a config section (``model``, ``model_store``), checked staged and intact.

    Args:
        section: the config mapping holding ``model`` and ``model_store``.
        where: the section as messages name it (``config.yaml: protein.``).

    Raises:
        InputError: naming ``{where}model_store`` (no store) or ``{where}model`` (not staged, altered).
    """
    from aisci.protein.store import check_model, store_dir

    try:
        store = store_dir(section["model_store"]).resolve()
    except InputError as exc:
        raise InputError(f"{where}model_store: {exc}") from None
    check_model(store, section["model"], where=f"{where}model")
    return StagedModel(section["model"], store)
