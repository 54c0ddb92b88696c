"""MultiQC custom content: the run's SpliceAI, protein and cluster-use summaries as `*_mqc.tsv` tables.

MultiQC reads samtools and bcftools stats and hap.py summaries with its own modules; what only aisci
makes it reads as "custom content": a TSV whose leading `#` lines carry the section's YAML settings
(id, section name, description, plot type, column headers). The report rule writes them into
results/qc/, where `multiqc results/` finds them, from the numbers its page shows.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import yaml

from aisci.fileio import atomic_output
from aisci.report.germline import SPLICE_THRESHOLDS, SpliceEffect, splice_counts

IMPACTS = ("HIGH", "MODERATE", "LOW", "MODIFIER")


def custom_content(section: str, name: str, description: str, headers: dict[str, dict[str, Any]],
                   rows: Sequence[Sequence[Any]], *, first_column: str) -> str:
    """One custom-content TSV: its YAML settings as `#` lines, the column names, the rows (empty cells for None)."""
    settings = {
        "id": f"aisci_{section}",
        "section_name": name,
        "description": description,
        "plot_type": "table",
        "pconfig": {"id": f"aisci_{section}_table", "namespace": "aisci", "col1_header": first_column},
        "headers": headers,
    }
    head = "".join(f"# {line}\n" for line in yaml.safe_dump(settings, sort_keys=False, allow_unicode=True).splitlines())
    body = "".join("\t".join("" if v is None else str(v) for v in row) + "\n" for row in rows)
    return head + "\t".join([first_column, *headers]) + "\n" + body


def splice_table(by_callset: dict[str, list[SpliceEffect]]) -> str:
    """Per callset: allele × gene scored and how many reach each delta threshold."""
    headers = {"scored": {"title": "Scored", "description": "allele × gene with a SpliceAI score", "format": "{:,.0f}"}}
    for t in SPLICE_THRESHOLDS:
        headers[f"delta_ge_{t}"] = {"title": f"Δ ≥ {t}", "description": f"maximum delta score ≥ {t}",
                                    "format": "{:,.0f}"}
    return custom_content("splice", "SpliceAI effects (aisci)", "SpliceAI: scored alleles per callset and how many reach each delta score.",
                          headers, [[c, *splice_counts(e)] for c, e in by_callset.items()], first_column="callset")


def protein_table(by_callset: dict[str, list[dict[str, Any]]]) -> str:
    """Per callset: allele × transcript rows, how many the model scored, counts by impact, the lowest score."""
    headers = {"rows": {"title": "Allele × transcript", "format": "{:,.0f}"},
               "scored": {"title": "Scored", "description": "scored by the protein language model", "format": "{:,.0f}"}}
    for impact in IMPACTS:
        headers[impact.lower()] = {"title": impact, "description": f"consequences of impact {impact}", "format": "{:,.0f}"}
    headers["min_score"] = {"title": "Lowest score", "description": "log-likelihood ratio (lower: more damaging)",
                            "format": "{:,.3f}"}
    rows = []
    for callset, items in by_callset.items():
        impacts = Counter(r["impact"] for r in items)
        scores = [r["score"] for r in items if r["score"] is not None]
        rows.append([callset, len(items), len(scores), *[impacts.get(i, 0) for i in IMPACTS],
                     round(min(scores), 4) if scores else None])
    return custom_content("protein", "Protein effects (aisci)", "Protein effects per callset: consequence impacts and model scores.",
                          headers, rows, first_column="callset")


def usage_table(report: Any | None, benchmarks: Path | None = None) -> str:
    """Per rule: on Slurm (``report``: aisci usage's summary of sacct) jobs, partitions, core-hours, queue wait,
    CPU and memory efficiency, GPU-hours; off Slurm the local jobs' wall, CPU time and peak memory from
    Snakemake's benchmark files under ``benchmarks`` (benchmarks/<rule>/*.tsv)."""
    if report is not None:
        headers = {"jobs": {"title": "Jobs", "format": "{:,.0f}"},
                   "partitions": {"title": "Partitions"},
                   "core_hours": {"title": "Core-hours", "format": "{:,.3f}"},
                   "mean_queue_s": {"title": "Queue wait (s)", "description": "mean time from submission to start"},
                   "cpu_efficiency": {"title": "CPU efficiency", "description": "CPU time / (cores × wall)"},
                   "memory_efficiency": {"title": "Memory efficiency", "description": "peak RSS / requested"},
                   "gpu_hours": {"title": "GPU-hours", "format": "{:,.3f}"}}
        rows = [[r.name, r.jobs, r.partitions, round(r.core_h, 4), r.mean_queue_s, r.cpu_eff, r.mem_eff,
                 round(r.gpu_h, 4)] for r in report.rules]
        return custom_content("usage", "Cluster use (aisci)", "Cluster use per rule, from Slurm accounting.",
                              headers, rows, first_column="rule")
    headers = {"jobs": {"title": "Jobs", "format": "{:,.0f}"},
               "wall_s": {"title": "Wall (s)", "description": "summed over the rule's jobs", "format": "{:,.1f}"},
               "cpu_s": {"title": "CPU time (s)", "description": "summed over the rule's jobs", "format": "{:,.1f}"},
               "max_rss_mb": {"title": "Peak RSS (MB)", "description": "the largest of the rule's jobs",
                              "format": "{:,.0f}"}}
    return custom_content("usage", "Resource use (aisci)",
                          "Resource use per rule of a run outside Slurm, from Snakemake's benchmark files.",
                          headers, local_usage(benchmarks) if benchmarks is not None else [], first_column="rule")


def local_usage(folder: Path) -> list[list[Any]]:
    """Per rule folder of Snakemake benchmark files: jobs, summed wall and CPU seconds, the peak RSS (MB)."""
    rows = []
    for rule in sorted(p for p in folder.iterdir() if p.is_dir()) if folder.is_dir() else []:
        jobs, wall, cpu, rss = 0, 0.0, 0.0, 0.0
        for tsv in rule.rglob("*.tsv"):
            lines = tsv.read_text().splitlines()
            if len(lines) < 2 or not lines[0].startswith("s\t"):
                continue  # not a benchmark file (a folder of the repository's own benchmarks, say)
            head = lines[0].split("\t")
            for line in lines[1:]:  # one line per repeat
                values = dict(zip(head, line.split("\t")))
                jobs += 1
                wall += _number(values.get("s"))
                cpu += _number(values.get("cpu_time"))
                rss = max(rss, _number(values.get("max_rss")))
        if jobs:
            rows.append([rule.name, jobs, round(wall, 2), round(cpu, 2), round(rss, 1)])
    return rows


def _number(text: str | None) -> float:
    try:
        return float(text or 0)
    except ValueError:  # "NA", "-": not measured
        return 0.0


def write(*, usage: tuple[Path, Any | None, Path | None] | None = None,
          splice: tuple[Path, dict[str, list[SpliceEffect]]] | None = None,
          protein: tuple[Path, dict[str, list[dict[str, Any]]]] | None = None) -> list[Path]:
    """Write each custom-content file asked for: (path, its data), usage also with the benchmarks folder for a
    run off Slurm. Each file appears only once fully written."""
    texts = []
    if usage is not None:
        texts.append((usage[0], usage_table(usage[1], usage[2])))
    if splice is not None:
        texts.append((splice[0], splice_table(splice[1])))
    if protein is not None:
        texts.append((protein[0], protein_table(protein[1])))
    for path, text in texts:
        with atomic_output(path) as tmp:
            tmp.write_text(text)
    return [p for p, _ in texts]
