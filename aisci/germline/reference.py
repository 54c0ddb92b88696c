"""Reference genome facts needed before any job runs: its contigs, their lengths, and that their names are safe."""

from __future__ import annotations

import bisect
import os
import re
import struct
import zlib
from dataclasses import dataclass
from pathlib import Path
from typing import BinaryIO

from aisci.errors import InputError
from aisci.fileio import GZIP_MAGIC, check_readable, open_text

# SAM v1.6 §1.2.1, the rule for reference sequence names: no whitespace, quotes, commas, brackets,
# braces, parentheses or '<>', and never '*' or '=' first. One change: no '#' first either, because
# bcftools reads a regions-file line that starts with '#' as a comment. Names such as
# HLA-A*01:01:01:01 and gi|568336023|gb|CM000663.2| pass.
CONTIG_NAME = re.compile(r"[0-9A-Za-z!$%&+./:;?@^_|~-][0-9A-Za-z!#$%&*+./:;=?@^_|~-]*")


@dataclass(frozen=True)
class Contig:
    """One reference sequence."""

    name: str
    length: int


@dataclass(frozen=True)
class _FaiEntry:
    contig: Contig
    offset: int
    line_bases: int
    line_width: int
    line: int


def _read_fai(fai: Path) -> list[_FaiEntry]:
    entries = []
    try:
        with open(fai, encoding="utf-8") as fh:
            for lineno, line in enumerate(fh, 1):
                fields = line.rstrip("\n").split("\t")
                if len(fields) < 5 or not all(f.isdigit() for f in fields[1:5]):
                    raise InputError(f"{fai} line {lineno}: not a FASTA index (.fai) line")
                length, offset, bases, width = (int(f) for f in fields[1:5])
                if bases == 0 or width < bases:
                    raise InputError(f"{fai} line {lineno}: not a FASTA index (.fai) line")
                entries.append(_FaiEntry(Contig(fields[0], length), offset, bases, width, lineno))
    except UnicodeDecodeError:
        raise InputError(f"{fai}: not a FASTA index (.fai): not UTF-8 text") from None
    return entries


def read_fai(fai: str | os.PathLike[str]) -> list[Contig]:
    """The contigs of a FASTA index (.fai), in file order, without checking it against its FASTA.

    Raises:
        InputError: a line that is not a .fai line (named), a file that is not UTF-8.
    """
    return [entry.contig for entry in _read_fai(Path(fai))]


class _Unverifiable(Exception):
    """The index cannot be checked cheaply here (a header line over 64 KiB, thousands of blank lines): scan."""


class _Bytes:
    """Random access to a FASTA's (uncompressed) bytes through one open file: plain, or bgzip through its .gzi
    (every BGZF block's start; the last blocks read are kept, since the checks read near each other)."""

    def __init__(self, fh: BinaryIO, gzi: Path | None):
        self.fh = fh
        self.ustarts, self.cstarts = [0], [0]  # uncompressed and compressed starts of the indexed blocks
        self.cache: dict[int, bytes] = {}
        self.bgzip = gzi is not None
        if gzi is not None:
            raw = gzi.read_bytes()
            if len(raw) < 8:
                raise ValueError("index too short")
            (count,) = struct.unpack_from("<Q", raw)
            if len(raw) != 8 + 16 * count:
                raise ValueError("index size does not match its entry count")
            pairs = struct.unpack_from(f"<{2 * count}Q", raw, 8)
            self.cstarts += pairs[0::2]
            self.ustarts += pairs[1::2]

    def read(self, offset: int, n: int) -> bytes:
        """Up to ``n`` bytes from uncompressed ``offset`` (fewer at the end of the file)."""
        if not self.bgzip:
            self.fh.seek(offset)
            return self.fh.read(n)
        out = bytearray()
        while len(out) < n:
            start, block = self._block(offset + len(out))
            piece = block[offset + len(out) - start:offset + n - start]
            if not piece:
                break
            out += piece
        return bytes(out)

    def _block(self, pos: int) -> tuple[int, bytes]:
        """(uncompressed start, bytes) of the block holding ``pos`` (an empty block past the end)."""
        i = bisect.bisect_right(self.ustarts, pos) - 1
        ustart = self.ustarts[i]
        if ustart in self.cache:
            block = self.cache[ustart]
            if pos < ustart + len(block) or not block:
                return ustart, block
        self.fh.seek(self.cstarts[i])
        while True:  # from the indexed block on to the one holding pos (one step when every block is indexed)
            head = self.fh.read(18)  # gzip header with BGZF's 'BC' extra field holding the block size
            if not head:
                return ustart, b""
            if len(head) < 18 or head[:4] != b"\x1f\x8b\x08\x04" or head[12:14] != b"BC":
                raise ValueError(f"not a BGZF block at byte {self.fh.tell() - len(head)}")
            size = struct.unpack_from("<H", head, 16)[0] + 1
            rest = self.fh.read(size - 18)
            if len(rest) < size - 18:
                raise ValueError("truncated bgzip block")
            block = zlib.decompress(head + rest, 31)
            if len(self.cache) > 8:
                self.cache.clear()
            self.cache[ustart] = block
            if pos < ustart + len(block) or not block:
                return ustart, block
            ustart += len(block)

    def line_before(self, offset: int) -> tuple[int, bytes]:
        """(start, text) of the line that ends with the newline right before ``offset``.

        Raises:
            _Unverifiable: the line is longer than 64 KiB.
        """
        end = offset - 1  # the newline
        size = 256
        while True:
            start = max(0, end - size)
            text = self.read(start, end - start)
            cut = text.rfind(b"\n")
            if cut >= 0:
                return start + cut + 1, text[cut + 1:]
            if start == 0:
                return 0, text
            if size >= 64 * 1024:
                raise _Unverifiable
            size *= 4


def _fai_mismatch(data: _Bytes, entry: _FaiEntry, next_name: str | None) -> str | None:
    """Why ``entry`` does not describe the FASTA's bytes (header line, last base, end of sequence, what
    follows: the next entry's header, or the end of the file), or None.

    Raises:
        _Unverifiable: what would tell lies too far away to read cheaply.
    """
    c = entry.contig
    # the header line ends right before the sequence and starts with '>' + name
    if entry.offset == 0 or data.read(entry.offset - 1, 1) != b"\n":
        return "the sequence does not start after a header line"
    start, header = data.line_before(entry.offset)
    header = header.rstrip(b"\r")
    if header[:1] != b">" or header[1:].split(maxsplit=1)[:1] != [c.name.encode()]:
        return f"the line before its sequence is {header[:60].decode('utf-8', 'replace')!r}, not '>{c.name}'"
    if entry.line == 1 and start and (start > 4096 or data.read(0, start).strip()):  # blank lines at most
        return "the FASTA has sequences before it that the index does not list"
    # the last base sits where the index says, and the sequence ends right after it
    last = entry.offset + (c.length - 1) // entry.line_bases * entry.line_width + (c.length - 1) % entry.line_bases
    window = 4096
    tail = data.read(last, window)
    ends = tail[:1] not in (b"", b" ", b"\t", b"\r", b"\n", b">")  # a base here ...
    after = tail[1:].lstrip(b" \t\r")
    ends = ends and after[:1] in (b"", b"\n")  # ... and the end of its line right after it ...
    following = after[1:].lstrip(b" \t\r\n")
    ends = ends and following[:1] in (b"", b">")  # ... then the next header or the end of the file
    if not ends:
        return f"its sequence does not end where the index says ({c.length:,} bases)"
    if not following and len(tail) == window:
        raise _Unverifiable  # blank lines beyond the window: where the next header is cannot be told here
    if next_name is None and following:
        return "the FASTA has more sequences after it than the index lists"
    if next_name is not None and following[1:].split(maxsplit=1)[:1] != [next_name.encode()]:
        return f"the next sequence in the FASTA is not '{next_name}', the index's next line"
    return None


def _verified_fai(path: Path, fai: Path) -> list[Contig] | None:
    """The index's contigs when it describes this FASTA; None when it cannot be checked (plain gzip,
    bgzip without .gzi, a header over 64 KiB). The header line, the position of the last base and the end
    of every sequence are read where the index puts them (a few KiB per contig), so a stale index
    (``rsync -a``, ``cp -p`` and ``tar x`` keep an old one newer than its FASTA) is caught, not used to
    plan the calling.

    Raises:
        InputError: the index does not match the FASTA, naming the index line.
    """
    entries = _read_fai(fai)
    gzi = Path(f"{path}.gzi")
    try:
        with open(path, "rb") as fh:
            gzipped = fh.read(2) == GZIP_MAGIC
            if gzipped and not gzi.is_file():
                return None
            data = _Bytes(fh, gzi if gzipped else None)
            for i, entry in enumerate(entries):
                following = entries[i + 1].contig.name if i + 1 < len(entries) else None
                problem = _fai_mismatch(data, entry, following)
                if problem:
                    raise InputError(
                        f"{fai} line {entry.line}: does not match {path.name}: sequence '{entry.contig.name}': "
                        f"{problem} (a stale index? delete it or re-run samtools faidx)"
                    )
    except _Unverifiable:
        return None
    except (ValueError, OSError, zlib.error) as exc:
        raise InputError(f"{path}: cannot check it against {fai.name} ({exc})") from None
    return [e.contig for e in entries]


def _scan_fasta(path: Path) -> list[Contig]:
    contigs: list[Contig] = []
    name: str | None = None
    length = 0
    try:
        with open_text(path) as fh:
            for lineno, line in enumerate(fh, 1):
                if line.startswith(">"):
                    if name is not None:
                        contigs.append(Contig(name, length))
                    name = line[1:].split(maxsplit=1)[0] if line[1:].strip() else ""
                    if not name:
                        raise InputError(f"{path} line {lineno}: FASTA header without a name")
                    check_contig_name(name, f"{path} line {lineno}")
                    length = 0
                elif line.strip():
                    if name is None:
                        raise InputError(
                            f"{path} line {lineno}: not a FASTA file (sequence before the first '>' header)"
                        )
                    length += len(line.strip())
    except UnicodeDecodeError as exc:
        raise InputError(f"{path}: not a text FASTA file (non-UTF-8 byte: {exc.reason})") from None
    except (EOFError, zlib.error, OSError) as exc:
        raise InputError(f"{path}: cannot read reference FASTA ({exc})") from exc
    if name is not None:
        contigs.append(Contig(name, length))
    return contigs


def check_contig_name(name: str, where: str) -> None:
    """Refuse a sequence name outside the SAM rule (see CONTIG_NAME).

    Raises:
        InputError: naming ``where`` (file and line) and the name.
    """
    if not CONTIG_NAME.fullmatch(name):
        raise InputError(
            f"{where}: sequence name {name[:80]!r} breaks the SAM specification's rule for reference names "
            "(no whitespace, quotes, commas, ()[]{}<>, and not '*', '=' or '#' first)"
        )


def read_contigs(path: str | os.PathLike) -> list[Contig]:
    """Return the reference's contigs in file order.

    Uses ``PATH.fai`` when it exists, is not older than the FASTA and matches it (checked by reading the
    FASTA where the index says each sequence starts and ends: fast for whole genomes); otherwise
    scans the FASTA (plain, gzip or bgzip). Every name must follow the SAM rule (CONTIG_NAME).

    Args:
        path: reference FASTA.

    Returns:
        The contigs with their lengths.

    Raises:
        InputError: the file is missing or unreadable, is not FASTA, holds no sequence, has a name
            outside the SAM rule, or has an index that does not match it.
    """
    path = check_readable(path, "reference")
    fai = Path(f"{path}.fai")
    contigs = None
    if fai.is_file() and fai.stat().st_mtime >= path.stat().st_mtime:
        contigs = _verified_fai(path, fai)
        for entry, contig in enumerate(contigs or [], 1):
            check_contig_name(contig.name, f"{fai} line {entry}")
    if contigs is None:
        contigs = _scan_fasta(path)
    if not contigs or sum(c.length for c in contigs) == 0:
        raise InputError(f"reference {path}: contains no sequences")
    empty = [c.name for c in contigs if c.length == 0]
    if empty:
        raise InputError(f"reference {path}: sequence '{empty[0]}' is empty")
    names = [c.name for c in contigs]
    if len(set(names)) != len(names):
        dup = next(n for n in names if names.count(n) > 1)
        raise InputError(f"reference {path}: sequence name '{dup}' appears more than once")
    return contigs


def contigs_digest(contigs: list[Contig]) -> str:
    """A short fingerprint of names and lengths: the plan made at start-up is checked against the
    index the pipeline builds with it."""
    import hashlib

    text = "".join(f"{c.name}\t{c.length}\n" for c in contigs)
    return hashlib.sha256(text.encode()).hexdigest()[:16]
