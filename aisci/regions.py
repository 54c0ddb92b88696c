"""Scatter plan for calling: cut the reference into chunks of about equal size; write each chunk's regions file."""

from __future__ import annotations

import argparse
from dataclasses import dataclass
from pathlib import Path

from aisci.errors import InputError
from aisci.fileio import atomic_output
from aisci.reference import Contig, contigs_digest, read_contigs


@dataclass(frozen=True)
class Interval:
    """A 1-based, inclusive reference interval."""

    chrom: str
    start: int
    end: int

    def __str__(self) -> str:
        return f"{self.chrom}:{self.start}-{self.end}"


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


def write_regions(reference: str | Path, chunk_size: int, expect: str, out_dir: str | Path) -> list[Path]:
    """Write ``OUT_DIR/{chunk}.tsv`` for every chunk of the reference's scatter plan.

    The plan is made again from the index the pipeline built of the reference itself and must be the
    one made at start-up (``expect``, :func:`aisci.reference.contigs_digest`): otherwise a region
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
    written = []
    for chunk in plan_chunks(contigs, chunk_size):
        path = Path(out_dir) / f"{chunk.name}.tsv"
        with atomic_output(path) as tmp:
            tmp.write_text(chunk.regions_tsv())
        written.append(path)
    return written


def configure_parser(parser: argparse.ArgumentParser) -> None:
    """Options of `aisci regions`."""
    parser.add_argument("--ref", required=True, help="the prepared reference FASTA (with its .fai)")
    parser.add_argument("--chunk-size", type=int, required=True, help="target bases per chunk")
    parser.add_argument("--expect", required=True, help="fingerprint of the contigs planned at start-up")
    parser.add_argument("--out-dir", required=True, help="folder of the {chunk}.tsv regions files")


def run(args: argparse.Namespace) -> int:
    """Write the chunks' regions files."""
    written = write_regions(args.ref, args.chunk_size, args.expect, args.out_dir)
    print(f"{len(written)} regions files in {args.out_dir}")
    return 0
