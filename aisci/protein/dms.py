"""Deep-mutational-scan benchmark: score every mutant of a DMS table zero-shot and rank-correlate with the measurements.

Two table layouts are read (plain or gzipped CSV):

* ProteinGym's: ``mutant`` such as ``A24G`` or ``A24G:D40N`` (1-based positions on the FASTA's sequence, the
  wild-type residue first) and ``DMS_score``; a row whose ``mutant`` is empty takes ``mutated_sequence``
  (ProteinGym's indel tables).
* mavenn's (``mavenn.load_example_dataset``, e.g. GB1 of Olson et al. 2014): ``x`` the variant's whole sequence
  and ``y`` the measurement. The sequences may cover part of the FASTA's protein (GB1's start at residue 2):
  the offset is the one where the table's sequences differ least from the FASTA, and must be unique.

A wild-type residue that disagrees with the sequence, a position beyond its end, or an unparsable mutant is
refused naming the file, the line and the mutant. Nonsense mutants (a '*', as in mavenn's Abeta42 table) are
read; `aisci plm benchmark` leaves them out, as ProteinGym does: a protein language model scores proteins, not
stop codons. A letter the model cannot read is named with the table's line.
"""

from __future__ import annotations

import csv
import gzip
import io
import os
import re
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from aisci.errors import InputError

_MUTATION = re.compile(r"^([A-Z])([1-9][0-9]*)([A-Z*])$")
_PAIR = re.compile(r"^pairs\[(\d+)\] (?:wild type|mutant): ")


@dataclass
class Mutant:
    """One row of a DMS table: its label (A24G:D40N), sequence, measured value and its line in the file."""

    label: str
    sequence: str
    measured: float
    line: int
    mutations: int


def read_dms(path: str | os.PathLike[str], wildtype: str) -> list[Mutant]:
    """Every mutant of a ProteinGym or mavenn table, checked against the wild type (see the module docstring).

    Raises:
        InputError: naming the file and line: unreadable file, unknown layout, a bad mutant, a wild-type residue
            that disagrees with the sequence, a position beyond its end, a measurement that is not a number.
    """
    path = Path(path)
    try:
        raw = path.read_bytes()
        text = (gzip.decompress(raw) if raw[:2] == b"\x1f\x8b" else raw).decode("utf-8")
    except (OSError, EOFError, gzip.BadGzipFile, UnicodeDecodeError) as exc:
        raise InputError(f"{path}: cannot read the DMS table ({exc})") from None
    reader = csv.DictReader(io.StringIO(text))
    fields = reader.fieldnames or []
    if "DMS_score" in fields and ("mutant" in fields or "mutated_sequence" in fields):
        return _proteingym(path, reader, wildtype)
    if "x" in fields and "y" in fields:
        return _mavenn(path, reader, wildtype)
    raise InputError(f"{path}: not a DMS table: expected ProteinGym's columns mutant and DMS_score, or mavenn's x and "
                     f"y (found {', '.join(fields) or 'no header'})")


def _number(path: Path, line: int, column: str, value: str | None) -> float:
    try:
        number = float(value)  # type: ignore[arg-type]
    except (TypeError, ValueError):
        raise InputError(f"{path} line {line}: {column} {value!r} is not a number") from None
    if not np.isfinite(number):
        raise InputError(f"{path} line {line}: {column} {value!r} is not a finite number")
    return number


def _proteingym(path: Path, reader: csv.DictReader, wt: str) -> list[Mutant]:
    out = []
    for line, row in enumerate(reader, 2):
        label = (row.get("mutant") or "").strip()
        if not label:
            seq = (row.get("mutated_sequence") or "").strip()
            if not seq:
                raise InputError(f"{path} line {line}: neither mutant nor mutated_sequence is given")
            out.append(Mutant(seq, seq, _number(path, line, "DMS_score", row.get("DMS_score")), line, -1))
            continue
        seq = list(wt)
        seen = set()
        for part in label.split(":"):
            m = _MUTATION.match(part)
            if not m:
                raise InputError(f"{path} line {line}: mutant {label!r}: {part!r} is not a substitution such as A24G")
            ref, pos, alt = m.group(1), int(m.group(2)), m.group(3)
            if pos > len(wt):
                raise InputError(f"{path} line {line}: mutant {label!r}: position {pos} is beyond the end of the "
                                 f"{len(wt)}-residue wild type")
            if wt[pos - 1] != ref:
                raise InputError(f"{path} line {line}: mutant {label!r}: the wild type has {wt[pos - 1]} at {pos}, "
                                 f"not {ref} (is the FASTA the table's wild type, numbered from 1?)")
            if pos in seen:
                raise InputError(f"{path} line {line}: mutant {label!r}: position {pos} is changed twice")
            seen.add(pos)
            seq[pos - 1] = alt
        out.append(Mutant(label, "".join(seq), _number(path, line, "DMS_score", row.get("DMS_score")), line,
                          len(seen)))
    return out


def _mavenn(path: Path, reader: csv.DictReader, wt: str) -> list[Mutant]:
    rows = [(line, (row.get("x") or "").strip(), row.get("y")) for line, row in enumerate(reader, 2)]
    if not rows:
        return []
    width = len(rows[0][1])
    if width == 0 or width > len(wt):
        raise InputError(f"{path} line 2: sequence x of {width} residues does not fit the {len(wt)}-residue wild type")
    sample = [x for _, x, _ in rows[:200] if len(x) == width]
    costs = [sum(sum(a != b for a, b in zip(x, wt[o:o + width])) for x in sample) for o in range(len(wt) - width + 1)]
    best = min(costs)
    if costs.count(best) > 1:
        raise InputError(f"{path}: the table's {width}-residue sequences fit the wild type at several offsets")
    offset = costs.index(best)
    out = []
    for line, x, y in rows:
        if len(x) != width:
            raise InputError(f"{path} line {line}: sequence x has {len(x)} residues, the table's others {width}")
        changes = [f"{wt[offset + i]}{offset + i + 1}{a}" for i, (a, b) in enumerate(zip(x, wt[offset:])) if a != b]
        out.append(Mutant(":".join(changes) or "WT", wt[:offset] + x + wt[offset + width:], _number(path, line, "y", y),
                          line, len(changes)))
    return out


def spearman(x: Any, y: Any) -> float:
    """Spearman's rank correlation (ties get their average rank); nan when either side is constant."""
    rx, ry = _ranks(np.asarray(x, dtype=np.float64)), _ranks(np.asarray(y, dtype=np.float64))
    if len(rx) < 2 or rx.std() == 0 or ry.std() == 0:
        return float("nan")
    return float(np.corrcoef(rx, ry)[0, 1])


def _ranks(values: np.ndarray) -> np.ndarray:
    order = np.argsort(values, kind="mergesort")
    ranks = np.empty(len(values), dtype=np.float64)
    ranks[order] = np.arange(1, len(values) + 1)
    _, inverse, counts = np.unique(values, return_inverse=True, return_counts=True)
    sums = np.bincount(inverse, weights=ranks)
    return (sums / counts)[inverse]


@dataclass
class Result:
    """What `benchmark` measured."""

    scored: int
    spearman: float
    by_mutations: dict[int, tuple[int, float]]  # mutations -> (mutants, rho); -1: given as sequences
    seconds: float

    @property
    def per_second(self) -> float:
        return self.scored / max(self.seconds, 1e-9)


def benchmark(bundle: Any, wildtype: str, mutants: list[Mutant], *, strategy: str = "masked-marginals",
              batch_size: int = 16, out: str | os.PathLike[str] | None = None,
              table: str | os.PathLike[str] = "the DMS table") -> Result:
    """Score every mutant (`aisci.protein.plm.score_variants`), write ``mutant, score, measured`` to ``out``.

    Raises:
        InputError: a mutant with a letter the model cannot read, naming ``table``, the line and the mutant.
    """
    from aisci.fileio import atomic_output
    from aisci.protein.plm import score_variants

    t0 = time.perf_counter()
    try:
        scored = score_variants(bundle, [(wildtype, m.sequence) for m in mutants], strategy, batch_size=batch_size)
    except InputError as exc:
        found = _PAIR.match(str(exc))
        if not found:
            raise
        m = mutants[int(found.group(1))]
        raise InputError(f"{table} line {m.line}: mutant {m.label!r}: {str(exc)[found.end():]}") from None
    scores = np.array([s.score for s in scored], dtype=np.float64)
    seconds = time.perf_counter() - t0
    measured = np.array([m.measured for m in mutants], dtype=np.float64)
    counts = np.array([m.mutations for m in mutants])
    by = {int(k): (int((counts == k).sum()), spearman(scores[counts == k], measured[counts == k]))
          for k in sorted(set(counts.tolist()))}
    if out is not None:
        with atomic_output(Path(out)) as tmp:
            with open(tmp, "w") as fh:
                fh.write("mutant\tscore\tmeasured\n")
                for m, s in zip(mutants, scores):
                    fh.write(f"{m.label}\t{s:.6f}\t{m.measured:g}\n")
    return Result(len(mutants), spearman(scores, measured), by, seconds)
