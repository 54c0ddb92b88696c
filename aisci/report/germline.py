"""The germline run's report: the run, QC per sample, calls per callset, accuracy, SpliceAI, protein, cluster use.

Each section is built from the files the run wrote; a section whose files the run did not make (no truth
set, the AI stages off, a run without Slurm) is left out, and a file that should be there and is not (or is
not what it should be) stops the report with its name.
"""

from __future__ import annotations

import datetime
import json
import logging
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass, field
from html import escape
from pathlib import Path
from typing import Any

from aisci.errors import AisciError, InputError
from aisci.fileio import check_readable
from aisci.report import svg
from aisci.report.page import Section, numbers, table
from aisci.report.stats import read_bcftools_stats, read_samtools_stats

log = logging.getLogger(__name__)

SPLICE_THRESHOLDS = (0.2, 0.5, 0.8)
TOP = 25  # rows of the "strongest" / "lowest" tables
CURVES = 24  # samples drawn in the QC curves, callsets with their own histograms: a page of 1,000 samples stays small


@dataclass
class Inputs:
    """The files of one run the report reads (lists may be empty: their sections are left out)."""

    pipeline_info: Path
    stats: list[Path] = field(default_factory=list)  # results/qc/{sample}.stats.txt
    bcftools_stats: list[Path] = field(default_factory=list)  # results/qc/{callset}.bcftools_stats.txt
    calls: list[Path] = field(default_factory=list)  # results/calls/{callset}.vcf.gz (FILTER counts)
    evaluations: list[Path] = field(default_factory=list)  # results/eval/{sample}.json
    splice: list[Path] = field(default_factory=list)  # results/splice/{callset}.parquet
    protein: list[Path] = field(default_factory=list)  # results/protein/{callset}.parquet
    slurm_run: str | None = None  # the Snakemake run id its Slurm jobs are named by
    benchmarks: Path | None = None  # Snakemake's benchmark files (benchmarks/<rule>/): resource use off Slurm


def _name(path: Path, suffix: str) -> str:
    return path.name.removesuffix(suffix)


def _json(path: Path) -> Any:
    check_readable(path, "report input")
    try:
        return json.loads(path.read_text())
    except (ValueError, UnicodeDecodeError) as exc:
        raise InputError(f"{path}: not JSON ({exc})") from None


def run_section(info_dir: Path, now: datetime.datetime) -> tuple[Section, dict[str, Any]]:
    """Samples, pipeline version, tools and models, config, and the time since the run was recorded."""
    import yaml

    run = _json(info_dir / "run.json")
    versions = _json(info_dir / "versions.json")
    models = _json(info_dir / "models.json")
    check_readable(info_dir / "config.yaml", "resolved config")
    config_text = (info_dir / "config.yaml").read_text()
    config = yaml.safe_load(config_text) or {}
    s = Section("run", "The run")
    started = run.get("time_utc")
    elapsed = None
    if started:
        try:
            elapsed = (now - datetime.datetime.fromisoformat(started)).total_seconds()
        except ValueError:
            raise InputError(f"{info_dir / 'run.json'}: time_utc {started!r} is not an ISO time") from None
    s.blocks.append(numbers([
        ("aisci", versions.get("aisci", "?")),
        ("run id", str(run.get("run_id", "?"))[:12]),
        ("recorded (UTC)", started or "?"),
        ("wall time so far", _duration(elapsed) if elapsed is not None else "?"),
        ("host", run.get("host", "?")),
    ]))
    command = info_dir / "command.txt"
    if command.is_file():
        s.blocks.append(f"<p><code>{escape(command.read_text().strip())}</code></p>")
    s.heading("Tools and packages")
    tools = versions.get("tools", {})
    python = versions.get("python", {})
    s.blocks.append(table(["tool", "version"], [[k, v] for k, v in sorted(tools.items())]))
    s.blocks.append("<details><summary>Python packages</summary>"
                    + table(["package", "version"], [[k, v] for k, v in sorted(python.items())]) + "</details>")
    if models:
        s.heading("Models")
        rows = []
        for kind, entry in sorted(models.items()):
            for name, value in sorted((entry or {}).items()) if isinstance(entry, dict) else [(kind, entry)]:
                rows.append([kind, name, json.dumps(value, sort_keys=True)[:160]])
        s.blocks.append(table(["kind", "name", "identity"], rows))
    s.heading("Resolved configuration")
    s.blocks.append(f"<details><summary>config.yaml (defaults filled)</summary><pre>{escape(config_text)}</pre></details>")
    return s, config


def _duration(seconds: float) -> str:
    seconds = max(0, int(seconds))
    h, rest = divmod(seconds, 3600)
    return f"{h} h {rest // 60:02d} min" if h else f"{rest // 60} min {rest % 60:02d} s"


def qc_section(paths: Sequence[Path]) -> Section:
    """Read pairs, mapping and duplicate rates, insert size and depth per sample (samtools stats)."""
    s = Section("qc", "Alignment QC")
    rows, inserts, depths = [], {}, {}
    for path in paths:
        st = read_samtools_stats(path)
        name = _name(path, ".stats.txt")
        rows.append([name, st.read_pairs, _percent(st.rate("reads mapped")), _percent(st.rate("reads duplicated")),
                     _percent(st.rate("reads properly paired")), st.summary.get("insert size average"),
                     st.summary.get("insert size standard deviation"), st.mean_depth, st.summary.get("error rate")])
        inserts[name] = [(x, y) for x, y in st.insert_sizes if x <= 1000]
        depths[name] = st.coverage[:-1] if len(st.coverage) > 1 else st.coverage  # the last bin: all deeper
    s.blocks.append(table(["sample", "read pairs", "mapped %", "duplicates %", "properly paired %", "insert size mean",
                           "insert size sd", "mean depth (covered bases)", "error rate"], rows))
    s.note("Percentages of all reads; depth is over the bases with at least one read (samtools stats COV).")
    drawn = list(inserts)[:CURVES]
    s.charts(svg.lines("Insert size", {k: inserts[k] for k in drawn}, x_label="insert size (bp)", y_label="pairs"),
             svg.lines("Coverage depth", {k: [(d, n) for d, n in depths[k] if d <= 200] for k in drawn},
                       x_label="depth", y_label="bases"))
    if len(inserts) > CURVES:
        s.note(f"Curves of the first {CURVES} of {len(inserts):,} samples; the table holds every sample's numbers.")
    return s


def _percent(fraction: float | None) -> float | None:
    return None if fraction is None else round(100 * fraction, 3)


def filter_counts(vcf: Path) -> Counter[str]:
    """Records per FILTER value ('PASS', or each failed filter's name; '.' when unset), by `bcftools query`."""
    import subprocess
    import tempfile

    check_readable(vcf, "calls VCF")
    counts: Counter[str] = Counter()
    with tempfile.TemporaryFile("w+") as errors:  # a file, not a pipe: htslib may warn once per record
        with subprocess.Popen(["bcftools", "query", "-f", "%FILTER\\n", str(vcf)], stdout=subprocess.PIPE,
                              stderr=errors, text=True) as proc:
            assert proc.stdout is not None
            for line in proc.stdout:  # a record failing several filters reads "a;b"
                counts.update(line.rstrip("\n").split(";"))
        errors.seek(0)
        err = errors.read(2000)
    if proc.returncode != 0:
        raise InputError(f"{vcf}: cannot read as VCF (bcftools query: {err.strip()[:300]})")
    return counts


def calls_section(stats: Sequence[Path], vcfs: Sequence[Path]) -> Section:
    """Counts by type, ts/tv, indel lengths, QUAL and depth per callset (bcftools stats), FILTER counts."""
    s = Section("calls", "Calls")
    by_name = {_name(v, ".vcf.gz"): v for v in vcfs}
    rows, filters = [], {}
    parsed = {}
    for path in stats:
        name = _name(path, ".bcftools_stats.txt")
        st = read_bcftools_stats(path)
        parsed[name] = st
        if name in by_name:
            filters[name] = filter_counts(by_name[name])
        rows.append([name, st.summary.get("records", 0), st.summary.get("SNPs", 0), st.summary.get("indels", 0),
                     st.summary.get("MNPs", 0), st.summary.get("others", 0), st.summary.get("multiallelic sites", 0),
                     st.tstv, filters.get(name, Counter()).get("PASS")])
    s.blocks.append(table(["callset", "records", "SNPs", "indels", "MNPs", "others", "multiallelic sites", "ts/tv",
                           "PASS"], rows))
    if filters:
        names = sorted({f for c in filters.values() for f in c})
        s.heading("Filters")
        s.blocks.append(table(["callset", *names], [[n, *[c.get(f, 0) for f in names]] for n, c in filters.items()]))
    # the joint callset first: it holds every sample
    drawn = sorted(parsed, key=lambda n: n != "cohort")[:CURVES]
    for name in drawn:
        st = parsed[name]
        s.heading(name)
        s.charts(svg.histogram(f"{name}: indel lengths", [(x, y) for x, y in st.indel_lengths if -30 <= x <= 30],
                               x_label="length (deletions negative)", y_label="sites"),
                 svg.histogram(f"{name}: QUAL", st.qual, x_label="QUAL", y_label="sites (SNPs + indels)"),
                 svg.histogram(f"{name}: depth", [(x, y) for x, y in st.depth if x <= 200], x_label="DP",
                               y_label="sites"))
    if len(parsed) > CURVES:
        s.note(f"Histograms of {CURVES} of {len(parsed):,} callsets; the tables hold every callset's numbers, "
               "and results/qc/{callset}.bcftools_stats.txt every histogram.")
    return s


def accuracy_section(paths: Sequence[Path]) -> Section:
    """Precision, recall and F1 of SNVs and indels per sample against its truth set."""
    s = Section("accuracy", "Accuracy against the truth set")
    rows = []
    for path in paths:
        m = _json(path)
        for kind in ("snv", "indel", "all"):
            if kind not in m:
                raise InputError(f"{path}: not an `aisci evaluate` JSON (no '{kind}')")
            t = m[kind]
            rows.append([m.get("sample", _name(path, ".json")), kind, t["tp"], t["fp"], t["fn"], t["precision"],
                         t["recall"], t["f1"], t.get("gt_f1")])
    s.blocks.append(table(["sample", "type", "TP", "FP", "FN", "precision", "recall", "F1", "genotype F1"], rows))
    s.note("Allele level: a call matches when its normalised REF/ALT equal the truth's; genotype F1 also needs the zygosity.")
    return s


def _read_parquet(path: Path, needed: set[str], what: str) -> list[dict[str, Any]]:
    import pyarrow.parquet as pq

    check_readable(path, what)
    try:
        table_ = pq.read_table(path)
    except (OSError, ValueError) as exc:
        raise InputError(f"{path}: not a Parquet table ({exc})") from None
    missing = needed - set(table_.column_names)
    if missing:
        raise InputError(f"{path}: not a {what} (missing {', '.join(sorted(missing))})")
    return table_.select(sorted(needed)).to_pylist()


@dataclass(frozen=True)
class SpliceEffect:
    """One scored allele × gene of a SpliceAI table: its strongest delta, which one, and where."""

    gene: str
    variant: str
    kind: str  # acceptor gain | acceptor loss | donor gain | donor loss
    delta: float
    position: int | None  # bp from the variant


def read_splice(path: Path) -> list[SpliceEffect]:
    """The scored rows of one callset's SpliceAI table (results/splice/{callset}.parquet)."""
    cols = {"chrom", "pos", "ref", "alt", "gene", "ds_ag", "ds_al", "ds_dg", "ds_dl", "dp_ag", "dp_al", "dp_dg", "dp_dl"}
    effects = []
    for r in _read_parquet(path, cols, "SpliceAI table"):
        if r["ds_ag"] is None:
            continue
        kind, ds, pos = max((("acceptor gain", r["ds_ag"], r["dp_ag"]), ("acceptor loss", r["ds_al"], r["dp_al"]),
                             ("donor gain", r["ds_dg"], r["dp_dg"]), ("donor loss", r["ds_dl"], r["dp_dl"])),
                            key=lambda t: t[1])
        effects.append(SpliceEffect(r["gene"], f"{r['chrom']}:{r['pos']} {r['ref']}>{r['alt']}", kind, ds, pos))
    return effects


def splice_counts(effects: Sequence[SpliceEffect]) -> list[int]:
    """Scored allele × gene, then how many reach each of SPLICE_THRESHOLDS."""
    return [len(effects), *[sum(e.delta >= t for e in effects) for t in SPLICE_THRESHOLDS]]


def splice_section(by_callset: dict[str, list[SpliceEffect]]) -> Section:
    """Maximum delta score distribution, strongest effects, genes with effects above 0.2/0.5/0.8."""
    s = Section("splice", "SpliceAI")
    s.blocks.append(table(["callset", "allele × gene scored", *[f"Δ ≥ {t}" for t in SPLICE_THRESHOLDS]],
                          [[c, *splice_counts(e)] for c, e in by_callset.items()]))
    effects = [(c, e) for c, items in by_callset.items() for e in items]
    bins = [0] * 20
    for _, e in effects:
        bins[min(int(e.delta * 20), 19)] += 1
    s.charts(svg.bars("Maximum delta score", [f"{i / 20:.2f}" for i in range(20)], bins, x_label="max Δ score (bin start)",
                      y_label="allele × gene"))
    genes = Counter((e.gene, t) for _, e in effects for t in SPLICE_THRESHOLDS if e.delta >= t)
    gene_rows = sorted(({g for g, _ in genes}), key=lambda g: (-genes[(g, SPLICE_THRESHOLDS[0])], g))
    if gene_rows:
        s.heading("Genes with splice effects")
        s.blocks.append(table(["gene", *[f"Δ ≥ {t}" for t in SPLICE_THRESHOLDS]],
                              [[g, *[genes[(g, t)] for t in SPLICE_THRESHOLDS]] for g in gene_rows[:200]]))
    strongest = sorted(effects, key=lambda ce: -ce[1].delta)[:TOP]
    s.heading(f"Strongest {len(strongest)} effects")
    s.blocks.append(table(["callset", "gene", "variant", "effect", "Δ score", "position (bp from variant)"],
                          [[c, e.gene, e.variant, e.kind, e.delta, e.position] for c, e in strongest]))
    return s


def read_protein(path: Path) -> list[dict[str, Any]]:
    """The rows of one callset's protein table (results/protein/{callset}.parquet): allele × transcript."""
    cols = {"chrom", "pos", "ref", "alt", "gene", "consequence", "impact", "hgvs_p", "score"}
    return _read_parquet(path, cols, "protein score table")


def protein_section(by_callset: dict[str, list[dict[str, Any]]]) -> Section:
    """Consequences by SO term and impact, the model score distribution, the lowest-scoring changes."""
    s = Section("protein", "Protein effects")
    terms: Counter[str] = Counter()
    impacts: Counter[str] = Counter()
    scores, rows, summary = [], [], []
    for callset, table_rows in by_callset.items():
        n_scored = 0
        for r in table_rows:
            terms.update(r["consequence"].split("&"))
            impacts[r["impact"]] += 1
            if r["score"] is not None:
                n_scored += 1
                scores.append(r["score"])
                rows.append([callset, r["gene"], f"{r['chrom']}:{r['pos']} {r['ref']}>{r['alt']}", r["hgvs_p"],
                             r["consequence"], r["score"]])
        summary.append([callset, len(table_rows), n_scored])
    s.blocks.append(table(["callset", "allele × transcript", "scored"], summary))
    s.charts(svg.bars("Consequences (SO terms)", [t for t, _ in terms.most_common(16)], [n for _, n in terms.most_common(16)],
                      y_label="allele × transcript"),
             svg.bars("Impact", sorted(impacts), [impacts[k] for k in sorted(impacts)], y_label="allele × transcript"))
    if scores:
        lo, hi = min(scores), max(scores)
        width = (hi - lo) / 30 or 1.0
        hist = Counter(min(int((x - lo) / width), 29) for x in scores)
        s.charts(svg.histogram("Model score (log-likelihood ratio)", [(lo + i * width, hist.get(i, 0)) for i in range(30)],
                               x_label="score (lower: more damaging)", y_label="changes"))
    lowest = sorted(rows, key=lambda r: r[-1])[:TOP]
    s.heading(f"Lowest-scoring {len(lowest)} changes")
    s.blocks.append(table(["callset", "gene", "variant", "HGVS p.", "consequence", "score"], lowest))
    return s


def slurm_run_id(given: str | None) -> str | None:
    """The run whose Slurm jobs to report: ``given``, or with "auto" this job's run when it runs in Slurm."""
    from aisci.slurm.sacct import own_run_id

    if given != "auto":
        return given or None
    return own_run_id()


def cluster_usage(run_id: str) -> tuple[list[Any], Any] | None:
    """The run's Slurm jobs and their summary (aisci usage), or None without accounting (logged)."""
    from aisci.slurm.sacct import load_jobs
    from aisci.slurm.usage import summarise

    import os

    try:
        jobs = load_jobs(run_id=run_id)
    except AisciError as exc:  # no accounting here, or none of its jobs recorded yet: say so, keep the report
        log.warning("cluster use left out: %s", exc)
        return None
    # this report's own job is still running: accounting has not recorded its rule (the comment) yet
    jobs = [j for j in jobs if j.job_id != os.environ.get("SLURM_JOB_ID")]
    return (jobs, summarise(jobs)) if jobs else None


def cluster_section(run_id: str, jobs: list[Any], report: Any) -> Section:
    """Jobs, partitions, CPU and memory efficiency, GPU-hours, queue waits and the Gantt chart from sacct."""
    from aisci.slurm.usage_plot import gantt_svg

    s = Section("cluster", "Cluster use")
    s.note(f"Slurm run {run_id}: {report.jobs} jobs before this report's own (from sacct).")
    cols = ["rule", "jobs", "partitions", "states", "core-hours", "mean queue wait (s)", "CPU efficiency",
            "memory efficiency", "GPU-hours"]

    def rows(items: Sequence[Any]) -> list[list[Any]]:
        return [[r.name, r.jobs, r.partitions, r.states, round(r.core_h, 3), r.mean_queue_s, r.cpu_eff, r.mem_eff,
                 round(r.gpu_h, 3)] for r in items]

    s.blocks.append(table(cols, rows(report.rules)))
    s.heading("Partitions")
    s.blocks.append(table(["partition", *cols[1:]], rows(report.partitions)))
    s.blocks.append(gantt_svg(jobs))
    return s
