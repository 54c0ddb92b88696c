"""Config contract: validate config.yaml and the sample sheet against their JSON schemas and the files they name."""

from __future__ import annotations

import argparse
import copy
import csv
import os
from dataclasses import dataclass
from functools import cache
from importlib import resources
from pathlib import Path
from typing import Any, Callable, Iterable, TypeVar

import yaml

from aisci import yamlfile
from aisci.errors import InputError
from aisci.fileio import read_utf8
from aisci.names import check_name
from aisci.reference import Contig, read_contigs

READ_COLUMNS = ("fq1", "fq2", "bam", "truth")


T = TypeVar("T")


def for_snakemake(build: Callable[[str], T], configfiles: Iterable[str | os.PathLike[str]]) -> T:
    """Build a workflow's validated plan from inside its Snakefile, before any job is planned.

    Args:
        build: makes the plan from the name of the config source (for error messages).
        configfiles: Snakemake's ``workflow.configfiles``.

    Returns:
        What ``build`` returns.

    Raises:
        snakemake.exceptions.WorkflowError: for an InputError, with the file, line and field at fault,
            so that Snakemake prints the message without a traceback and submits nothing.
    """
    from snakemake.exceptions import WorkflowError

    source = ", ".join(Path(f).name for f in configfiles) or "config"
    try:
        return build(source)
    except InputError as exc:
        raise WorkflowError(f"invalid input: {exc}") from None


@cache
def load_schema(name: str) -> dict[str, Any]:
    """Load a packaged JSON schema (``config`` or ``samples``)."""
    text = resources.files("aisci.schemas").joinpath(f"{name}.schema.yaml").read_text()
    return yaml.safe_load(text)


@cache
def _validator(name: str) -> Any:
    """A compiled draft 2020-12 validator for a packaged schema."""
    from jsonschema import Draft202012Validator

    schema = load_schema(name)
    Draft202012Validator.check_schema(schema)
    return Draft202012Validator(schema)


def _apply_defaults(schema: dict[str, Any], data: dict[str, Any]) -> None:
    """Fill missing keys from ``default`` values, recursing into nested objects."""
    for key, sub in schema.get("properties", {}).items():
        if key not in data and "default" in sub:
            data[key] = copy.deepcopy(sub["default"])
        if isinstance(data.get(key), dict) and sub.get("type") == "object":
            _apply_defaults(sub, data[key])


def _coerce_scalars(schema: dict[str, Any], data: dict[str, Any]) -> None:
    """Turn strings into the numbers/booleans the schema expects.

    Snakemake's ``--config 'calling={chunk_size: 100000}'`` delivers nested values as strings.
    """
    for key, sub in schema.get("properties", {}).items():
        value = data.get(key)
        types = sub.get("type")
        types = [types] if isinstance(types, str) else (types or [])
        if isinstance(value, dict) and "object" in types:
            _coerce_scalars(sub, value)
        elif isinstance(value, str):
            parsed = yaml.safe_load(value) if value.strip() else value
            if ("integer" in types and type(parsed) is int) or (
                "number" in types and type(parsed) in (int, float)
            ) or ("boolean" in types and type(parsed) is bool):
                data[key] = parsed


def _describe(error: Any, source: str) -> str:
    """Turn a jsonschema error into 'source: field: problem'."""
    field = ".".join(str(p) for p in error.absolute_path)
    where = f"{source}: {field}" if field else source
    if error.validator == "additionalProperties":
        allowed = sorted(error.schema.get("properties", {}))
        unknown = sorted(set(error.instance) - set(allowed))
        prefix = f"{field}." if field else ""
        return f"{source}: unknown key '{prefix}{unknown[0]}' (allowed: {', '.join(allowed)})"
    if error.validator == "required":
        return f"{where}: {error.message}"
    if error.validator == "pattern":
        return f"{where}: {error.instance!r} must match {error.validator_value}"
    if error.validator == "enum":
        return f"{where}: {error.instance!r} is not one of {', '.join(map(str, error.validator_value))}"
    return f"{where}: {error.message}"


def validate_config(config: dict[str, Any], source: str = "config", schema: str = "config") -> dict[str, Any]:
    """Validate a pipeline config against its schema and return a copy with defaults filled.

    Args:
        config: the parsed config (config.yaml merged with --config overrides).
        source: how to name the config in messages (usually its file name).
        schema: aisci/schemas/<schema>.schema.yaml (config: the germline pipeline's; protein: workflows/protein's).

    Returns:
        The validated config with every default filled in.

    Raises:
        InputError: the config breaks the schema; the message names the key.
    """
    if not isinstance(config, dict):
        raise InputError(f"{source}: must be a mapping of keys to values")
    yamlfile.check_plain(config, source)  # before deepcopy, which recurses: depth, size, aliases, NaN/infinity
    config = copy.deepcopy(config)
    _coerce_scalars(load_schema(schema), config)
    yamlfile.check_plain(config, source)  # --config values parsed just now (.nan, .inf)
    errors = sorted(_validator(schema).iter_errors(config), key=lambda e: list(e.absolute_path))
    if errors:
        raise InputError(_describe(errors[0], source))
    _apply_defaults(load_schema(schema), config)
    return config


@dataclass(frozen=True)
class Sample:
    """One validated sample-sheet row; paths are absolute."""

    name: str
    line: int
    fq1: Path | None = None
    fq2: Path | None = None
    bam: Path | None = None
    truth: Path | None = None

    @property
    def from_bam(self) -> bool:
        return self.bam is not None


def _check_readable(path: Path, where: str) -> None:
    if not path.exists():
        raise InputError(f"{where}: file not found: {path}")
    if not path.is_file():
        raise InputError(f"{where}: not a regular file: {path}")
    if not os.access(path, os.R_OK):
        raise InputError(f"{where}: file not readable: {path}")


def _validate_row(row: dict[str, str], where: str) -> None:
    for error in sorted(_validator("samples").iter_errors(row), key=lambda e: list(e.absolute_path)):
        if error.validator == "oneOf":
            given = [c for c in ("fq1", "fq2", "bam") if c in row]
            raise InputError(
                f"{where}: give either fq1 and fq2, or bam (given: {', '.join(given) or 'none'})"
            )
        if error.validator == "not" and list(error.absolute_path) == ["sample"]:
            raise InputError(f"{where}: sample name 'cohort' is reserved for the joint call")
        field = ".".join(str(p) for p in error.absolute_path)
        if error.validator == "pattern" and field == "sample":
            check_name(error.instance, f"{where}: sample")
            raise InputError(f"{where}: {field} {error.instance!r} must match {error.validator_value}")
        raise InputError(f"{where}: {field + ': ' if field else ''}{error.message}")


def _cells(line: str, where: str) -> list[str]:
    try:
        return next(csv.reader([line], delimiter="\t"))
    except csv.Error as exc:
        raise InputError(f"{where}: not a tab-separated line ({exc})") from None


def read_sample_sheet(path: str | os.PathLike) -> list[Sample]:
    """Read and validate a sample sheet (TSV with a header line).

    Blank lines and lines starting with '#' are ignored. Relative paths in the sheet are
    resolved against the sheet's own directory.

    Args:
        path: the sample sheet.

    Returns:
        The samples in sheet order.

    Raises:
        InputError: naming the sheet, the line and the field, for an unknown or missing
            column, a bad or duplicate sample name, fq1/fq2 vs bam conflicts, or a file that is
            missing or unreadable.
    """
    sheet = Path(path)
    _check_readable(sheet, "sample sheet")
    allowed = list(load_schema("samples")["properties"])
    samples: list[Sample] = []
    seen: dict[str, int] = {}
    text = read_utf8(sheet, sheet.name)
    lines = [(n, line) for n, line in enumerate(text.splitlines(), 1) if line.strip() and not line.startswith("#")]
    if not lines:
        raise InputError(f"{sheet.name}: empty sample sheet (a header line and one row per sample are needed)")
    header_line, header_text = lines[0]
    header = _cells(header_text, f"{sheet.name} line {header_line}")
    header = [h.strip() for h in header]
    for col in header:
        if col not in allowed:
            raise InputError(
                f"{sheet.name} line {header_line}: unknown column '{col}' (allowed: {', '.join(allowed)})"
            )
    if len(set(header)) != len(header):
        raise InputError(f"{sheet.name} line {header_line}: a column appears twice")
    if "sample" not in header:
        raise InputError(f"{sheet.name} line {header_line}: the header has no 'sample' column")
    if len(lines) == 1:
        raise InputError(f"{sheet.name}: no samples (only a header line)")
    for lineno, text in lines[1:]:
        where = f"{sheet.name} line {lineno}"
        cells = _cells(text.rstrip("\r\n"), where)
        if len(cells) > len(header):
            raise InputError(f"{where}: {len(cells)} fields but the header has {len(header)}")
        row = {col: cell.strip() for col, cell in zip(header, cells) if cell.strip()}
        _validate_row(row, where)
        name = row["sample"]
        if name in seen:
            raise InputError(f"{where}: duplicate sample '{name}' (first on line {seen[name]})")
        seen[name] = lineno
        paths = {}
        for col in READ_COLUMNS:
            if col in row:
                p = Path(row[col])
                p = p if p.is_absolute() else (sheet.parent / p)
                _check_readable(p, f"{where}: {col}")
                paths[col] = p.resolve()
        if paths.get("fq1") is not None and paths.get("fq1") == paths.get("fq2"):
            raise InputError(f"{where}: fq1 and fq2 name the same file")
        samples.append(Sample(name=name, line=lineno, **paths))
    return samples


def check_bam_contigs(sample: Sample, contigs: list[Contig], sheet: str) -> None:
    """Fail when an input BAM/CRAM was aligned to another assembly than the reference.

    Reads are re-aligned, but a BAM aligned to another assembly (``1`` vs ``chr1``, GRCh38 vs
    hg19) is almost always a mistake in the sample sheet or the reference, so it stops here.
    Headers often list every contig of the assembly while the reads cover a few (a chr20
    extract), so with an index the contigs *holding reads* must be in the reference; without
    one, at least one header contig must be. Contigs in both must have the same length.
    """
    import pysam

    assert sample.bam is not None
    where = f"{sheet} line {sample.line}: bam"
    try:
        with pysam.AlignmentFile(str(sample.bam), "r", check_sq=False) as aln:
            if not (aln.is_bam or aln.is_cram):
                raise ValueError("not BAM or CRAM format")
            header = dict(zip(aln.references, aln.lengths))
            used = None  # without a BAM index (or for CRAM) only the header can be checked
            if aln.is_bam and aln.has_index():
                used = [s.contig for s in aln.get_index_statistics() if s.mapped > 0]
    except (ValueError, OSError) as exc:
        raise InputError(f"{where}: cannot read {sample.bam} as BAM/CRAM ({exc})") from exc
    ref = {c.name: c.length for c in contigs}
    ref_names = f"{', '.join(list(ref)[:5])}{' ...' if len(ref) > 5 else ''}"
    missing = [c for c in (used if used is not None else header) if c not in ref]
    if (used is not None and missing) or (used is None and header and len(missing) == len(header)):
        what = "has reads on contigs" if used is not None else "has contigs"
        raise InputError(
            f"{where}: {sample.bam} {what} not in the reference: "
            f"{', '.join(missing[:5])}{' ...' if len(missing) > 5 else ''} (reference has: {ref_names})"
        )
    wrong = [c for c, n in header.items() if c in ref and ref[c] != n]
    if wrong:
        c = wrong[0]
        raise InputError(
            f"{where}: contig {c} has length {header[c]} in {sample.bam} but {ref[c]} in the reference "
            "(another assembly?)"
        )


@dataclass(frozen=True)
class Inputs:
    """Everything validated before the first job: config, samples and reference contigs."""

    config: dict[str, Any]
    samples: list[Sample]
    contigs: list[Contig]


def validate_inputs(config: dict[str, Any], source: str = "config") -> Inputs:
    """Validate the config, then the sample sheet, the reference and every input file.

    Args:
        config: the parsed config.
        source: the config's name for messages.

    Returns:
        The validated inputs.

    Raises:
        InputError: on the first problem found, naming file, line and field.
    """
    config = validate_config(config, source)
    contigs = read_contigs(config["reference"])
    samples = read_sample_sheet(config["samples"])
    sheet = Path(config["samples"]).name
    for sample in samples:
        if sample.from_bam:
            check_bam_contigs(sample, contigs, sheet)
    bed = config["evaluation"]["bed"]
    if bed is not None:
        _check_readable(Path(bed), f"{source}: evaluation.bed")
    if config["splicing"]["enabled"]:
        _check_splicing(config["splicing"], source)
    if config["protein"]["enabled"]:
        _check_protein(config["protein"], contigs, source)
    return Inputs(config=config, samples=samples, contigs=contigs)


def _check_splicing(splicing: dict[str, Any], source: str) -> None:
    """The SpliceAI stage's weights and gene annotation, checked (and the annotation parsed) before any job."""
    from aisci.splice.annotation import PACKAGED, load_annotation, packaged_table
    from aisci.splice.weights import verify_weights

    verify_weights()
    annotation = splicing["annotation"]
    try:
        if annotation in PACKAGED:
            packaged_table(annotation)  # present; the tables themselves are the release's
        else:
            _check_readable(Path(annotation), f"{source}: splicing.annotation")
            load_annotation(annotation)
    except InputError as exc:
        raise InputError(f"{source}: splicing.annotation: {exc}") from None


def _check_protein(protein: dict[str, Any], contigs: list[Contig], source: str) -> None:
    """The protein stage's annotation (parsed, on the reference's contigs) and model (staged, intact)."""
    from aisci.protein.store import check_model, store_dir
    from aisci.protein.transcripts import load_transcripts

    annotation = protein["annotation"]
    field = f"{source}: protein.annotation"
    if annotation is None:
        raise InputError(f"{field}: required while protein.enabled is true (a GFF3 or GTF with CDS features)")
    _check_readable(Path(annotation), field)
    try:
        transcripts = load_transcripts(annotation)
    except InputError as exc:
        raise InputError(f"{field}: {exc}") from None
    check_annotation_contigs({t.chrom for t in transcripts}, contigs, field)
    try:
        store = store_dir(protein["model_store"])
    except InputError as exc:
        raise InputError(f"{source}: protein.model_store: {exc}") from None
    check_model(store, protein["model"], where=f"{source}: protein.model")


def check_annotation_contigs(names: set[str], contigs: list[Contig], field: str) -> None:
    """An annotation must name at least one of the reference's contigs (a 'chr' prefix more or less is fine)."""
    from aisci.splice.annotation import normalise_chrom

    known = {c.name for c in contigs}
    if names and known and not {normalise_chrom(n, next(iter(known))) for n in names} & known:
        raise InputError(f"{field}: none of its contigs ({', '.join(sorted(names)[:3])}, ...) is in the reference "
                         f"({', '.join(sorted(known)[:3])}, ...): annotation and reference use different names")


def configure_parser(parser: argparse.ArgumentParser) -> None:
    """Options of `aisci validate`."""
    parser.add_argument("--config", default="config.yaml", help="config file (default: config.yaml)")
    parser.add_argument(
        "--set", action="append", default=[], metavar="KEY=VALUE",
        help="override a top-level key, as snakemake --config does (repeatable)",
    )


def run(args: argparse.Namespace) -> int:
    """Validate a config and its sample sheet; print a summary."""
    path = Path(args.config)
    _check_readable(path, "config")
    config = yamlfile.load(path, str(path)) or {}
    if not isinstance(config, dict):
        raise InputError(f"{path}: must be a mapping of keys to values")
    for item in args.set:
        key, sep, value = item.partition("=")
        if not sep:
            raise InputError(f"--set {item!r}: expected KEY=VALUE")
        config[key] = yamlfile.loads(value, f"--set {key}")
    inputs = validate_inputs(config, path.name)
    total = sum(c.length for c in inputs.contigs)
    print(f"{path}: valid")
    print(f"reference: {inputs.config['reference']} ({len(inputs.contigs)} contigs, {total:,} bp)")
    for s in inputs.samples:
        source = f"bam={s.bam}" if s.from_bam else f"fq1={s.fq1} fq2={s.fq2}"
        print(f"sample {s.name}: {source}{f' truth={s.truth}' if s.truth else ''}")
    return 0
