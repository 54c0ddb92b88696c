"""`aisci cohort`: the cohort store's pieces one at a time — ingest a shard, score, query, describe, simulate.

`aisci reanalyze` runs ingest + score on Dask; these subcommands run them in one process, which is
what a Snakemake job of workflows/reanalysis does (one job per shard of samples, one per stage).
"""

from __future__ import annotations

import argparse
import json
import logging
import sys
from pathlib import Path
from typing import Any

from aisci.cohort import reanalyze as re_
from aisci.errors import InputError
from aisci.fileio import atomic_output

log = logging.getLogger(__name__)


def configure_parser(parser: argparse.ArgumentParser) -> None:
    """Register the subcommands."""
    sub = parser.add_subparsers(dest="cohort_command", metavar="SUBCOMMAND", required=True)
    i = sub.add_parser("ingest", help="add or update the manifest's samples (or one shard of them) in the store")
    i.add_argument("--manifest", required=True, help="TSV with a header 'sample<TAB>vcf'")
    i.add_argument("--store", required=True, help="the cohort store folder (created if missing)")
    i.add_argument("--shard", type=int, help="only this shard of the manifest (0-based); default: every sample")
    i.add_argument("--shard-size", type=int, default=50, help="samples per shard and per commit (default 50)")
    i.add_argument("--report", help="write a JSON report here (only when every sample succeeded)")
    s = sub.add_parser("score", help="score the store's variants that the model has not scored yet")
    s.add_argument("--store", required=True, help="the cohort store folder")
    s.add_argument("--stage", choices=["splice", "protein"], required=True, help="which scores")
    s.add_argument("--report", help="write a JSON report here (only when every chunk succeeded)")
    re_.add_model_arguments(s)
    q = sub.add_parser("query", help="calls of a region or gene with cohort frequencies and the newest AI scores")
    q.add_argument("--store", required=True, help="the cohort store folder")
    where = q.add_mutually_exclusive_group()
    where.add_argument("--region", help="chrom, chrom:start-end (1-based, inclusive)")
    where.add_argument("--gene", help="a gene name of --annotation")
    q.add_argument("--annotation", help="GFF3/GTF for --gene")
    q.add_argument("--sample", action="append", help="only this sample (repeatable)")
    q.add_argument("--out", required=True, help="output .parquet or .tsv")
    n = sub.add_parser("info", help="samples, variants and score-cache coverage of a store")
    n.add_argument("--store", required=True, help="the cohort store folder")
    n.add_argument("--out", help="also write a TSV: one line per chromosome")
    m = sub.add_parser("simulate", help="write a synthetic cohort of bcftools-style single-sample VCFs + manifest")
    m.add_argument("--out", required=True, help="output folder")
    m.add_argument("--samples", type=int, default=100, help="samples (default 100)")
    m.add_argument("--variants", type=int, default=20000, help="records per sample (default 20,000)")
    m.add_argument("--seed", type=int, default=0, help="random seed (default 0)")
    m.add_argument("--ref", help="take REF alleles from this FASTA (makes the variants scorable)")
    m.add_argument("--annotation", help="GFF3: put about half of the sites in its genes")


def run(args: argparse.Namespace) -> int:
    """Dispatch to the subcommand."""
    return {"ingest": ingest, "score": score, "query": query, "info": info, "simulate": simulate}[
        args.cohort_command](args)


def _report(path: str | None, data: dict[str, Any]) -> None:
    if path:
        with atomic_output(path, suffix=".part") as tmp:
            tmp.write_text(json.dumps(data, indent=2) + "\n")


def arrow_without_pandas() -> None:
    """Keep pyarrow from importing pandas (0.3-0.4 s) in a process that never uses it.

    pyarrow imports pandas the first time it converts a Python value (``pa.array``, a compute call
    with a literal) to check for pandas types. Made to find no pandas once, it remembers and does not
    try again, while an explicit ``import pandas`` (or ``to_pandas``) later still works. An ingest job
    is short and started once per shard of samples, and the benchmark's one-sample append pays this
    start-up in full.
    """
    if "pandas" in sys.modules:
        return
    import pyarrow as pa

    class NoPandas:
        @staticmethod
        def find_spec(name: str, path: Any = None, target: Any = None) -> None:
            if name == "pandas":
                raise ModuleNotFoundError("No module named 'pandas'", name=name)

    sys.meta_path.insert(0, NoPandas)  # type: ignore[arg-type]
    try:
        pa.array([0])
    finally:
        sys.meta_path.remove(NoPandas)  # type: ignore[arg-type]


def ingest(args: argparse.Namespace) -> int:
    """Ingest the manifest (or one shard of it) in this process; exit 1 after committing the good samples."""
    from aisci.cohort.manifest import read_manifest, shard

    if args.shard_size < 1:
        raise InputError(f"--shard-size must be at least 1, got {args.shard_size}")
    arrow_without_pandas()
    samples = read_manifest(args.manifest)
    if args.shard is not None:
        samples = shard(samples, args.shard, args.shard_size)
    store = re_.open_store(args.store)
    outcome = re_.ingest(store, samples, args.shard_size, client=None, progress=False)
    print(outcome.text())
    if outcome.failures:
        return 1
    _report(args.report, {"shard": args.shard, "samples": [s.name for s in samples], "ingested": outcome.ingested,
                          "up_to_date": outcome.up_to_date, "seconds": outcome.seconds})
    return 0


def score(args: argparse.Namespace) -> int:
    """Score one stage in this process."""
    from aisci.cohort.store import CohortStore

    models = re_.build_models(args, [args.stage])
    store = CohortStore(args.store)
    outcome = re_.score(store, models, client=None, progress=False)
    print(outcome.text())
    if outcome.failures:
        return 1
    _report(args.report, {"stage": args.stage, "model": models[0].model_id, "scored": outcome.scored[args.stage],
                          "cached": outcome.cached[args.stage], "seconds": outcome.seconds})
    return 0


def newest_models(store_root: Path) -> dict[str, Any]:
    """Per stage, the ScoreModel whose cache was written last (what `query` joins by default)."""
    from aisci.scorecache import STAGES, ScoreModel

    found = {}
    for stage in STAGES:
        dirs = [d for d in (store_root / "scores" / stage).glob("*@*") if d.is_dir()]
        if dirs:
            newest = max(dirs, key=lambda d: max((f.stat().st_mtime for f in d.rglob("*.parquet")), default=0.0))
            name, version = newest.name.rsplit("@", 1)
            found[stage] = ScoreModel(stage=stage, name=name, version=version, options={})
    return found


def query(args: argparse.Namespace) -> int:
    """Write the scored calls of a region, a gene or the whole store, one chromosome at a time."""
    import pyarrow.csv as pacsv
    import pyarrow.parquet as pq

    from aisci.cohort.schema import SCORED_CALLS
    from aisci.scorecache import ScoreCache
    from aisci.cohort.store import CohortStore, parse_region

    store = CohortStore(args.store)
    if args.region:
        regions = [parse_region(args.region)]
    elif args.gene:
        regions = [gene_region(args.gene, args.annotation)]
    else:  # the whole store, streamed: one chromosome's calls and scores in memory at a time
        regions = [(chrom, 1, 2**62) for chrom in store.chromosomes()]
    cache = ScoreCache(store.root / "scores")
    models = newest_models(store.root)
    out, rows = str(args.out), 0
    tsv = out.endswith(".tsv")
    columns = [n for n in SCORED_CALLS.names if not (tsv and n == "allele_depths")]
    with atomic_output(out, suffix=".part") as tmp, open(tmp, "wb") as fh:
        if tsv:
            fh.write(("\t".join(columns) + "\n").encode())
        writer = None if tsv else pq.ParquetWriter(fh, SCORED_CALLS)
        for region in regions:
            scores = {stage: cache.best(model, region[0]) for stage, model in models.items()}
            table = store.query(region, samples=args.sample, scores=scores)
            rows += table.num_rows
            if tsv:
                pacsv.write_csv(table.select(columns), fh,
                                pacsv.WriteOptions(delimiter="\t", quoting_style="none", include_header=False))
            else:
                writer.write_table(table.cast(SCORED_CALLS))
        if writer is not None:
            writer.close()
    print(f"{rows} calls -> {out}")
    return 0


def gene_region(gene: str, annotation: str | None) -> tuple[str, int, int]:
    """The transcript span of ``gene`` in ``annotation``."""
    from aisci.splice.annotation import load_annotation

    if not annotation:
        raise InputError("--gene needs --annotation (a GFF3/GTF naming the gene)")
    hits = [g for g in load_annotation(annotation).genes if g.name == gene]
    if not hits:
        raise InputError(f"--gene {gene}: not in {annotation}")
    hits = [g for g in hits if g.chrom == hits[0].chrom]  # a gene on two chromosomes (PAR): its first one
    return hits[0].chrom, min(g.tx_start for g in hits), max(g.tx_end for g in hits)


def info(args: argparse.Namespace) -> int:
    """Print (and optionally write) per-chromosome counts and score-cache coverage."""
    from aisci.scorecache import ScoreCache
    from aisci.cohort.store import CohortStore

    store = CohortStore(args.store)
    models = newest_models(store.root)
    cache = ScoreCache(store.root / "scores")
    per_chrom = store.variant_counts()
    total = sum(per_chrom.values())
    print(f"store {store.root}: {store.n_samples()} samples, {total} distinct variants on {len(per_chrom)} chromosomes")
    for stage, model in models.items():
        print(f"  {stage}: {cache.count(model)} variants cached for {model.model_id}")
    if args.out:
        with atomic_output(args.out, suffix=".part") as tmp:
            lines = ["chrom\tvariants\tsamples"] + [f"{c}\t{n}\t{store.n_samples()}" for c, n in per_chrom.items()]
            tmp.write_text("\n".join(lines) + "\n")
    return 0


def simulate(args: argparse.Namespace) -> int:
    """Write a synthetic cohort."""
    from aisci.demo.cohort import simulate_cohort

    if args.samples < 1 or args.variants < 1:
        raise InputError("--samples and --variants must be at least 1")
    manifest = simulate_cohort(Path(args.out), args.samples, args.variants, seed=args.seed,
                               reference=Path(args.ref) if args.ref else None,
                               annotation=Path(args.annotation) if args.annotation else None)
    print(f"{args.samples} samples x ~{args.variants} records: {manifest}")
    return 0
