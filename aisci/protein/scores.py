"""What a protein language model's scoring returns, shared by the ESM (`aisci.protein.plm`) and UniRep
(`aisci.protein.unirep`) engines: the score of a pair and the cost of a call."""

from __future__ import annotations

from dataclasses import dataclass

AMINO_ACIDS = "ACDEFGHIKLMNPQRSTVWY"


@dataclass(frozen=True)
class Score:
    """The score of one (wild type, mutant) pair.

    ``window_start``/``window_end`` are the 0-based, end-exclusive slice of the wild type the model saw
    (``wt[window_start:window_end]``; for per-position windows, see `score_variants`, their union);
    ``positions`` are the 0-based indices of the changed wild-type residues (empty for a pure
    insertion and for identical proteins, which score 0.0 with no forward pass and window 0..0).
    """

    score: float
    strategy: str
    window_start: int
    window_end: int
    positions: tuple[int, ...]


@dataclass
class ForwardStats:
    """What a call cost: ``requested`` forwards the variants needed counted per variant (duplicates
    included), ``forwards`` distinct sequences run through the model, in ``batches`` batches, plus
    ``filler`` rows that only fill a batch up to its fixed size (`_Engine.forwards`)."""

    requested: int = 0
    forwards: int = 0
    batches: int = 0
    filler: int = 0
