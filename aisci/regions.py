"""Scatter plan for calling: cut the reference into chunks of about equal size."""

from __future__ import annotations

from dataclasses import dataclass

from aisci.reference import Contig


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
        """The intervals as a bcftools ``-r`` argument (comma-separated)."""
        return ",".join(str(iv) for iv in self.intervals)

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
