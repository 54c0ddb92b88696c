"""Read-level input checks: each FASTQ pair (one per lane) is read end to end before alignment, and its statistics written.

A pair extracted from a BAM/CRAM (``samtools fastq -T RG``) carries each read's read group as an
``RG:Z:`` comment; given the BAM/CRAM, every read's group is checked against the file's @RG lines.
"""

from __future__ import annotations

import argparse
import gzip
import io
import json
import zlib
from dataclasses import asdict, dataclass
from itertools import zip_longest
from pathlib import Path
from typing import BinaryIO, Collection, Iterator, Sequence

from aisci.errors import InputError
from aisci.fileio import GZIP_MAGIC, atomic_output, check_readable
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
    # pairs per read group, for a pair extracted from a BAM/CRAM (None otherwise)
    read_groups: dict[str, int] | None = None


@dataclass(frozen=True)
class ReadGroup:
    """One @RG line of a BAM/CRAM header: its ID and its fields (tag, value) in the header's order, ID first."""

    id: str
    fields: tuple[tuple[str, str], ...]

    def get(self, tag: str) -> str | None:
        """The value of a tag (``SM``, ``LB``, ...), or None when the line has none."""
        return next((value for t, value in self.fields if t == tag), None)

    def line(self) -> str:
        """The @RG header line, tab-separated, without a newline."""
        return "\t".join(["@RG", *(f"{tag}:{value}" for tag, value in self.fields)])


def parse_read_groups(header: str, source: str) -> list[ReadGroup]:
    """The @RG lines of a SAM header text, in order.

    Args:
        header: SAM header text (lines starting with '@').
        source: the file the header came from (for messages).

    Returns:
        One ReadGroup per @RG line; an empty list when there is none.

    Raises:
        InputError: an @RG line without ID, a field that is not TAG:VALUE, or an ID given twice.
    """
    groups: list[ReadGroup] = []
    seen: set[str] = set()
    for n, line in enumerate(header.splitlines(), 1):
        if not line.startswith("@RG\t"):
            continue
        fields = []
        for field in line.split("\t")[1:]:
            tag, sep, value = field.partition(":")
            if not sep or len(tag) != 2:
                raise InputError(f"{source} header line {n}: @RG field {field!r} is not TAG:VALUE")
            fields.append((tag, value))
        ids = [value for tag, value in fields if tag == "ID"]
        if len(ids) != 1 or not ids[0]:
            raise InputError(f"{source} header line {n}: @RG line needs exactly one non-empty ID: {line!r}")
        if ids[0] in seen:
            raise InputError(f"{source} header line {n}: read group {ids[0]!r} has two @RG lines")
        seen.add(ids[0])
        fields.sort(key=lambda f: f[0] != "ID")  # ID first, the others in their order
        groups.append(ReadGroup(ids[0], tuple(fields)))
    return groups


def bam_read_groups(bam: Path) -> list[ReadGroup]:
    """The @RG lines of a BAM/CRAM's header (a CRAM's header is read without its reference).

    Raises:
        InputError: the file is missing or not BAM/CRAM, or anything `parse_read_groups` refuses.
    """
    import pysam

    _require_files(Path(bam))
    # quiet: htslib reports a CRAM without .crai ("Could not retrieve index file"), and only the header is read
    verbosity = pysam.set_verbosity(0)
    try:
        with pysam.AlignmentFile(str(bam), "r", check_sq=False) as aln:
            if not (aln.is_bam or aln.is_cram):
                raise ValueError("not BAM or CRAM format")
            text = str(aln.header)
    except (ValueError, OSError) as exc:
        raise InputError(f"{bam}: cannot read its header as BAM/CRAM ({exc})") from exc
    finally:
        pysam.set_verbosity(verbosity)
    return parse_read_groups(text, str(bam))


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
    parser.add_argument(
        "--read-groups-from", type=Path, metavar="BAM",
        help="with --fq1/--fq2: the BAM/CRAM the pair was extracted from with `samtools fastq -T RG`; "
             "its @RG lines are kept and each read's RG:Z comment is checked against them",
    )


def lanes_from_args(args: argparse.Namespace) -> list[Lane] | None:
    """The lanes given with --lane (checked), or None when the sample's only pair came as --fq1/--fq2.

    Raises:
        InputError: --fq1 without --fq2, --fq2 or --read-groups-from with --lane, or a bad or repeated lane id.
    """
    if args.lane is None:
        if args.fq2 is None:
            raise InputError("--fq1 needs --fq2")
        return None
    if args.fq2 is not None:
        raise InputError("--fq2 goes with --fq1; with --lane, give each lane's pair as --lane LANE FQ1 FQ2")
    if args.read_groups_from is not None:
        raise InputError("--read-groups-from goes with --fq1/--fq2 (a BAM/CRAM is one pair, not lanes)")
    return check_lanes([Lane(lane, Path(fq1), Path(fq2)) for lane, fq1, fq2 in args.lane])


def _open(path: Path) -> BinaryIO:
    with open(path, "rb") as fh:
        magic = fh.read(2)
    raw = open(path, "rb", buffering=_BUFFER)
    if magic == GZIP_MAGIC:
        return io.BufferedReader(gzip.GzipFile(fileobj=raw), buffer_size=_BUFFER)  # type: ignore[arg-type]
    return raw


def _records(path: Path) -> Iterator[tuple[int, bytes, bytes, int]]:
    """Yield (record number, read name, comment, read length), checking the FASTQ grammar as it goes.

    The comment is what follows the name on the header line (b"" when nothing does).
    """
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
                name_comment = header[1:].split(None, 1)
                if not name_comment:
                    raise InputError(f"{path} record {n} (line {4 * n - 3}): empty read name")
                comment = name_comment[1].rstrip(b"\r\n") if len(name_comment) > 1 else b""
                yield n, name_comment[0], comment, len(seq)
        except (EOFError, zlib.error, gzip.BadGzipFile) as exc:
            raise InputError(f"{path} after record {n}: corrupt or truncated gzip ({exc})") from exc


def _mate_name(name: bytes) -> bytes:
    """Strip a trailing /1 or /2 so that mates compare equal."""
    return name[:-2] if name[-2:] in (b"/1", b"/2") else name


def comment_read_group(comment: bytes) -> str | None:
    """The read group a FASTQ comment names as an ``RG:Z:`` tag, or None.

    `samtools fastq -T` writes tags separated by tabs; a value may hold spaces (``RG:Z:run 1``).
    """
    for tag in comment.split(b"\t"):
        if tag.startswith(b"RG:Z:"):
            return tag[5:].decode(errors="replace")
    return None


class _ReadGroupCheck:
    """Checks each pair's read group against the @RG IDs of the BAM/CRAM the pair came from, and counts pairs per group."""

    def __init__(self, ids: Collection[str], source: Path, fq1: Path, fq2: Path):
        self.ids = set(ids)
        self.source, self.fq1, self.fq2 = source, fq1, fq2
        self.listed = ", ".join(sorted(self.ids)) if self.ids else "none"
        self.pairs: dict[str, int] = {rg: 0 for rg in ids}

    def __call__(self, n: int, name: bytes, comment1: bytes, comment2: bytes) -> None:
        rg1, rg2 = comment_read_group(comment1), comment_read_group(comment2)
        read = name.decode(errors="replace")
        if rg1 != rg2:
            raise InputError(f"{self.fq1} and {self.fq2} record {n}: the mates of read {read} are in different "
                             f"read groups ({rg1} vs {rg2})")
        if rg1 is None:
            if self.ids:
                raise InputError(f"{self.fq1} record {n}: read {read} has no read group (RG tag) in {self.source}, "
                                 f"whose header has @RG lines ({self.listed}): every read must name one")
            return
        if rg1 not in self.ids:
            raise InputError(f"{self.fq1} record {n}: read {read} is in read group {rg1!r}, which the header of "
                             f"{self.source} has no @RG line for (its @RG IDs: {self.listed})")
        self.pairs[rg1] += 1


def check_pair(sample: str, fq1: Path, fq2: Path, read_groups_from: Path | None = None) -> ReadStats:
    """Read a FASTQ pair end to end and check that it can be aligned as pairs.

    Args:
        sample: sample name (for the report).
        fq1: read-1 FASTQ, plain or gzip.
        fq2: read-2 FASTQ, plain or gzip.
        read_groups_from: the BAM/CRAM the pair was extracted from with ``samtools fastq -T RG``:
            each read's ``RG:Z:`` comment must name one of its @RG lines (or, without @RG
            lines, no read may name one), and the mates must agree.

    Returns:
        Read statistics of the pair; with ``read_groups_from``, the pairs of each read group too.

    Raises:
        InputError: a truncated or corrupt gzip, a malformed record (quality length differs
            from sequence length, missing '@'/'+'), mate names that disagree, different read
            counts or no reads at all — naming the file and the record; with ``read_groups_from``,
            a read group missing from the header, a read without one or mates in different ones.
    """
    rg_check = None
    if read_groups_from is not None:
        rg_check = _ReadGroupCheck([rg.id for rg in bam_read_groups(read_groups_from)], read_groups_from, fq1, fq2)
    pairs = bases = 0
    min_len, max_len = 1 << 30, 0
    for r1, r2 in zip_longest(_records(fq1), _records(fq2)):
        if r1 is None or r2 is None:
            short, long_, rec = (fq1, fq2, r2) if r1 is None else (fq2, fq1, r1)
            raise InputError(
                f"paired files have different read counts: {short} ends after {pairs} reads, "
                f"{long_} has more (record {rec[0]})"
            )
        n, name1, comment1, len1 = r1
        _, name2, comment2, len2 = r2
        if _mate_name(name1) != _mate_name(name2):
            raise InputError(
                f"{fq1} and {fq2} record {n}: mate names differ "
                f"({name1.decode(errors='replace')} vs {name2.decode(errors='replace')}); are the files paired and in the same order?"
            )
        if rg_check is not None:
            rg_check(n, name1, comment1, comment2)
        pairs += 1
        bases += len1 + len2
        min_len = min(min_len, len1, len2)
        max_len = max(max_len, len1, len2)
    if pairs == 0:
        raise InputError(f"{fq1}: no reads")
    return ReadStats(sample, pairs, bases, min_len, max_len, round(bases / (2 * pairs), 2),
                     rg_check.pairs if rg_check is not None else None)


def _require_files(*paths: Path) -> None:
    """Refuse a path that is not a readable file, naming it (before any tool or reader opens it)."""
    for p in paths:
        check_readable(p, Path(p).name)


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


def _report(stats: ReadStats) -> dict[str, object]:
    """ReadStats as the JSON report's fields, leaving out ``read_groups`` when there are none."""
    return {k: v for k, v in asdict(stats).items() if not (k == "read_groups" and v is None)}


def configure_parser(parser: argparse.ArgumentParser) -> None:
    """Options of `aisci check-reads`."""
    parser.add_argument("--sample", required=True, help="sample name")
    add_pair_options(parser)
    parser.add_argument("--out", required=True, type=Path, help="JSON report (written only if the check passes)")


def run(args: argparse.Namespace) -> int:
    """Check a sample's FASTQ pair, or each of its lanes' pairs, and write the statistics as JSON.

    The report's top-level keys are those of ReadStats (totals over the lanes); with --lane it
    adds ``lanes``: each lane's own statistics (ReadStats without ``sample``), in the order given.
    ``read_groups`` (pairs per read group) is there only with --read-groups-from.
    """
    lanes = lanes_from_args(args)
    if lanes is None:
        _require_files(args.fq1, args.fq2)
        stats = check_pair(args.sample, args.fq1, args.fq2, args.read_groups_from)
        report: dict[str, object] = _report(stats)
        for rg, n in (stats.read_groups or {}).items():
            print(f"{args.sample} read group {rg}: {n} pairs")
    else:
        stats, per_lane = check_sample_lanes(args.sample, lanes)
        report = _report(stats)
        report["lanes"] = {lane: {k: v for k, v in _report(s).items() if k != "sample"} for lane, s in per_lane.items()}
        for lane, s in per_lane.items():
            print(f"{args.sample} lane {lane}: {s.pairs} pairs, {s.bases} bases, lengths {s.min_length}-{s.max_length}")
    with atomic_output(args.out) as tmp:
        tmp.write_text(json.dumps(report, indent=2) + "\n")
    print(f"{args.sample}: {stats.pairs} pairs, {stats.bases} bases, lengths {stats.min_length}-{stats.max_length}")
    return 0
