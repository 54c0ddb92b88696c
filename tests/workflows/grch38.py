"""A GRCh38-shaped reference for dry runs: the real contig table (../shared/data/grch38), every base N.

A dry run reads only the reference's index, but aisci checks the .fai against the FASTA's bytes (a
stale index would drop calls), so the FASTA must exist: written as BGZF with its .fai and .gzi. All-N
blocks repeat with the line phase, so each distinct block is compressed once: 3.1 Gb of sequence is
~6 MB on disk and a few seconds to write.
"""

from __future__ import annotations

import struct
import zlib
from pathlib import Path

from tests.conftest import REPO

TABLE = REPO.parent / "shared" / "data" / "grch38" / "GRCh38.genome.tsv"
LINE = 60
BLOCK = 65280  # uncompressed bytes per BGZF block (what bgzip writes)
EOF_BLOCK = bytes.fromhex("1f8b08040000000000ff0600424302001b0003000000000000000000")


def grch38_contigs() -> list[tuple[str, int]]:
    """The real GRCh38 contig names and lengths (195 contigs, 3.1 Gb)."""
    return [(name, int(length)) for name, length in (line.split("\t") for line in TABLE.read_text().splitlines() if line)]


def _bgzf_block(data: bytes) -> bytes:
    comp = zlib.compressobj(6, zlib.DEFLATED, -15)
    deflated = comp.compress(data) + comp.flush()
    header = struct.pack("<4BI2BH2BHH", 0x1F, 0x8B, 8, 4, 0, 0, 0xFF, 6, ord("B"), ord("C"), 2, 25 + len(deflated))
    return header + deflated + struct.pack("<II", zlib.crc32(data) & 0xFFFFFFFF, len(data))


class _Text:
    """The FASTA's text as byte ranges without building it: headers, then N lines of LINE bases."""

    def __init__(self, contigs: list[tuple[str, int]]):
        # (start, end, header bytes or None for sequence, bytes of full lines when sequence)
        self.pieces: list[tuple[int, int, bytes | None, int]] = []
        self.fai: list[str] = []
        pos = 0
        for name, length in contigs:
            head = f">{name}\n".encode()
            self.pieces.append((pos, pos + len(head), head, 0))
            pos += len(head)
            full, rest = divmod(length, LINE)
            size = full * (LINE + 1) + (rest + 1 if rest else 0)
            bases = min(LINE, length)  # samtools' convention for a one-line sequence
            self.fai.append(f"{name}\t{length}\t{pos}\t{bases}\t{bases + 1}\n")
            self.pieces.append((pos, pos + size, None, full * (LINE + 1)))
            pos += size
        self.size = pos

    @staticmethod
    def _lines(a: int, b: int) -> bytes:
        """Bytes [a, b) of endless N lines."""
        phase = a % (LINE + 1)
        reps = (phase + b - a) // (LINE + 1) + 1
        return ((b"N" * LINE + b"\n") * reps)[phase:phase + b - a]

    def read(self, start: int, end: int) -> tuple[bytes, tuple | None]:
        """Bytes [start, end), and a cache key when they lie inside one contig's full lines (the same
        phase gives the same bytes)."""
        out = []
        key = None
        for p_start, p_end, head, full in self.pieces:
            if p_end <= start or p_start >= end:
                continue
            a, b = max(start, p_start) - p_start, min(end, p_end) - p_start
            if head is not None:
                out.append(head[a:b])
                continue
            if a < full:
                out.append(self._lines(a, min(b, full)))
                if (a, b) == (start - p_start, end - p_start) and b <= full:
                    key = (a % (LINE + 1), b - a)
            if b > full:  # the last, short line: bases then its newline
                last = p_end - p_start - 1
                out.append(b"".join(b"\n" if x == last else b"N" for x in range(max(a, full), b)))
        return b"".join(out), key


def write_grch38_shaped(directory: Path, contigs: list[tuple[str, int]] | None = None) -> Path:
    """Write ``genome.fa.gz`` (BGZF, every base N) with its ``.fai`` and ``.gzi``; return the FASTA's path."""
    contigs = contigs or grch38_contigs()
    text = _Text(contigs)
    path = directory / "genome.fa.gz"
    cache: dict[tuple, bytes] = {}
    gzi = []
    compressed = 0
    with open(path, "wb") as out:
        for start in range(0, text.size, BLOCK):
            data, key = text.read(start, min(start + BLOCK, text.size))
            block = cache.get(key) if key else None
            if block is None:
                block = _bgzf_block(data)
                if key:
                    cache[key] = block
            if start:
                gzi.append((compressed, start))
            out.write(block)
            compressed += len(block)
        out.write(EOF_BLOCK)
    (directory / "genome.fa.gz.fai").write_text("".join(text.fai))
    with open(directory / "genome.fa.gz.gzi", "wb") as fh:
        fh.write(struct.pack("<Q", len(gzi)) + b"".join(struct.pack("<QQ", c, u) for c, u in gzi))
    return path


def many_samples(sheet: Path, fq1: str | Path, fq2: str | Path, n: int, prefix: str = "P") -> Path:
    """A sheet of ``n`` samples for dry runs at cohort scale, each with its own links to one FASTQ pair
    (the sheet check refuses one file on two rows: in real sheets that is a copy-paste slip)."""
    reads = sheet.parent / f"{sheet.stem}-reads"
    reads.mkdir(exist_ok=True)
    rows = []
    for i in range(n):
        name = f"{prefix}{i:04d}"
        pair = []
        for mate, target in ((1, fq1), (2, fq2)):
            link = reads / f"{name}_R{mate}.fastq.gz"
            if not link.is_symlink():
                link.symlink_to(target)
            pair.append(str(link))
        rows.append(f"{name}\t{pair[0]}\t{pair[1]}\n")
    sheet.write_text("sample\tfq1\tfq2\n" + "".join(rows))
    return sheet
