"""Read one sample's calls from a (bgzipped) VCF into Arrow batches of the cohort CALLS schema.

The parser is column-wise and runs no Python code per record. The file is inflated in blocks of
~2 MiB of text (by ISA-L when the optional `isal` package is installed: ~3x faster than zlib), Arrow's
CSV reader splits a block into string columns, and numpy works on the columns' byte buffers: ALT
lists are cut at commas, the sample column at colons (FORMAT keys looked up once per distinct FORMAT
string), REF/ALT bases checked with a lookup table; Arrow casts parse the numbers. A value the fast
checks reject is re-checked with a regular expression, so errors name the file, the 1-based line of
the (decompressed) file and the field. A record with several ALT alleles becomes one row per ALT.
"""

from __future__ import annotations

import itertools
import os
import re
import zlib
from collections.abc import Iterator

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.csv as pacsv

from aisci.cohort.normalize import normalize_batch
from aisci.cohort.schema import CALLS
from aisci.cohort.tables import string_buffers
from aisci.errors import InputError

try:   # ISA-L inflates ~3x faster than zlib (https://github.com/pycompression/python-isal); optional
    from isal import igzip as _igzip
    from isal.isal_zlib import error as _InflateError
except ImportError:                                   # pyarrow's zlib stream, ~25% faster than gzip's
    _igzip, _InflateError = None, zlib.error

COLUMNS = ("CHROM", "POS", "ID", "REF", "ALT", "QUAL", "FILTER", "INFO", "FORMAT", "SAMPLE")
READ = ["CHROM", "POS", "REF", "ALT", "QUAL", "FILTER", "FORMAT", "SAMPLE"]   # ID and INFO are never parsed
BASES = r"^[ACGTNacgtn]+$"
ALT_ALLELE = r"^([ACGTNacgtn]+|\*|<[^<>]+>)$"
POS_TEXT = r"^[0-9]{1,18}$"
INT_TEXT = r"^(-?[0-9]{1,9}|\.)$"          # '.' = missing; at most 9 digits always fits int32
QUAL_TEXT = r"^([-+]?([0-9]+\.?[0-9]*|\.[0-9]+)([eE][-+]?[0-9]+)?|\.)$"
GT_TEXT = r"^(\.|[0-9]+)([/|](\.|[0-9]+))*$"   # allele indices checked against ALT after
AD_TEXT = r"^(-?[0-9]{1,9}|\.)(,(-?[0-9]{1,9}|\.))*$"
GT_RE = re.compile(GT_TEXT)
GT_SPLIT = re.compile(r"[/|]")
GT_WHAT = "is not a genotype such as 0/1, 1|2 or ./."
KEYS = ("GT", "DP", "GQ", "AD")
# Bytes of text parsed at a time (~10,000-20,000 records): small enough to bound memory, large enough
# that the per-block cost of the CSV reader and of ~100 Arrow/numpy calls is negligible.
BLOCK = 2 << 20
_IS_BASE = np.zeros(256, bool)
_IS_BASE[np.frombuffer(b"ACGTNacgtn", np.uint8)] = True
_NULL_STR = pa.nulls(1, pa.string())[0]  # not pa.scalar(), which imports pandas (0.4 s per process)

_PARSE = pacsv.ParseOptions(delimiter="\t", quote_char=False, escape_char=False, ignore_empty_lines=False)
_CONVERT = {utf8: pacsv.ConvertOptions(column_types={c: pa.string() for c in COLUMNS}, include_columns=READ,
                                       strings_can_be_null=False, quoted_strings_can_be_null=False,
                                       check_utf8=utf8) for utf8 in (False, True)}


def read_calls(path: str | os.PathLike[str], sample: str,
               batch_rows: int = 65536) -> Iterator[tuple[str, pa.RecordBatch]]:
    """Stream a single-sample VCF (plain or bgzipped) as ``(chrom, batch)`` pairs.

    Every batch has schema `aisci.cohort.schema.CALLS` exactly, holds rows of one chromosome only and
    at most ``batch_rows`` rows. A record with n ALT alleles gives n rows (``alt_index`` 1..n) that share
    its genotype, allele depths, QUAL, FILTER, DP and GQ; records whose ALT is '.' give none. Rows keep
    the file's order, each ALT upper-cased and trimmed to its minimal spelling (`aisci.cohort.normalize`:
    ``TCC>TC`` of a split ``TCC>T,TC`` is ``TC>T``, POS moved by a trimmed prefix). ``genotype`` is GT as written (null when the record has no GT); ``alt_copies`` and
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
    blocks = _blocks(name)
    line, rest = _header(name, blocks)
    for text in itertools.chain([rest], blocks):
        if text:
            columns = _columns(text, name, line)
            for chrom, batch in _split(_parse(columns, name, line, sample), batch_rows):
                yield chrom, normalize_batch(batch)
            line += columns.num_rows


def _blocks(name: str) -> Iterator[bytes]:
    """The file's decompressed text in blocks of whole lines (only the last may lack its line end)."""
    compressed = False
    try:
        with open(name, "rb") as fh:
            compressed = fh.read(2) == b"\x1f\x8b"
        with _open(name, compressed) as stream:
            carry = b""
            while chunk := stream.read(BLOCK):
                text = carry + chunk if carry else chunk
                cut = text.rfind(b"\n") + 1
                carry = text[cut:]
                if cut:
                    yield text[:cut] if carry else text
            if carry:
                yield carry
    except (OSError, EOFError, zlib.error, _InflateError) as exc:
        what = "truncated or corrupt gzip stream" if compressed else "cannot read the VCF"
        raise InputError(f"{name}: {what} ({exc})") from exc


def _open(name: str, compressed: bool):
    """A binary stream of the file's (decompressed) bytes."""
    if not compressed:
        return open(name, "rb")
    if _igzip is not None:
        return _igzip.open(name, "rb")
    return pa.input_stream(name, compression="gzip")


def _header(name: str, blocks: Iterator[bytes]) -> tuple[int, bytes]:
    """Read and check the header: (line number of the first record, the text after '#CHROM' in its block).

    Every line before '#CHROM' must start with '##', and '#CHROM' must name exactly one sample.
    """
    head = b""
    for text in blocks:
        head = head + text if head else text
        at = 0 if head.startswith(b"#CHROM") else head.find(b"\n#CHROM") + 1
        if at or head.startswith(b"#CHROM"):
            break
        _meta_lines(name, head)
    else:
        raise InputError(f"{name}: no '#CHROM' header line before the first record")
    n = _meta_lines(name, head[:at])
    end = head.find(b"\n", at) + 1 or len(head)
    samples = len(head[at:end].rstrip(b"\r\n").split(b"\t")) - 9
    if samples != 1:
        raise InputError(f"{name} line {n + 1}: the '#CHROM' header has {max(samples, 0)} sample "
                         "columns; a per-sample VCF must have exactly one")
    return n + 2, head[end:]


def _meta_lines(name: str, text: bytes) -> int:
    """The number of lines in ``text`` (whole lines), after checking that each starts with '##'."""
    n = text.count(b"\n") + (not text.endswith(b"\n") and len(text) > 0)
    if text.startswith(b"##") + text.count(b"\n##") != n:
        raise InputError(f"{name}: no '#CHROM' header line before the first record")
    return n


def _columns(text: bytes, name: str, line: int) -> pa.RecordBatch | None:
    """Split record lines into string columns (one row per line, blank lines included)."""
    ascii_only = text.isascii()               # then UTF-8 needs no check (isascii is ~25 GB/s)
    try:
        table = pacsv.read_csv(pa.py_buffer(text), read_options=pacsv.ReadOptions(
            column_names=COLUMNS, block_size=len(text) + 1, use_threads=False),
            parse_options=_PARSE, convert_options=_CONVERT[not ascii_only])
    except pa.ArrowInvalid as exc:
        _locate(text, name, line, exc)
    return table.combine_chunks().to_batches()[0] if table.num_rows else None


def _locate(text: bytes, name: str, first_line: int, exc: Exception) -> None:
    """Raise an InputError for a CSV reader failure, naming the line when it is a malformed line."""
    read = [COLUMNS.index(c) for c in READ]
    for n, raw in enumerate(text.split(b"\n"), first_line):
        raw = raw.rstrip(b"\r")
        fields = raw.split(b"\t")
        if raw and len(fields) != 10:
            raise InputError(f"{name} line {n}: expected 10 tab-separated columns, found {len(fields)}") from None
        try:
            for i in read:
                fields[i].decode()
        except (UnicodeDecodeError, IndexError):
            raise InputError(f"{name} line {n}: not UTF-8 text") from None
    raise InputError(f"{name}: cannot read the VCF ({exc})") from exc


def _strings(data: np.ndarray, start: np.ndarray, end: np.ndarray, valid: np.ndarray) -> pa.Array:
    """The string array of ``data[start[i]:end[i]]``, null where not ``valid``."""
    lengths = np.where(valid, end - start, 0)
    offsets = np.zeros(len(start) + 1, np.int32)
    np.cumsum(lengths, out=offsets[1:])
    index = np.repeat(start - offsets[:-1], lengths) + np.arange(offsets[-1])
    validity = None if valid.all() else pa.py_buffer(np.packbits(valid, bitorder="little"))
    return pa.StringArray.from_buffers(len(start), pa.py_buffer(offsets), pa.py_buffer(data[index]), validity)


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
        value = values[i].as_py()
        shown = repr(value)
        if isinstance(value, str) and len(value) > 80:  # a 300-allele GT, a 128-allele ALT: the start says enough
            shown = f"{value[:60]!r}... ({len(value)} characters)"
        raise InputError(f"{self.name} line {self.lines[row]}: {field} {shown} {what}")

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
        missing = pc.equal(values, ".")
        try:
            return pc.cast(pc.if_else(missing, _NULL_STR, values) if missing.true_count else values, to)
        except (pa.ArrowInvalid, pa.ArrowNotImplementedError) as exc:
            shown = values if shown is None else shown
            self.require(pc.match_substring_regex(shown, pattern), field, shown, what, rows)
            raise InputError(f"{self.name}: a {field} value cannot be read as {to} ({exc})") from exc


def _parse(chunk: pa.RecordBatch | None, name: str, first_line: int, sample: str) -> pa.RecordBatch | None:
    """Check and convert one block of records into CALLS rows."""
    if chunk is None:
        return None
    columns = chunk.columns
    lines = np.arange(first_line, first_line + chunk.num_rows)
    no_chrom = np.diff(string_buffers(columns[0])[0]) == 0
    if no_chrom.any():                          # tolerate blank lines, keep the others' numbers
        keep = ~(no_chrom & (np.diff(string_buffers(columns[1])[0]) == 0))
        lines = lines[keep]
        columns = [c.filter(pa.array(keep)) for c in columns]
    chrom, pos, ref, alt, qual, filt, fmt, smp = columns
    n = len(chrom)
    if n == 0:
        return None
    check = _Checker(name, lines)
    check.require(np.diff(string_buffers(chrom)[0]) > 0, "CHROM", chrom, "is empty")
    pos_text = pos                               # '+5' and '007' read as 5 and 7, as htslib reads them
    pos = check.cast(pos, pa.int64(), "POS", POS_TEXT, "is not a positive integer")
    check.require(np.asarray(pos) > 0, "POS", pos_text, "is not a positive integer")
    ref_off, ref_bytes = string_buffers(ref)
    if not (_IS_BASE[ref_bytes].all() and (np.diff(ref_off) > 0).all()):
        check.matches(ref, BASES, "REF", "is not a sequence of A, C, G, T, N")
    # QUAL is a float in htslib: parse as double, then round to float32 (as bcftools does)
    qual = pc.cast(check.cast(qual, pa.float64(), "QUAL", QUAL_TEXT, "is not a number or '.'"), pa.float32())

    # ALT: one row per allele, cut at commas; records with ALT '.' are checked, then dropped
    alt_flat, alt_rec, alt_index, n_alts = _alleles(alt)
    no_alt = np.zeros(n, bool)
    alt_off, alt_bytes = string_buffers(alt_flat)
    if not (_IS_BASE[alt_bytes].all() and (np.diff(alt_off) > 0).all()):   # '*', <DEL>, '.' or bad
        no_alt = np.asarray(pc.equal(alt, "."))
        check.matches(alt_flat, ALT_ALLELE, "ALT", "is not A/C/G/T/N bases, '*' or a symbolic <ID>", alt_rec,
                      allowed=no_alt[alt_rec])
        n_alts[no_alt] = 0
    check.require(n_alts < 128, "ALT", alt, "has more than 127 alleles")

    values = _sample_fields(fmt, smp, check)
    gt = values["GT"]
    gt_codes, called, phased, copies = _genotypes(gt, n_alts, alt_rec, alt_index, check)
    ints = {}
    for key in ("DP", "GQ"):
        ints[key] = check.cast(values[key], pa.int32(), key, INT_TEXT, "is not an integer or '.'")
    dots = pc.equal(filt, ".")
    filt = pc.if_else(dots, _NULL_STR, filt) if dots.true_count else filt
    ad = _allele_depths(values["AD"], check)

    # explode to one row per ALT allele (nothing to take when every record has one ALT)
    keep = ~no_alt[alt_rec]
    if len(alt_rec) == n and keep.all():
        rec, out_alt, take = np.arange(n), alt_flat, None
    else:
        rec = alt_rec[keep]
        take = pa.array(rec)
        out_alt = alt_flat.filter(pa.array(keep)) if not keep.all() else alt_flat
    out = [c if take is None else c.take(take) for c in (chrom, pos, ref, qual, filt, gt, ints["DP"], ints["GQ"])]
    gt_null = gt_codes < 0
    no_call = gt_null | (called == 0)
    cols = {
        "chrom": out[0],
        "sample": pa.repeat(pa.scalar(sample, pa.string()), len(rec)),
        "pos": out[1],
        "ref": out[2],
        "alt": out_alt,
        "alt_index": pa.array(alt_index[keep].astype(np.int8)),
        "qual": out[3],
        "filter": out[4],
        "genotype": out[5],
        "alt_copies": pa.array(copies[keep], mask=no_call[rec]),
        "called_alleles": pa.array(called[rec], mask=gt_null[rec]),
        "phased": pa.array(phased[rec], mask=gt_null[rec]),
        "depth": out[6],
        "gq": out[7],
        "allele_depths": ad[0].take(ad[1] if take is None else ad[1].take(take)),
    }
    return pa.RecordBatch.from_arrays(list(cols.values()), schema=CALLS)


def _alleles(alt: pa.Array) -> tuple[pa.Array, np.ndarray, np.ndarray, np.ndarray]:
    """Cut ALT at commas: (the alleles, record of each, its 1-based index, ALT alleles per record)."""
    offsets, data = string_buffers(alt)
    commas = np.flatnonzero(data == ord(","))
    n = len(alt)
    if len(commas) == 0:
        return alt, np.arange(n), np.ones(n, np.int64), np.ones(n, np.int64)
    before = np.searchsorted(commas, offsets)                 # commas before each record's start
    n_alts = np.diff(before) + 1
    # the bytes without the commas; an allele ends at a record end or where a comma was
    bounds = np.sort(np.concatenate([offsets - before, commas - np.arange(len(commas))]))
    kept = np.ones(len(data), bool)
    kept[commas] = False
    flat = pa.StringArray.from_buffers(len(bounds) - 1, pa.py_buffer(bounds.astype(np.int32)),
                                       pa.py_buffer(data[kept]))
    rec = np.repeat(np.arange(n), n_alts)
    first = np.cumsum(n_alts) - n_alts
    return flat, rec, np.arange(len(rec)) - first[rec] + 1, n_alts


def _sample_fields(fmt: pa.Array, smp: pa.Array, check: _Checker) -> dict[str, pa.Array]:
    """The GT, DP, GQ and AD strings of each record (null where FORMAT lacks the key or the sample
    column stops before it), cut from the sample column at colons."""
    n = len(smp)
    fmt_off, fmt_bytes = string_buffers(fmt)
    width = fmt_off[1] - fmt_off[0]
    if (np.diff(fmt_off) == width).all() and (fmt_bytes.reshape(n, width) == fmt_bytes[:width]).all():
        key_sets, codes = [fmt[0].as_py().split(":")], np.zeros(n, np.int64)      # one FORMAT (usual)
    else:
        encoded = pc.dictionary_encode(fmt)
        key_sets, codes = [f.split(":") for f in encoded.dictionary.to_pylist()], np.asarray(encoded.indices)
    offsets, data = string_buffers(smp)
    colons = np.flatnonzero(data == ord(":"))
    n_keys = np.array([len(k) for k in key_sets])[codes]
    k = len(key_sets[0]) - 1
    if len(key_sets) == 1 and len(colons) == n * k and (k == 0 or (
            (colons[::k] >= offsets[:-1]).all() and (colons[k - 1::k] < offsets[1:]).all())):
        ends = np.empty((n, k + 2), np.int64)                  # every record has all FORMAT fields (usual)
        ends[:, 0], ends[:, 1:-1], ends[:, -1] = offsets[:-1] - 1, colons.reshape(n, k), offsets[1:]
        return {key: _strings(data, ends[:, key_sets[0].index(key)] + 1, ends[:, key_sets[0].index(key) + 1],
                              np.ones(n, bool)) if key in key_sets[0] else pa.nulls(n, pa.string())
                for key in KEYS}
    first = np.searchsorted(colons, offsets)                   # index of each record's first colon
    n_colons = np.diff(first)
    check.require(n_colons < n_keys, "sample column", smp, "has more fields than FORMAT")
    ends = np.concatenate([[-1], colons, [len(data)]])         # field k of record i: after ends[first[i] + k]
    values = {}
    for key in KEYS:
        at = np.array([k.index(key) if key in k else -1 for k in key_sets])[codes]
        present = (at >= 0) & (at <= n_colons)
        at = np.where(present, at, 0)
        start = np.where(at == 0, offsets[:-1], ends[first[:-1] + at] + 1)
        end = np.where(at == n_colons, offsets[1:], ends[first[:-1] + at + 1])
        values[key] = _strings(data, start, end, present)
    return values


def _genotypes(gt: pa.Array, n_alts: np.ndarray, alt_rec: np.ndarray, alt_index: np.ndarray,
               check: _Checker) -> tuple[np.ndarray, ...]:
    """Parse GT once per distinct string (a block holds a handful: 0/1, 1/1, ./., 1|2, ...).

    Counts are int32 whatever the ploidy (a GT of 257 alleles is 257 called alleles, not 1); an allele
    index is checked against the record's ALT alleles (at most 127) before any array is sized by it.

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
    highest = np.array([min(max(a, default=0), 1 << 30) for a in alleles] + [0], np.int64)
    check.require(highest[codes] <= n_alts, "GT", gt, "names an allele beyond the record's ALT alleles")
    width = int(highest.max()) + 1                                       # <= 128: ALT has at most 127 alleles
    counts = np.zeros((len(distinct) + 1, width), np.int32)              # copies of each allele
    for u, a in enumerate(alleles):
        np.add.at(counts[u], a, 1)
    called = counts.sum(axis=1, dtype=np.int32)[codes]
    phased = np.array(["|" in g for g in distinct] + [False])[codes]
    row_codes = codes[alt_rec]
    copies = counts[row_codes, np.minimum(alt_index, width - 1)] * (alt_index < width)
    return codes, called, phased, copies.astype(np.int32)


def _allele_depths(ad: pa.Array, check: _Checker) -> tuple[pa.Array, pa.Array]:
    """FORMAT/AD strings as (distinct lists, index of each record's list): list<int32>, null when absent
    or '.', '.' entries null.

    Each distinct AD string is parsed once (depths are small numbers, so a block holds far fewer
    distinct strings than records); the caller gathers the rows it keeps with one take.
    """
    encoded = pc.dictionary_encode(ad)
    distinct = encoded.dictionary
    missing = pc.equal(distinct, ".")
    parts = pc.split_pattern(pc.if_else(missing, _NULL_STR, distinct), ",")
    numbers = check.cast(pc.list_flatten(parts), pa.int32(), "AD", AD_TEXT, "is not a list of integers or '.'",
                         shown=ad)
    lists = pa.ListArray.from_arrays(parts.offsets, numbers, type=CALLS.field("allele_depths").type,
                                     mask=missing)
    return lists, encoded.indices


def _split(batch: pa.RecordBatch | None, batch_rows: int) -> Iterator[tuple[str, pa.RecordBatch]]:
    """Cut a parsed block at chromosome changes and every ``batch_rows`` rows."""
    if batch is None or batch.num_rows == 0:
        return
    chrom = batch.column(0)
    change = np.flatnonzero(np.asarray(pc.not_equal(chrom[1:], chrom[:-1]))) + 1
    bounds = [0, *change.tolist(), batch.num_rows]
    for start, end in itertools.pairwise(bounds):
        name = chrom[start].as_py()
        for s in range(start, end, batch_rows):
            yield name, batch.slice(s, min(batch_rows, end - s))
