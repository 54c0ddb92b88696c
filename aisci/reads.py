"""Read-level input checks: each FASTQ pair (one per lane) is read end to end before alignment, and its statistics written."""

from __future__ import annotations

import argparse
import gzip
import io
import json
import zlib
from dataclasses import asdict, dataclass
from itertools import zip_longest
from pathlib import Path
from typing import BinaryIO, Iterator, Sequence

from aisci.errors import InputError
from aisci.fileio import GZIP_MAGIC, atomic_output
from aisci.names import check_name

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


@dataclass(frozen=True)
class Lane:
    """One FASTQ pair of a sample that came from one sequencing lane (one sample-sheet row)."""

    id: str
    fq1: Path
    fq2: Path


def check_lanes(lanes: Sequence[Lane]) -> list[Lane]:
    """Return ``lanes`` when there is at least one and their ids are valid names, each given once.

    Lane ids reach read-group IDs and temporary file names, so they follow aisci.names.

    Raises:
        InputError: no lanes, an id that is not a valid name, or an id given twice.
    """
    if not lanes:
        raise InputError("no lanes given")
    seen: set[str] = set()
    for lane in lanes:
        check_name(lane.id, "lane")
        if lane.id in seen:
            raise InputError(f"lane {lane.id!r} is given twice (each lane needs its own id)")
        seen.add(lane.id)
    return list(lanes)


def add_pair_options(parser: argparse.ArgumentParser) -> None:
    """The read options shared by `aisci check-reads` and `aisci align`: one pair, or one pair per lane."""
    one = parser.add_mutually_exclusive_group(required=True)
    one.add_argument("--fq1", type=Path, help="read 1 FASTQ (plain or gzip) of the sample's only pair; needs --fq2")
    one.add_argument(
        "--lane", nargs=3, action="append", metavar=("LANE", "FQ1", "FQ2"),
        help="one lane's id and FASTQ pair; repeat once per lane (not with --fq1/--fq2)",
    )
    parser.add_argument("--fq2", type=Path, help="read 2 FASTQ (plain or gzip), with --fq1")


def lanes_from_args(args: argparse.Namespace) -> list[Lane] | None:
    """The lanes given with --lane (checked), or None when the sample's only pair came as --fq1/--fq2.

    Raises:
        InputError: --fq1 without --fq2, --fq2 with --lane, or a bad or repeated lane id.
    """
    if args.lane is None:
        if args.fq2 is None:
            raise InputError("--fq1 needs --fq2")
        return None
    if args.fq2 is not None:
        raise InputError("--fq2 goes with --fq1; with --lane, give each lane's pair as --lane LANE FQ1 FQ2")
    return check_lanes([Lane(lane, Path(fq1), Path(fq2)) for lane, fq1, fq2 in args.lane])


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


def _require_files(*paths: Path) -> None:
    """Refuse a path that is not a file, naming it (before any tool or reader opens it)."""
    for p in paths:
        if not p.is_file():
            raise InputError(f"{p}: file not found")


def total(sample: str, parts: Sequence[ReadStats]) -> ReadStats:
    """The statistics of several pairs (a sample's lanes) taken together.

    Args:
        sample: sample name (for the report).
        parts: each pair's statistics, at least one.

    Returns:
        Summed pairs and bases, the shortest and longest read, and the mean length over all reads.
    """
    pairs = sum(s.pairs for s in parts)
    bases = sum(s.bases for s in parts)
    return ReadStats(sample, pairs, bases, min(s.min_length for s in parts), max(s.max_length for s in parts),
                     round(bases / (2 * pairs), 2))


def check_sample_lanes(sample: str, lanes: Sequence[Lane]) -> tuple[ReadStats, dict[str, ReadStats]]:
    """Check every lane's pair end to end, as `check_pair` does.

    Args:
        sample: sample name (for the report).
        lanes: the sample's lanes.

    Returns:
        The totals over all lanes, and each lane's own statistics by lane id, in the order given.

    Raises:
        InputError: a bad or repeated lane id, a missing file, or anything `check_pair` refuses;
            the message names the lane first.
    """
    per_lane: dict[str, ReadStats] = {}
    for lane in check_lanes(lanes):
        try:
            _require_files(lane.fq1, lane.fq2)
            per_lane[lane.id] = check_pair(sample, lane.fq1, lane.fq2)
        except InputError as exc:
            raise InputError(f"lane {lane.id}: {exc}") from None
    return total(sample, list(per_lane.values())), per_lane


def configure_parser(parser: argparse.ArgumentParser) -> None:
    """Options of `aisci check-reads`."""
    parser.add_argument("--sample", required=True, help="sample name")
    add_pair_options(parser)
    parser.add_argument("--out", required=True, type=Path, help="JSON report (written only if the check passes)")


def run(args: argparse.Namespace) -> int:
    """Check a sample's FASTQ pair, or each of its lanes' pairs, and write the statistics as JSON.

    The report's top-level keys are those of ReadStats (totals over the lanes); with --lane it
    adds ``lanes``: each lane's own statistics (ReadStats without ``sample``), in the order given.
    """
    lanes = lanes_from_args(args)
    if lanes is None:
        _require_files(args.fq1, args.fq2)
        stats = check_pair(args.sample, args.fq1, args.fq2)
        report: dict[str, object] = asdict(stats)
    else:
        stats, per_lane = check_sample_lanes(args.sample, lanes)
        report = asdict(stats)
        report["lanes"] = {lane: {k: v for k, v in asdict(s).items() if k != "sample"} for lane, s in per_lane.items()}
        for lane, s in per_lane.items():
            print(f"{args.sample} lane {lane}: {s.pairs} pairs, {s.bases} bases, lengths {s.min_length}-{s.max_length}")
    with atomic_output(args.out) as tmp:
        tmp.write_text(json.dumps(report, indent=2) + "\n")
    print(f"{args.sample}: {stats.pairs} pairs, {stats.bases} bases, lengths {stats.min_length}-{stats.max_length}")
    return 0
