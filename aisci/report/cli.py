"""`aisci report germline|protein|cohort`: one self-contained HTML page of a run (the final rule of each pipeline)."""

from __future__ import annotations

import argparse
import datetime
import logging
from pathlib import Path

from aisci.errors import InputError
from aisci.fileio import atomic_output
from aisci.report import multiqc, page
from aisci.report.germline import (
    Inputs,
    accuracy_section,
    calls_section,
    cluster_section,
    cluster_usage,
    protein_section,
    qc_section,
    read_protein,
    read_splice,
    run_section,
    slurm_run_id,
    splice_section,
)

log = logging.getLogger(__name__)


def build_germline(inputs: Inputs, now: datetime.datetime | None = None,
                   custom_content: dict[str, Path] | None = None) -> str:
    """The germline run's page: every section whose files the run wrote, in the order a reader looks.

    ``custom_content`` maps "usage", "splice" and "protein" to files where those summaries are also
    written as MultiQC custom content (aisci.report.multiqc); splice and protein need their tables.

    Raises:
        InputError: naming an input file that is missing or not what it should be.
    """
    now = now or datetime.datetime.now(datetime.timezone.utc)
    run, config = run_section(inputs.pipeline_info, now)
    sections = [run]
    if inputs.stats:
        sections.append(qc_section(inputs.stats))
    if inputs.bcftools_stats:
        sections.append(calls_section(inputs.bcftools_stats, inputs.calls))
    if inputs.evaluations:
        sections.append(accuracy_section(inputs.evaluations))
    splice = {p.name.removesuffix(".parquet"): read_splice(p) for p in inputs.splice}
    if splice:
        sections.append(splice_section(splice))
    protein = {p.name.removesuffix(".parquet"): read_protein(p) for p in inputs.protein}
    if protein:
        sections.append(protein_section(protein))
    run_id = slurm_run_id(inputs.slurm_run)
    usage = cluster_usage(run_id) if run_id else None
    if usage:
        sections.append(cluster_section(run_id, *usage))
    samples = len(inputs.stats)
    subtitle = (f"{samples} sample{'s' if samples != 1 else ''}, {len(inputs.bcftools_stats)} callset(s); "
                f"reference {config.get('reference', '?')}; written {now.isoformat(timespec='seconds')}")
    text = page.render("aisci germline run report", subtitle, sections)
    cc = custom_content or {}
    for kind, data in (("splice", splice), ("protein", protein)):
        if kind in cc and not data:
            raise InputError(f"--mqc-{kind} {cc[kind]}: no {kind} tables given to summarise")
    for path in multiqc.write(usage=(cc["usage"], usage[1] if usage else None, inputs.benchmarks)
                              if "usage" in cc else None,
                              splice=(cc["splice"], splice) if "splice" in cc else None,
                              protein=(cc["protein"], protein) if "protein" in cc else None):
        log.info("wrote %s (MultiQC custom content)", path)
    return text


def build_protein(mutagenesis: list[Path], heatmaps: list[Path], embeddings: Path | None, model: str | None,
                  store: Path | None, slurm_run: str | None, now: datetime.datetime | None = None) -> str:
    """The protein pipeline's page: the model, the mutagenesis maps and heatmaps, the embeddings, cluster use.

    Raises:
        InputError: naming an input file that is missing or not what it should be.
    """
    from aisci.report import protein

    now = now or datetime.datetime.now(datetime.timezone.utc)
    maps = [protein.read_map(p) for p in mutagenesis]
    by_key = {p.name.removesuffix(".png"): p for p in heatmaps}
    unknown = sorted(by_key.keys() - {m.key for m in maps})
    if unknown:
        raise InputError(f"--heatmaps {by_key[unknown[0]]}: no mutagenesis table of {unknown[0]} given")
    sections = [protein.run_section(maps, model, store, now)]
    if maps:
        sections.append(protein.mutagenesis_section(maps, by_key))
    if embeddings is not None:
        sections.append(protein.embeddings_section(protein.read_embeddings(embeddings)))
    run_id = slurm_run_id(slurm_run)
    usage = cluster_usage(run_id) if run_id else None
    if usage:
        sections.append(cluster_section(run_id, *usage))
    subtitle = f"{len(maps)} protein(s) mapped; model {model or '?'}; written {now.isoformat(timespec='seconds')}"
    return page.render("aisci protein run report", subtitle, sections)


def configure_parser(parser: argparse.ArgumentParser) -> None:
    """Options of `aisci report`."""
    sub = parser.add_subparsers(dest="report_command", metavar="PIPELINE", required=True)
    g = sub.add_parser("germline", help="the germline pipeline's run report (results/report.html)")
    g.add_argument("--pipeline-info", required=True, type=Path, help="results/pipeline_info of the run")
    g.add_argument("--stats", nargs="*", type=Path, default=[], help="samtools stats per sample ({sample}.stats.txt)")
    g.add_argument("--bcftools-stats", nargs="*", type=Path, default=[],
                   help="bcftools stats per callset ({callset}.bcftools_stats.txt)")
    g.add_argument("--calls", nargs="*", type=Path, default=[], help="the callsets' VCFs (FILTER counts)")
    g.add_argument("--eval", nargs="*", type=Path, default=[], help="aisci evaluate JSON per sample with a truth set")
    g.add_argument("--splice", nargs="*", type=Path, default=[], help="SpliceAI tables ({callset}.parquet)")
    g.add_argument("--protein", nargs="*", type=Path, default=[], help="protein score tables ({callset}.parquet)")
    g.add_argument("--slurm-run", default="auto",
                   help="Snakemake run id whose Slurm jobs to report (default auto: this job's, inside Slurm; none: leave out)")
    g.add_argument("--benchmarks", type=Path, default=Path("benchmarks"), metavar="DIR",
                   help="Snakemake's benchmark files (<rule>/*.tsv): resource use of a run outside Slurm, for --mqc-usage")
    for kind, what in (("usage", "cluster use per rule (no rows outside Slurm)"),
                       ("splice", "SpliceAI counts per callset"), ("protein", "protein effects per callset")):
        g.add_argument(f"--mqc-{kind}", type=Path, metavar="F_mqc.tsv", help=f"also write {what} as MultiQC custom content")
    g.add_argument("--out", required=True, type=Path, help="the page to write (results/report.html)")
    p = sub.add_parser("protein", help="the protein pipeline's run report (results/report.html)")
    p.add_argument("--mutagenesis", nargs="*", type=Path, default=[], help="mutagenesis tables ({protein}.parquet)")
    p.add_argument("--heatmaps", nargs="*", type=Path, default=[], help="their heatmaps ({protein}.png)")
    p.add_argument("--embeddings", type=Path, nargs="?", const=None,
                   help="the embeddings table (embeddings.parquet; no value: the run made none)")
    p.add_argument("--model", help="the model's name in the store (its manifest entry is shown)")
    p.add_argument("--model-store", type=Path, help="the model store")
    p.add_argument("--slurm-run", default="auto", help="as for germline: auto, a Snakemake run id, or none")
    p.add_argument("--out", required=True, type=Path, help="the page to write (results/plm/report.html)")
    c = sub.add_parser("cohort", help="the reanalysis pipeline's run report (results/reanalysis/report.html)")
    c.add_argument("--store", required=True, type=Path, help="the cohort store (config store)")
    c.add_argument("--shards", nargs="*", type=Path, default=[], help="ingest reports (shards/{shard}.json)")
    c.add_argument("--scores", nargs="*", type=Path, default=[], help="score reports (scores/{stage}.json)")
    c.add_argument("--summary", type=Path, help="aisci cohort info's table (cohort.tsv)")
    c.add_argument("--out", required=True, type=Path, help="the page to write (results/reanalysis/report.html)")


def run(args: argparse.Namespace) -> int:
    """Write the report page; nothing is written when an input is missing or broken."""
    if args.report_command == "cohort":
        from aisci.report.cohort import build_cohort

        return _write(args.out, build_cohort(args.store, args.shards, args.scores, args.summary))
    if args.report_command == "protein":
        text = build_protein(args.mutagenesis, args.heatmaps, args.embeddings, args.model, args.model_store,
                             None if args.slurm_run == "none" else args.slurm_run)
        return _write(args.out, text)
    inputs = Inputs(pipeline_info=args.pipeline_info, stats=args.stats, bcftools_stats=args.bcftools_stats,
                    calls=args.calls, evaluations=args.eval, splice=args.splice, protein=args.protein,
                    slurm_run=None if args.slurm_run == "none" else args.slurm_run, benchmarks=args.benchmarks)
    custom = {k: getattr(args, f"mqc_{k}") for k in ("usage", "splice", "protein") if getattr(args, f"mqc_{k}")}
    return _write(args.out, build_germline(inputs, custom_content=custom))


def _write(out: Path, text: str) -> int:
    with atomic_output(out) as tmp:
        tmp.write_text(text)
    log.info("wrote %s (%.0f kB)", out, len(text.encode()) / 1000)
    print(f"report: {out}")
    return 0
