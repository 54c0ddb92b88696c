"""Protein language model scores of amino-acid changes with ESM: masked marginals, pseudo-log-likelihoods, embeddings.

A UniRep model (`aisci.protein.unirep`, left to right) takes the same calls: `score_variants`, `saturation` and
`embed` hand it to that module, which scores every change as log p(mutant) - log p(wild type) whatever
strategy is asked ("autoregressive" in the results).

The strategies follow ESM's examples/variant-prediction/predict.py (Meier et al. 2021), natural log:

* wt-marginals: one forward pass of the wild type; score = sum over changed positions i of
  log p(mut_i | wt) - log p(wt_i | wt).
* masked-marginals: for each changed position i, a forward pass of the wild type with i masked;
  score = sum over i of log p(mut_i | wt, i masked) - log p(wt_i | wt, i masked).
* pseudo-ppl: PLL(mut) - PLL(wt), PLL(s) = sum over every residue j of log p(s_j | s, j masked)
  (one forward per residue; unlike predict.py's loop, every residue is masked, the last one included).
  Used for every pair whose proteins differ in length. Fewer residues means fewer negative terms, so
  PLL differences between proteins of different lengths carry that length difference.

Forward passes are collected first and deduplicated by content -- a (window sequence, masked position)
is run once however many variants need it -- then run in batches of windows of one padded width, with
attention masks (ESM's token-dropout rescaling counts the mask tokens per sequence over its attention
mask, so a padded batch gives the unpadded results). A window's numbers depend on that window alone, not
on what else a run scores: a run over part of the variants (a scatter job, `aisci.gather`) gives the
whole run's scores bit for bit (`_Engine.forwards` says how).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from aisci.errors import InputError
from aisci.progress import Progress
from aisci.protein.scores import AMINO_ACIDS, ForwardStats, Score  # noqa: F401 (the module's interface)

STRATEGIES = ("wt-marginals", "masked-marginals", "pseudo-ppl")
_NONE = -1  # "no masked position" in a forward's key
WIDTH_STEP = 32  # batches are padded to a multiple of this many tokens (`padded_width`)


def load(model_dir: Any, *, device: Any = "auto", half: bool | str = False, name: str | None = None) -> Any:
    """Load the model of a folder, ESM (`aisci.protein.esm.load_esm`) or UniRep (`aisci.protein.unirep.load_unirep`)."""
    from aisci.protein import unirep

    if unirep.is_unirep_dir(model_dir):
        return unirep.load_unirep(model_dir, device=device, half=half, name=name)
    from aisci.protein.esm import load_esm

    return load_esm(model_dir, device=device, half=half, name=name)


def is_unirep(bundle: Any) -> bool:
    """True for a loaded UniRep model: every change is scored left to right, whatever the strategy asked."""
    return getattr(bundle, "family", "esm") == "unirep"


def padded_width(residues: int) -> int:
    """Tokens per sequence of the batch a window of ``residues`` is run in: <cls>, the residues, <eos> and
    at least one padding token, rounded up to a multiple of WIDTH_STEP.

    A function of the window's own length, so its batch has the same shape in every run. The padding token
    keeps the attention mask from being all ones: transformers drops such a mask and runs SDPA without one,
    another kernel whose sums differ in the last bits.
    """
    return -(-(residues + 3) // WIDTH_STEP) * WIDTH_STEP


def window_for(length: int, start: int, end: int, window: int) -> tuple[int, int]:
    """The slice of a protein the model sees when scoring the change of residues ``start:end``.

    Rule: a protein of at most ``window`` residues is seen whole, ``(0, length)``. A longer one is cut into
    tiles of ``window`` residues starting at 0, step, 2*step, ... (step = window // 2, half overlap), the last
    tile ending at the protein's end (start length - window). Of the tiles that hold the whole span, the one
    whose centre is nearest the span's centre is taken (the earlier on a tie), so the variant is at least a
    quarter window from a cut end unless the protein ends there. A span no tile holds (longer than about
    half a window) gets a window centred on it, clamped to the protein. Saturation scans therefore need only
    about 2 * length / window distinct windows.

    Args:
        length: residues in the protein.
        start: first changed residue, 0-based.
        end: one past the last changed residue (``end == start`` for an insertion before ``start``).
        window: residues per forward pass (`EsmBundle.window`).

    Returns:
        ``(window_start, window_end)``, 0-based, end-exclusive.

    Raises:
        ValueError: on a window below 1 or a span outside the protein.
    """
    if window < 1 or not 0 <= start <= end <= length:
        raise ValueError(f"window_for({length}, {start}, {end}, {window}): span outside the protein or no window")
    if length <= window:
        return 0, length
    step, last = max(1, window // 2), length - window
    best: tuple[int, int] | None = None
    for tile in [*range(0, last, step), last]:
        if tile <= start and end <= tile + window:
            off = abs(2 * tile + window - start - end)  # twice the distance between the centres
            if best is None or off < best[0]:
                best = (off, tile)
    tile = best[1] if best else min(max((start + end - window) // 2, 0), last)
    return tile, tile + window


def score_variants(bundle: Any, pairs: Sequence[tuple[str, str]], strategy: str, *, batch_size: int = 16,
                   stats: ForwardStats | None = None) -> list[Score]:
    """Score (wild type, mutant) protein pairs with the ESM model of ``bundle``.

    Pairs of equal length are substitutions at the positions that differ, scored with ``strategy``
    (with "pseudo-ppl", every pair is scored with it). Pairs of different lengths are scored with
    pseudo-ppl: the changed spans are what remains after removing the common prefix and suffix.
    Windows (`window_for`): substitutions use the window holding all changed positions, or, when they
    are spread over more than one window, each position its own window. Pseudo-ppl picks the wild-type
    window around the changed span with room for an insertion, and the mutant window covers the same
    flanking residues; when the change does not fit with its flanks both windows start at
    max(0, min(first change - window // 2, shorter length - window)) and run a window or to the end.

    Args:
        bundle: a loaded model (`aisci.protein.esm.load_esm`).
        pairs: (wild-type protein, mutant protein), 1-letter residues without '*'.
        strategy: one of STRATEGIES.
        batch_size: sequences per forward pass.
        stats: filled in with the forward passes this call ran, when given.

    Returns:
        One `Score` per pair, in order.

    Raises:
        InputError: on an unknown strategy, a batch size below 1, an empty wild type or a letter the
            model's vocabulary does not hold (naming the pair and residue).
    """
    if is_unirep(bundle):
        from aisci.protein import unirep

        if strategy not in (*STRATEGIES, unirep.STRATEGY):
            raise InputError(f"strategy {strategy!r}: expected one of {', '.join(STRATEGIES)} or {unirep.STRATEGY}")
        return unirep.score_pairs(bundle, pairs, batch_size=batch_size, stats=stats)
    if strategy not in STRATEGIES:
        raise InputError(f"strategy {strategy!r}: expected one of {', '.join(STRATEGIES)}")
    engine = _Engine(bundle, stats)
    plans = []
    for n, (wt, mut) in enumerate(pairs):
        engine.check(wt, f"pairs[{n}] wild type", empty_ok=False)
        engine.check(mut, f"pairs[{n}] mutant", empty_ok=True)
        plans.append(_plan(engine, wt, mut, strategy))
    values = engine.run(batch_size)
    return [Score(score=float(sum(sign * values[slot] for slot, sign in terms)), strategy=used,
                  window_start=span[0], window_end=span[1], positions=positions)
            for used, span, positions, terms in plans]


def saturation(bundle: Any, protein: str, strategy: str = "wt-marginals", *, batch_size: int = 16,
               stats: ForwardStats | None = None) -> Any:
    """Scores of every single substitution of ``protein`` (deep mutational scan in silico).

    Each position uses ``window_for(len(protein), i, i + 1, bundle.window)``, so entry [i, j] equals
    `score_variants` of the substitution of residue i by AMINO_ACIDS[j]; the wild-type column is 0.

    Args:
        bundle: a loaded model.
        protein: 1-letter residues.
        strategy: one of STRATEGIES (pseudo-ppl costs a window of forwards per substitution).
        batch_size: sequences per forward pass.
        stats: filled in with the forward passes this call ran, when given.

    Returns:
        numpy float64 array of shape (len(protein), 20), columns in AMINO_ACIDS order.

    Raises:
        InputError: as `score_variants`.
    """
    import numpy as np

    if is_unirep(bundle):
        from aisci.protein import unirep

        if strategy not in (*STRATEGIES, unirep.STRATEGY):
            raise InputError(f"strategy {strategy!r}: expected one of {', '.join(STRATEGIES)} or {unirep.STRATEGY}")
        return unirep.saturation(bundle, protein, batch_size=batch_size, stats=stats)
    if strategy not in STRATEGIES:
        raise InputError(f"strategy {strategy!r}: expected one of {', '.join(STRATEGIES)}")
    if strategy == "pseudo-ppl":
        engine = _Engine(bundle, None)
        engine.check(protein, "protein", empty_ok=False)
        pairs = [(protein, protein[:i] + aa + protein[i + 1:]) for i in range(len(protein)) for aa in AMINO_ACIDS]
        scores = score_variants(bundle, pairs, strategy, batch_size=batch_size, stats=stats)
        return np.array([s.score for s in scores], dtype=np.float64).reshape(len(protein), len(AMINO_ACIDS))
    engine = _Engine(bundle, stats)
    engine.check(protein, "protein", empty_ok=False)
    aa_ids = [engine.ids[a] for a in AMINO_ACIDS]
    mut_slots = np.zeros((len(protein), len(AMINO_ACIDS)), dtype=np.int64)
    wt_slots = np.zeros((len(protein), 1), dtype=np.int64)
    for i, res in enumerate(protein):
        ws, we = window_for(len(protein), i, i + 1, bundle.window)
        win = engine.window(protein, ws, we)
        masked = i - ws if strategy == "masked-marginals" else _NONE
        mut_slots[i] = [engine.slot(win, masked, i - ws, t) for t in aa_ids]
        wt_slots[i, 0] = engine.slot(win, masked, i - ws, engine.ids[res])
        engine.requested(len(AMINO_ACIDS) - 1)  # each substitution at i needs this forward
    values = engine.run(batch_size)
    return values[mut_slots] - values[wt_slots]


def embed(bundle: Any, proteins: Sequence[str], *, batch_size: int = 8, stats: ForwardStats | None = None) -> Any:
    """Mean of the last hidden state (after ESM's final layer norm) over each protein's residues.

    A protein longer than the window takes each residue's vector from the window ``window_for(L, i, i + 1,
    window)`` gives it (the tiles of that rule), then averages over all residues.

    Args:
        bundle: a loaded model.
        proteins: 1-letter residues.
        batch_size: sequences per forward pass.
        stats: filled in with the forward passes this call ran, when given.

    Returns:
        numpy float32 array of shape (len(proteins), hidden size).

    Raises:
        InputError: on an empty protein or an unknown letter.
    """
    import numpy as np

    if is_unirep(bundle):
        from aisci.protein import unirep

        return unirep.embed(bundle, proteins, stats=stats)
    engine = _Engine(bundle, stats)
    uses: dict[str, list[tuple[int, int, int]]] = {}  # window -> (protein, first row, end row)
    for n, protein in enumerate(proteins):
        engine.check(protein, f"proteins[{n}]", empty_ok=False)
        i = 0
        while i < len(protein):
            ws, we = window_for(len(protein), i, i + 1, bundle.window)
            j = i + 1  # residues that take the same window form a run
            while j < len(protein) and window_for(len(protein), j, j + 1, bundle.window) == (ws, we):
                j += 1
            uses.setdefault(engine.window(protein, ws, we), []).append((n, i - ws, j - ws))
            engine.requested()
            i = j
    hidden = bundle.model.config.hidden_size
    sums = np.zeros((len(proteins), hidden), dtype=np.float64)
    for chunk, states in engine.forwards(sorted(uses, key=lambda w: (len(w), w)), batch_size, hidden_states=True):
        states = states.float().cpu().numpy()
        for win, state in zip(chunk, states):
            for n, lo, hi in uses[win]:
                sums[n] += state[lo + 1:hi + 1].sum(axis=0)  # +1: <cls> is token 0
    lengths = np.array([max(len(p), 1) for p in proteins], dtype=np.float64)[:, None]
    return (sums / lengths).astype(np.float32)


def _plan(engine: _Engine, wt: str, mut: str, strategy: str) -> tuple[str, tuple[int, int], tuple[int, ...], list]:
    """(strategy used, window span, changed positions, [(slot, sign), ...]) of one pair."""
    import numpy as np

    window = engine.bundle.window
    if len(wt) == len(mut) and strategy != "pseudo-ppl":
        changed = [int(i) for i in np.flatnonzero(np.frombuffer(wt.encode(), dtype=np.uint8)
                                                  != np.frombuffer(mut.encode(), dtype=np.uint8))]
        if not changed:
            return strategy, (0, 0), (), []
        ws, we = window_for(len(wt), changed[0], changed[-1] + 1, window)
        spans = {i: (ws, we) for i in changed}
        if changed[0] < ws or changed[-1] >= we:  # spread over more than a window: one window each
            spans = {i: window_for(len(wt), i, i + 1, window) for i in changed}
        terms, keys = [], set()
        for i, (s, e) in spans.items():
            win = engine.window(wt, s, e)
            masked = i - s if strategy == "masked-marginals" else _NONE
            keys.add((win, masked))
            terms += [(engine.slot(win, masked, i - s, engine.ids[mut[i]]), 1.0),
                      (engine.slot(win, masked, i - s, engine.ids[wt[i]]), -1.0)]
        engine.requested(len(keys))
        starts, ends = zip(*spans.values())
        return strategy, (min(starts), max(ends)), tuple(changed), terms
    if wt == mut:
        return "pseudo-ppl", (0, 0), (), []
    a = 0
    while a < min(len(wt), len(mut)) and wt[a] == mut[a]:
        a += 1
    s = 0
    while s < min(len(wt), len(mut)) - a and wt[-1 - s] == mut[-1 - s]:
        s += 1
    (ws, we), (ms, me) = _pll_windows(len(wt), len(mut), a, len(wt) - s, len(mut) - s, window)
    terms = _pll_terms(engine, engine.window(mut, ms, me), 1.0) + _pll_terms(engine, engine.window(wt, ws, we), -1.0)
    return "pseudo-ppl", (ws, we), tuple(range(a, len(wt) - s)), terms


def _pll_windows(lw: int, lm: int, a: int, bw: int, bm: int, window: int) -> tuple[tuple[int, int], tuple[int, int]]:
    """Wild-type and mutant windows with the same flanks around changed spans a:bw (wt) and a:bm (mut)."""
    if lw <= window and lm <= window:
        return (0, lw), (0, lm)
    grow = max(0, lm - lw)
    if window - grow >= 1:
        ws, we = window_for(lw, a, bw, window - grow)
        if ws <= a and bw <= we:
            return (ws, we), (ws, we + lm - lw)
    ws = max(0, min(a - window // 2, min(lw, lm) - window))
    return (ws, min(ws + window, lw)), (ws, min(ws + window, lm))


def _pll_terms(engine: _Engine, win: str, sign: float) -> list[tuple[int, float]]:
    terms = []
    for j, res in enumerate(win):
        terms.append((engine.slot(win, j, j, engine.ids[res]), sign))
        engine.requested()
    return terms


class _Engine:
    """Collects the log-probabilities scores need, runs each distinct forward pass once, in batches."""

    def __init__(self, bundle: Any, stats: ForwardStats | None) -> None:
        self.bundle = bundle
        self.stats = stats if stats is not None else ForwardStats()
        vocab = bundle.tokenizer.get_vocab()
        self.ids = {t: i for t, i in vocab.items() if len(t) == 1 and t.isalpha() and t.isupper()}
        self.cls, self.eos = vocab["<cls>"], vocab["<eos>"]
        self.pad, self.mask = vocab["<pad>"], vocab["<mask>"]
        self.slots: dict[tuple[str, int, int, int], int] = {}
        self.by_key: dict[tuple[str, int], list[tuple[int, int, int]]] = {}
        self._windows: dict[tuple[str, int, int], str] = {}
        self._checked: set[str] = set()

    def check(self, seq: Any, what: str, *, empty_ok: bool) -> None:
        if not isinstance(seq, str):
            raise InputError(f"{what}: expected a protein string, got {type(seq).__name__}")
        if not seq and not empty_ok:
            raise InputError(f"{what}: empty protein")
        if seq in self._checked:
            return
        if not set(seq) <= self.ids.keys():
            i = next(i for i, res in enumerate(seq) if res not in self.ids)
            raise InputError(f"{what}: {seq[i]!r} at residue {i + 1} is not a residue letter of the model's "
                             f"vocabulary ({''.join(sorted(self.ids))})")
        self._checked.add(seq)

    def window(self, seq: str, start: int, end: int) -> str:
        """seq[start:end], one string object per distinct window (cheap dictionary keys)."""
        key = (seq, start, end)
        if key not in self._windows:
            self._windows[key] = seq[start:end]
        return self._windows[key]

    def slot(self, win: str, masked: int, row: int, token: int) -> int:
        """Index of log p(token at residue ``row`` | ``win`` with residue ``masked`` masked) in run()'s result."""
        k = (win, masked, row, token)
        n = self.slots.get(k)
        if n is None:
            n = self.slots[k] = len(self.slots)
            self.by_key.setdefault((win, masked), []).append((row, token, n))
        return n

    def requested(self, n: int = 1) -> None:
        self.stats.requested += n

    def run(self, batch_size: int) -> Any:
        """Run every distinct forward once; return the log-probabilities indexed by slot (float64 numpy)."""
        import numpy as np
        import torch

        values = np.zeros(len(self.slots), dtype=np.float64)
        keys = sorted(self.by_key, key=lambda k: (len(k[0]), k))
        for chunk, hidden in self.forwards(keys, batch_size):
            # (sequence in batch, token position (+1: <cls> is token 0), vocabulary token, slot) of every value wanted
            at, rows, tokens, slots = zip(*[(n, row + 1, token, slot) for n, key in enumerate(chunk)
                                            for row, token, slot in self.by_key[key]])
            with torch.inference_mode():  # the LM head over the whole batch: its shape too must not depend on the rest
                lp = torch.log_softmax(self.bundle.model.lm_head(hidden).float(), dim=-1)
                values[list(slots)] = lp[list(at), list(rows), list(tokens)].double().cpu().numpy()
        return values

    def forwards(self, keys: list, batch_size: int, hidden_states: bool = False) -> Any:
        """Yield (keys, last hidden states (batch_size, width, hidden) on the device) per batch of windows.

        ``keys`` are (window, masked position) pairs, or windows alone with ``hidden_states``; the first
        ``len(keys)`` rows of a batch are theirs. Floating-point sums come out differently when a kernel
        sees another shape (GEMM, attention and their CUDA algorithms are chosen by shape; on the CPU, scores
        of one variant differed by ~1e-7 between runs over different sets of variants). So that a window's
        numbers depend on that window alone, every batch of it has one shape: windows of one
        `padded_width` (a function of their own length) only, always ``batch_size`` rows (the last batch
        of a width filled up with copies of its last row) and always an attention mask.
        """
        import numpy as np
        import torch

        if not isinstance(batch_size, int) or batch_size < 1:
            raise InputError(f"batch size {batch_size!r}: must be a positive integer")
        lut = np.full(256, self.pad, dtype=np.int64)
        for letter, i in self.ids.items():
            lut[ord(letter)] = i
        dev = self.bundle.device
        progress = Progress(f"{self.bundle.name} forward passes", len(keys), "sequences")
        by_width: dict[int, list] = {}
        for key in keys:
            by_width.setdefault(padded_width(len(key if hidden_states else key[0])), []).append(key)
        for width, same in sorted(by_width.items()):
            for b in range(0, len(same), batch_size):
                chunk = same[b:b + batch_size]
                tokens = np.full((batch_size, width), self.pad, dtype=np.int64)
                attention = np.zeros((batch_size, width), dtype=np.int64)
                for n, key in enumerate(chunk):
                    win = key if hidden_states else key[0]
                    tokens[n, 0], tokens[n, len(win) + 1] = self.cls, self.eos
                    tokens[n, 1:len(win) + 1] = lut[np.frombuffer(win.encode("ascii"), dtype=np.uint8)]
                    attention[n, :len(win) + 2] = 1
                    if not hidden_states and key[1] != _NONE:
                        tokens[n, key[1] + 1] = self.mask
                tokens[len(chunk):], attention[len(chunk):] = tokens[len(chunk) - 1], attention[len(chunk) - 1]
                ids = torch.from_numpy(tokens).to(dev)
                mask = torch.from_numpy(attention).to(dev)
                with torch.inference_mode():
                    hidden = self.bundle.model.esm(input_ids=ids, attention_mask=mask).last_hidden_state
                self.stats.forwards += len(chunk)
                self.stats.filler += batch_size - len(chunk)
                self.stats.batches += 1
                progress.update(len(chunk))
                yield chunk, hidden
        progress.finish()
