"""Read-level input checks: a FASTQ pair is read end to end before alignment, and its statistics written."""

from __future__ import annotations

import argparse
import gzip
import io
import json
import zlib
from dataclasses import asdict, dataclass
from itertools import zip_longest
from pathlib import Path
from typing import BinaryIO, Iterator

from aisci.errors import InputError
from aisci.fileio import GZIP_MAGIC, atomic_output

_BUFFER = 1 << 20


@dataclass
class ReadStats:
    """What `aisci check-reads` reports for a FASTQ pair."""

    sample: str
    pairs: int
    bases: int
    min_length: int
    max_length: int
    mean_length: float


def _open(path: Path) -> BinaryIO:
    with open(path, "rb") as fh:
        magic = fh.read(2)
    raw = open(path, "rb", buffering=_BUFFER)
    if magic == GZIP_MAGIC:
        return io.BufferedReader(gzip.GzipFile(fileobj=raw), buffer_size=_BUFFER)  # type: ignore[arg-type]
    return raw


def _records(path: Path) -> Iterator[tuple[int, bytes, int]]:
    """Yield (record number, read name, read length), checking the FASTQ grammar as it goes."""
    with _open(path) as fh:
        n = 0
        try:
            while True:
                header = fh.readline()
                if not header:
                    return
                n += 1
                seq, plus, qual = fh.readline(), fh.readline(), fh.readline()
                if not header.startswith(b"@"):
                    raise InputError(f"{path} record {n} (line {4 * n - 3}): header does not start with '@'")
                if not qual:
                    raise InputError(f"{path} record {n} (line {4 * n - 3}): file ends inside the record (truncated?)")
                if not plus.startswith(b"+"):
                    raise InputError(f"{path} record {n} (line {4 * n - 1}): third line must start with '+'")
                seq, qual = seq.rstrip(b"\r\n"), qual.rstrip(b"\r\n")
                if len(seq) != len(qual):
                    raise InputError(
                        f"{path} record {n} (line {4 * n}): quality length {len(qual)} "
                        f"differs from sequence length {len(seq)}"
                    )
                if not seq:
                    raise InputError(f"{path} record {n} (line {4 * n - 2}): empty sequence")
                name = header[1:].split(None, 1)[0]
                yield n, name, len(seq)
        except (EOFError, zlib.error, gzip.BadGzipFile) as exc:
            raise InputError(f"{path} after record {n}: corrupt or truncated gzip ({exc})") from exc


def _mate_name(name: bytes) -> bytes:
    """Strip a trailing /1 or /2 so that mates compare equal."""
    return name[:-2] if name[-2:] in (b"/1", b"/2") else name


def check_pair(sample: str, fq1: Path, fq2: Path) -> ReadStats:
    """Read a FASTQ pair end to end and check that it can be aligned as pairs.

    Args:
        sample: sample name (for the report).
        fq1: read-1 FASTQ, plain or gzip.
        fq2: read-2 FASTQ, plain or gzip.

    Returns:
        Read statistics of the pair.

    Raises:
        InputError: a truncated or corrupt gzip, a malformed record (quality length differs
            from sequence length, missing '@'/'+'), mate names that disagree, different read
            counts or no reads at all — naming the file and the record.
    """
    pairs = bases = 0
    min_len, max_len = 1 << 30, 0
    for r1, r2 in zip_longest(_records(fq1), _records(fq2)):
        if r1 is None or r2 is None:
            short, long_, rec = (fq1, fq2, r2) if r1 is None else (fq2, fq1, r1)
            raise InputError(
                f"paired files have different read counts: {short} ends after {pairs} reads, "
                f"{long_} has more (record {rec[0]})"
            )
        n, name1, len1 = r1
        _, name2, len2 = r2
        if _mate_name(name1) != _mate_name(name2):
            raise InputError(
                f"{fq1} and {fq2} record {n}: mate names differ "
                f"({name1.decode(errors='replace')} vs {name2.decode(errors='replace')}); are the files paired and in the same order?"
            )
        pairs += 1
        bases += len1 + len2
        min_len = min(min_len, len1, len2)
        max_len = max(max_len, len1, len2)
    if pairs == 0:
        raise InputError(f"{fq1}: no reads")
    return ReadStats(sample, pairs, bases, min_len, max_len, round(bases / (2 * pairs), 2))


def configure_parser(parser: argparse.ArgumentParser) -> None:
    """Options of `aisci check-reads`."""
    parser.add_argument("--sample", required=True, help="sample name")
    parser.add_argument("--fq1", required=True, type=Path, help="read 1 FASTQ (plain or gzip)")
    parser.add_argument("--fq2", required=True, type=Path, help="read 2 FASTQ (plain or gzip)")
    parser.add_argument("--out", required=True, type=Path, help="JSON report (written only if the check passes)")


def run(args: argparse.Namespace) -> int:
    """Check a FASTQ pair and write its statistics as JSON."""
    for p in (args.fq1, args.fq2):
        if not p.is_file():
            raise InputError(f"{p}: file not found")
    stats = check_pair(args.sample, args.fq1, args.fq2)
    with atomic_output(args.out) as tmp:
        tmp.write_text(json.dumps(asdict(stats), indent=2) + "\n")
    print(f"{args.sample}: {stats.pairs} pairs, {stats.bases} bases, lengths {stats.min_length}-{stats.max_length}")
    return 0
