"""`aisci report germline`: one self-contained HTML page of a run (the final rule of the germline pipeline)."""

from __future__ import annotations

import argparse
import datetime
import logging
from pathlib import Path

from aisci.fileio import atomic_output
from aisci.report import page
from aisci.report.germline import (
    Inputs,
    accuracy_section,
    calls_section,
    cluster_section,
    protein_section,
    qc_section,
    run_section,
    slurm_run_id,
    splice_section,
)

log = logging.getLogger(__name__)


def build_germline(inputs: Inputs, now: datetime.datetime | None = None) -> str:
    """The germline run's page: every section whose files the run wrote, in the order a reader looks.

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
    if inputs.splice:
        sections.append(splice_section(inputs.splice))
    if inputs.protein:
        sections.append(protein_section(inputs.protein))
    run_id = slurm_run_id(inputs.slurm_run)
    if run_id:
        cluster = cluster_section(run_id)
        if cluster:
            sections.append(cluster)
    samples = len(inputs.stats)
    subtitle = (f"{samples} sample{'s' if samples != 1 else ''}, {len(inputs.bcftools_stats)} callset(s); "
                f"reference {config.get('reference', '?')}; written {now.isoformat(timespec='seconds')}")
    return page.render("aisci germline run report", subtitle, sections)


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
    g.add_argument("--out", required=True, type=Path, help="the page to write (results/report.html)")


def run(args: argparse.Namespace) -> int:
    """Write the report page; nothing is written when an input is missing or broken."""
    inputs = Inputs(pipeline_info=args.pipeline_info, stats=args.stats, bcftools_stats=args.bcftools_stats,
                    calls=args.calls, evaluations=args.eval, splice=args.splice, protein=args.protein,
                    slurm_run=None if args.slurm_run == "none" else args.slurm_run)
    text = build_germline(inputs)
    with atomic_output(args.out) as tmp:
        tmp.write_text(text)
    log.info("wrote %s (%.0f kB)", args.out, len(text.encode()) / 1000)
    print(f"report: {args.out}")
    return 0
