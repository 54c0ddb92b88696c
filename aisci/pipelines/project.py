"""`aisci init`: a project directory the user owns — config, sample sheet, profile and a Snakefile using the installed pipeline."""

from __future__ import annotations

import argparse
import shutil
import textwrap
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

from aisci.errors import InputError
from aisci.fileio import atomic_output, check_readable
from aisci.schema import load_schema
from aisci.share import DEFAULT_PIPELINE, profile_template

GENOMES = ("grch38", "grch37", "custom")
PACKAGED_PROFILES = ("local", "slurm")
WIDTH = 100
# Written when no sample sheet is given: the header and commented examples of both input kinds.
SAMPLES_TEMPLATE = """\
# Sample sheet: one row per sample (or per lane), tab-separated, header first. Lines starting with '#'
# and blank lines are ignored. Relative paths are relative to this file's folder.
#   sample  letters, digits, '.', '_', '-'; 'cohort' is reserved
#   fq1 fq2 paired FASTQ (plain or gzip), or
#   bam     a BAM or CRAM, re-aligned
#   truth   optional truth VCF (bgzip + tabix): accuracy reports in results/eval/
# Examples (remove the leading '# ' and put your own files):
# NA12878\treads/NA12878_R1.fastq.gz\treads/NA12878_R2.fastq.gz\t\t
# HG002\t\t\t/data/HG002.cram\t
sample\tfq1\tfq2\tbam\ttruth
"""
SNAKEFILE = """\
# Snakefile — aisci's {pipeline} pipeline in this project directory (written by `aisci init`).
#
#   snakemake --profile profile          (or: aisci run {pipeline} --profile profile)
#
# The workflow is the installed aisci package's: this file only points at it through Snakemake's
# `module` directive, the way snakedeploy deploys a workflow. Settings live in config.yaml;
# results/, logs/, benchmarks/ and resources/ are written here.

from aisci.share import workflow_snakefile


configfile: "config.yaml"


module {pipeline}:
    snakefile:
        workflow_snakefile("{pipeline}")
    config:
        config


use rule * from {pipeline}
"""
# The same, for a release installed from a catalog (`aisci init --pipeline NAME@VERSION`).
SNAKEFILE_RELEASE = """\
# Snakefile — the {name} pipeline {version} from a catalog, in this project directory (written by
# `aisci init --pipeline {name}@{version}`).
#
#   snakemake --profile profile
#
# The workflow is the installed release {digest} (every file checked against its SHA-256 when it
# was installed; `aisci catalog install` says where): this file points at its Snakefile through
# Snakemake's `module` directive, and results/pipeline_info/release.json records the release of each run.
# Settings live in config.yaml; results/, logs/, benchmarks/ and resources/ are written here.


configfile: "config.yaml"


module {module}:
    snakefile:
        {snakefile}
    config:
        config


use rule * from {module}
"""


def _comment(text: str, indent: str) -> list[str]:
    """A schema description as wrapped '#' lines."""
    return textwrap.wrap(" ".join(text.split()), WIDTH - len(indent) - 2,
                         initial_indent=f"{indent}# ", subsequent_indent=f"{indent}# ")


def _scalar(value: Any) -> str:
    """One YAML scalar as the YAML writer spells it (quoted where needed)."""
    text = yaml.safe_dump(value, default_flow_style=True, width=10**6).strip()
    return text[:-4].rstrip() if text.endswith("\n...") else text.removesuffix("...").strip()


def _render(schema: dict[str, Any], values: dict[str, Any], indent: str) -> list[str]:
    lines: list[str] = []
    required = set(schema.get("required", []))
    for key, sub in schema.get("properties", {}).items():
        if lines and not indent:
            lines.append("")
        lines += _comment(sub.get("description", ""), indent)
        if sub.get("type") == "object":
            lines.append(f"{indent}{key}:")
            lines += _render(sub, values.get(key, {}), indent + "  ")
        elif key in values:
            lines.append(f"{indent}{key}: {_scalar(values[key])}")
        elif "default" in sub:
            lines.append(f"{indent}{key}: {_scalar(sub['default'])}")
        else:
            what = "required" if key in required else "optional"
            lines.append(f"{indent}# {key}: ({what}: set it)")
    return lines


def render_config(values: dict[str, Any] | None = None) -> str:
    """The germline pipeline's config.yaml: every key with its schema description, defaults filled in.

    Args:
        values: settings that replace defaults (nested dicts for nested keys).

    Returns:
        The file's text. The repository's config.yaml is this with no values (a test keeps them equal).
    """
    header = [
        "# config.yaml — science settings of the germline pipeline (written by `aisci init`; the",
        "# repository's copy is the same template). Every key is described in",
        "# aisci/schemas/config.schema.yaml; unknown keys are errors. Threads, memory and partitions",
        "# belong to the profile. Relative paths are relative to this project directory. Override a key",
        "# for one run: snakemake --config calling='{joint: false}', or layer files: --configfile more.yaml",
        "",
    ]
    return "\n".join(header + _render(load_schema("config"), values or {}, "")) + "\n"


@dataclass(frozen=True)
class ProjectPlan:
    """What `aisci init` writes: file -> text, and the profile folder to copy."""

    directory: Path
    files: dict[str, str]
    profile: Path


def _merged(base: dict[str, Any], over: dict[str, Any]) -> dict[str, Any]:
    out = dict(base)
    for key, value in over.items():
        out[key] = _merged(out[key], value) if isinstance(value, dict) and isinstance(out.get(key), dict) else value
    return out


def plan_project(directory: Path, genome: str, reference: Path | None, samples: Path | None,
                 profile: str, annotation: Path | None = None, release: Path | None = None) -> ProjectPlan:
    """Check the arguments of `aisci init` and plan its files, writing nothing.

    Args:
        release: an installed catalog release's folder (`aisci.catalog.release.install`): the project runs its
            pipeline, pinned to that version, with its default config.

    Raises:
        InputError: an unknown genome, a missing reference, sample sheet, annotation or profile.
    """
    if genome not in GENOMES:
        raise InputError(f"--genome {genome!r}: not one of {', '.join(GENOMES)}")
    values: dict[str, Any] = {"genome": genome}
    for flag, path, key in (("--reference", reference, "reference"), ("--samples", samples, "samples"),
                            ("--annotation", annotation, "annotation")):
        if path is not None:
            check_readable(path, flag)
    if reference is not None:
        values["reference"] = str(Path(reference).resolve())
    values["samples"] = str(Path(samples).resolve()) if samples is not None else "samples.tsv"
    if annotation is not None:
        values["splice"] = {"annotation": str(Path(annotation).resolve())}
    elif genome == "custom":
        values["splice"] = {"enabled": False}  # no packaged gene table for an unknown assembly
    if profile in PACKAGED_PROFILES:
        profile_dir = profile_template(profile)
    else:
        profile_dir = Path(profile)
        if not (profile_dir / "config.yaml").is_file():
            raise InputError(f"--profile {profile}: no such profile (local, slurm, or a folder with a config.yaml)")
    if release is None:
        files = {"Snakefile": SNAKEFILE.format(pipeline=DEFAULT_PIPELINE), "config.yaml": render_config(values)}
    else:
        files = _release_files(release, values)
    if samples is None and "config.yaml" in files and files["Snakefile"].find(f"module {DEFAULT_PIPELINE}:") >= 0:
        files["samples.tsv"] = SAMPLES_TEMPLATE
    return ProjectPlan(Path(directory), files, profile_dir)


def _release_files(release: Path, values: dict[str, Any]) -> dict[str, str]:
    """Snakefile and config.yaml of a project running an installed release: the germline pipeline's config is the
    commented template with the release's defaults and the given values; another pipeline's is its default config."""
    import json

    from aisci import yamlfile
    from aisci.catalog.metadata import read_pipeline

    record = json.loads((release / "release.json").read_text())
    pipeline = read_pipeline(release / "workflows" / release.parent.name)  # <root>/<name>/<version>, names checked
    snakefile = pipeline.folder / "Snakefile"
    # a module's name is a Python identifier: a pipeline named my-pipe is module my_pipe
    text = SNAKEFILE_RELEASE.format(name=pipeline.name, version=pipeline.version, digest=record["digest"][:12],
                                    snakefile=json.dumps(str(snakefile)), module=pipeline.name.replace("-", "_"))
    default = pipeline.folder / pipeline.meta["default_config"]
    if pipeline.name == DEFAULT_PIPELINE:
        config = render_config(_merged(yamlfile.load(default) or {}, values))
    else:
        config = default.read_text()
    return {"Snakefile": text, "config.yaml": config}


def init_project(plan: ProjectPlan, force: bool = False) -> tuple[list[Path], list[Path]]:
    """Write a planned project; files that exist are never overwritten.

    Returns:
        (written, kept): the files written and the existing ones left as they were.

    Raises:
        InputError: the directory holds other files and ``force`` is not set.
    """
    directory = plan.directory
    if directory.exists() and not directory.is_dir():
        raise InputError(f"{directory}: exists and is not a directory")
    present = sorted(p.name for p in directory.iterdir()) if directory.is_dir() else []
    if present and not force:
        shown = ", ".join(present[:5]) + (" ..." if len(present) > 5 else "")
        raise InputError(f"{directory}: not empty ({shown}): another project or other files? Use an empty "
                         "directory, or --force to add only the missing project files (existing ones, your "
                         "config.yaml and sample sheet included, are never overwritten)")
    written: list[Path] = []
    kept: list[Path] = []
    directory.mkdir(parents=True, exist_ok=True)
    for name, text in plan.files.items():
        path = directory / name
        if path.exists():
            kept.append(path)
            continue
        with atomic_output(path) as tmp:
            tmp.write_text(text)
        written.append(path)
    profile_out = directory / "profile"
    for source in sorted(plan.profile.iterdir()):
        if not source.is_file():
            continue
        target = profile_out / source.name
        if target.exists():
            kept.append(target)
            continue
        profile_out.mkdir(exist_ok=True)
        with atomic_output(target) as tmp:
            shutil.copyfile(source, tmp)
        written.append(target)
    return written, kept


def configure_parser(parser: argparse.ArgumentParser) -> None:
    """Options of `aisci init`."""
    parser.add_argument("directory", type=Path, help="the project directory (created if missing)")
    parser.add_argument("--genome", default="grch38", help="grch38 (default), grch37 or custom")
    parser.add_argument("--reference", type=Path, help="reference FASTA (plain, gzip or bgzip)")
    parser.add_argument("--samples", type=Path, help="sample sheet TSV (default: write a template samples.tsv)")
    parser.add_argument("--annotation", type=Path,
                        help="gene table, GFF3 or GTF for SpliceAI (default: the packaged table of --genome)")
    parser.add_argument("--profile", default="local",
                        help="local (this machine, default), slurm (the packaged Slurm profile) or a profile folder to copy")
    parser.add_argument("--pipeline", metavar="NAME@VERSION",
                        help="pin the project to a catalog release (installed first, checksums verified); default: "
                             "the germline pipeline of this aisci installation")
    parser.add_argument("--catalog", action="append", metavar="DIR_OR_URL",
                        help="catalog(s) to find --pipeline in when it is not installed yet (repeatable; default: "
                             "$AISCI_CATALOGS)")
    parser.add_argument("--into", type=Path, help="install root of --pipeline (default: $AISCI_PIPELINES or "
                        "~/.local/share/aisci/pipelines)")
    parser.add_argument("--force", action="store_true",
                        help="add the missing project files to a non-empty directory (never overwrites a file)")


def run(args: argparse.Namespace) -> int:
    """Write a project directory and say how to run it."""
    release = None
    if args.pipeline is not None:
        from aisci.catalog.release import install_root, obtain

        release, done = obtain(args.pipeline, args.catalog, install_root(args.into))
        print(done)
    plan = plan_project(args.directory, args.genome, args.reference, args.samples, args.profile, args.annotation,
                        release=release)
    written, kept = init_project(plan, force=args.force)
    for path in written:
        print(f"wrote {path}")
    for path in kept:
        print(f"kept  {path} (exists)")
    steps = []
    if "samples.tsv" not in plan.files and args.samples is None:  # a catalog release of another pipeline
        steps.append("set its inputs in config.yaml")
    elif args.reference is None:
        steps.append("set `reference:` in config.yaml")
    if "samples.tsv" in plan.files:
        steps.append("list your samples in samples.tsv")
    print(f"\nNext: {'; '.join(steps) + ', then ' if steps else ''}"
          f"cd {args.directory} && snakemake --profile profile")
    return 0
