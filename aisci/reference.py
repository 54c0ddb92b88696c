"""Reference genome facts needed before any job runs: its contigs and their lengths."""

from __future__ import annotations

import os
import zlib
from dataclasses import dataclass
from pathlib import Path

from aisci.errors import InputError
from aisci.fileio import open_text


@dataclass(frozen=True)
class Contig:
    """One reference sequence."""

    name: str
    length: int


def _read_fai(fai: Path) -> list[Contig]:
    contigs = []
    with open(fai) as fh:
        for lineno, line in enumerate(fh, 1):
            fields = line.rstrip("\n").split("\t")
            if len(fields) < 2 or not fields[1].isdigit():
                raise InputError(f"{fai} line {lineno}: not a FASTA index (.fai) line")
            contigs.append(Contig(fields[0], int(fields[1])))
    return contigs


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
                    length = 0
                elif line.strip():
                    if name is None:
                        raise InputError(
                            f"{path} line {lineno}: not a FASTA file (sequence before the first '>' header)"
                        )
                    length += len(line.strip())
    except (EOFError, zlib.error, OSError, UnicodeDecodeError) as exc:
        if isinstance(exc, InputError):
            raise
        raise InputError(f"{path}: cannot read reference FASTA ({exc})") from exc
    if name is not None:
        contigs.append(Contig(name, length))
    return contigs


def read_contigs(path: str | os.PathLike) -> list[Contig]:
    """Return the reference's contigs in file order.

    Uses ``PATH.fai`` when it exists and is not older than the FASTA (fast for whole genomes);
    otherwise scans the FASTA (plain, gzip or bgzip).

    Args:
        path: reference FASTA.

    Returns:
        The contigs with their lengths.

    Raises:
        InputError: the file is missing or unreadable, is not FASTA, or holds no sequence.
    """
    path = Path(path)
    if not path.is_file():
        raise InputError(f"reference {path}: file not found")
    if not os.access(path, os.R_OK):
        raise InputError(f"reference {path}: file not readable")
    fai = Path(f"{path}.fai")
    if fai.is_file() and fai.stat().st_mtime >= path.stat().st_mtime:
        contigs = _read_fai(fai)
    else:
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
