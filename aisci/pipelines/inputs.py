"""`aisci validate` and the germline pipeline's start-up checks: config, sheet, reference, indexes, models, every file."""

from __future__ import annotations

import argparse
from contextvars import ContextVar
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from aisci import yamlfile
from aisci.errors import InputError
from aisci.fileio import check_readable
from aisci.germline.reference import Contig, read_contigs
from aisci.layers import Sources, load_layers
from aisci.pipelines.sheet import Sample, check_bam_contigs, read_sample_sheet
from aisci.schema import Problems, as_sources, validate_config


#: False while a Snakefile is parsed inside a job: the driver checked every input file before it
#: submitted anything, and a job at a centre without a shared file system holds only its own
#: inputs (and the config, sample sheet and reference the parse reads). Set by glue.for_snakemake.
FILE_CHECKS: ContextVar[bool] = ContextVar("aisci_file_checks", default=True)


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
        The validated inputs; ``config`` resolved (``splice.annotation`` from ``genome``).

    Raises:
        InputError: one line per problem found (every one, not only the first), each naming the
            file, line and field.
    """
    sources = as_sources(source)
    config = validate_config(config, sources)
    problems = Problems()
    contigs = problems.check(_reference_contigs, config["reference"], sources) or []
    if not FILE_CHECKS.get():  # inside a job: what the plan needs (contigs, samples), no file checks
        samples = problems.check(_sample_sheet, config["samples"], sources, False) or []
        if config["splice"]["enabled"] and config["splice"]["annotation"] is None:
            config["splice"]["annotation"] = problems.check(_genome_annotation, config["genome"], sources)
        problems.raise_any()
        return Inputs(config=config, samples=samples, contigs=contigs)
    samples = problems.check(_sample_sheet, config["samples"], sources) or []
    sheet = Path(config["samples"]).name
    for sample in samples:
        if sample.from_bam and contigs:
            problems.check(check_bam_contigs, sample, contigs, sheet)
    index = config["index"][config["aligner"]]
    if index is not None and contigs:
        from aisci.germline.indexes import check_index

        problems.check(check_index, config["aligner"], index, contigs, sources.where(f"index.{config['aligner']}"))
    bed = config["evaluation"]["bed"]
    if bed is not None:
        problems.check(check_readable, Path(bed), sources.where("evaluation.bed"))
    splicing = config["splice"]
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
    check_readable(Path(reference), sources.where("reference"))
    return read_contigs(reference)


def _sample_sheet(path: str, sources: Sources, check_files: bool = True) -> list[Sample]:
    check_readable(Path(path), sources.where("samples"))
    return read_sample_sheet(path, check_files=check_files)


def _genome_annotation(genome: str, sources: Sources) -> str:
    """The SpliceAI gene table of a known assembly (the tables shipped with the spliceai package)."""
    if genome == "custom":
        raise InputError(f"{sources.where('splice.annotation')}: required with genome: custom "
                         "(a gene table, GFF3 or GTF of your genome), or set splice.enabled: false")
    return genome


def _check_splicing(splicing: dict[str, Any], sources: Sources) -> None:
    """The SpliceAI stage's weights and gene annotation, checked (and the annotation parsed) before any job."""
    from aisci.splice.annotation import PACKAGED, load_annotation, packaged_table
    from aisci.splice.weights import verify_weights

    try:
        verify_weights(splicing["weights"])
    except InputError as exc:
        raise (exc if splicing["weights"] is None else InputError(f"{sources.where('splice.weights')}: {exc}")) from None
    annotation = splicing["annotation"]
    field = sources.where("splice.annotation")
    if annotation in PACKAGED:
        packaged_table(annotation)  # present; the tables themselves are the release's
        return
    check_readable(Path(annotation), field)
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
            check_readable(Path(annotation), field)
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
    from aisci.gff import normalise_chrom

    known = {c.name for c in contigs}
    if names and known and not {normalise_chrom(n, next(iter(known))) for n in names} & known:
        raise InputError(f"{field}: none of its contigs ({', '.join(sorted(names)[:3])}, ...) is in the reference "
                         f"({', '.join(sorted(known)[:3])}, ...): annotation and reference use different names")


def configure_parser(parser: argparse.ArgumentParser) -> None:
    """Options of `aisci validate`: Snakemake's own, so that it checks what `snakemake` would run."""
    parser.add_argument("--configfile", action="append", default=[], metavar="FILE",
                        help="a config over the Snakefile's own config.yaml (taken when there is one here), as "
                             "snakemake --configfile (repeatable, later wins)")
    parser.add_argument("--config", nargs="+", action="extend", default=[], metavar="KEY=VALUE",
                        help="override keys, as snakemake --config does")


def run(args: argparse.Namespace) -> int:
    """Validate a config and its sample sheet; print a summary."""
    overrides: dict[str, Any] = {}
    for item in args.config:
        key, sep, value = item.partition("=")
        if not sep:
            raise InputError(f"--config {item!r}: expected KEY=VALUE, as snakemake --config (a config file goes "
                             "with --configfile)")
        overrides[key] = yamlfile.loads(value, f"--config {key}")
    config, sources = load_layers(Path("config.yaml"), [Path(f) for f in args.configfile], overrides)
    inputs = validate_inputs(config, sources)
    total = sum(c.length for c in inputs.contigs)
    print(f"{sources.names()}: valid")
    print(f"reference: {inputs.config['reference']} ({len(inputs.contigs)} contigs, {total:,} bp)")
    for s in inputs.samples:
        source = f"bam={s.bam}" if s.from_bam else f"fq1={s.fq1} fq2={s.fq2}"
        print(f"sample {s.name}: {source}{f' truth={s.truth}' if s.truth else ''}")
    return 0
