"""Scatter and gather of the scoring stages: a regions file's VCF records in, the groups' parts joined in order out.

A scoring stage (`aisci splice score`, `aisci annotate`, `aisci plm score`) run with ``--regions-file``
reads only the records whose POS lies in the file's intervals (`Regions.records`), so over groups whose
intervals cover the genome once every record is scored by exactly one job, a deletion that crosses
a boundary included. `gather_vcfs` and `gather_parquet` put the groups' outputs together in group order;
with the groups in reference order the result is the unscattered output: the same VCF text, the same
Parquet table, schema and row groups (every stage writes Parquet through `write_parquet`).

Part of the base: it imports only the base modules, and the stage packages import it.
"""

from __future__ import annotations

import argparse
import bisect
import gzip
import logging
import os
import re
import zlib
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from typing import Any

from aisci.errors import InputError
from aisci.fileio import atomic_output, read_utf8

log = logging.getLogger(__name__)

# Rows per Parquet row group, for every table the stages write and for their gathered parts: the
# same rows in the same row groups make the gathered file the unscattered one, byte for byte.
ROW_GROUP_ROWS = 65_536
_NUMBER = re.compile(r"[0-9]+")


@dataclass(frozen=True)
class Interval:
    """A 1-based, inclusive reference interval."""

    chrom: str
    start: int
    end: int

    def __str__(self) -> str:
        return f"{self.chrom}:{self.start}-{self.end}"


@dataclass(frozen=True)
class Regions:
    """The intervals of a regions file (1-based, inclusive; disjoint), and which records fall in them."""

    path: str
    intervals: tuple[Interval, ...]
    _by_chrom: dict[str, tuple[list[int], list[int]]] = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        by_chrom: dict[str, tuple[list[int], list[int]]] = {}
        for iv in sorted(self.intervals, key=lambda iv: (iv.chrom, iv.start)):
            starts, ends = by_chrom.setdefault(iv.chrom, ([], []))
            starts.append(iv.start)
            ends.append(iv.end)
        object.__setattr__(self, "_by_chrom", by_chrom)

    def describe(self) -> str:
        """'N intervals on M contigs, B bp', for logs."""
        bp = sum(iv.end - iv.start + 1 for iv in self.intervals)
        return f"{len(self.intervals)} intervals on {len(self._by_chrom)} contigs, {bp:,} bp"

    def contains(self, chrom: str, pos: int) -> bool:
        """Whether 1-based ``pos`` of ``chrom`` lies in an interval."""
        found = self._by_chrom.get(chrom)
        if found is None:
            return False
        i = bisect.bisect_right(found[0], pos) - 1
        return i >= 0 and pos <= found[1][i]

    def mask(self, chroms: Sequence[str], positions: Sequence[int]) -> Any:
        """A numpy bool array: which (chrom, 1-based pos) pairs lie in an interval (vectorised `contains`)."""
        import numpy as np

        chroms = np.asarray(chroms, dtype=object)
        pos = np.asarray(positions, dtype=np.int64)
        keep = np.zeros(len(pos), dtype=bool)
        for chrom in set(chroms.tolist()) & self._by_chrom.keys():
            rows = np.flatnonzero(chroms == chrom)
            starts, ends = (np.asarray(a, dtype=np.int64) for a in self._by_chrom[chrom])
            i = np.searchsorted(starts, pos[rows], side="right") - 1
            inside = i >= 0
            inside[inside] = pos[rows][inside] <= ends[i[inside]]
            keep[rows[inside]] = True
        return keep

    def records(self, handle: Any, path: str | os.PathLike[str], contigs: Sequence[str] | None = None) -> Iterator[Any]:
        """The records of an open ``pysam.VariantFile`` whose POS lies in an interval, in file order.

        An indexed input (tabix or CSI) is read one interval at a time: ``fetch`` also returns the records
        that start before an interval and reach into it (a deletion across a boundary), which belong to the
        interval holding their POS and are skipped here. An input without an index is read whole and
        filtered. Intervals on contigs the VCF does not hold select nothing.

        Args:
            handle: the open VCF/BCF.
            path: its path (indexes are looked for beside it; messages name it).
            contigs: its contigs in the order of its records (`aisci.vcfcheck.check_vcf`'s ``contigs``), the order
                the intervals are read in. Default: the index's order, which is that order for tabix; a CSI
                index of a BCF lists the header's contigs instead.

        Raises:
            InputError: a record cannot be read (naming the file and the interval), or the index lacks a
                contig of ``contigs`` (stale).
        """
        from aisci.vcfcheck import iter_records

        name = os.fspath(path)
        # htslib prints an error ("Could not retrieve index file") when asked for an index that is not there
        if not any(os.path.exists(name + ext) for ext in (".tbi", ".csi")) or handle.index is None:
            yield from (rec for rec in iter_records(handle, name) if self.contains(rec.chrom, rec.pos))
            return
        indexed = set(handle.index)
        stale = [c for c in contigs or () if c not in indexed and c in self._by_chrom]
        if stale:  # fetch would find none of their records, and they would be lost without a word
            raise InputError(f"{name}: has records on {stale[0]} but its index does not list that contig: the index "
                             "is older than the file; index it again (tabix -p vcf, or bcftools index)")
        order = {chrom: n for n, chrom in enumerate(c for c in (handle.index if contigs is None else contigs)
                                                     if c in indexed)}
        wanted = [iv for iv in self.intervals if iv.chrom in order]
        for iv in sorted(wanted, key=lambda iv: (order[iv.chrom], iv.start)):
            for rec in _fetch(handle, name, iv):
                if iv.start <= rec.pos <= iv.end:
                    yield rec


def _fetch(handle: Any, name: str, iv: Interval) -> Iterator[Any]:
    """The records overlapping ``iv``; read errors as an InputError naming the file and the interval."""
    try:
        fetched = handle.fetch(iv.chrom, iv.start - 1, iv.end)  # pysam: 0-based, end-exclusive
        while (rec := next(fetched, None)) is not None:
            yield rec
    except (OSError, ValueError) as exc:
        raise InputError(f"{name}: cannot read the records of {iv} ({exc})") from None


def read_regions(path: str | os.PathLike[str]) -> Regions:
    """A regions file: tab-separated CHROM, BEG, END (1-based, inclusive), further columns ignored.

    As bcftools reads it, a line starting with '#' is a comment (no contig name starts with '#',
    `aisci.germline.reference.CONTIG_NAME`). Contig names are taken as written: ':', '*', '|' are part of them.

    Raises:
        InputError: naming the file and line: fewer than three columns, BEG or END not a whole number,
            BEG < 1 or END < BEG, an interval overlapping or before the previous one of its contig; or
            a file without intervals.
    """
    name = os.fspath(path)
    intervals: list[Interval] = []
    last_end: dict[str, tuple[int, int]] = {}  # contig -> (END of its latest interval, its line)
    for n, line in enumerate(read_utf8(path, name).split("\n"), 1):
        line = line.rstrip("\r")
        if not line or line.startswith("#"):
            continue
        where = f"{name} line {n}"
        fields = line.split("\t")
        if len(fields) < 3 or not fields[0]:
            raise InputError(f"{where}: expected CHROM, BEG, END (tab-separated), got {line[:80]!r}")
        chrom, beg, end = fields[:3]
        if not (_NUMBER.fullmatch(beg) and _NUMBER.fullmatch(end)) or not 1 <= int(beg) <= int(end):
            raise InputError(f"{where}: BEG '{beg}' and END '{end}' must be whole numbers with 1 <= BEG <= END")
        iv = Interval(chrom, int(beg), int(end))
        if chrom in last_end and iv.start <= last_end[chrom][0]:
            raise InputError(f"{where}: {iv} overlaps or comes before the interval of line {last_end[chrom][1]} "
                             f"(ending at {last_end[chrom][0]}); a regions file's intervals must be disjoint and "
                             "in order")
        last_end[chrom] = (iv.end, n)
        intervals.append(iv)
    if not intervals:
        raise InputError(f"{name}: no intervals (expected lines of CHROM, BEG, END)")
    return Regions(name, tuple(intervals))


def write_parquet(path: str | os.PathLike[str], schema: Any, tables: Iterable[Any]) -> int:
    """Write tables of ``schema`` to one Parquet file, atomically, in row groups of exactly ROW_GROUP_ROWS rows.

    The row groups depend only on the rows, not on how they come in (each one is written from contiguous
    arrays), so the same rows give the same file however a stage batches them or a gather splits them.
    pyarrow's other defaults (Snappy compression, dictionary encoding) apply. No rows give a table with
    the schema and no rows.

    Args:
        path: output file.
        schema: the pyarrow schema (its metadata included) every table has.
        tables: pyarrow Tables or RecordBatches (consumed once).

    Returns:
        The number of rows written.

    Raises:
        ValueError: a table whose schema differs from ``schema`` (a programming error).
    """
    import pyarrow as pa
    import pyarrow.parquet as pq

    rows = 0
    pending: list[Any] = []
    pending_rows = 0
    with atomic_output(path) as tmp, pq.ParquetWriter(tmp, schema) as writer:
        def flush(n: int) -> None:
            nonlocal pending, pending_rows, rows
            whole = pa.concat_tables(pending) if len(pending) > 1 else pending[0]
            writer.write_table(whole.slice(0, n).combine_chunks(), row_group_size=ROW_GROUP_ROWS)
            pending = [whole.slice(n)]
            pending_rows -= n
            rows += n

        for table in tables:
            if isinstance(table, pa.RecordBatch):
                table = pa.Table.from_batches([table])
            if not table.schema.equals(schema, check_metadata=True):
                raise ValueError(f"write_parquet({os.fspath(path)}): a table's schema differs from the file's")
            if table.num_rows:
                pending.append(table)
                pending_rows += table.num_rows
            while pending_rows >= ROW_GROUP_ROWS:
                flush(ROW_GROUP_ROWS)
        if pending_rows:
            flush(pending_rows)
        if rows == 0:
            writer.write_table(schema.empty_table())
    return rows


def gather_vcfs(parts: Sequence[str | os.PathLike[str]], out: str | os.PathLike[str]) -> int:
    """Concatenate bgzipped VCFs with one header, in the order given, into a bgzipped, tabix-indexed VCF.

    The output is the first part's header, then every part's records in order; written under a
    temporary name and indexed (``OUT.tbi``) before it appears.

    Args:
        parts: the groups' VCFs (bgzip; plain text is read too), in reference order.
        out: output path ending in .vcf.gz.

    Returns:
        The number of records written.

    Raises:
        InputError: no parts, an output name without .vcf.gz, an unreadable part, a part whose header
            differs from the first part's (naming it and the first differing line), or records out of order
            (tabix cannot index the result).
    """
    import pysam

    if not str(out).endswith(".vcf.gz"):
        raise InputError(f"--out {out}: must end in .vcf.gz (the output is bgzipped and indexed)")
    if not parts:
        raise InputError("no parts to gather")
    header = _vcf_header(parts[0])
    for part in parts[1:]:
        other = _vcf_header(part)
        if other != header:
            n = next((i for i, (a, b) in enumerate(zip(header, other)) if a != b), min(len(header), len(other)))
            line = other[n].decode(errors="replace").rstrip() if n < len(other) else "(no such line)"
            raise InputError(f"{os.fspath(part)}: its header differs from that of {os.fspath(parts[0])} at header "
                             f"line {n + 1} ({line[:120]}); parts of one gather come from one run of one stage")
    records = 0
    with atomic_output(out) as tmp:
        with pysam.BGZFile(str(tmp), "wb") as dst:
            dst.write(b"".join(header))
            for part in parts:
                records += _copy_records(part, dst)
        try:
            pysam.tabix_index(str(tmp), preset="vcf", force=True)
        except OSError as exc:
            raise InputError(f"the gathered VCF cannot be tabix-indexed ({exc}): are the parts given in reference "
                             "order?") from None
    os.replace(f"{tmp}.tbi", f"{out}.tbi")
    log.info("%d parts, %d records -> %s", len(parts), records, out)
    return records


def _pieces(path: str | os.PathLike[str]) -> Iterator[bytes]:
    """A plain or bgzipped VCF's header lines one by one, then its first record line, then the rest in blocks
    of 1 MiB (not cut at line ends); read errors as an InputError naming the file."""
    from aisci.fileio import is_gzipped

    name = os.fspath(path)
    try:
        with (gzip.open(name, "rb") if is_gzipped(name) else open(name, "rb")) as fh:
            for line in fh:
                yield line
                if not line.startswith(b"#"):
                    break
            while block := fh.read(1 << 20):
                yield block
    except (OSError, EOFError, zlib.error) as exc:
        raise InputError(f"{name}: cannot read as a VCF part ({exc})") from None


def _copy_records(path: str | os.PathLike[str], dst: Any) -> int:
    """Write the record lines of a VCF to ``dst``; return how many."""
    n, last = 0, b"\n"
    body = False
    for piece in _pieces(path):
        body = body or not piece.startswith(b"#")
        if body:
            dst.write(piece)
            n, last = n + piece.count(b"\n"), piece[-1:]
    if last != b"\n":  # a last record without its line end: the next part's first record must not join it
        dst.write(b"\n")
        n += 1
    return n


def _vcf_header(path: str | os.PathLike[str]) -> list[bytes]:
    """A VCF's header lines, '##fileformat' to '#CHROM'."""
    lines = []
    for line in _pieces(path):
        if not line.startswith(b"#"):
            break
        lines.append(line)
    if not lines or not lines[0].startswith(b"##fileformat=VCF") or not lines[-1].startswith(b"#CHROM"):
        raise InputError(f"{os.fspath(path)}: not a VCF (no ##fileformat line or no #CHROM line)")
    return lines


def gather_parquet(parts: Sequence[str | os.PathLike[str]], out: str | os.PathLike[str]) -> int:
    """Concatenate Parquet tables of one schema, in the order given, into one table (`write_parquet`).

    Args:
        parts: the groups' tables, in reference order.
        out: output file (written atomically).

    Returns:
        The number of rows written.

    Raises:
        InputError: no parts, an unreadable part, or a part whose schema (names, types, nullability,
            metadata) differs from the first part's, naming it.
    """
    import pyarrow.parquet as pq

    if not parts:
        raise InputError("no parts to gather")
    schemas = [_parquet_schema(p) for p in parts]
    for part, schema in zip(parts[1:], schemas[1:]):
        if not schema.equals(schemas[0], check_metadata=True):
            what = "metadata" if schema.equals(schemas[0]) else "columns"
            raise InputError(f"{os.fspath(part)}: its schema ({what}) differs from that of {os.fspath(parts[0])}; "
                             "parts of one gather come from one run of one stage")

    def tables() -> Iterator[Any]:
        for part in parts:
            try:
                yield from pq.ParquetFile(part).iter_batches(batch_size=ROW_GROUP_ROWS)
            except (OSError, ValueError) as exc:
                raise InputError(f"{os.fspath(part)}: cannot read as Parquet ({exc})") from None

    rows = write_parquet(out, schemas[0], tables())
    log.info("%d parts, %d rows -> %s", len(parts), rows, out)
    return rows


def _parquet_schema(path: str | os.PathLike[str]) -> Any:
    import pyarrow.parquet as pq

    try:
        return pq.read_schema(path)
    except (OSError, ValueError) as exc:
        raise InputError(f"{os.fspath(path)}: cannot read as Parquet ({exc})") from None


def configure_parser(parser: argparse.ArgumentParser) -> None:
    """Register `vcf` and `parquet` under `aisci gather`."""
    sub = parser.add_subparsers(dest="gather_command", metavar="KIND", required=True)
    v = sub.add_parser("vcf", help="concatenate the groups' bgzipped VCFs (one header) into an indexed .vcf.gz")
    v.add_argument("--out", required=True, help="output VCF, bgzipped and tabix-indexed (.vcf.gz)")
    v.add_argument("parts", nargs="+", help="the groups' VCFs, in reference order")
    p = sub.add_parser("parquet", help="concatenate the groups' Parquet tables (one schema) into one table")
    p.add_argument("--out", required=True, help="output Parquet file")
    p.add_argument("parts", nargs="+", help="the groups' tables, in reference order")


def run(args: argparse.Namespace) -> int:
    """Gather the parts; print what was written."""
    if args.gather_command == "vcf":
        n = gather_vcfs(args.parts, args.out)
        print(f"{len(args.parts)} parts, {n} records -> {args.out}")
    else:
        n = gather_parquet(args.parts, args.out)
        print(f"{len(args.parts)} parts, {n} rows -> {args.out}")
    return 0
