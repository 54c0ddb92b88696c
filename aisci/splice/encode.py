"""Sequence encoding for SpliceAI: one-hot codes with the official package's exact byte rules, windows and strands."""

from __future__ import annotations

from typing import Any

import numpy as np

# Official one_hot_encode: upper-case, A,C,G,T,N -> 1,2,3,4,0, every other byte -> byte % 5, then
# row 0 of the map is all zeros. So IUPAC codes are not N: 'R' (82) encodes as C, 'Y' (89) as
# T... We keep that quirk: the scores must equal the official ones on references with IUPAC bases.
_LUT = np.array([b % 5 for b in range(256)], dtype=np.int8)
for _ch, _code in zip("ACGTN", (1, 2, 3, 4, 0)):
    _LUT[ord(_ch)] = _LUT[ord(_ch.lower())] = _code
for _b in range(ord("a"), ord("z") + 1):
    if chr(_b) not in "acgtn":
        _LUT[_b] = _LUT[_b - 32]
# Complement in code space (code 0 = N stays N): A<->T, C<->G. Reversing the one-hot channels of
# A,C,G,T is the complement, which is what the official x[:, ::-1, ::-1] does on the minus strand.
_COMPLEMENT = np.array([0, 4, 3, 2, 1], dtype=np.int8)


def codes(seq: str) -> np.ndarray:
    """int8 codes 0..4 (N, A, C, G, T) of a sequence, by the official byte rules."""
    return _LUT[np.frombuffer(seq.encode("latin-1"), dtype=np.uint8)]


def reverse_complement(c: np.ndarray) -> np.ndarray:
    """Codes of the reverse complement (last axis)."""
    return _COMPLEMENT[c[..., ::-1]]


def one_hot(c: np.ndarray, device: Any = "cpu", dtype: Any = None) -> Any:
    """(..., L) codes -> (..., 4, L) float torch tensor; N (code 0) is all zeros."""
    import torch

    t = torch.as_tensor(np.ascontiguousarray(c), device=device).long()
    eye = torch.zeros(5, 4, device=device, dtype=dtype or torch.float32)
    eye[1:] = torch.eye(4, device=device, dtype=dtype or torch.float32)
    return eye[t].movedim(-1, -2).contiguous()


def fetch_padded(fasta: Any, chrom: str, start: int, end: int) -> str:
    """Bases [start, end) (0-based) of ``chrom``, with N for the part outside the contig."""
    length = fasta.get_reference_length(chrom)
    lo, hi = max(start, 0), min(end, length)
    if hi <= lo:
        return "N" * (end - start)
    return "N" * (lo - start) + fasta.fetch(chrom, lo, hi) + "N" * (end - hi)


def mask_outside(seq: str, start: int, keep_from: int, keep_to: int) -> str:
    """``seq`` starting at 0-based ``start``, with every base outside [keep_from, keep_to) (0-based) set to N."""
    a = min(max(keep_from - start, 0), len(seq))
    b = min(max(keep_to - start, 0), len(seq))
    return "N" * a + seq[a:b] + "N" * (len(seq) - b)
