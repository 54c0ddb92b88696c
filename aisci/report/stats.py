"""Readers of the QC files a run writes: `samtools stats` and `bcftools stats` (the sections the report draws)."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

from aisci.errors import InputError
from aisci.fileio import check_readable


@dataclass(frozen=True)
class AlignmentStats:
    """One sample's `samtools stats`: summary numbers (SN), insert sizes (IS) and coverage (COV)."""

    summary: dict[str, float]
    insert_sizes: list[tuple[int, int]]  # (insert size, pairs)
    coverage: list[tuple[int, int]]  # (depth, bases at that depth); the last bin holds deeper bases too

    @property
    def read_pairs(self) -> int:
        return int(self.summary.get("raw total sequences", 0)) // 2

    def rate(self, key: str) -> float | None:
        """``key`` (e.g. "reads mapped") as a fraction of all reads; None without reads."""
        total = self.summary.get("raw total sequences", 0)
        return self.summary.get(key, 0) / total if total else None

    @property
    def mean_depth(self) -> float | None:
        """Mean depth over the bases with coverage >= 1 (samtools' COV counts no zero-depth bases)."""
        bases = sum(n for _, n in self.coverage)
        return sum(d * n for d, n in self.coverage) / bases if bases else None


@dataclass(frozen=True)
class CallStats:
    """One callset's `bcftools stats`: counts (SN), ts/tv, indel lengths (IDD), QUAL and depth (DP) histograms."""

    summary: dict[str, int]
    tstv: float | None
    indel_lengths: list[tuple[int, int]]  # (length, sites); deletions negative
    qual: list[tuple[float, int]]  # (QUAL, sites: SNPs + indels)
    depth: list[tuple[int, int]]  # (DP bin, sites)


def _rows(path: Path, tag: str) -> Iterator[tuple[int, list[str]]]:
    """(line number, fields after the tag) of every line of ``path`` starting with ``tag``."""
    with path.open(encoding="utf-8", errors="replace") as fh:
        for no, line in enumerate(fh, 1):
            if line.startswith(tag + "\t"):
                yield no, line.rstrip("\n").split("\t")[1:]


def _number(text: str, path: Path, no: int) -> float:
    try:
        return float(text)
    except ValueError:
        raise InputError(f"{path} line {no}: {text!r} is not a number") from None


def _summary(path: Path, key_at: int) -> dict[str, float]:
    """The SN lines: key (its trailing ':' and a leading 'number of ' dropped) -> value (the next column)."""
    out = {}
    for no, cols in _rows(path, "SN"):
        if len(cols) > key_at + 1:
            out[cols[key_at].rstrip(":").removeprefix("number of ")] = _number(cols[key_at + 1], path, no)
    return out


def read_samtools_stats(path: Path) -> AlignmentStats:
    """Parse a `samtools stats` file.

    Raises:
        InputError: naming the file (and line) when it is missing, unreadable or not samtools stats output.
    """
    check_readable(path, "samtools stats")
    summary = _summary(path, 0)
    if "raw total sequences" not in summary:
        raise InputError(f"{path}: not `samtools stats` output (no 'SN raw total sequences:' line)")
    inserts = [(int(_number(c[0], path, no)), int(_number(c[1], path, no))) for no, c in _rows(path, "IS") if len(c) >= 2]
    coverage = []
    for no, cols in _rows(path, "COV"):
        if len(cols) >= 3:  # "[1-1]" 1 count; the last bin "[1000<]" 1000 count
            coverage.append((int(_number(cols[1], path, no)), int(_number(cols[2], path, no))))
    return AlignmentStats(summary, inserts, coverage)


def read_bcftools_stats(path: Path) -> CallStats:
    """Parse a `bcftools stats` file (of one VCF: id 0).

    Raises:
        InputError: naming the file (and line) when it is missing, unreadable or not bcftools stats output.
    """
    check_readable(path, "bcftools stats")
    summary = {key: int(value) for key, value in _summary(path, 1).items()}  # column 0: the file's id
    if "records" not in summary:
        raise InputError(f"{path}: not `bcftools stats` output (no 'SN 0 number of records:' line)")
    tstv = None
    for no, cols in _rows(path, "TSTV"):
        if len(cols) >= 4:
            tstv = _number(cols[3], path, no)
    indels = [(int(_number(c[1], path, no)), int(_number(c[2], path, no))) for no, c in _rows(path, "IDD") if len(c) >= 3]
    qual = [(_number(c[1], path, no), int(_number(c[2], path, no)) + int(_number(c[5], path, no)))
            for no, c in _rows(path, "QUAL") if len(c) >= 6]
    depth = []
    for no, cols in _rows(path, "DP"):
        if len(cols) >= 5 and cols[1].lstrip("<>").isdigit():  # ">500": everything deeper
            depth.append((int(cols[1].lstrip("<>")), int(_number(cols[4], path, no))))
    return CallStats(summary, tstv, indels, qual, depth)
