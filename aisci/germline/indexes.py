"""Prebuilt aligner indexes: a minimap2 .mmi or bwa index's contigs, checked against the reference before any job.

Only headers are read (a few kB of a human genome's 7 GB .mmi or 5 GB of bwa files), so the check costs
nothing at start-up. The formats, from the aligners' sources:

- minimap2 ``.mmi`` (index.c, ``mm_idx_dump``): the magic ``MMI\\2``, five little-endian uint32 ``w, k, b,
  n_seq, flag``, then per sequence a uint8 name length, the name, and a uint32 length; the minimizer
  buckets and the packed sequence follow. An index built with ``-I`` below the genome's size holds
  several such blocks one after another ("parts"). Finding the second part means walking all 2^b
  buckets of the first (16,384 small reads spread over gigabytes: slow on a cluster file system), so
  only the first part is read: a multi-part index then shows fewer contigs than the reference and is
  refused as such.
- bwa (bntseq.c, ``bns_dump``; bwt.c, ``bwt_dump_bwt``/``bwt_dump_sa``): ``PREFIX.ann`` is text, a line
  ``l_pac n_seqs seed`` then per sequence ``gi name [comment]`` and ``offset len n_ambs``; ``.amb`` starts
  ``l_pac n_seqs n_holes``; ``.pac`` holds l_pac/4 + 2 bytes; ``.bwt`` and ``.sa`` carry the
  sequence length (both strands, 2 * l_pac) as uint64 at bytes 32 and 48.
"""

from __future__ import annotations

import os
import struct
from dataclasses import dataclass
from pathlib import Path
from typing import BinaryIO, Protocol, Sequence

from aisci.errors import InputError

MMI_MAGIC = b"MMI\x02"
# `minimap2 -x sr` indexes with k=21, w=11 and no homopolymer compression (options.c, mm_set_opt "sr").
# A prebuilt index overrides -x's indexing part, so `minimap2 -ax sr other.mmi` would silently seed with
# the other preset's k-mers.
SR_K, SR_W = 21, 11
MMI_HPC, MMI_NO_SEQ = 0x1, 0x2  # minimap.h: MM_I_HPC, MM_I_NO_SEQ
MINIMAP2_BUILD = "minimap2 -x sr -d genome.mmi genome.fa"
BWA_SUFFIXES = (".amb", ".ann", ".bwt", ".pac", ".sa")
BWA_BUILD = "bwa index genome.fa"
_MAX_NAME = 255  # a .mmi stores a name's length in one byte: longer names come back cut


class _Contig(Protocol):
    """A reference sequence as check_index needs it (aisci.germline.reference.Contig is one)."""

    @property
    def name(self) -> str: ...

    @property
    def length(self) -> int: ...


@dataclass(frozen=True)
class MmiHeader:
    """What the first part of a minimap2 index says about itself."""

    w: int
    k: int
    bucket_bits: int
    flag: int
    contigs: list[tuple[str, int]]


def _read_exact(fh: BinaryIO, size: int, path: Path, what: str) -> bytes:
    data = fh.read(size)
    if len(data) != size:
        raise InputError(f"{path}: truncated minimap2 index (.mmi): the file ends inside {what}")
    return data


def read_mmi_header(path: str | os.PathLike) -> MmiHeader:
    """Read a minimap2 index's parameters and sequences without loading the index.

    Args:
        path: a ``.mmi`` file written by ``minimap2 -d``.

    Returns:
        The first part's ``w``, ``k``, bucket bits, flags and (name, length) of each sequence.

    Raises:
        InputError: ``PATH: ...`` when the file is missing or unreadable, is not a minimap2 index, or its
            header is truncated or garbled.
    """
    path = Path(path)
    try:
        with open(path, "rb") as fh:
            magic = fh.read(4)
            if magic != MMI_MAGIC:
                raise InputError(f"{path}: not a minimap2 index (.mmi): {_what_instead(magic)}")
            w, k, b, n_seq, flag = struct.unpack("<5I", _read_exact(fh, 20, path, "the header"))
            # minimap2 refuses k > 28 and w >= 256 when building, and caps b at 2k (mm_idx_init).
            if not (0 < k <= 28 and 0 < w < 256 and 0 < b <= 2 * k):
                raise InputError(f"{path}: garbled minimap2 index (.mmi): header says k={k}, w={w}, b={b}")
            contigs = []
            for i in range(n_seq):
                what = f"sequence {i + 1} of {n_seq}"
                (size,) = _read_exact(fh, 1, path, what)
                name = _read_exact(fh, size, path, what).decode("utf-8", errors="backslashreplace")
                (length,) = struct.unpack("<I", _read_exact(fh, 4, path, what))
                contigs.append((name, length))
    except FileNotFoundError:
        raise InputError(f"{path}: no such file") from None
    except OSError as e:
        raise InputError(f"{path}: cannot read: {e.strerror or e}") from None
    return MmiHeader(w=w, k=k, bucket_bits=b, flag=flag, contigs=contigs)


def _what_instead(magic: bytes) -> str:
    if magic[:1] == b">":
        return "it is a FASTA file (give the index that `minimap2 -x sr -d` writes)"
    if magic[:2] == b"\x1f\x8b":
        return "it is gzip-compressed (minimap2 reads only an uncompressed .mmi)"
    return f"it does not start with minimap2's magic bytes 'MMI\\2' (found {magic!r})"


def minimap2_contigs(path: str | os.PathLike) -> list[tuple[str, int]]:
    """The (name, length) of each sequence in a minimap2 index, read from its header only.

    A multi-part index (built with ``-I`` below the genome's size) yields only its first part's sequences.

    Raises:
        InputError: as read_mmi_header.
    """
    return read_mmi_header(path).contigs


def _ann_error(ann: Path, lineno: int, why: str) -> InputError:
    return InputError(f"{ann} line {lineno}: not a bwa index .ann file: {why}")


def _ints(line: str, count: int) -> list[int] | None:
    fields = line.split()
    if len(fields) != count or not all(f.isdigit() for f in fields):
        return None
    return [int(f) for f in fields]


def _read_ann(ann: Path) -> tuple[int, list[tuple[str, int]]]:
    """(l_pac, contigs) from a bwa .ann file."""
    try:
        lines = ann.read_text(encoding="utf-8").split("\n")
    except UnicodeDecodeError:
        raise InputError(f"{ann}: not a bwa index .ann file: not text") from None
    head = _ints(lines[0], 3)
    if head is None:
        raise _ann_error(ann, 1, "the first line is not 'total_length n_sequences seed'")
    l_pac, n_seqs, _seed = head
    if len(lines) < 1 + 2 * n_seqs or any(line.strip() for line in lines[1 + 2 * n_seqs:]):
        rest = sum(1 for line in lines[1:] if line.strip())
        raise InputError(f"{ann}: not a bwa index .ann file: line 1 says {n_seqs} sequences, which take "
                         f"{2 * n_seqs} lines after it, but {rest} follow")
    contigs, offset = [], 0
    for i in range(n_seqs):
        name_line, pos_line = lines[1 + 2 * i], lines[2 + 2 * i]
        fields = name_line.split(" ", 2)
        if len(fields) < 2 or not fields[0].isdigit() or not fields[1]:
            raise _ann_error(ann, 2 + 2 * i, "not 'gi name [comment]'")
        pos = _ints(pos_line, 3)
        if pos is None or pos[0] != offset:
            raise _ann_error(ann, 3 + 2 * i, f"not 'offset length n_ambiguous' with offset {offset}")
        contigs.append((fields[1], pos[1]))
        offset += pos[1]
    if offset != l_pac:
        raise _ann_error(ann, 1, f"total length {l_pac} is not the sum of the sequences' lengths, {offset}")
    return l_pac, contigs


def _bwa_mismatch(prefix: str, l_pac: int, n_seqs: int) -> str | None:
    """Why the other bwa files were not made with this .ann (another genome, an interrupted build)."""
    amb = Path(prefix + ".amb")
    with open(amb, "rb") as fh:
        head = _ints(fh.readline(256).decode("ascii", errors="replace"), 3)
    if head is None or head[:2] != [l_pac, n_seqs]:
        return f"{amb} does not match {prefix}.ann (another genome's, or a damaged file)"
    pac = Path(prefix + ".pac")
    if pac.stat().st_size != l_pac // 4 + 2:
        return f"{pac} holds {pac.stat().st_size} bytes, {l_pac // 4 + 2} expected from {prefix}.ann"
    for suffix, at in ((".bwt", 32), (".sa", 48)):
        path = Path(prefix + suffix)
        with open(path, "rb") as fh:
            fh.seek(at)
            raw = fh.read(8)
        if len(raw) != 8 or struct.unpack("<Q", raw)[0] != 2 * l_pac:
            return f"{path} was not built from the genome in {prefix}.ann (its sequence length differs)"
    return None


def bwa_contigs(prefix: str | os.PathLike) -> list[tuple[str, int]]:
    """The (name, length) of each sequence in a bwa index, from ``PREFIX.ann``.

    Also checks that ``PREFIX.amb .bwt .pac .sa`` exist and that their headers and sizes agree with the
    .ann (a mix of two builds, or a build that stopped half-way, is refused).

    Args:
        prefix: the index prefix: the FASTA path ``bwa index`` was given (its files are PREFIX.amb, ...).

    Raises:
        InputError: ``FILE: ...`` naming the missing, unreadable, garbled or mismatched file.
    """
    prefix = os.fspath(prefix)
    hint = ""
    if prefix.endswith(BWA_SUFFIXES):
        hint = f"; give the prefix ({os.path.splitext(prefix)[0]}), not one of its files"
    for suffix in BWA_SUFFIXES:
        path = Path(prefix + suffix)
        if not path.is_file():
            raise InputError(f"{path}: no such file (a bwa index is {prefix}{{{','.join(BWA_SUFFIXES)}}}, "
                             f"made by `bwa index {prefix}`){hint}")
    try:
        l_pac, contigs = _read_ann(Path(prefix + ".ann"))
        mismatch = _bwa_mismatch(prefix, l_pac, len(contigs))
    except OSError as e:
        raise InputError(f"{e.filename or prefix}: cannot read: {e.strerror or e}") from None
    if mismatch:
        raise InputError(f"{mismatch}; rebuild it: `{BWA_BUILD}`")
    return contigs


def _first_difference(index: Sequence[tuple[str, int]], reference: Sequence[_Contig]) -> str | None:
    """Where the index's contigs first part from the reference's, in words; None when they agree."""
    for i, ((name, length), contig) in enumerate(zip(index, reference)):
        if name != contig.name or length != contig.length:
            return (f"contig {i + 1} is '{name}' ({length} bp) in the index but '{contig.name}' "
                    f"({contig.length} bp) in the reference")
    if len(index) < len(reference):
        missing = reference[len(index)]
        return (f"it holds {len(index)} contigs, the reference {len(reference)}: contig {len(index) + 1}, "
                f"'{missing.name}', is not in the index")
    if len(index) > len(reference):
        return (f"it holds {len(index)} contigs, the reference {len(reference)}: its contig {len(reference) + 1}, "
                f"'{index[len(reference)][0]}', is not in the reference")
    return None


def _minimap2_problem(header: MmiHeader, contigs: Sequence[_Contig]) -> str | None:
    rebuild = f"rebuild it: `{MINIMAP2_BUILD}`"
    long_name = next((c.name for c in contigs if len(c.name.encode()) > _MAX_NAME), None)
    if long_name is not None:
        return (f"the reference's contig '{long_name[:40]}...' has a name over {_MAX_NAME} bytes, "
                "which a minimap2 index cannot hold (it cuts such names)")
    diff = _first_difference(header.contigs, contigs)
    if diff is not None:
        if len(header.contigs) < len(contigs) and all(
            (c.name, c.length) == got for c, got in zip(contigs, header.contigs)
        ):
            # The first part of a multi-part index looks exactly like this (see the module docstring).
            return (f"{diff}; it was built from part of the reference, or it is a multi-part index "
                    f"(minimap2 -I below the genome's size), which is not supported; {rebuild} "
                    "(with -I above the genome's size if that is over 4 Gb)")
        return f"built from a different FASTA: {diff}; {rebuild}"
    if (header.k, header.w) != (SR_K, SR_W) or header.flag & MMI_HPC:
        built = f"k={header.k}, w={header.w}" + (", homopolymer-compressed (-H)" if header.flag & MMI_HPC else "")
        return (f"built with {built}, but the pipeline aligns short reads (`minimap2 -ax sr`: k={SR_K}, "
                f"w={SR_W}) and minimap2 would silently use the index's k-mers; {rebuild}")
    if header.flag & MMI_NO_SEQ:
        return f"built with --idx-no-seq: it holds no sequence, which `minimap2 -a` needs; {rebuild}"
    return None


def _check_minimap2(index: str | os.PathLike, contigs: Sequence[_Contig]) -> tuple[str, str | None]:
    return os.fspath(index), _minimap2_problem(read_mmi_header(index), contigs)


def _check_bwa(index: str | os.PathLike, contigs: Sequence[_Contig]) -> tuple[str, str | None]:
    diff = _first_difference(bwa_contigs(index), contigs)
    problem = None if diff is None else f"built from a different FASTA: {diff}; rebuild it: `{BWA_BUILD}`"
    return f"{os.fspath(index)}.ann", problem


_CHECKS = {"minimap2": _check_minimap2, "bwa": _check_bwa}


def check_index(aligner: str, index: str | os.PathLike, contigs: Sequence[_Contig], where: str) -> None:
    """Refuse a prebuilt index that the pipeline cannot align the reference's reads with.

    Args:
        aligner: ``minimap2`` (``index`` is a .mmi file) or ``bwa`` (``index`` is the prefix: the FASTA
            path the index was built from, whose files are PREFIX.amb .ann .bwt .pac .sa).
        index: the index as the config gives it.
        contigs: the reference's contigs in order (objects with ``.name`` and ``.length``, such as
            aisci.germline.reference.Contig).
        where: the config file and key, e.g. ``config.yaml: index.minimap2``; every message starts with it.

    Raises:
        InputError: ``WHERE: FILE: ...`` for a missing, unreadable or garbled index file; an index whose
            contigs differ from the reference's (the count, or the first differing name or length);
            a minimap2 index built for other reads than short ones (k/w other than -x sr's, -H),
            without sequence (--idx-no-seq), or in several parts (-I below the genome's size).
    """
    check = _CHECKS.get(aligner)
    if check is None:
        raise InputError(f"{where}: aligner '{aligner}' is not one of {', '.join(_CHECKS)}")
    try:
        shown, problem = check(index, contigs)
    except InputError as e:
        raise InputError(f"{where}: {e}") from None
    if problem:
        raise InputError(f"{where}: {shown}: {problem}")
