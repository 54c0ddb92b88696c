"""Gene annotation files (GFF3, GTF, tables): line reading, feature rows, attributes, chromosome names, one overlap index.

Part of the base: the SpliceAI gene lookup (`aisci.splice.annotation`) and the protein stage's
transcript models (`aisci.protein.transcripts`) read their files and index their genes or
transcripts through this module, so both parse a GFF the same way and name the same line when
one is malformed.
"""

from __future__ import annotations

import gzip
import re
from collections.abc import Callable, Iterable, Iterator
from pathlib import Path
from typing import Generic, TypeVar
from urllib.parse import unquote

from aisci.errors import InputError

T = TypeVar("T")

BIN_SHIFT = 16  # 64 kb bins: a point query reads one bin, a gene-sized span two or three
# One GTF attribute: `key "value";` (quoted) or `key value;` (a bare number, as some GTFs write level 2).
GTF_ATTRIBUTE = re.compile(r'\s*([^\s;]+)\s+(?:"([^"]*)"|([^;]*?))\s*(?:;|$)')


def lines(path: Path) -> Iterator[tuple[int, str]]:
    """(1-based line number, line without newline) of a plain or gzipped annotation file.

    Raises:
        InputError: the file cannot be read or is not text.
    """
    try:
        with open(path, "rb") as fh:
            gz = fh.read(2) == b"\x1f\x8b"
        with gzip.open(path, "rt") if gz else open(path) as fh:
            for n, line in enumerate(fh, 1):
                yield n, line.rstrip("\r\n")
    except OSError as exc:
        raise InputError(f"{path}: cannot read annotation ({exc.strerror or exc})") from None
    except UnicodeDecodeError:
        raise InputError(f"{path}: not a text annotation file") from None


def integer(path: Path, n: int, what: str, value: str) -> int:
    """A whole number from line ``n`` of ``path``; the message names the file, line and field."""
    try:
        return int(value)
    except ValueError:
        raise InputError(f"{path} line {n}: {what} '{value}' is not an integer") from None


def feature_rows(path: Path) -> Iterator[tuple[int, list[str], int, int]]:
    """(line, columns, start, end) of each feature of a GFF3/GTF file; comments skipped, stops at ##FASTA.

    Raises:
        InputError: a line without 9 tab-separated columns, or with bad coordinates.
    """
    for n, line in lines(path):
        if line.startswith("##FASTA"):
            return
        if not line.strip() or line.startswith("#"):
            continue
        f = line.split("\t")
        if len(f) != 9:
            raise InputError(f"{path} line {n}: {len(f)} tab-separated columns, GFF3/GTF needs 9")
        start, end = integer(path, n, "start (column 4)", f[3]), integer(path, n, "end (column 5)", f[4])
        if start > end:
            raise InputError(f"{path} line {n}: start {start} > end {end}")
        yield n, f, start, end


def gff3_attributes(column: str) -> dict[str, str]:
    """GFF3 column 9 (``key=value;...``, percent-encoded) as a mapping."""
    pairs = (item.strip().partition("=") for item in column.strip().split(";"))
    return {k: unquote(v) for k, eq, v in pairs if eq}


def gtf_attributes(column: str) -> dict[str, list[str]]:
    """GTF column 9 as a mapping to every value of each key (``tag`` repeats)."""
    attrs: dict[str, list[str]] = {}
    for m in GTF_ATTRIBUTE.finditer(column):
        attrs.setdefault(m.group(1), []).append(m.group(2) if m.group(2) is not None else m.group(3))
    return attrs


def normalise_chrom(source: str, target: str) -> str:
    """The official SpliceAI normalise_chrom: add or drop a 'chr' prefix so ``source`` follows ``target``'s naming.

    The official drops the prefix with `source.strip('chr')`, which also eats c/h/r characters at
    either end ('chrUn_r' -> 'Un_'); we remove only a leading 'chr', which agrees on every ordinary
    chromosome name.
    """
    if source.startswith("chr") and not target.startswith("chr"):
        return source[3:]
    if not source.startswith("chr") and target.startswith("chr"):
        return "chr" + source
    return source


class BinnedIndex(Generic[T]):
    """Items with a span on a chromosome, in 64 kb bins per chromosome, for overlap queries.

    Args:
        items: the genes or transcripts, in file order (queries return them in this order).
        span: an item's (chrom, start, end), 1-based closed.
    """

    def __init__(self, items: Iterable[T], span: Callable[[T], tuple[str, int, int]]) -> None:
        self._span = span
        self._bins: dict[str, dict[int, list[T]]] = {}
        for item in items:
            chrom, start, end = span(item)
            bins = self._bins.setdefault(chrom, {})
            for b in range(start >> BIN_SHIFT, (end >> BIN_SHIFT) + 1):
                bins.setdefault(b, []).append(item)

    def __contains__(self, chrom: object) -> bool:
        return chrom in self._bins

    def resolve(self, chrom: str) -> str | None:
        """The indexed spelling of ``chrom``: itself, else with a 'chr' prefix added or dropped, else None."""
        if chrom in self._bins:
            return chrom
        other = normalise_chrom(chrom, "x" if chrom.startswith("chr") else "chrx")
        return other if other in self._bins else None

    def overlapping(self, chrom: str, start: int, end: int) -> list[T]:
        """Items on ``chrom`` (as indexed) whose span overlaps [start, end], each once (file order within a bin)."""
        bins = self._bins.get(chrom)
        if not bins:
            return []
        first, last = start >> BIN_SHIFT, end >> BIN_SHIFT
        if first == last:  # a point or a short span: one bin, no duplicates possible (SpliceAI's per-variant lookup)
            found = []
            for x in bins.get(first, ()):
                _, s, e = self._span(x)
                if s <= end and e >= start:
                    found.append(x)
            return found
        seen: dict[int, T] = {}
        for b in range(first, last + 1):
            for x in bins.get(b, ()):
                _, s, e = self._span(x)
                if s <= end and e >= start:
                    seen.setdefault(id(x), x)
        return list(seen.values())
