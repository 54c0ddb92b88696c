"""`aisci annotate`: coding consequences of VCF variants on every overlapping transcript, as a Parquet table."""

from __future__ import annotations

import argparse
import logging
import os
from collections import Counter
from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import Any

from aisci.errors import InputError
from aisci.gather import ROW_GROUP_ROWS, Regions
from aisci.gather import write_parquet as write_tables

log = logging.getLogger(__name__)
# (column, Arrow type name, nullable): the Parquet schema, also the field order of Consequence.
SCHEMA = (
    ("chrom", "string", False), ("pos", "int64", False), ("ref", "string", False), ("alt", "string", False),
    ("gene", "string", False), ("gene_id", "string", False), ("transcript", "string", False),
    ("strand", "string", False), ("consequence", "string", False), ("impact", "string", False),
    ("hgvs_c", "string", True), ("hgvs_p", "string", True), ("protein_pos", "int32", True),
    ("protein_end", "int32", True), ("ref_aa", "string", True), ("alt_aa", "string", True),
    ("protein_length", "int32", True), ("wt_protein", "string", True), ("mut_protein", "string", True),
)


def arrow_schema() -> Any:
    """The exact pyarrow schema of the consequence table (see SCHEMA)."""
    import pyarrow as pa

    return pa.schema([pa.field(name, getattr(pa, kind)(), nullable=null) for name, kind, null in SCHEMA])


def write_parquet(rows: Iterable[Any], path: str | os.PathLike[str]) -> int:
    """Write Consequence rows to a Parquet file atomically; no rows gives an empty table with the schema.

    Args:
        rows: `aisci.protein.consequence.Consequence` objects (any iterable; consumed once).
        path: output file.

    Returns:
        The number of rows written.
    """
    schema = arrow_schema()
    return write_tables(path, schema, _tables(rows, schema))


def _tables(rows: Iterable[Any], schema: Any) -> Iterator[Any]:
    """Tables of up to a row group's Consequence rows (the whole table never sits in memory)."""
    import pyarrow as pa

    names = [name for name, _, _ in SCHEMA]
    batch: list[Any] = []
    for row in rows:
        batch.append(row)
        if len(batch) == ROW_GROUP_ROWS:
            yield pa.Table.from_pydict({name: [getattr(r, name) for r in batch] for name in names}, schema=schema)
            batch = []
    if batch:
        yield pa.Table.from_pydict({name: [getattr(r, name) for r in batch] for name in names}, schema=schema)


def annotate_vcf(vcf: str | os.PathLike[str], ref: str | os.PathLike[str], annotation: str | os.PathLike[str],
                 out_parquet: str | os.PathLike[str], *, skip_mismatch: bool = False,
                 regions: Regions | None = None) -> dict[str, Any]:
    """Write the consequences of every VCF record x ALT on every overlapping transcript to Parquet.

    Args:
        vcf: variant calls (VCF/BCF, plain or bgzipped).
        ref: indexed reference FASTA (plain or bgzip with .fai/.gzi; a plain file's .fai is made if missing).
        annotation: GFF3 or GTF (plain or gzipped).
        out_parquet: output table (written atomically), one row per record x ALT x transcript.
        skip_mismatch: skip (and count) alleles whose REF differs from the reference instead of failing.
        regions: only the records whose POS lies in these intervals (one group of a scatter, `aisci.gather`).

    Returns:
        Counts: ``records``, ``alleles``, ``symbolic`` (skipped ALTs), ``ref_mismatch`` (skipped),
        ``rows``, ``transcripts`` (in the annotation) and ``consequences`` (rows per most severe term).

    Raises:
        InputError: unreadable inputs, a VCF that `aisci.vcfcheck.check_vcf` refuses (plain
            gzip, a malformed record, POS < 1, ...), a malformed annotation line, a contig missing from the
            reference, or a REF mismatch (unless ``skip_mismatch``); the message names the file and
            the line or VCF record.
    """
    import pysam

    from aisci.protein.transcripts import load_transcripts
    from aisci.vcfcheck import check_vcf

    scan = check_vcf(vcf)  # a malformed record fails here, naming its line, before the annotation is read
    transcripts = load_transcripts(annotation)
    counts: Counter = Counter()
    by_term: Counter = Counter()
    try:
        fasta = pysam.FastaFile(str(ref))
    except (OSError, ValueError) as exc:
        raise InputError(f"{ref}: cannot open as an indexed FASTA ({exc})") from None
    with fasta:
        rows = _rows(Path(vcf), Path(ref), transcripts, fasta, skip_mismatch, counts, by_term, regions, scan.contigs)
        counts["rows"] = write_parquet(rows, out_parquet)
    summary = {k: counts[k] for k in ("records", "alleles", "symbolic", "ref_mismatch", "rows")}
    summary["transcripts"] = len(transcripts)
    summary["consequences"] = dict(sorted(by_term.items(), key=lambda kv: -kv[1]))
    for term, n in summary["consequences"].items():
        log.info("%-36s %d", term, n)
    log.info("%s: %d records, %d alleles -> %d rows in %s", vcf, counts["records"], counts["alleles"],
             counts["rows"], out_parquet)
    return summary


def _rows(vcf: Path, ref: Path, transcripts: Any, fasta: Any, skip_mismatch: bool, counts: Counter,
          by_term: Counter, regions: Regions | None = None, contigs: tuple[str, ...] | None = None) -> Iterator[Any]:
    """Consequences of every record x ALT of ``vcf`` (of ``regions``), in file order (counts updated as they go)."""
    from aisci.protein.consequence import ModelCache, RefMismatch, annotate_variant
    from aisci.vcfcheck import iter_records, open_vcf

    cache = ModelCache(fasta)
    with open_vcf(vcf) as handle:
        records = regions.records(handle, vcf, contigs) if regions else iter_records(handle, vcf)
        for number, record in enumerate(records, 1):
            counts["records"] += 1
            alts = ",".join(record.alts or ())
            # a scatter job reads some records only: their numbers would not be the file's
            nth = "" if regions else f" {number}"
            where = f"{vcf} record{nth} ({record.contig}:{record.pos} {record.ref}>{alts})"
            if record.contig not in cache.contigs:
                raise InputError(f"{where}: contig '{record.contig}' is not in the reference {ref}")
            for alt in record.alts or ():
                counts["alleles"] += 1
                try:
                    found = annotate_variant(record.contig, record.pos, record.ref, alt, transcripts, fasta,
                                             cache=cache)
                except RefMismatch as exc:
                    if not skip_mismatch:
                        raise InputError(f"{where}: {exc} in {ref} (--skip-mismatch skips such records)") from None
                    counts["ref_mismatch"] += 1
                    log.warning("%s: %s; skipped", where, exc)
                    continue
                except InputError as exc:
                    raise InputError(f"{where}: {exc}") from None
                if not found and set(alt.upper()) - set("ACGTN"):
                    counts["symbolic"] += 1
                for row in found:
                    by_term[row.consequence.split("&")[0]] += 1
                    yield row


def configure_parser(parser: argparse.ArgumentParser) -> None:
    """Options of `aisci annotate`."""
    parser.add_argument("--vcf", required=True, type=Path, help="variant calls (VCF/BCF, plain or bgzipped)")
    parser.add_argument("--ref", required=True, type=Path, help="indexed reference FASTA")
    parser.add_argument("--annotation", required=True, type=Path, metavar="GFF3|GTF",
                        help="gene annotation with exon and CDS lines (GFF3 or GTF, plain or gzipped)")
    parser.add_argument("--out", required=True, type=Path, help="output Parquet, one row per record x ALT x transcript")
    parser.add_argument("--skip-mismatch", action="store_true",
                        help="skip alleles whose REF differs from the reference (default: fail)")
    parser.add_argument("--regions-file", type=Path,
                        help="annotate only the records whose POS lies in these intervals (CHROM, BEG, END; 1-based, "
                             "tab-separated): one group of a scatter (`aisci gather`)")


def run(args: argparse.Namespace) -> int:
    """Annotate a VCF's variants with their coding consequences; print the counts."""
    from aisci.gather import read_regions

    regions = read_regions(args.regions_file) if args.regions_file else None
    s = annotate_vcf(args.vcf, args.ref, args.annotation, args.out, skip_mismatch=args.skip_mismatch,
                     regions=regions)
    skipped = f", {s['ref_mismatch']} REF mismatches skipped" if s["ref_mismatch"] else ""
    print(f"{s['records']} records, {s['alleles']} alleles -> {s['rows']} consequence rows{skipped} -> {args.out}")
    for term, n in s["consequences"].items():
        print(f"  {term:<36} {n}")
    return 0
