"""Protein FASTA input, mean-pooled embeddings, saturation mutagenesis tables and their heatmaps."""

from __future__ import annotations

import gzip
import hashlib
import os
import re
import zlib
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Iterator, Sequence

from aisci.errors import InputError
from aisci.fileio import atomic_output, check_readable, is_gzipped
from aisci.names import NAME_MAX, name_problem

# Residue letters an ESM vocabulary holds (the 20 standard, X unknown, B/Z/U/O).
RESIDUES = frozenset("ACDEFGHIKLMNPQRSTVWYXBZUO")
AMINO_ACIDS = "ACDEFGHIKLMNPQRSTVWY"
_UNSAFE = re.compile(r"[^A-Za-z0-9._-]")
MUTAGENESIS_COLUMNS = ("protein", "position", "wt", "mt", "score", "model", "strategy")


@dataclass(frozen=True)
class Protein:
    """One FASTA record: its id (first word of the header), its key (a valid `aisci.names` name) and the residues."""

    id: str
    key: str
    sequence: str
    line: int


def read_proteins(path: str | os.PathLike[str]) -> list[Protein]:
    """Read a protein FASTA, checking every record before anything runs.

    A terminal ``*`` is dropped; lower case is upper-cased. Keys replace characters outside
    ``[A-Za-z0-9._-]`` of the id with ``_`` (``sp|P69905|HBA_HUMAN`` -> ``sp_P69905_HBA_HUMAN``; a long id is
    shortened, `protein_key`). A key names
    files (``results/plm/mutagenesis/{key}.parquet``) and is passed as ``--protein KEY``, so it must be a name
    of `aisci.names` (a letter or digit first: never '-', '.' or '..'): an id whose key
    is not is refused, never silently rewritten. Keys are unique, also ignoring case (case-insensitive file
    systems would give two keys one file).

    Raises:
        InputError: naming the file and line of a file that is not UTF-8 text, an empty or duplicate record, an
            internal stop, a letter that is not a residue, an id that gives no valid key, or two ids sharing a
            key (both lines named).
    """
    path = check_readable(path, "protein FASTA")
    records: list[tuple[str, int, list[str]]] = []
    for n, raw in _lines(path):
        line = raw.strip()
        if not line or line.startswith(";"):
            continue
        if line.startswith(">"):
            name = line[1:].split(maxsplit=1)[0] if line[1:].strip() else ""
            if not name:
                raise InputError(f"{path} line {n}: FASTA header without an id")
            records.append((name, n, []))
        elif not records:
            raise InputError(f"{path} line {n}: sequence before the first '>' header (not FASTA)")
        else:
            records[-1][2].append("".join(line.split()).upper())  # GenBank-style spaced blocks
    if not records:
        raise InputError(f"{path}: contains no FASTA records")
    proteins: list[Protein] = []
    ids: dict[str, int] = {}
    keys: dict[str, tuple[str, str, int]] = {}  # casefolded key -> (key, id, line)
    for name, n, parts in records:
        seq = "".join(parts)
        seq = seq[:-1] if seq.endswith("*") else seq
        where = f"{path} line {n}: {name}"
        if not seq:
            raise InputError(f"{where}: empty sequence")
        bad = sorted(set(seq) - RESIDUES)
        if bad:
            what = "an internal stop '*'" if bad == ["*"] else f"letters that are not residues: {''.join(bad)}"
            raise InputError(f"{where}: {what}")
        if name in ids:
            raise InputError(f"{where}: duplicate id (first at line {ids[name]})")
        key = protein_key(name)
        problem = name_problem(key)
        if problem is not None:
            shown = key if len(key) <= 80 else key[:77] + "..."
            raise InputError(f"{path} line {n}: id {name[:80]!r}: its key {shown!r} (the id with characters outside "
                             f"[A-Za-z0-9._-] as '_') {problem}; rename the protein in the FASTA header")
        other = keys.get(key.casefold())
        if other is not None:
            same = "" if other[0] == key else f" (key {other[0]!r}: keys may not differ only in case)"
            raise InputError(f"{where}: its key {key!r} clashes with {other[1]!r} at line {other[2]}{same}; "
                             "rename one")
        ids[name], keys[key.casefold()] = n, (key, name, n)
        proteins.append(Protein(name, key, seq, n))
    return proteins


def protein_key(protein_id: str) -> str:
    """The file-name key of a FASTA id: characters outside ``[A-Za-z0-9._-]`` as ``_``; an id longer than a name
    may be (GENCODE's pc_translations ids run to ~115 characters of '|'-joined fields) keeps its first 55
    characters and gets '_' + 8 hex digits of its SHA-1, so that keys stay unique and at most 64 characters."""
    key = _UNSAFE.sub("_", protein_id)
    if len(key) > NAME_MAX:
        key = f"{key[:NAME_MAX - 9]}_{hashlib.sha1(protein_id.encode()).hexdigest()[:8]}"
    return key


def _lines(path: Path) -> Iterator[tuple[int, str]]:
    """Numbered lines of a plain or gzip text file, each decoded as UTF-8 (a byte-order mark on line 1 is dropped).

    Raises:
        InputError: naming the file and line that is not UTF-8, or a damaged gzip stream.
    """
    n = 0
    try:
        with (gzip.open(path, "rb") if is_gzipped(path) else open(path, "rb")) as fh:
            for n, raw in enumerate(fh, 1):
                try:
                    yield n, raw.decode("utf-8-sig" if n == 1 else "utf-8")
                except UnicodeDecodeError as exc:
                    raise InputError(f"{path} line {n}: not UTF-8 text (byte {raw[exc.start]:#04x} at column "
                                     f"{exc.start + 1}); a protein FASTA is plain text") from None
    except (OSError, EOFError, zlib.error) as exc:
        raise InputError(f"{path} line {n + 1}: cannot read ({exc})") from None


def select(proteins: Sequence[Protein], key: str, path: str) -> Protein:
    """The protein whose key is ``key``."""
    for p in proteins:
        if p.key == key:
            return p
    raise InputError(f"{path}: no protein with key {key!r}")


def write_embeddings(proteins: Sequence[Protein], vectors: Any, model: str, path: str) -> None:
    """One row per protein: id, length, model and the mean-pooled embedding (fixed-size float32 list)."""
    import numpy as np
    import pyarrow as pa
    import pyarrow.parquet as pq

    vectors = np.asarray(vectors, dtype=np.float32)
    dim = vectors.shape[1]
    flat = pa.array(vectors.reshape(-1), type=pa.float32())
    table = pa.table({
        "protein": pa.array([p.id for p in proteins], pa.string()),
        "length": pa.array([len(p.sequence) for p in proteins], pa.int32()),
        "model": pa.array([model] * len(proteins), pa.string()),
        "embedding": pa.FixedSizeListArray.from_arrays(flat, dim),
    })
    with atomic_output(path) as tmp:
        pq.write_table(table, tmp)


def write_mutagenesis(protein: Protein, scores: Any, model: str, strategy: str, path: str) -> None:
    """All 19 substitutions at every position: ``len(sequence) * 19`` rows (schema: MUTAGENESIS_COLUMNS)."""
    import numpy as np
    import pyarrow as pa
    import pyarrow.parquet as pq

    scores = np.asarray(scores, dtype=np.float64)
    if scores.shape != (len(protein.sequence), len(AMINO_ACIDS)):
        raise ValueError(f"scores of shape {scores.shape} for a protein of {len(protein.sequence)} residues")
    pos, wt, mt, val = [], [], [], []
    for i, w in enumerate(protein.sequence):
        for j, m in enumerate(AMINO_ACIDS):
            if m != w:
                pos.append(i + 1), wt.append(w), mt.append(m), val.append(scores[i, j])
    n = len(pos)
    table = pa.table({
        "protein": pa.array([protein.id] * n, pa.string()),
        "position": pa.array(pos, pa.int32()),
        "wt": pa.array(wt, pa.string()),
        "mt": pa.array(mt, pa.string()),
        "score": pa.array(val, pa.float64()),
        "model": pa.array([model] * n, pa.string()),
        "strategy": pa.array([strategy] * n, pa.string()),
    })
    with atomic_output(path) as tmp:
        pq.write_table(table, tmp)


def plot_heatmap(parquet: str, png: str) -> None:
    """Heatmap of a mutagenesis table: positions across, the 20 residues down, wild type outlined."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    import numpy as np
    import pyarrow.parquet as pq

    try:
        table = pq.read_table(parquet).to_pydict()
    except (OSError, ValueError) as exc:
        raise InputError(f"{parquet}: cannot read as Parquet ({exc})") from None
    missing = sorted(set(MUTAGENESIS_COLUMNS) - set(table))
    if missing or not table["position"]:
        raise InputError(f"{parquet}: not a mutagenesis table ({'missing ' + ', '.join(missing) if missing else 'no rows'})")
    length = max(table["position"])
    grid = np.full((len(AMINO_ACIDS), length), np.nan)
    wt = ["X"] * length
    for p, w, m, s in zip(table["position"], table["wt"], table["mt"], table["score"]):
        grid[AMINO_ACIDS.index(m), p - 1] = s
        wt[p - 1] = w
    width = min(4 + length * 0.12, 60)
    fig, ax = plt.subplots(figsize=(width, 4.2))
    limit = float(np.nanmax(np.abs(grid))) or 1.0
    image = ax.imshow(grid, aspect="auto", cmap="RdBu", vmin=-limit, vmax=limit, interpolation="nearest")
    for i, w in enumerate(wt):  # wild-type residue of each column
        if w in AMINO_ACIDS:
            ax.add_patch(plt.Rectangle((i - 0.5, AMINO_ACIDS.index(w) - 0.5), 1, 1, fill=False, lw=0.6, color="black"))
    ax.set_yticks(range(len(AMINO_ACIDS)), list(AMINO_ACIDS), fontsize=7)
    step = max(1, length // 40)
    ax.set_xticks(range(0, length, step), [str(i + 1) for i in range(0, length, step)], fontsize=7)
    ax.set_xlabel("position (boxes: wild type)")
    ax.set_title(f"{table['protein'][0]}: {table['model'][0]}, {table['strategy'][0]} (log p(mt) - log p(wt))",
                 fontsize=9)
    fig.colorbar(image, ax=ax, fraction=0.02, pad=0.01)
    fig.tight_layout()
    with atomic_output(png) as tmp:
        fig.savefig(tmp, dpi=110, format="png")
    plt.close(fig)


def translate_annotation(annotation: str, ref: str, out: str, *, first: int | None = None) -> int:
    """Write the protein of every translatable coding transcript as FASTA (``>transcript gene=NAME``).

    Args:
        annotation: GFF3 or GTF with CDS features.
        ref: indexed reference FASTA.
        out: protein FASTA to write.
        first: stop after this many proteins (file order); all when None.

    Returns:
        The number of proteins written (a transcript whose CDS reads into a stop at once is left out).
    """
    import pysam

    from aisci.protein.consequence import ModelCache
    from aisci.protein.transcripts import load_transcripts
    from aisci.gff import normalise_chrom

    transcripts = load_transcripts(annotation)
    try:
        fasta = pysam.FastaFile(ref)
    except (OSError, ValueError) as exc:
        raise InputError(f"{ref}: cannot open as an indexed FASTA ({exc})") from None
    cache = ModelCache(fasta)
    n = 0
    with atomic_output(out) as tmp, open(tmp, "w") as fh:
        for tx in transcripts:
            if first is not None and n >= first:
                break
            if not tx.coding or not tx.translatable:
                continue
            chrom = tx.chrom if tx.chrom in cache.contigs else normalise_chrom(tx.chrom, fasta.references[0])
            if chrom not in cache.contigs:
                raise InputError(f"{annotation}: transcript {tx.id} lies on {tx.chrom}, which {ref} lacks")
            protein = cache.model(tx, chrom).wt.rstrip("*")
            if protein:
                fh.write(f">{tx.id} gene={tx.gene}\n")
                fh.writelines(protein[i:i + 60] + "\n" for i in range(0, len(protein), 60))
                n += 1
    return n
