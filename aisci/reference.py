"""Reference genome facts needed before any job runs: its contigs, their lengths, and that their names are safe."""

from __future__ import annotations

import bisect
import os
import re
import struct
import zlib
from dataclasses import dataclass
from pathlib import Path

from aisci.errors import InputError
from aisci.fileio import GZIP_MAGIC, open_text

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


class _Bytes:
    """Random access to a FASTA's (uncompressed) bytes: a plain file, or bgzip through its .gzi."""

    def __init__(self, path: Path, gzi: Path | None):
        self.path = path
        self.blocks: list[tuple[int, int]] = [(0, 0)]  # (uncompressed, compressed) block starts
        if gzi is not None:
            raw = gzi.read_bytes()
            if len(raw) < 8:
                raise ValueError("index too short")
            (count,) = struct.unpack_from("<Q", raw)
            if len(raw) != 8 + 16 * count:
                raise ValueError("index size does not match its entry count")
            pairs = struct.unpack_from(f"<{2 * count}Q", raw, 8)
            self.blocks += [(pairs[2 * i + 1], pairs[2 * i]) for i in range(count)]
        self.bgzip = gzi is not None

    def read(self, offset: int, n: int) -> bytes:
        """Up to ``n`` bytes from uncompressed ``offset`` (fewer at the end of the file)."""
        with open(self.path, "rb") as fh:
            if not self.bgzip:
                fh.seek(offset)
                return fh.read(n)
            i = bisect.bisect_right([u for u, _ in self.blocks], offset) - 1
            ustart, cstart = self.blocks[i]
            fh.seek(cstart)
            out = bytearray()
            while len(out) < offset - ustart + n:
                head = fh.read(18)  # gzip header with BGZF's 'BC' extra field holding the block size
                if not head:
                    break
                if len(head) < 18 or head[:4] != b"\x1f\x8b\x08\x04" or head[12:14] != b"BC":
                    raise ValueError(f"not a BGZF block at byte {fh.tell() - len(head)}")
                size = struct.unpack_from("<H", head, 16)[0] + 1
                rest = fh.read(size - 18)
                if len(rest) < size - 18:
                    raise ValueError("truncated bgzip block")
                out += zlib.decompress(head + rest, 31)
            return bytes(out[offset - ustart:offset - ustart + n])


def _fai_mismatch(data: _Bytes, entry: _FaiEntry, next_name: str | None) -> str | None:
    """Why ``entry`` does not describe the FASTA's bytes (header line, last base, end of sequence, what
    follows: the next entry's header, or the end of the file), or None."""
    c = entry.contig
    # the header line ends right before the sequence and starts with '>' + name
    back = min(entry.offset, 64 * 1024)
    before = data.read(entry.offset - back, back)
    if not before.endswith(b"\n"):
        return "the sequence does not start after a header line"
    start = before.rfind(b"\n", 0, len(before) - 1) + 1
    if start == 0 and back < entry.offset:
        return "no header line within 64 KiB before the sequence"
    header = before[start:].rstrip(b"\r\n")
    if header[:1] != b">" or header[1:].split(maxsplit=1)[:1] != [c.name.encode()]:
        return f"the line before its sequence is {header[:60].decode('utf-8', 'replace')!r}, not '>{c.name}'"
    prefix = entry.offset - back + start  # bytes before the first header: blank lines at most
    if entry.line == 1 and prefix and (prefix > 4096 or data.read(0, prefix).strip()):
        return "the FASTA has sequences before it that the index does not list"
    # the last base sits where the index says, and the sequence ends right after it
    last = entry.offset + (c.length - 1) // entry.line_bases * entry.line_width + (c.length - 1) % entry.line_bases
    tail = data.read(last, entry.line_width + 1024)
    ends = tail[:1] not in (b"", b"\r", b"\n", b">")  # a base here ...
    after = tail[1:].lstrip(b"\r")
    ends = ends and after[:1] in (b"", b"\n")  # ... and the end of its line right after it ...
    following = after[1:].lstrip(b"\r\n")
    ends = ends and following[:1] in (b"", b">")  # ... then the next header or the end of the file
    if not ends:
        return f"its sequence does not end where the index says ({c.length:,} bases)"
    if next_name is None and following:
        return "the FASTA has more sequences after it than the index lists"
    if next_name is not None and following[1:].split(maxsplit=1)[:1] != [next_name.encode()]:
        return f"the next sequence in the FASTA is not '{next_name}', the index's next line"
    return None


def _verified_fai(path: Path, fai: Path) -> list[Contig] | None:
    """The index's contigs when it describes this FASTA; None when it cannot be checked (plain gzip,
    bgzip without .gzi). The header line, the position of the last base and the end of every
    sequence are read where the index puts them, so a stale index (``rsync -a``, ``cp -p`` and
    ``tar x`` keep an old one newer than its FASTA) is caught, not used to plan the calling.

    Raises:
        InputError: the index does not match the FASTA, naming the index line.
    """
    entries = _read_fai(fai)
    with open(path, "rb") as fh:
        gzipped = fh.read(2) == GZIP_MAGIC
    gzi = Path(f"{path}.gzi")
    if gzipped and not gzi.is_file():
        return None
    try:
        data = _Bytes(path, gzi if gzipped else None)
        for i, entry in enumerate(entries):
            following = entries[i + 1].contig.name if i + 1 < len(entries) else None
            problem = _fai_mismatch(data, entry, following)
            if problem:
                raise InputError(
                    f"{fai} line {entry.line}: does not match {path.name}: sequence '{entry.contig.name}': "
                    f"{problem} (a stale index? delete it or re-run samtools faidx)"
                )
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
    path = Path(path)
    if not path.is_file():
        raise InputError(f"reference {path}: file not found")
    if not os.access(path, os.R_OK):
        raise InputError(f"reference {path}: file not readable")
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
