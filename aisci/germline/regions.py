"""Scatter plan: cut the reference into chunks of about equal size, chunks into a few groups (one job each); write each group's regions file."""

from __future__ import annotations

import argparse
from dataclasses import dataclass
from pathlib import Path

from aisci.errors import InputError
from aisci.fileio import atomic_output
from aisci.gather import Interval
from aisci.germline.reference import Contig, contigs_digest, read_contigs


@dataclass(frozen=True)
class Chunk:
    """A unit of scattered calling: one or more intervals, in reference order."""

    index: int
    intervals: tuple[Interval, ...]

    @property
    def name(self) -> str:
        """Zero-padded identifier used in file names (``0007``)."""
        return f"{self.index:04d}"

    @property
    def region(self) -> str:
        """The intervals as text (comma-separated), for people; commands get :meth:`regions_tsv`."""
        return ",".join(str(iv) for iv in self.intervals)

    def regions_tsv(self) -> str:
        """The intervals as a bcftools ``--regions-file`` (CHROM, BEG, END; 1-based, inclusive).

        A file, not ``--regions``: bcftools splits a ``-r`` value at ':' and ',' (a GRCh38 HLA contig
        such as ``HLA-A*01:01:01:01`` would be called as nothing, silently) and a value on a command
        line is one quoting slip from the shell.
        """
        return "".join(f"{iv.chrom}\t{iv.start}\t{iv.end}\n" for iv in self.intervals)

    @property
    def length(self) -> int:
        return sum(iv.end - iv.start + 1 for iv in self.intervals)


def plan_chunks(contigs: list[Contig], chunk_size: int) -> list[Chunk]:
    """Cut contigs into chunks of at most ``chunk_size`` bases, keeping reference order.

    Long contigs are split into equal pieces; short contigs are packed together so that a
    genome with thousands of decoy contigs does not become thousands of jobs. Concatenating the
    chunks' calls in index order gives a sorted VCF.

    Args:
        contigs: the reference's contigs, in file order.
        chunk_size: target bases per chunk (> 0).

    Returns:
        Chunks covering every base exactly once.

    Raises:
        ValueError: chunk_size is not positive.
    """
    if chunk_size <= 0:
        raise ValueError("chunk_size must be positive")
    chunks: list[Chunk] = []
    pending: list[Interval] = []
    pending_len = 0

    def flush() -> None:
        nonlocal pending, pending_len
        if pending:
            chunks.append(Chunk(len(chunks), tuple(pending)))
            pending, pending_len = [], 0

    for contig in contigs:
        if contig.length > chunk_size:
            flush()
            n_pieces = -(-contig.length // chunk_size)
            step = -(-contig.length // n_pieces)
            for start in range(1, contig.length + 1, step):
                end = min(start + step - 1, contig.length)
                chunks.append(Chunk(len(chunks), (Interval(contig.name, start, end),)))
            continue
        if pending_len + contig.length > chunk_size:
            flush()
        pending.append(Interval(contig.name, 1, contig.length))
        pending_len += contig.length
    flush()
    return chunks


@dataclass(frozen=True)
class Group:
    """Consecutive chunks that one job works through (calling, then scoring): the unit of the DAG.

    Jobs per callset are then bounded by the number of groups, not by genome size / chunk size: a
    whole genome at 300 kb chunks is ~10,000 chunks but still a few dozen jobs per sample.
    """

    index: int
    chunks: tuple[Chunk, ...]

    @property
    def name(self) -> str:
        """Zero-padded identifier used in file names (``0007``; more digits past 9999)."""
        return f"{self.index:04d}"

    def regions_tsv(self) -> str:
        """The group's intervals as a bcftools regions file, each line's chunk in a 4th column
        (bcftools reads the first three)."""
        return "".join(f"{iv.chrom}\t{iv.start}\t{iv.end}\t{chunk.name}\n"
                       for chunk in self.chunks for iv in chunk.intervals)

    @property
    def length(self) -> int:
        return sum(c.length for c in self.chunks)


def plan_groups(chunks: list[Chunk], max_groups: int) -> list[Group]:
    """Split chunks, in order, into at most ``max_groups`` groups of about equal bases.

    Small genomes (fewer chunks than ``max_groups``) get one group per chunk, so they keep all their
    parallelism; each group is consecutive, so groups gathered in index order stay sorted.

    Raises:
        ValueError: max_groups is not positive.
    """
    if max_groups <= 0:
        raise ValueError("max_groups must be positive")
    if len(chunks) <= max_groups:
        return [Group(i, (chunk,)) for i, chunk in enumerate(chunks)]
    total = sum(c.length for c in chunks)
    groups: list[list[Chunk]] = [[] for _ in range(max_groups)]
    done, g = 0, 0
    for i, chunk in enumerate(chunks):
        # the share of the genome the chunk's middle falls in, moving on by at most one group per chunk
        # and early enough that every later group still gets a chunk: consecutive, none empty
        share = int((done + chunk.length / 2) * max_groups / total)
        g = max(min(share, g + 1 if i else 0), max_groups - (len(chunks) - i), g)
        groups[g].append(chunk)
        done += chunk.length
    return [Group(i, tuple(members)) for i, members in enumerate(groups)]


SCORE_DIR = "score"


def write_regions(reference: str | Path, chunk_size: int, expect: str, out_dir: str | Path,
                  max_groups: int, score_groups: int | None = None) -> list[Path]:
    """Write ``OUT_DIR/{group}.tsv`` for every calling group of the reference's scatter plan, and
    ``OUT_DIR/score/{group}.tsv`` for every scoring group (fewer, larger: each scoring job loads a model).

    The plan is made again from the index the pipeline built of the reference itself and must be the
    one made at start-up (``expect``, :func:`aisci.germline.reference.contigs_digest`): otherwise a region
    would be missing, or a chunk would not be the one planned, and calls lost without a word.

    Raises:
        InputError: the reference's contigs differ from those planned at start-up.
    """
    contigs = read_contigs(reference)
    if contigs_digest(contigs) != expect:
        raise InputError(
            f"{reference}: its contigs differ from those the pipeline planned with at start-up "
            f"({len(contigs)} contigs, {sum(c.length for c in contigs):,} bp here): was a stale .fai "
            "beside the configured reference? Fix or delete it and start again"
        )
    chunks = plan_chunks(contigs, chunk_size)
    plans = [(Path(out_dir), plan_groups(chunks, max_groups))]
    if score_groups is not None:
        plans.append((Path(out_dir) / SCORE_DIR, plan_groups(chunks, score_groups)))
    written = []
    for folder, groups in plans:
        for group in groups:
            path = folder / f"{group.name}.tsv"
            with atomic_output(path) as tmp:
                tmp.write_text(group.regions_tsv())
            written.append(path)
    return written


def configure_parser(parser: argparse.ArgumentParser) -> None:
    """Options of `aisci regions`."""
    parser.add_argument("--ref", required=True, help="the prepared reference FASTA (with its .fai)")
    parser.add_argument("--chunk-size", type=int, required=True, help="target bases per chunk")
    parser.add_argument("--groups", type=int, required=True, help="most calling groups (jobs per callset)")
    parser.add_argument("--score-groups", type=int, help="most scoring groups (jobs per callset and stage)")
    parser.add_argument("--expect", required=True, help="fingerprint of the contigs planned at start-up")
    parser.add_argument("--out-dir", required=True, help="folder of the {group}.tsv regions files")


def run(args: argparse.Namespace) -> int:
    """Write the groups' regions files."""
    written = write_regions(args.ref, args.chunk_size, args.expect, args.out_dir, args.groups, args.score_groups)
    print(f"{len(written)} regions files in {args.out_dir}")
    return 0
