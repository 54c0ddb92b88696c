"""`aisci splice predict|score`: SpliceAI per-position probabilities and variant delta scores, on CUDA when visible."""

from __future__ import annotations

import argparse
import logging
import os
import re
import time
from pathlib import Path
from collections.abc import Iterator
from typing import Any

from aisci import options
from aisci.errors import InputError
from aisci.fileio import atomic_output, check_readable
from aisci.progress import Progress

log = logging.getLogger(__name__)

PREDICT_COLUMNS = ("chrom", "pos", "acceptor", "donor")
PARQUET_COLUMNS = ("chrom", "pos", "id", "ref", "alt", "gene", "strand",
                   "ds_ag", "ds_al", "ds_dg", "ds_dl", "dp_ag", "dp_al", "dp_dg", "dp_dl")
PREDICT_TILE = 50000  # positions per forward pass in `predict`


def configure_parser(parser: argparse.ArgumentParser) -> None:
    """Register `predict` and `score` under `aisci splice`."""
    sub = parser.add_subparsers(dest="splice_command", metavar="ACTION", required=True)
    p = sub.add_parser("predict", help="acceptor/donor probability of every position of a region")
    p.add_argument("--ref", required=True, help="reference FASTA (plain or bgzip, with .fai)")
    p.add_argument("--region", required=True, help="chrom:start-end, 1-based inclusive")
    p.add_argument("--strand", choices=["+", "-"], default="+", help="score splice sites of this strand (default +)")
    p.add_argument("--out", required=True, help="TSV: chrom, pos, acceptor, donor")
    _common(p)
    s = sub.add_parser("score", help="SpliceAI delta scores of VCF records (official INFO format) and a Parquet table")
    s.add_argument("--vcf", required=True, help="input VCF/BCF (plain, bgzip)")
    s.add_argument("--ref", required=True, help="reference FASTA the VCF was called against")
    s.add_argument("--annotation", required=True,
                   help="grch37 | grch38 (tables shipped with the spliceai package) | a table, GFF3 or GTF file")
    s.add_argument("--distance", type=int, default=50, help="max distance between variant and gained/lost site (default 50)")
    s.add_argument("--mask", action="store_true", help="mask gains at annotated and losses at unannotated boundaries")
    s.add_argument("--skip-mismatch", action="store_true", help="skip (and count) records whose REF disagrees with --ref")
    s.add_argument("--out", required=True, help="output VCF, bgzipped and tabix-indexed (.vcf.gz)")
    s.add_argument("--parquet", help="also write one row per ALT allele x gene here")
    s.add_argument("--regions-file", help="score only the records whose POS lies in these intervals (CHROM, BEG, END; "
                                          "1-based, tab-separated): one group of a scatter (`aisci gather`)")
    s.add_argument("--cache", help="score cache folder (content-addressed by model version): alleles already in it "
                                   "are not scored again, the others are scored and added (fp32 only)")
    _common(s)
    c = sub.add_parser("cache", help="score the alleles of VCFs that the score cache lacks, once each, into the cache")
    c.add_argument("vcf", nargs="+", help="VCF/BCF files (plain, bgzip; sorted); an allele of several is scored once")
    c.add_argument("--cache", required=True, help="score cache folder (created if missing; shared by runs and projects)")
    c.add_argument("--ref", required=True, help="reference FASTA the VCFs were called against (with .fai)")
    c.add_argument("--annotation", required=True, help="grch37 | grch38 | a table, GFF3 or GTF file")
    c.add_argument("--distance", type=int, default=50, help="max distance between variant and gained/lost site (default 50)")
    c.add_argument("--mask", action="store_true", help="mask gains at annotated and losses at unannotated boundaries")
    c.add_argument("--regions-file", help="only the records whose POS lies in these intervals (one group of a scatter)")
    c.add_argument("--summary", help="write what was read and scored here (JSON)")
    _common(c)
    m = sub.add_parser("summary", help="print the strongest effects of score Parquet tables")
    m.add_argument("parquet", nargs="+", help="tables written by `aisci splice score --parquet`")
    m.add_argument("--min-ds", type=float, default=0.5, help="only entries whose largest DS reaches this (default 0.5)")
    m.add_argument("--top", type=int, default=20, help="at most this many lines (default 20)")


def _common(p: argparse.ArgumentParser) -> None:
    options.add_splice_weights(p)
    p.add_argument("--no-verify-weights", action="store_true", help="skip the SHA-256 check of the weight files")
    options.add_device(p)
    options.add_precision(p)  # bf16/fp16 are checked against fp32 in benchmarks/splice_speed
    options.add_batch_size(p, 64, "variant windows per forward pass")
    options.add_threads(p, "torch CPU threads")


def run(args: argparse.Namespace) -> int:
    """Dispatch to `predict` or `score`."""
    if args.splice_command == "predict":
        predict(args)
    elif args.splice_command == "summary":
        summary(args.parquet, args.min_ds, args.top)
    elif args.splice_command == "cache":
        fill_cache(args)
    else:
        score(args)
    return 0


def summary(paths: list[str], min_ds: float, top: int) -> None:
    """Print, strongest first, the allele x gene entries whose largest delta score reaches ``min_ds``."""
    import pyarrow.parquet as pq

    rows = []
    for path in paths:
        try:
            table = pq.read_table(path)
        except (OSError, ValueError) as exc:
            raise InputError(f"{path}: not a Parquet table ({exc})") from None
        missing = [c for c in PARQUET_COLUMNS if c not in table.column_names]
        if missing:
            raise InputError(f"{path}: not a SpliceAI table (missing {', '.join(missing)})")
        name = Path(path).name.removesuffix(".parquet")
        rows += [(max(r["ds_ag"], r["ds_al"], r["ds_dg"], r["ds_dl"]), name, r)
                 for r in table.to_pylist() if r["ds_ag"] is not None]
    hits = sorted((t for t in rows if t[0] >= min_ds), key=lambda t: -t[0])
    print(f"{len(hits)} of {len(rows)} scored allele x gene entries have a delta score >= {min_ds}")
    for ds, name, r in hits[:top]:
        print(f"  {name:10} {r['chrom']}:{r['pos']} {r['ref']}>{r['alt']} {r['gene']} ({r['strand']})  "
              f"AG {r['ds_ag']:.2f}@{r['dp_ag']} AL {r['ds_al']:.2f}@{r['dp_al']} "
              f"DG {r['ds_dg']:.2f}@{r['dp_dg']} DL {r['ds_dl']:.2f}@{r['dp_dl']}")


def make_engine(args: argparse.Namespace) -> Any:
    """Load the ensemble and put it on the chosen device with the chosen precision."""
    import torch

    from aisci.device import pick_device
    from aisci.splice.engine import Engine
    from aisci.splice.weights import load_ensemble

    if args.threads:
        torch.set_num_threads(args.threads)
    device = pick_device(args.device)
    dtype = {"fp32": torch.float32, "bf16": torch.bfloat16, "fp16": torch.float16}[args.precision]
    if dtype != torch.float32 and device.type != "cuda":
        raise InputError(f"--precision {args.precision} needs a CUDA device (this run is on {device})")
    if args.batch_size < 1:
        raise InputError("--batch-size must be at least 1")
    ensemble = load_ensemble(args.splice_weights, verify=not args.no_verify_weights)
    log.info("torch %s, %d CPU threads, precision %s", torch.__version__, torch.get_num_threads(), args.precision)
    return Engine(ensemble, device, batch_size=args.batch_size, dtype=dtype)


def open_fasta(path: str) -> Any:
    import pysam

    try:
        return pysam.FastaFile(path)
    except (OSError, ValueError) as exc:
        raise InputError(f"{path}: cannot open the reference FASTA ({exc})") from None


def parse_region(text: str, fasta: Any, path: str) -> tuple[str, int, int]:
    """chrom:start-end (1-based inclusive, commas allowed) checked against the FASTA."""
    m = re.fullmatch(r"(.+):([\d,]+)-([\d,]+)", text)
    if not m:
        raise InputError(f"--region {text!r}: expected chrom:start-end")
    chrom, start, end = m.group(1), int(m.group(2).replace(",", "")), int(m.group(3).replace(",", ""))
    if chrom not in fasta.references:
        raise InputError(f"--region {text!r}: contig {chrom!r} is not in {path}")
    length = fasta.get_reference_length(chrom)
    if not 1 <= start <= end <= length:
        raise InputError(f"--region {text!r}: need 1 <= start <= end <= {length} (length of {chrom})")
    return chrom, start, end


def predict(args: argparse.Namespace) -> None:
    """Per-position acceptor/donor probabilities of a region; N beyond the contig ends only."""
    from aisci.splice.encode import codes, fetch_padded, reverse_complement
    from aisci.splice.model import FLANK

    fasta = open_fasta(args.ref)
    chrom, start, end = parse_region(args.region, fasta, args.ref)
    engine = make_engine(args)
    t0 = time.perf_counter()
    with atomic_output(args.out) as tmp, open(tmp, "w") as out:
        out.write("\t".join(PREDICT_COLUMNS) + "\n")
        for lo in range(start, end + 1, PREDICT_TILE):
            hi = min(lo + PREDICT_TILE - 1, end)
            c = codes(fetch_padded(fasta, chrom, lo - 1 - FLANK, hi + FLANK))
            if args.strand == "-":
                y = engine.predict(reverse_complement(c))[::-1]
            else:
                y = engine.predict(c)
            out.writelines(f"{chrom}\t{lo + i}\t{a:.6g}\t{d:.6g}\n" for i, (a, d) in enumerate(y[:, 1:3].tolist()))
    log.info("predicted %d positions of %s:%d-%d (%s strand) in %.1f s", end - start + 1, chrom, start, end,
             args.strand, time.perf_counter() - t0)


def score(args: argparse.Namespace) -> None:
    """Score a VCF: bgzipped + indexed VCF with the SpliceAI INFO field, and optionally the Parquet table."""
    import pysam

    from aisci.gather import read_regions
    from aisci.splice.annotation import load_annotation
    from aisci.splice.scoring import INFO_HEADER, Scorer, check_distance, chunks, describe
    from aisci.vcfcheck import check_vcf, iter_records, open_vcf

    if not str(args.out).endswith(".vcf.gz"):
        raise InputError(f"--out {args.out}: must end in .vcf.gz (the output is bgzipped and indexed)")
    check_distance(args.distance)  # before the models load
    regions = read_regions(args.regions_file) if args.regions_file else None
    check_readable(args.vcf, "--vcf")
    # One pass over the VCF before anything loads: a bad record, or an order tabix cannot index, fails
    # now with its line instead of as an htslib error after hours of scoring.
    scan = check_vcf(args.vcf, require_sorted=True)
    log.info("%s: %d records on %d contigs", args.vcf, scan.records, len(scan.contigs))
    if regions:
        log.info("%s: %s; only the records whose POS lies in them are scored", regions.path, regions.describe())
    if args.cache:
        from aisci.splice import cached

        model = cache_model(args)
        cached.fill(model, args.cache, [args.vcf], regions)
        source = cached.CachedScores(model, args.cache, args.skip_mismatch, args.vcf)
        counts = source.counts

        def scored(records: Iterator[Any]) -> Iterator[tuple[Any, list[tuple[Any, ...]]]]:
            for rec in records:
                yield rec, source.entries(rec)
    else:
        fasta = open_fasta(args.ref)
        annotation = load_annotation(args.annotation)
        engine = make_engine(args)
        scorer = Scorer(fasta, annotation, engine, args.distance, args.mask, args.skip_mismatch, source=args.vcf)
        counts = scorer.counts

        def scored(records: Iterator[Any]) -> Iterator[tuple[Any, list[tuple[Any, ...]]]]:
            for chunk in chunks(records):
                planned = [scorer.plan(rec) for rec in chunk]
                scorer.run(planned)
                for p in planned:
                    yield p.record, [(e.alt, e.gene.name, e.gene.strand, e.text, e.values) for e in p.entries]
    vcf = open_vcf(args.vcf)
    header = vcf.header
    if "SpliceAI" in header.info:
        log.info("%s already has a SpliceAI INFO field: its values are replaced", args.vcf)
    else:
        header.add_line(INFO_HEADER)
    if "END" not in header.info:
        # pysam writes END for symbolic alleles (<DEL>) and refuses a record whose END is undeclared.
        header.add_line('##INFO=<ID=END,Number=1,Type=Integer,Description="End position of the variant">')
    rows: list[tuple[Any, ...]] = []
    t0 = time.perf_counter()
    with atomic_output(args.out) as tmp:
        with pysam.VariantFile(str(tmp), "wz", header=header) as out:
            records = regions.records(vcf, args.vcf, scan.contigs) if regions else iter_records(vcf, args.vcf)
            # a regions file's share of the records is not known before they are read: lines by time then
            progress = Progress(f"SpliceAI {Path(args.vcf).name}", None if regions else scan.records, "records")
            for rec, entries in scored(records):
                progress.update()
                if entries:
                    rec.info["SpliceAI"] = [text for _, _, _, text, _ in entries]
                elif "SpliceAI" in rec.info:
                    del rec.info["SpliceAI"]
                out.write(rec)
                if args.parquet:
                    rows += [(rec.chrom, rec.pos, rec.id, rec.ref, alt, gene, strand, *values)
                             for alt, gene, strand, _, values in entries]
        try:
            pysam.tabix_index(str(tmp), preset="vcf", force=True)
        except OSError as exc:  # the sort order was checked up front; this is what remains (e.g. POS > 512 Mbp)
            raise InputError(f"{args.vcf}: the scored VCF cannot be tabix-indexed ({exc})") from None
    os.replace(f"{tmp}.tbi", f"{args.out}.tbi")
    progress.finish()
    vcf.close()
    if args.parquet:
        write_parquet(rows, args.parquet)
    seconds = time.perf_counter() - t0
    log.info("%s; %.1f s, %.1f scored allele x gene per second", describe(counts), seconds,
             counts["scored"] / max(seconds, 1e-9))


def cache_model(args: argparse.Namespace) -> Any:
    """The score cache's model of these options (fp32 only: the cache holds one value per allele and model)."""
    from aisci.splice.runner import splice_model

    if args.precision != "fp32":
        raise InputError(f"--precision {args.precision}: the score cache holds fp32 scores only; drop --cache "
                         "or score in fp32")
    if args.batch_size < 1:
        raise InputError("--batch-size must be at least 1")
    return splice_model(args.ref, args.annotation, args.splice_weights, distance=args.distance, mask=args.mask,
                        device=args.device, threads=args.threads, batch_size=args.batch_size,
                        verify_weights=not args.no_verify_weights)


def fill_cache(args: argparse.Namespace) -> None:
    """`aisci splice cache`: score the alleles of the VCFs that the cache lacks, once each."""
    from aisci.gather import read_regions
    from aisci.splice import cached
    from aisci.splice.scoring import check_distance

    check_distance(args.distance)
    regions = read_regions(args.regions_file) if args.regions_file else None
    for vcf in args.vcf:
        check_readable(vcf, "VCF")
    model = cache_model(args)
    counts = cached.fill(model, args.cache, args.vcf, regions)
    if args.summary:
        cached.write_summary(args.summary, model, counts)
    print(f"{model.model_id}: {counts.alleles} alleles in {counts.vcfs} VCFs, {counts.scored} scored now "
          f"({counts.seconds:.1f} s); the others were in the cache")


def write_parquet(rows: list[tuple[Any, ...]], path: str) -> None:
    """One row per ALT allele x gene; DS values as printed in the INFO field, null where the official prints '.'."""
    import pyarrow as pa

    from aisci.gather import write_parquet as write_table

    types = [pa.string(), pa.int64(), pa.string(), pa.string(), pa.string(), pa.string(), pa.string()]
    types += [pa.float32()] * 4 + [pa.int32()] * 4
    schema = pa.schema([pa.field(n, t) for n, t in zip(PARQUET_COLUMNS, types)])
    columns = list(zip(*rows)) if rows else [[] for _ in PARQUET_COLUMNS]
    table = pa.Table.from_arrays([pa.array(list(c), type=t) for c, t in zip(columns, types)], schema=schema)
    write_table(path, schema, [table])
