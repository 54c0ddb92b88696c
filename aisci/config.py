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
from typing import Any, Callable, TypeVar

import yaml

from aisci import yamlfile
from aisci.errors import InputError
from aisci.fileio import read_utf8
from aisci.layers import Sources
from aisci.names import check_name
from aisci.reference import Contig, read_contigs

READ_COLUMNS = ("fq1", "fq2", "bam", "truth")


T = TypeVar("T")


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

    if hasattr(workflow, "config_settings"):
        sources = Sources.from_workflow(workflow)
    else:
        sources = Sources.from_files(list(workflow))
    try:
        return build(sources)
    except InputError as exc:
        raise WorkflowError(describe_problems(str(exc))) from None


def describe_problems(message: str) -> str:
    """'invalid input: ...' for one problem, or a numbered list when several were found at once."""
    problems = message.split("\n")
    if len(problems) == 1:
        return f"invalid input: {message}"
    return f"invalid input, {len(problems)} problems:\n" + "\n".join(f"  {p}" for p in problems)


def as_sources(source: "str | Sources") -> Sources:
    """A config's name, or its layers, as layers."""
    return source if isinstance(source, Sources) else Sources.single(source)


class Problems:
    """Collects every problem found, so that one run reports them all, not only the first."""

    def __init__(self) -> None:
        self.messages: list[str] = []

    def check(self, func: Callable[..., T], *args: Any, **kwargs: Any) -> T | None:
        """Call ``func``; record its InputError (lines of several problems included) and return None."""
        try:
            return func(*args, **kwargs)
        except InputError as exc:
            self.messages += [m for m in str(exc).split("\n") if m not in self.messages]
            return None

    def raise_any(self) -> None:
        """Raise one InputError listing every problem, if any was found."""
        if self.messages:
            raise InputError("\n".join(self.messages))


@cache
def load_schema(name: str) -> dict[str, Any]:
    """Load a packaged JSON schema (``config`` or ``samples``)."""
    text = resources.files("aisci.schemas").joinpath(f"{name}.schema.yaml").read_text()
    return yaml.safe_load(text)


@cache
def schema_validator(name: str) -> Any:
    """A compiled draft 2020-12 validator for a packaged schema."""
    from jsonschema import Draft202012Validator

    schema = load_schema(name)
    Draft202012Validator.check_schema(schema)
    return Draft202012Validator(schema)


def apply_defaults(schema: dict[str, Any], data: dict[str, Any]) -> None:
    """Fill missing keys from ``default`` values, recursing into nested objects."""
    for key, sub in schema.get("properties", {}).items():
        if key not in data and "default" in sub:
            data[key] = copy.deepcopy(sub["default"])
        if isinstance(data.get(key), dict) and sub.get("type") == "object":
            apply_defaults(sub, data[key])


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


def describe_error(error: Any, source: "str | Sources") -> str:
    """A jsonschema error as 'file: field: problem' (lines when it holds several, e.g. unknown keys)."""
    return "\n".join(_describe(error, as_sources(source)))


def _describe(error: Any, sources: Sources) -> list[str]:
    """Turn a jsonschema error into 'file: field: problem' lines, naming the file that set the field."""
    field = ".".join(str(p) for p in error.absolute_path)
    where = sources.where(field)
    if error.validator == "additionalProperties":
        allowed = sorted(error.schema.get("properties", {}))
        unknown = sorted(set(error.instance) - set(allowed))
        prefix = f"{field}." if field else ""
        return [f"{sources.of(prefix + key)}: unknown key '{prefix}{key}' (allowed: {', '.join(allowed)})"
                for key in unknown]
    if error.validator == "required":
        missing = [k for k in error.validator_value if isinstance(error.instance, dict) and k not in error.instance]
        prefix = f"{field}." if field else ""
        return [f"{sources.names()}: {prefix}{k}: required, not set" for k in missing] or [f"{where}: {error.message}"]
    if error.validator == "pattern":
        return [f"{where}: {error.instance!r} must match {error.validator_value}"]
    if error.validator == "enum":
        return [f"{where}: {error.instance!r} is not one of {', '.join(map(_yaml_word, error.validator_value))}"]
    return [f"{where}: {error.message}"]


def _yaml_word(value: Any) -> str:
    """An enum value as it is written in YAML (true, not True)."""
    return str(value).lower() if isinstance(value, bool) else str(value)


def validate_config(config: dict[str, Any], source: "str | Sources" = "config", schema: str = "config") -> dict[str, Any]:
    """Validate a pipeline config against its schema and return a copy with defaults filled.

    Args:
        config: the parsed config (config.yaml merged with --config overrides).
        source: how to name the config in messages: its file name, or its layers (then each message
            names the file that set the key).
        schema: aisci/schemas/<schema>.schema.yaml (config: the germline pipeline's; protein: workflows/protein's).

    Returns:
        The validated config with every default filled in.

    Raises:
        InputError: the config breaks the schema; one line per problem, each naming the key.
    """
    sources = as_sources(source)
    source = sources.names()
    if not isinstance(config, dict):
        raise InputError(f"{source}: must be a mapping of keys to values")
    yamlfile.check_plain(config, source)  # before deepcopy, which recurses: depth, size, aliases, NaN/infinity
    config = copy.deepcopy(config)
    _coerce_scalars(load_schema(schema), config)
    yamlfile.check_plain(config, source)  # --config values parsed just now (.nan, .inf)
    errors = sorted(schema_validator(schema).iter_errors(config), key=lambda e: [str(p) for p in e.absolute_path])
    if errors:
        lines: list[str] = []
        for error in errors:
            lines += [line for line in _describe(error, sources) if line not in lines]
        raise InputError("\n".join(lines))
    apply_defaults(load_schema(schema), config)
    return config


@dataclass(frozen=True)
class Lane:
    """One FASTQ pair of a sample (a sheet row); ``name`` is empty when the sheet gives no lane."""

    name: str
    fq1: Path
    fq2: Path
    line: int


@dataclass(frozen=True)
class Sample:
    """A validated sample: its sheet row, or its rows when it has several lanes; paths are absolute."""

    name: str
    line: int
    fq1: Path | None = None
    fq2: Path | None = None
    bam: Path | None = None
    truth: Path | None = None
    lanes: tuple[Lane, ...] = ()

    @property
    def from_bam(self) -> bool:
        return self.bam is not None

    @property
    def multi_lane(self) -> bool:
        """Whether the sheet names the sample's lanes (then each gets its own read group)."""
        return any(lane.name for lane in self.lanes)


def _check_readable(path: Path, where: str) -> None:
    if not path.exists():
        raise InputError(f"{where}: file not found: {path}")
    if not path.is_file():
        raise InputError(f"{where}: not a regular file: {path}")
    if not os.access(path, os.R_OK):
        raise InputError(f"{where}: file not readable: {path}")


def _validate_row(row: dict[str, str], where: str) -> None:
    for error in sorted(schema_validator("samples").iter_errors(row), key=lambda e: list(e.absolute_path)):
        if error.validator == "oneOf":
            given = [c for c in ("fq1", "fq2", "bam") if c in row]
            raise InputError(
                f"{where}: give either fq1 and fq2, or bam (given: {', '.join(given) or 'none'})"
            )
        if error.validator == "not" and list(error.absolute_path) == ["sample"]:
            raise InputError(f"{where}: sample name 'cohort' is reserved for the joint call")
        field = ".".join(str(p) for p in error.absolute_path)
        if error.validator == "pattern" and field in ("sample", "lane"):
            check_name(error.instance, f"{where}: {field}")
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
    rows: dict[str, list[Sample]] = {}
    files: dict[Path, str] = {}
    for lineno, text in lines[1:]:
        where = f"{sheet.name} line {lineno}"
        cells = _cells(text.rstrip("\r\n"), where)
        if len(cells) > len(header):
            raise InputError(f"{where}: {len(cells)} fields but the header has {len(header)}")
        row = {col: cell.strip() for col, cell in zip(header, cells) if cell.strip()}
        _validate_row(row, where)
        name = row["sample"]
        if name in seen and "lane" not in row:
            raise InputError(f"{where}: duplicate sample '{name}' (first on line {seen[name]}); several FASTQ pairs "
                             "of one sample need a `lane` column, a different lane on each row")
        seen.setdefault(name, lineno)
        paths = {}
        for col in READ_COLUMNS:
            if col in row:
                p = Path(row[col])
                p = p if p.is_absolute() else (sheet.parent / p)
                _check_readable(p, f"{where}: {col}")
                paths[col] = p.resolve()
        if paths.get("fq1") is not None and paths.get("fq1") == paths.get("fq2"):
            raise InputError(f"{where}: fq1 and fq2 name the same file")
        for col in ("fq1", "fq2", "bam"):
            if col in paths:
                # the path as written (made absolute), not resolved: a copy-paste slip in the sheet, not
                # links a site makes on purpose
                given = Path(os.path.abspath(sheet.parent / row[col]))
                if given in files:
                    raise InputError(f"{where}: {col} {row[col]} is already on {files[given]} (a read file "
                                     "belongs to one sample and one lane)")
                files[given] = f"line {lineno}"
        rows.setdefault(name, []).append(Sample(name=name, line=lineno, lanes=_lanes(row, paths, lineno), **paths))
    for name, group in rows.items():
        samples.append(group[0] if len(group) == 1 else _merge_lanes(group, sheet.name))
    return samples


def _lanes(row: dict[str, str], paths: dict[str, Path], lineno: int) -> tuple[Lane, ...]:
    if "fq1" not in paths:
        return ()
    return (Lane(row.get("lane", ""), paths["fq1"], paths["fq2"], lineno),)


def _merge_lanes(rows: list[Sample], sheet: str) -> Sample:
    """One sample from its lane rows: FASTQ pairs only, distinct lanes, one truth VCF at most."""
    first = rows[0]
    lanes: dict[str, int] = {}
    for row in rows:
        where = f"{sheet} line {row.line}"
        if row.from_bam:
            raise InputError(f"{where}: sample '{row.name}' has several rows (from line {first.line}): each must be a "
                             "FASTQ pair of one lane; a BAM/CRAM keeps its own read groups and stands alone")
        lane = row.lanes[0].name
        if not lane:
            raise InputError(f"{where}: sample '{row.name}' has several rows (from line {first.line}): give each a lane")
        if lane in lanes:
            raise InputError(f"{where}: lane '{lane}' of sample '{row.name}' is already on line {lanes[lane]}")
        lanes[lane] = row.line
    truths = {row.truth for row in rows if row.truth is not None}
    if len(truths) > 1:
        raise InputError(f"{sheet} line {rows[-1].line}: sample '{first.name}' has different truth VCFs on its lane rows")
    return Sample(name=first.name, line=first.line, truth=next(iter(truths), None),
                  lanes=tuple(lane for row in rows for lane in row.lanes))


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


def validate_inputs(config: dict[str, Any], source: "str | Sources" = "config") -> Inputs:
    """Validate the config, then the sample sheet, the reference and every input file.

    Args:
        config: the parsed config.
        source: the config's name, or its layers, for messages.

    Returns:
        The validated inputs; ``config`` resolved (``splicing.annotation`` from ``genome``).

    Raises:
        InputError: one line per problem found (every one, not only the first), each naming the
            file, line and field.
    """
    sources = as_sources(source)
    config = validate_config(config, sources)
    problems = Problems()
    contigs = problems.check(_reference_contigs, config["reference"], sources) or []
    samples = problems.check(_sample_sheet, config["samples"], sources) or []
    sheet = Path(config["samples"]).name
    for sample in samples:
        if sample.from_bam and contigs:
            problems.check(check_bam_contigs, sample, contigs, sheet)
    index = config["index"][config["aligner"]]
    if index is not None and contigs:
        from aisci.indexes import check_index

        problems.check(check_index, config["aligner"], index, contigs, sources.where(f"index.{config['aligner']}"))
    bed = config["evaluation"]["bed"]
    if bed is not None:
        problems.check(_check_readable, Path(bed), sources.where("evaluation.bed"))
    splicing = config["splicing"]
    if splicing["enabled"]:
        if splicing["annotation"] is None:
            splicing["annotation"] = problems.check(_genome_annotation, config["genome"], sources)
        if splicing["annotation"] is not None:
            problems.check(_check_splicing, splicing, sources)
    if config["protein"]["enabled"]:
        problems.check(_check_protein, config["protein"], contigs, sources)
    problems.raise_any()
    return Inputs(config=config, samples=samples, contigs=contigs)


def _reference_contigs(reference: str, sources: Sources) -> list[Contig]:
    _check_readable(Path(reference), sources.where("reference"))
    return read_contigs(reference)


def _sample_sheet(path: str, sources: Sources) -> list[Sample]:
    _check_readable(Path(path), sources.where("samples"))
    return read_sample_sheet(path)


def _genome_annotation(genome: str, sources: Sources) -> str:
    """The SpliceAI gene table of a known assembly (the tables shipped with the spliceai package)."""
    if genome == "custom":
        raise InputError(f"{sources.where('splicing.annotation')}: required with genome: custom "
                         "(a gene table, GFF3 or GTF of your genome), or set splicing.enabled: false")
    return genome


def _check_splicing(splicing: dict[str, Any], sources: Sources) -> None:
    """The SpliceAI stage's weights and gene annotation, checked (and the annotation parsed) before any job."""
    from aisci.splice.annotation import PACKAGED, load_annotation, packaged_table
    from aisci.splice.weights import verify_weights

    verify_weights()
    annotation = splicing["annotation"]
    field = sources.where("splicing.annotation")
    if annotation in PACKAGED:
        packaged_table(annotation)  # present; the tables themselves are the release's
        return
    _check_readable(Path(annotation), field)
    try:
        load_annotation(annotation)
    except InputError as exc:
        raise InputError(f"{field}: {exc}") from None


def _check_protein(protein: dict[str, Any], contigs: list[Contig], sources: Sources) -> None:
    """The protein stage's annotation (parsed, on the reference's contigs) and model (staged, intact)."""
    from aisci.protein.store import check_model, store_dir
    from aisci.protein.transcripts import load_transcripts

    annotation = protein["annotation"]
    field = sources.where("protein.annotation")
    problems = Problems()
    if annotation is None:
        problems.messages.append(f"{field}: required while protein.enabled is true (a GFF3 or GTF with CDS features)")
    else:
        try:
            _check_readable(Path(annotation), field)
            check_annotation_contigs({t.chrom for t in load_transcripts(annotation)}, contigs, field)
        except InputError as exc:  # the parser's messages name the annotation's line, not the key
            problems.messages.append(str(exc) if str(exc).startswith(field) else f"{field}: {exc}")
    try:
        store = store_dir(protein["model_store"])
    except InputError as exc:
        problems.messages.append(f"{sources.where('protein.model_store')}: {exc}")
    else:
        problems.check(check_model, store, protein["model"], where=sources.where("protein.model"))
    problems.raise_any()


def check_annotation_contigs(names: set[str], contigs: list[Contig], field: str) -> None:
    """An annotation must name at least one of the reference's contigs (a 'chr' prefix more or less is fine)."""
    from aisci.splice.annotation import normalise_chrom

    known = {c.name for c in contigs}
    if names and known and not {normalise_chrom(n, next(iter(known))) for n in names} & known:
        raise InputError(f"{field}: none of its contigs ({', '.join(sorted(names)[:3])}, ...) is in the reference "
                         f"({', '.join(sorted(known)[:3])}, ...): annotation and reference use different names")


def configure_parser(parser: argparse.ArgumentParser) -> None:
    """Options of `aisci validate`."""
    parser.add_argument("--config", default="config.yaml",
                        help="the base config, the Snakefile's own (default: config.yaml; skipped when "
                             "missing and --configfile is given)")
    parser.add_argument("--configfile", action="append", default=[], metavar="FILE",
                        help="a config layered over it, as snakemake --configfile does (repeatable, later wins)")
    parser.add_argument(
        "--set", action="append", default=[], metavar="KEY=VALUE",
        help="override a top-level key, as snakemake --config does (repeatable)",
    )


def merge_config(base: dict[str, Any], update: dict[str, Any]) -> None:
    """Snakemake's layering: nested mappings merge key by key, anything else replaces."""
    for key, value in update.items():
        if isinstance(value, dict) and isinstance(base.get(key), dict):
            merge_config(base[key], value)
        else:
            base[key] = copy.deepcopy(value)


def load_layers(base: Path, configfiles: list[Path], overrides: dict[str, Any]) -> tuple[dict[str, Any], Sources]:
    """Read and merge a config the way Snakemake does: the base, each --configfile, then --config values.

    Raises:
        InputError: a file missing, unreadable, not YAML or not a mapping.
    """
    files = ([base] if base.exists() or not configfiles else []) + configfiles
    merged: dict[str, Any] = {}
    for path in files:
        _check_readable(path, "config")
        data = yamlfile.load(path, str(path)) or {}
        if not isinstance(data, dict):
            raise InputError(f"{path}: must be a mapping of keys to values")
        merge_config(merged, data)
    merge_config(merged, overrides)
    return merged, Sources.from_files(files, overrides, "--set")


def run(args: argparse.Namespace) -> int:
    """Validate a config and its sample sheet; print a summary."""
    overrides: dict[str, Any] = {}
    for item in args.set:
        key, sep, value = item.partition("=")
        if not sep:
            raise InputError(f"--set {item!r}: expected KEY=VALUE")
        overrides[key] = yamlfile.loads(value, f"--set {key}")
    config, sources = load_layers(Path(args.config), [Path(f) for f in args.configfile], overrides)
    inputs = validate_inputs(config, sources)
    total = sum(c.length for c in inputs.contigs)
    print(f"{sources.names()}: valid")
    print(f"reference: {inputs.config['reference']} ({len(inputs.contigs)} contigs, {total:,} bp)")
    for s in inputs.samples:
        source = f"bam={s.bam}" if s.from_bam else f"fq1={s.fq1} fq2={s.fq2}"
        print(f"sample {s.name}: {source}{f' truth={s.truth}' if s.truth else ''}")
    return 0
