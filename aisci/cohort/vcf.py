"""Read one sample's calls from a (bgzipped) VCF into Arrow batches of the cohort CALLS schema.

The parser is column-wise: Arrow's CSV reader splits a block of records into string columns, and
Arrow compute kernels and numpy parse and check them, FORMAT keys looked up once per distinct FORMAT
string, so no Python code runs per record. A record with several ALT alleles becomes one row per ALT.
Errors name the file, the 1-based line of the (decompressed) file and the field.
"""

from __future__ import annotations

import gzip
import itertools
import os
import re
import zlib
from collections.abc import Iterator

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.csv as pacsv

from aisci.cohort.schema import CALLS
from aisci.errors import InputError

COLUMNS = ("CHROM", "POS", "ID", "REF", "ALT", "QUAL", "FILTER", "INFO", "FORMAT", "SAMPLE")
READ = ["CHROM", "POS", "REF", "ALT", "QUAL", "FILTER", "FORMAT", "SAMPLE"]   # ID and INFO are never parsed
BASES = r"^[ACGTNacgtn]+$"
ALT_ALLELE = r"^([ACGTNacgtn]+|\*|<[^<>]+>)$"
POS_TEXT = r"^[0-9]{1,18}$"
INT_TEXT = r"^(-?[0-9]{1,9}|\.)$"          # '.' = missing; at most 9 digits always fits int32
QUAL_TEXT = r"^([-+]?([0-9]+\.?[0-9]*|\.[0-9]+)([eE][-+]?[0-9]+)?|\.)$"
GT_TEXT = r"^(\.|[0-9]{1,3})([/|](\.|[0-9]{1,3}))*$"
AD_TEXT = r"^(-?[0-9]{1,9}|\.)(,(-?[0-9]{1,9}|\.))*$"
GT_RE = re.compile(GT_TEXT)
GT_SPLIT = re.compile(r"[/|]")
GT_WHAT = "is not a genotype such as 0/1, 1|2 or ./."
KEYS = ("GT", "DP", "GQ", "AD")
# Bytes of text the CSV reader parses at a time (~10,000-20,000 records). Blocks of a few MiB let Arrow's
# read-ahead thread decompress the next block while this one is parsed; larger ones were slower.
BLOCK = 2 << 20
_NULL_STR = pa.scalar(None, pa.string())

_PARSE = pacsv.ParseOptions(delimiter="\t", quote_char=False, escape_char=False, ignore_empty_lines=False)
_CONVERT = pacsv.ConvertOptions(column_types={c: pa.string() for c in COLUMNS}, include_columns=READ,
                                strings_can_be_null=False, quoted_strings_can_be_null=False)


def read_calls(path: str | os.PathLike[str], sample: str,
               batch_rows: int = 65536) -> Iterator[tuple[str, pa.RecordBatch]]:
    """Stream a single-sample VCF (plain or bgzipped) as ``(chrom, batch)`` pairs.

    Every batch has schema `aisci.cohort.schema.CALLS` exactly, holds rows of one chromosome only and
    at most ``batch_rows`` rows. A record with n ALT alleles gives n rows (``alt_index`` 1..n) that share
    its genotype, allele depths, QUAL, FILTER, DP and GQ; records whose ALT is '.' give none. Rows keep
    the file's order. ``genotype`` is GT as written (null when the record has no GT); ``alt_copies`` and
    ``called_alleles`` count this ALT's and all non-missing alleles in GT (``alt_copies`` is null when no
    allele is called); ``allele_depths`` is null when AD is absent or '.'.

    Args:
        path: the VCF; its single sample column is read whatever its name.
        sample: the name written to the ``sample`` column.
        batch_rows: the most rows per batch (a batch never spans two blocks of ~2 MiB of text, so
            batches are often smaller).

    Yields:
        ``(chrom, batch)``, chromosomes in file order (a chromosome may recur after another).

    Raises:
        InputError: naming the file, and the line and field where there is one: no '#CHROM' header, not
            exactly one sample column, a wrong column count, a bad POS/REF/ALT/QUAL/GT/DP/GQ/AD value, a
            sample column with more fields than FORMAT, a truncated or corrupt gzip stream.
    """
    name = os.fspath(path)
    compressed, n_header, header_bytes = _header(name)
    if n_header < 0:
        return                                   # a header and no records
    block = BLOCK + header_bytes                   # Arrow skips the header inside the first block
    stream = pa.input_stream(name, compression="gzip" if compressed else None)
    line = n_header + 1                      # line number of the next record
    try:
        reader = pacsv.open_csv(stream, read_options=pacsv.ReadOptions(
            skip_rows=n_header, column_names=COLUMNS, block_size=block, use_threads=False),
            parse_options=_PARSE, convert_options=_CONVERT)
        for chunk in reader:
            yield from _split(_parse(chunk, name, line, sample), batch_rows)
            line += chunk.num_rows
    except (pa.ArrowInvalid, OSError) as exc:
        _locate(name, compressed, n_header, exc)
    finally:
        stream.close()


def _header(name: str) -> tuple[bool, int, int]:
    """(gzip-compressed?, header lines incl. '#CHROM' or -1 when no record follows, header bytes).

    Also checks that the '#CHROM' line names exactly one sample.
    """
    size = 0
    try:
        with open(name, "rb") as fh:
            compressed = fh.read(2) == b"\x1f\x8b"
        with (gzip.open(name, "rb") if compressed else open(name, "rb")) as fh:
            for n, raw in enumerate(fh, 1):
                size += len(raw)
                if raw.startswith(b"##"):
                    continue
                if not raw.startswith(b"#CHROM"):
                    break
                samples = len(raw.rstrip(b"\r\n").split(b"\t")) - 9
                if samples != 1:
                    raise InputError(f"{name} line {n}: the '#CHROM' header has {max(samples, 0)} sample "
                                     "columns; a per-sample VCF must have exactly one")
                return compressed, n if fh.read(1) else -1, size
    except (OSError, EOFError, zlib.error) as exc:
        raise InputError(f"{name}: cannot read the VCF header ({exc})") from exc
    raise InputError(f"{name}: no '#CHROM' header line before the first record")


def _locate(name: str, compressed: bool, n_header: int, exc: Exception) -> None:
    """Raise an InputError for a reader failure, naming the line when it is a malformed line."""
    try:
        with (gzip.open(name, "rb") if compressed else open(name, "rb")) as fh:
            for n, raw in enumerate(fh, 1):
                if n <= n_header:
                    continue
                text = raw.rstrip(b"\r\n")
                n_columns = text.count(b"\t") + 1
                if text and n_columns != 10:
                    raise InputError(f"{name} line {n}: expected 10 tab-separated columns, "
                                     f"found {n_columns}") from None
                try:
                    text.decode()
                except UnicodeDecodeError:
                    raise InputError(f"{name} line {n}: not UTF-8 text") from None
    except (OSError, EOFError, zlib.error) as exc2:
        what = "truncated or corrupt gzip stream" if compressed else "cannot read the VCF"
        raise InputError(f"{name}: {what} ({exc2})") from exc
    raise InputError(f"{name}: cannot read the VCF ({exc})") from exc


class _Checker:
    """Raises the InputError of the first bad value of a column (its 1-based line number)."""

    def __init__(self, name: str, lines: np.ndarray):
        self.name, self.lines = name, lines

    def require(self, ok, field: str, values, what: str, rows=None) -> None:
        """``ok``: bool per value (Arrow or numpy, null = fine); ``rows``: the record of each value."""
        ok = np.asarray(ok.fill_null(True) if isinstance(ok, (pa.Array, pa.ChunkedArray)) else ok)
        if ok.all():
            return
        i = int(np.argmin(ok))
        row = i if rows is None else int(rows[i])
        raise InputError(f"{self.name} line {self.lines[row]}: {field} {values[i].as_py()!r} {what}")

    def matches(self, values, pattern: str, field: str, what: str, rows=None, allowed=None) -> None:
        """Check ``values`` against ``pattern`` once per distinct value (REF/ALT repeat a lot).

        ``allowed``: bool per value (numpy), True where a non-matching value is fine anyway.
        """
        distinct = pc.unique(values)
        bad = distinct.filter(pc.invert(pc.match_substring_regex(distinct, pattern)))
        if len(bad):
            ok = np.asarray(pc.invert(pc.is_in(values, value_set=bad)))
            self.require(ok if allowed is None else ok | allowed, field, values, what, rows)

    def cast(self, values, to: pa.DataType, field: str, pattern: str, what: str, rows=None,
             shown=None) -> pa.Array:
        """Cast strings ('.' = null) to ``to``; on failure report the first value not matching ``pattern``.

        The cast itself validates the common case at full speed; the regex only runs on bad input.
        ``shown`` (default ``values``) is what the error message quotes, indexed like ``rows``.
        """
        try:
            return pc.cast(pc.if_else(pc.equal(values, "."), _NULL_STR, values), to)
        except (pa.ArrowInvalid, pa.ArrowNotImplementedError) as exc:
            shown = values if shown is None else shown
            self.require(pc.match_substring_regex(shown, pattern), field, shown, what, rows)
            raise InputError(f"{self.name}: a {field} value cannot be read as {to} ({exc})") from exc


def _parse(chunk: pa.RecordBatch, name: str, first_line: int, sample: str) -> pa.RecordBatch | None:
    """Check and convert one CSV block into CALLS rows plus a trailing ``chrom`` column."""
    chrom, pos, ref, alt, qual, filt, fmt, smp = chunk.columns
    lines = np.arange(first_line, first_line + chunk.num_rows)
    blank = pc.and_(pc.equal(chrom, ""), pc.equal(pos, ""))
    if pc.any(blank).as_py():                       # tolerate blank lines, keep the others' numbers
        keep = pc.invert(blank)
        lines = lines[np.asarray(keep)]
        chrom, pos, ref, alt, qual, filt, fmt, smp = (c.filter(keep) for c in
                                                      (chrom, pos, ref, alt, qual, filt, fmt, smp))
    if len(chrom) == 0:
        return None
    check = _Checker(name, lines)
    check.require(pc.not_equal(chrom, ""), "CHROM", chrom, "is empty")
    pos_text = pos
    pos = check.cast(pos, pa.int64(), "POS", POS_TEXT, "is not a positive integer")
    check.require(pc.greater(pos, 0).fill_null(False), "POS", pos_text, "is not a positive integer")
    check.matches(ref, BASES, "REF", "is not a sequence of A, C, G, T, N")
    # QUAL is a float in htslib: parse as double, then round to float32 (as bcftools does)
    qual = pc.cast(check.cast(qual, pa.float64(), "QUAL", QUAL_TEXT, "is not a number or '.'"), pa.float32())

    # ALT: one row per allele; records with ALT '.' are checked, then dropped
    no_alt = np.asarray(pc.equal(alt, "."))
    alts = pc.split_pattern(alt, ",")
    alt_rec = np.asarray(pc.list_parent_indices(alts))
    alt_flat = pc.list_flatten(alts)
    check.matches(alt_flat, ALT_ALLELE, "ALT", "is not A/C/G/T/N bases, '*' or a symbolic <ID>", alt_rec,
                  allowed=no_alt[alt_rec])
    n_alts = np.where(no_alt, 0, np.asarray(pc.list_value_length(alts)))
    check.require(n_alts < 128, "ALT", alt, "has more than 127 alleles")
    alt_start = np.asarray(alts.offsets)[:-1]
    alt_index = np.arange(len(alt_rec)) - alt_start[alt_rec] + 1

    # FORMAT keys resolved once per distinct FORMAT string, then gathered from the split sample column
    fmt_dict = pc.dictionary_encode(fmt)
    codes = np.asarray(fmt_dict.indices)
    key_sets = [f.split(":") for f in fmt_dict.dictionary.to_pylist()]
    n_keys = np.array([len(k) for k in key_sets])[codes]
    fields = pc.split_pattern(smp, ":")
    n_fields = np.asarray(pc.list_value_length(fields))
    check.require(n_fields <= n_keys, "sample column", smp, "has more fields than FORMAT")
    flat = pc.list_flatten(fields)
    f_start = np.asarray(fields.offsets)[:-1]
    values = {}
    for key in KEYS:
        at = np.array([k.index(key) if key in k else -1 for k in key_sets])[codes]
        present = (at >= 0) & (at < n_fields)
        index = pa.array(np.where(present, f_start + at, 0), mask=~present)      # null: key absent
        values[key] = flat.take(index) if len(flat) else pa.nulls(len(chrom), pa.string())

    gt = values["GT"]
    gt_codes, called, phased, copies = _genotypes(gt, n_alts, alt_rec, alt_index, check)
    ints = {}
    for key in ("DP", "GQ"):
        v = values[key]
        ints[key] = check.cast(v, pa.int32(), key, INT_TEXT, "is not an integer or '.'")

    # explode to one row per ALT allele
    keep = ~no_alt[alt_rec]
    rec = alt_rec[keep]
    take = pa.array(rec)
    out_pos = pos.take(take)
    out_ref = ref.take(take)
    out_alt = alt_flat.filter(pa.array(keep)) if not keep.all() else alt_flat
    out_chrom = chrom.take(take)
    gt_null = gt_codes < 0
    no_call = gt_null | (called == 0)
    cols = {
        "sample": pa.repeat(pa.scalar(sample, pa.string()), len(rec)),
        "pos": out_pos,
        "ref": out_ref,
        "alt": out_alt,
        "alt_index": pa.array(alt_index[keep].astype(np.int8)),
        "variant_id": pc.binary_join_element_wise(out_chrom, pc.cast(out_pos, pa.string()), out_ref, out_alt,
                                                  ":"),
        "qual": qual.take(take),
        "filter": pc.if_else(pc.equal(filt, "."), _NULL_STR, filt).take(take),
        "genotype": gt.take(take),
        "alt_copies": pa.array(copies[keep], mask=no_call[rec]),
        "called_alleles": pa.array(called[rec], mask=gt_null[rec]),
        "phased": pa.array(phased[rec], mask=gt_null[rec]),
        "depth": ints["DP"].take(take),
        "gq": ints["GQ"].take(take),
        "allele_depths": _allele_depths(values["AD"], take, check),
    }
    return pa.RecordBatch.from_arrays([*cols.values(), out_chrom],
                                      names=[*CALLS.names, "chrom"])


def _genotypes(gt: pa.Array, n_alts: np.ndarray, alt_rec: np.ndarray, alt_index: np.ndarray,
               check: _Checker) -> tuple[np.ndarray, ...]:
    """Parse GT once per distinct string (a block holds a handful: 0/1, 1/1, ./., 1|2, ...).

    Returns:
        (code per record, -1 where GT is absent; called alleles per record; phased per record;
        copies of each row's ALT, per exploded ALT row).
    """
    encoded = pc.dictionary_encode(gt)
    distinct = encoded.dictionary.to_pylist()
    codes = np.asarray(encoded.indices.fill_null(-1))
    alleles = [[int(a) for a in GT_SPLIT.split(g) if a != "."] if GT_RE.match(g) else None for g in distinct]
    good = np.array([a is not None for a in alleles] + [True])         # the extra last entry: no GT
    check.require(good[codes], "GT", gt, GT_WHAT)
    width = max([max(a, default=0) for a in alleles] + [0]) + 1
    counts = np.zeros((len(distinct) + 1, width), np.int8)               # copies of each allele
    for u, a in enumerate(alleles):
        np.add.at(counts[u], a, 1)
    highest = np.array([max(a, default=0) for a in alleles] + [0])
    check.require(highest[codes] <= n_alts, "GT", gt, "names an allele beyond the record's ALT alleles")
    called = counts.sum(axis=1, dtype=np.int8)[codes]
    phased = np.array(["|" in g for g in distinct] + [False])[codes]
    row_codes = codes[alt_rec]
    copies = counts[row_codes, np.minimum(alt_index, width - 1)] * (alt_index < width)
    return codes, called, phased, copies.astype(np.int8)


def _allele_depths(ad: pa.Array, take: pa.Array, check: _Checker) -> pa.Array:
    """FORMAT/AD strings to list<int32> for the records ``take``: null when absent or '.', '.' entries null.

    Each distinct AD string is parsed once (depths are small numbers, so a block holds far fewer
    distinct strings than records), then gathered with one take.
    """
    encoded = pc.dictionary_encode(ad)
    distinct = encoded.dictionary
    missing = pc.equal(distinct, ".")
    parts = pc.split_pattern(pc.if_else(missing, _NULL_STR, distinct), ",")
    numbers = check.cast(pc.list_flatten(parts), pa.int32(), "AD", AD_TEXT, "is not a list of integers or '.'",
                         shown=ad)
    lists = pa.ListArray.from_arrays(parts.offsets, numbers, type=CALLS.field("allele_depths").type,
                                     mask=missing)
    return lists.take(encoded.indices.take(take))


def _split(batch: pa.RecordBatch | None, batch_rows: int) -> Iterator[tuple[str, pa.RecordBatch]]:
    """Cut a parsed block at chromosome changes and every ``batch_rows`` rows; drop the chrom column."""
    if batch is None or batch.num_rows == 0:
        return
    chrom = batch.column(len(CALLS))
    body = pa.RecordBatch.from_arrays(batch.columns[:len(CALLS)], schema=CALLS)
    change = np.flatnonzero(np.asarray(pc.not_equal(chrom[1:], chrom[:-1]))) + 1
    bounds = [0, *change.tolist(), batch.num_rows]
    for start, end in itertools.pairwise(bounds):
        name = chrom[start].as_py()
        for s in range(start, end, batch_rows):
            yield name, body.slice(s, min(batch_rows, end - s))
