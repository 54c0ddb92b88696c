"""One cheap streaming pass over an input VCF that turns what htslib would fail on, or read wrongly, into an InputError.

htslib (through pysam) reports a malformed record as ``OSError: truncated file`` with the reason on
stderr only, reads an empty POS as 0 and a record with too many sample columns without a word, and
refuses plain gzip with ``NotImplementedError``. The stages that read VCFs call `check_vcf` before
they score or write anything (`aisci splice score`, `aisci annotate` and `aisci context` also before
any model, device or annotation loads; `aisci plm score` before it scores), so a bad input fails in
seconds with one line naming the file, the line and the field.

What is checked (text VCF, plain or bgzip): the compression (bgzip, not plain gzip; the BGZF
end-of-file block present), UTF-8 text, the ``##fileformat=VCF`` first line, the ``#CHROM`` line (the
fixed columns, unique sample names), and per record the column count, CHROM, POS (a whole number
>= 1), REF (letters), ALT (not empty), the FORMAT keys (no duplicates) and each sample's values (no
more than FORMAT has keys; GT a genotype; Integer and Float fields, as declared in the header,
numbers), and, when asked, the sort order that tabix needs. A BCF is read through pysam for POS
and order. Only what htslib parses is checked: INFO values and QUAL, which htslib reads leniently,
are not.

Part of the base: `aisci splice score`, `annotate`, `context` and `plm score` all read VCFs through it.
"""

from __future__ import annotations

import gzip
import os
import re
import zlib
from collections.abc import Iterator
from dataclasses import dataclass
from typing import IO, Any

from aisci.errors import InputError

GZIP_MAGIC = b"\x1f\x8b"
# The empty block bgzip writes last (SAM/BAM spec 4.1.2); htslib refuses a bgzip file without it.
BGZF_EOF = bytes.fromhex("1f8b08040000000000ff0600424302001b0003000000000000000000")
FIXED = ("#CHROM", "POS", "ID", "REF", "ALT", "QUAL", "FILTER", "INFO")
SORT_HINT = "sort it with `bcftools sort -Oz -o sorted.vcf.gz {name}`"

# Sample values as htslib accepts them (vcf.c: vcf_parse_format_fill5): GT alleles are numbers or '.',
# joined by / or |; Integer and Float values (comma-separated, empty or '.' = missing) what strtol and
# strtod read, hex and inf/nan included. Other types are strings without ':' or tab.
GT_TEXT = r"(?:\.|[0-9]+)(?:[/|](?:\.|[0-9]+))*"
_INT = r"(?:[-+]?[0-9]+|\.)?"
_FLOAT = (r"(?:[-+]?(?:[0-9]+(?:\.[0-9]*)?|\.[0-9]+)(?:[eE][-+]?[0-9]+)?|[-+]?0[xX][0-9a-fA-F.]+(?:[pP][-+]?[0-9]+)?"
          r"|[-+]?(?i:nan|inf(?:inity)?)|\.)?")
VALUE_TEXT = {"GT": GT_TEXT, "Integer": f"{_INT}(?:,{_INT})*", "Float": f"{_FLOAT}(?:,{_FLOAT})*"}
WHAT = {"GT": "a genotype such as 0/1, 1|2 or ./.", "Integer": "a list of integers ('.' = missing)",
        "Float": "a list of numbers ('.' = missing)"}
_POS = re.compile(r"[0-9]+")
_REF = re.compile(r"[A-Za-z]+")
_FORMAT_LINE = re.compile(r"##FORMAT=<ID=([^,>]+)(?:,[^>]*?)?,Type=(\w+)")


@dataclass(frozen=True)
class VcfSummary:
    """What the pre-scan learnt about a VCF that passed it."""

    path: str
    kind: str  # "vcf", "vcf.gz" (bgzip) or "bcf"
    records: int
    contigs: tuple[str, ...]  # in the order of the records
    samples: tuple[str, ...]


def check_vcf(path: str | os.PathLike[str], *, require_sorted: bool = False) -> VcfSummary:
    """Read a VCF (plain, bgzip or BCF) once and stop at the first thing htslib cannot read as meant.

    Args:
        path: the input VCF.
        require_sorted: also check that the records are sorted as tabix needs (the positions of a
            contig never go backwards, a contig's records are contiguous).

    Returns:
        The number of records, the contigs and the samples.

    Raises:
        InputError: naming the file and, for a record, its 1-based line (record number for BCF) and
            the field: missing or unreadable file, plain gzip, truncated or corrupt bgzip, non-UTF-8
            text, not a VCF, malformed #CHROM line, wrong column count, bad CHROM/POS/REF/ALT/FORMAT
            or sample value, POS < 1, unsorted records (when ``require_sorted``).
    """
    name = os.fspath(path)
    try:
        with open(name, "rb") as fh:
            head = fh.read(18)
            compressed = head[:2] == GZIP_MAGIC
            if compressed:
                if not (len(head) >= 18 and head[3] & 4 and head[12:14] == b"BC"):
                    raise InputError(f"{name}: is gzip, not bgzip (htslib reads only the blocked gzip of bgzip): "
                                     f"recompress it with `zcat {name} | bgzip > fixed.vcf.gz`")
                fh.seek(max(os.fstat(fh.fileno()).st_size - len(BGZF_EOF), 0))
                if fh.read() != BGZF_EOF:
                    raise InputError(f"{name}: truncated bgzip file (no end-of-file block): copy or bgzip it again")
    except IsADirectoryError:
        raise InputError(f"{name}: is a folder, not a VCF") from None
    except FileNotFoundError:
        raise InputError(f"{name}: no such file") from None
    except OSError as exc:
        raise InputError(f"{name}: cannot read ({exc.strerror or exc})") from None
    stream: IO[bytes] = gzip.open(name, "rb") if compressed else open(name, "rb")
    with stream:
        try:
            first = stream.peek(8)[:8]  # type: ignore[attr-defined]  # both are buffered readers
        except (OSError, EOFError, zlib.error) as exc:
            raise InputError(f"{name}: corrupt bgzip data ({exc})") from None
        if first.startswith(b"BCF"):
            return _check_bcf(name, require_sorted)
        scan = _TextScan(name, "vcf.gz" if compressed else "vcf", require_sorted)
        line = 0
        try:
            for line, raw in enumerate(stream, 1):
                scan.line(line, raw)
        except (OSError, EOFError, zlib.error) as exc:
            raise InputError(f"{name}: truncated or corrupt bgzip data after line {line} ({exc})") from None
    if line == 0:
        raise InputError(f"{name}: is empty; not a VCF")
    return scan.finish()


def open_vcf(path: str | os.PathLike[str]) -> Any:
    """``pysam.VariantFile(path)``, its open errors as an InputError naming the file."""
    import pysam

    try:
        return pysam.VariantFile(os.fspath(path))
    except (OSError, ValueError) as exc:
        raise InputError(f"{os.fspath(path)}: cannot read as VCF ({exc})") from None


def iter_records(handle: Any, path: str | os.PathLike[str]) -> Iterator[Any]:
    """The records of an open ``pysam.VariantFile``; a parse error becomes an InputError naming the record.

    The backstop behind `check_vcf`: htslib reports a bad record as ``OSError: truncated file``.
    """
    number = 0
    while True:
        try:
            record = next(handle)
        except StopIteration:
            return
        except (OSError, ValueError) as exc:
            raise InputError(f"{os.fspath(path)}: cannot read record {number + 1} ({exc})") from None
        number += 1
        yield record


class _Order:
    """The sort-order check: positions of a contig never go backwards, a contig never comes back."""

    def __init__(self, name: str) -> None:
        self.name, self.contig, self.pos = name, "", 0
        self.contigs: dict[str, None] = {}

    def see(self, where: str, chrom: str, pos: int, require_sorted: bool) -> None:
        if chrom != self.contig:
            if chrom in self.contigs and require_sorted:
                raise InputError(f"{where}: contig {chrom} comes back after {self.contig}: the records of a contig "
                                 f"must be together; {SORT_HINT.format(name=self.name)}")
            self.contigs[chrom] = None
            self.contig = chrom
        elif pos < self.pos and require_sorted:
            raise InputError(f"{where}: {chrom}:{pos} comes after {chrom}:{self.pos}: the VCF is not sorted by "
                             f"position; {SORT_HINT.format(name=self.name)}")
        self.pos = pos


class _TextScan:
    """The line-by-line checks of a text VCF."""

    def __init__(self, name: str, kind: str, require_sorted: bool) -> None:
        self.name, self.kind, self.require_sorted = name, kind, require_sorted
        self.columns: list[str] = []
        self.types: dict[str, str] = {}
        self.formats: dict[str, tuple[list[str], re.Pattern[str]]] = {}
        self.order = _Order(name)
        self.records = 0

    def line(self, n: int, raw: bytes) -> None:
        where = f"{self.name} line {n}"
        if n == 1 and not raw.startswith(b"##fileformat=VCF"):
            raise InputError(f"{where}: not a VCF (the first line must be ##fileformat=VCFv4.x)")
        try:
            text = raw.decode("utf-8").rstrip("\r\n")
        except UnicodeDecodeError as exc:
            raise InputError(f"{where}: not UTF-8 text (byte {exc.start + 1} of the line is 0x{raw[exc.start]:02x}); "
                             "VCF is UTF-8") from None
        if not self.columns:
            self._header(where, text)
        else:
            self._record(where, text)

    def _header(self, where: str, text: str) -> None:
        if text.startswith("##"):
            if text.startswith("##FORMAT=") and (m := _FORMAT_LINE.match(text)):
                self.types[m.group(1)] = m.group(2)
            return
        if not text.startswith("#CHROM"):
            what = "an empty line" if not text else "a record" if not text.startswith("#") else "a '#' line"
            raise InputError(f"{where}: {what} before the #CHROM header line (header lines start with '##')")
        columns = text.split("\t")
        if tuple(columns[:8]) != FIXED or (len(columns) > 8 and columns[8] != "FORMAT"):
            raise InputError(f"{where}: the #CHROM line must name the columns {' '.join(FIXED)} [FORMAT samples...] "
                             "separated by tabs")
        samples = columns[9:]
        if len(set(samples)) != len(samples):
            twice = sorted({s for s in samples if samples.count(s) > 1})
            raise InputError(f"{where}: sample name(s) {', '.join(twice)} appear more than once")
        self.columns = columns

    def _record(self, where: str, text: str) -> None:
        if not text:
            raise InputError(f"{where}: empty line (remove it)")
        if text.startswith("#"):
            raise InputError(f"{where}: a header line after the #CHROM line")
        ncols = text.count("\t") + 1
        if ncols != len(self.columns):
            missing = f" (no {', '.join(self.columns[ncols:])})" if ncols < len(self.columns) else ""
            raise InputError(f"{where}: {ncols} tab-separated columns, the #CHROM line has {len(self.columns)}{missing}")
        f = text.split("\t", 9)  # f[9]: all the sample columns, checked by one regular expression
        chrom, pos, ref, alt = f[0], f[1], f[3], f[4]
        if not chrom:
            raise InputError(f"{where}: CHROM is empty")
        if not _POS.fullmatch(pos) or int(pos) < 1:
            raise InputError(f"{where}: POS '{pos}' is not a position (a whole number >= 1)")
        if not _REF.fullmatch(ref):
            raise InputError(f"{where}: REF '{ref}' is not a sequence of bases")
        if not alt:
            raise InputError(f"{where}: ALT is empty ('.' means no ALT allele)")
        if len(f) > 9:
            keys, pattern = self._format(where, f[8])
            samples = f[9]  # an empty sample column is an error to htslib; the pattern allows empty values
            empty = not samples or "\t\t" in samples or samples[0] == "\t" or samples[-1] == "\t"
            if empty or not pattern.fullmatch(samples):
                self._bad_sample(where, f[8], keys, f[9].split("\t"))
        self.order.see(where, chrom, int(pos), self.require_sorted)
        self.records += 1

    def _format(self, where: str, fmt: str) -> tuple[list[str], re.Pattern[str]]:
        known = self.formats.get(fmt)
        if known is None:
            keys = fmt.split(":")
            twice = sorted({k for k in keys if keys.count(k) > 1})
            if twice:
                raise InputError(f"{where}: FORMAT '{fmt}' names {', '.join(twice)} more than once")
            sample = ""
            for key in reversed(keys):  # trailing fields of a sample may be left out
                value = self._value_text(key)
                sample = f"{value}(?::{sample})?" if sample else value
            # each sample an atomic group that must end at a tab or the line's end: a bad value in the last of
            # many samples then fails in linear time (without it the engine retried every way of matching the
            # samples before it: 25 samples took 15 s, 40 would take days)
            one = f"(?>{sample}(?=\t|$))"
            known = self.formats[fmt] = (keys, re.compile(f"{one}(?:\t{one})*"))
        return known

    def _value_text(self, key: str) -> str:
        return VALUE_TEXT.get("GT" if key == "GT" else self.types.get(key, ""), r"[^\t:]*")

    def _bad_sample(self, where: str, fmt: str, keys: list[str], values: list[str]) -> None:
        """Name the first sample value that failed the FORMAT's pattern."""
        for name, value in zip(self.columns[9:], values):
            if not value:
                raise InputError(f"{where}: sample {name} is empty ('.' means missing)")
            parts = value.split(":")
            if len(parts) > len(keys):
                raise InputError(f"{where}: sample {name} '{value}' has {len(parts)} ':'-separated values, "
                                 f"FORMAT '{fmt}' has {len(keys)} keys")
            for key, part in zip(keys, parts):
                if not re.fullmatch(self._value_text(key), part):
                    kind = "GT" if key == "GT" else self.types.get(key, "")
                    raise InputError(f"{where}: sample {name} {key} '{part}' is not {WHAT[kind]}")
        raise InputError(f"{where}: a sample column cannot be read")  # not reached: one value failed above

    def finish(self) -> VcfSummary:
        if not self.columns:
            raise InputError(f"{self.name}: no #CHROM header line; not a VCF")
        return VcfSummary(self.name, self.kind, self.records, tuple(self.order.contigs), tuple(self.columns[9:]))


def _check_bcf(name: str, require_sorted: bool) -> VcfSummary:
    """POS and order of a BCF, read through pysam (its records are binary: htslib parsed them when writing)."""
    order = _Order(name)
    n = 0
    with open_vcf(name) as handle:
        samples = tuple(handle.header.samples)
        for n, rec in enumerate(iter_records(handle, name), 1):
            where = f"{name} record {n}"
            if rec.pos < 1:
                raise InputError(f"{where}: {rec.chrom}:{rec.pos}: POS must be >= 1")
            order.see(where, rec.chrom, rec.pos, require_sorted)
    return VcfSummary(name, "bcf", n, tuple(order.contigs), samples)
