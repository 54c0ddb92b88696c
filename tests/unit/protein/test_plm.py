"""ESM variant scores (wt-marginals, masked-marginals, pseudo-ppl), saturation and embeddings against a brute force.

The model is a small randomly initialised ESM-2 (rotary, token dropout, the real 33-token vocabulary) with
max_position_embeddings 34, i.e. a 32-residue window, so 100-residue proteins exercise the windowing. The
reference below is written independently of aisci.protein.plm: one unbatched forward per sequence or masked
position, no attention mask, log_softmax indexed directly, its own window rule.
"""

from __future__ import annotations

import json
import math
import random

import numpy as np
import pytest
import torch

from aisci.errors import InputError
from aisci.protein import plm
from aisci.protein.esm import load_esm

VOCAB = ("<cls>", "<pad>", "<eos>", "<unk>", "L", "A", "G", "V", "S", "E", "R", "T", "I", "D", "P", "K", "Q", "N", "F",
         "Y", "M", "H", "W", "C", "X", "B", "U", "Z", "O", ".", "-", "<null_1>", "<mask>")  # ESM's alphabet, in order
TOK = {t: i for i, t in enumerate(VOCAB)}
W = 32  # residues per window of the test model
TOL = 1e-5
# A pseudo-log-likelihood difference sums a log-probability per residue of both windows (~8 in size here, float32:
# each within a few 1e-7 of the brute force's, which runs unpadded): its tolerance grows with the terms summed.
PLL_TOL = 5e-7
AAS = "ACDEFGHIKLMNPQRSTVWY"


def _protein(n: int, seed: int) -> str:
    rng = random.Random(seed)
    return "".join(rng.choice(AAS) for _ in range(n))


SHORT = _protein(24, 1)
LONG = _protein(100, 2)


@pytest.fixture(scope="module")
def bundle(tmp_path_factory):
    """The test model, written with save_pretrained plus the tokenizer files, loaded back with load_esm."""
    from transformers import EsmConfig, EsmForMaskedLM

    torch.manual_seed(5)
    config = EsmConfig(vocab_size=33, hidden_size=32, num_hidden_layers=2, num_attention_heads=4,
                       intermediate_size=64, max_position_embeddings=W + 2, position_embedding_type="rotary",
                       token_dropout=True, emb_layer_norm_before=False, mask_token_id=32, pad_token_id=1,
                       layer_norm_eps=1e-5, initializer_range=0.3, hidden_dropout_prob=0.0,
                       attention_probs_dropout_prob=0.0)
    folder = tmp_path_factory.mktemp("esm") / "esm2_tiny"
    EsmForMaskedLM(config).save_pretrained(folder)
    (folder / "vocab.txt").write_text("\n".join(VOCAB) + "\n")
    (folder / "tokenizer_config.json").write_text(json.dumps({"do_lower_case": False, "tokenizer_class": "EsmTokenizer",
                                                              "model_max_length": 1024}))
    (folder / "special_tokens_map.json").write_text(json.dumps(
        {"cls_token": "<cls>", "eos_token": "<eos>", "mask_token": "<mask>", "pad_token": "<pad>", "unk_token": "<unk>"}))
    return load_esm(folder, device="cpu")


# ---- the independent reference -------------------------------------------------------------------------------

def ref_window(length, start, end, window=W):
    """Half-overlapping tiles, the last one flush with the end; the tile holding the span most centrally."""
    if length <= window:
        return 0, length
    tiles = sorted({min(k * (window // 2), length - window) for k in range(length // (window // 2) + 2)})
    holding = [t for t in tiles if t <= start and end <= t + window]
    if not holding:
        t = min(max(math.floor((start + end - window) / 2), 0), length - window)
        return t, t + window
    best = min(holding, key=lambda t: (abs(t + window / 2 - (start + end) / 2), t))
    return best, best + window


def ref_logprobs(model, seq, masked=None):
    ids = [TOK["<cls>"]] + [TOK[c] for c in seq] + [TOK["<eos>"]]
    if masked is not None:
        ids[masked + 1] = TOK["<mask>"]
    with torch.no_grad():
        return torch.log_softmax(model(input_ids=torch.tensor([ids])).logits[0], dim=-1)


def ref_marginals(model, wt, mut, masked):
    diff = [i for i in range(len(wt)) if wt[i] != mut[i]]
    ws, we = ref_window(len(wt), diff[0], diff[-1] + 1)
    if diff[0] < ws or diff[-1] >= we:
        windows = {i: ref_window(len(wt), i, i + 1) for i in diff}
    else:
        windows = {i: (ws, we) for i in diff}
    total = 0.0
    for i in diff:
        s, e = windows[i]
        lp = ref_logprobs(model, wt[s:e], masked=i - s if masked else None)
        total += float(lp[i - s + 1, TOK[mut[i]]] - lp[i - s + 1, TOK[wt[i]]])
    return total


def ref_pll(model, seq):
    return sum(float(ref_logprobs(model, seq, masked=j)[j + 1, TOK[seq[j]]]) for j in range(len(seq)))


def ref_pseudo_ppl(model, wt, mut):
    """PLL(mut window) - PLL(wt window); both windows keep the same residues around the change."""
    a = 0
    while a < min(len(wt), len(mut)) and wt[a] == mut[a]:
        a += 1
    s = 0
    while s < min(len(wt), len(mut)) - a and wt[len(wt) - 1 - s] == mut[len(mut) - 1 - s]:
        s += 1
    if max(len(wt), len(mut)) <= W:
        return ref_pll(model, mut) - ref_pll(model, wt)
    extra = max(0, len(mut) - len(wt))
    ws, we = ref_window(len(wt), a, len(wt) - s, W - extra)
    assert ws <= a and len(wt) - s <= we  # the cases tested here fit with their flanks
    return ref_pll(model, mut[ws:we + len(mut) - len(wt)]) - ref_pll(model, wt[ws:we])


def sub(seq, changes):
    out = list(seq)
    for i, aa in changes.items():
        out[i] = aa
    return "".join(out)


def other(aa, k=0):
    return [x for x in AAS if x != aa][k]


# ---- windows ---------------------------------------------------------------------------------------------------

def test_window_rule_matches_the_reference_everywhere():
    for length in (1, 31, 32, 33, 47, 100, 1000):
        for window in (32, 33, 1022):
            for start in range(0, length, max(1, length // 40)):
                for span in (0, 1, 3, 17, 40):
                    end = min(start + span, length)
                    assert plm.window_for(length, start, end, window) == ref_window(length, start, end, window)
    assert plm.window_for(100, 0, 1, 32) == (0, 32)  # start of the protein
    assert plm.window_for(100, 99, 100, 32) == (68, 100)  # end
    assert plm.window_for(100, 50, 51, 32) == (32, 64)  # middle: the residue sits 18 into a 32-residue window
    assert plm.window_for(20, 3, 4, 32) == (0, 20)
    with pytest.raises(ValueError):
        plm.window_for(10, 5, 11, 32)


# ---- substitutions ---------------------------------------------------------------------------------------------

@pytest.mark.parametrize("strategy", ["wt-marginals", "masked-marginals"])
def test_substitutions_equal_the_brute_force(bundle, strategy):
    pairs = [
        (SHORT, sub(SHORT, {5: other(SHORT[5])})),  # single missense
        (SHORT, sub(SHORT, {0: other(SHORT[0])})),  # first residue
        (SHORT, sub(SHORT, {7: other(SHORT[7]), 8: other(SHORT[8], 3), 20: other(SHORT[20], 5)})),  # multi-residue
        (LONG, sub(LONG, {0: other(LONG[0])})),  # long protein: window at the start,
        (LONG, sub(LONG, {50: other(LONG[50])})),  # the middle
        (LONG, sub(LONG, {99: other(LONG[99])})),  # and the end
        (LONG, sub(LONG, {40: other(LONG[40]), 45: other(LONG[45])})),  # two changes in one window
        (LONG, sub(LONG, {3: other(LONG[3]), 90: other(LONG[90])})),  # spread over more than a window
    ]
    scores = plm.score_variants(bundle, pairs, strategy)
    for (wt, mut), s in zip(pairs, scores):
        assert s.strategy == strategy
        assert s.score == pytest.approx(ref_marginals(bundle.model, wt, mut, strategy == "masked-marginals"), abs=TOL)
    assert scores[4].window_start == 32 and scores[4].window_end == 64 and scores[4].positions == (50,)
    assert (scores[5].window_start, scores[5].window_end) == (68, 100)
    assert scores[7].positions == (3, 90) and (scores[7].window_start, scores[7].window_end) == (0, 100)


def test_identical_pairs_score_zero_without_a_forward(bundle):
    for strategy in plm.STRATEGIES:
        stats = plm.ForwardStats()
        [s] = plm.score_variants(bundle, [(LONG, LONG)], strategy, stats=stats)
        assert s.score == 0.0 and s.positions == () and stats.forwards == 0


def test_forwards_are_shared_between_variants_of_a_protein(bundle):
    singles = [(SHORT, sub(SHORT, {i: other(SHORT[i], k)})) for i in (2, 2, 9, 9, 9, 15) for k in (0, 4)]
    stats = plm.ForwardStats()
    plm.score_variants(bundle, singles, "wt-marginals", stats=stats)
    assert stats.forwards == 1 and stats.requested == len(singles)
    stats = plm.ForwardStats()
    plm.score_variants(bundle, singles, "masked-marginals", stats=stats)
    assert stats.forwards == 3  # one per distinct masked position
    # long protein: one forward per distinct window
    sites = [0, 1, 10, 24, 25, 40, 50, 57, 60, 80, 99]
    pairs = [(LONG, sub(LONG, {i: other(LONG[i])})) for i in sites]
    stats = plm.ForwardStats()
    plm.score_variants(bundle, pairs, "wt-marginals", stats=stats, batch_size=3)
    assert stats.forwards == len({ref_window(100, i, i + 1) for i in sites}) == 6
    assert stats.batches == 2
    stats = plm.ForwardStats()
    plm.score_variants(bundle, pairs + pairs, "masked-marginals", stats=stats)
    assert stats.forwards == len(sites) and stats.requested == 2 * len(sites)
    # pseudo-ppl: the wild type's masked forwards are run once for both variants
    indels = [(SHORT, SHORT[:4] + SHORT[5:]), (SHORT, SHORT[:10] + "W" + SHORT[10:])]
    stats = plm.ForwardStats()
    plm.score_variants(bundle, indels, "wt-marginals", stats=stats)
    assert stats.forwards == len(SHORT) + (len(SHORT) - 1) + (len(SHORT) + 1)


# ---- length changes: pseudo-ppl ---------------------------------------------------------------------------------

def test_indels_and_pseudo_ppl_equal_the_brute_force(bundle):
    pairs = [
        (SHORT, SHORT[:6] + SHORT[9:]),  # deletion of 3
        (SHORT, SHORT[:12] + "GW" + SHORT[12:]),  # insertion of 2
        (SHORT, SHORT[:5] + "PPPP" + SHORT[7:]),  # delins
        (SHORT, SHORT + "K"),  # extension
        (LONG, LONG[:50] + LONG[52:]),  # long protein: deletion in the middle,
        (LONG, LONG[:95] + "MM" + LONG[95:]),  # insertion near the end,
        (LONG, LONG[:2] + LONG[3:]),  # deletion near the start
    ]
    scores = plm.score_variants(bundle, pairs, "masked-marginals")
    for (wt, mut), s in zip(pairs, scores):
        assert s.strategy == "pseudo-ppl"
        tol = PLL_TOL * min(len(wt) + len(mut), 2 * W)
        assert s.score == pytest.approx(ref_pseudo_ppl(bundle.model, wt, mut), abs=tol)
    assert scores[0].positions == (6, 7, 8) and scores[1].positions == ()
    assert (scores[4].window_start, scores[4].window_end) == (32, 64)
    # same-length pairs under strategy pseudo-ppl
    mut = sub(SHORT, {3: other(SHORT[3])})
    [s] = plm.score_variants(bundle, [(SHORT, mut)], "pseudo-ppl")
    want = ref_pll(bundle.model, mut) - ref_pll(bundle.model, SHORT)
    assert s.strategy == "pseudo-ppl" and s.score == pytest.approx(want, abs=PLL_TOL * 2 * len(SHORT))


def test_changes_longer_than_a_window_still_score(bundle):
    truncated = LONG[:10]  # stop gained early: the wild-type change does not fit a window
    [s] = plm.score_variants(bundle, [(LONG, truncated)], "wt-marginals")
    assert s.score == pytest.approx(ref_pll(bundle.model, truncated) - ref_pll(bundle.model, LONG[:W]),
                                    abs=PLL_TOL * (len(truncated) + W))
    assert (s.window_start, s.window_end) == (0, W)


# ---- batching, saturation, embeddings -------------------------------------------------------------------------

def test_batch_size_does_not_change_results(bundle):
    pairs = [(SHORT, sub(SHORT, {i: other(SHORT[i], i % 7)})) for i in range(0, 24, 3)]
    pairs += [(LONG, sub(LONG, {i: other(LONG[i])})) for i in (5, 33, 70, 98)]
    pairs += [(SHORT[:15], SHORT[:15] + "A"), (SHORT, SHORT[:3] + SHORT[4:])]  # different lengths in one batch
    for strategy in plm.STRATEGIES:
        one = plm.score_variants(bundle, pairs, strategy, batch_size=1)
        seven = plm.score_variants(bundle, pairs, strategy, batch_size=7)
        assert [s.score for s in one] == pytest.approx([s.score for s in seven], abs=TOL)
        assert [(s.window_start, s.window_end) for s in one] == [(s.window_start, s.window_end) for s in seven]


def test_a_score_does_not_depend_on_what_else_the_run_scores(bundle):
    """Bit for bit, not approximately: a scatter job scoring some of the variants must give the whole run's numbers.

    Before batches had one shape per window (`plm.padded_width`, full batches, always a mask), 4 to 7 of 42
    scores of a simulated callset differed by ~1e-7 between a whole run and the same variants in three groups.
    """
    pairs = [(SHORT, sub(SHORT, {i: other(SHORT[i], i % 5)})) for i in range(0, 24, 2)]
    pairs += [(LONG, sub(LONG, {i: other(LONG[i], i % 3)})) for i in (0, 7, 33, 50, 70, 98)]
    pairs += [(LONG, sub(LONG, {3: "W", 90: "W"})), (SHORT[:15], SHORT[:15] + "A"),
              (SHORT[:12], SHORT[:3] + SHORT[4:12]), (SHORT[:9], sub(SHORT[:9], {4: other(SHORT[4])}))]
    groups = [range(0, len(pairs), 3), range(1, len(pairs), 3), range(2, len(pairs), 3)]
    for strategy in ("wt-marginals", "masked-marginals"):  # the two pairs of unequal lengths: pseudo-ppl
        whole = plm.score_variants(bundle, pairs, strategy, batch_size=4)
        for group in groups:
            part = plm.score_variants(bundle, [pairs[i] for i in group], strategy, batch_size=4)
            assert [s.score for s in part] == [whole[i].score for i in group]
        alone = plm.score_variants(bundle, pairs[-1:], strategy, batch_size=4, stats=(stats := plm.ForwardStats()))
        assert alone[0].score == whole[-1].score and stats.forwards + stats.filler == 4 * stats.batches  # full


def test_padded_width_leaves_room_for_a_pad_token():
    assert [plm.padded_width(n) for n in (1, 29, 30, 61, 1022)] == [32, 32, 64, 64, 1056]


def test_plm_score_scattered_over_three_groups_equals_unscattered(sim_data, esm_store, tmp_path):
    """`aisci annotate` + `aisci plm score` of a simulated callset (tabix-indexed), whole and in three groups: one
    boundary inside a deletion, one at a scored missense record (POS == BEG), contigs the VCF lacks. Two groups read
    the whole callset's consequence table, one its own group's. Gathered, the VCF text and the Parquet file are
    the whole run's."""
    import gzip

    import pyarrow.parquet as pq
    import pysam

    from aisci.cli import main
    from aisci.gather import gather_parquet, gather_vcfs

    vcf = str(sim_data.truth_vcfs["S1"])
    model = ["--model", esm_store.model, "--model-store", str(esm_store.path), "--device", "cpu", "--batch-size", "4"]
    annotate = ["annotate", "--vcf", vcf, "--ref", str(sim_data.reference), "--annotation", str(sim_data.annotation)]
    assert main([*annotate, "--out", str(tmp_path / "csq.parquet")]) == 0
    score = ["plm", "score", "--vcf", vcf, *model]
    assert main([*score, "--consequences", str(tmp_path / "csq.parquet"), "--out", str(tmp_path / "whole.vcf.gz"),
                 "--parquet", str(tmp_path / "whole.parquet")]) == 0
    rows = pq.read_table(tmp_path / "whole.parquet").to_pylist()
    scored = [r["pos"] for r in rows if r["score"] is not None and r["chrom"] == "chr1"]
    with pysam.VariantFile(vcf) as v:  # the first deletion after a scored record, and the second scored one after it
        deletion = next((r.pos, r.rlen) for r in v if r.chrom == "chr1" and r.rlen > 1 and r.pos > scored[0])
    at = [p for p in scored if p > deletion[0]][1]
    cut = deletion[0] + 1  # inside the deletion
    groups = [["chr1\t1\t%d" % (cut - 1)], ["chr1\t%d\t%d" % (cut, at - 1)],
              ["chr1\t%d\t150000" % at, "chr2\t1\t150000", "chrM\t1\t16569", "HLA-A*01:01:01:01\t1\t3000"]]
    for n, group in enumerate(groups):
        regions = tmp_path / f"{n}.tsv"
        regions.write_text("".join(f"{line}\t{n:04d}\n" for line in group))
        table = tmp_path / "csq.parquet"
        if n == 2:  # the group's own consequences, as a scattered annotate writes them
            table = tmp_path / "csq.2.parquet"
            assert main([*annotate, "--regions-file", str(regions), "--out", str(table)]) == 0
        assert main([*score, "--consequences", str(table), "--regions-file", str(regions),
                     "--out", str(tmp_path / f"{n}.vcf.gz"), "--parquet", str(tmp_path / f"{n}.parquet")]) == 0
    parts = [pq.read_table(tmp_path / f"{n}.parquet").to_pylist() for n in range(3)]
    assert all(any(r["score"] is not None for r in part) for part in parts)
    assert parts[2][0]["pos"] == at and all(r["pos"] < cut for r in parts[0])
    gather_vcfs([tmp_path / f"{n}.vcf.gz" for n in range(3)], tmp_path / "gathered.vcf.gz")
    gather_parquet([tmp_path / f"{n}.parquet" for n in range(3)], tmp_path / "gathered.parquet")
    assert gzip.open(tmp_path / "gathered.vcf.gz").read() == gzip.open(tmp_path / "whole.vcf.gz").read()
    with pysam.VariantFile(str(tmp_path / "gathered.vcf.gz")) as out:  # the .tbi works; the deletion is there once
        assert [(r.pos, r.rlen) for r in out.fetch("chr1", cut - 1, cut)] == [deletion]
    whole, gathered = pq.read_table(tmp_path / "whole.parquet"), pq.read_table(tmp_path / "gathered.parquet")
    assert gathered.num_rows == len(rows) and gathered.equals(whole, check_metadata=True)
    assert (tmp_path / "gathered.parquet").read_bytes() == (tmp_path / "whole.parquet").read_bytes()


@pytest.mark.parametrize("strategy", ["wt-marginals", "masked-marginals"])
def test_saturation_equals_per_variant_scores(bundle, strategy):
    stats = plm.ForwardStats()
    grid = plm.saturation(bundle, LONG, strategy, batch_size=7, stats=stats)
    assert grid.shape == (100, 20)
    pairs = [(LONG, sub(LONG, {i: aa})) for i in range(100) for aa in plm.AMINO_ACIDS]
    scores = np.array([s.score for s in plm.score_variants(bundle, pairs, strategy)]).reshape(100, 20)
    np.testing.assert_allclose(grid, scores, atol=TOL)
    assert all(grid[i, plm.AMINO_ACIDS.index(LONG[i])] == 0.0 for i in range(100))
    for i in (0, 50, 99):  # spot checks against the brute force
        j = (i * 7) % 20
        if plm.AMINO_ACIDS[j] != LONG[i]:
            want = ref_marginals(bundle.model, LONG, sub(LONG, {i: plm.AMINO_ACIDS[j]}), strategy == "masked-marginals")
            assert grid[i, j] == pytest.approx(want, abs=TOL)
    windows = {ref_window(100, i, i + 1) for i in range(100)}
    assert stats.forwards == (len(windows) if strategy == "wt-marginals" else 100)


def test_saturation_pseudo_ppl_on_a_short_protein(bundle):
    protein = SHORT[:6]
    grid = plm.saturation(bundle, protein, "pseudo-ppl", batch_size=16)
    wt = ref_pll(bundle.model, protein)
    for i, j in ((0, 3), (5, 19), (2, 10)):
        want = 0.0 if plm.AMINO_ACIDS[j] == protein[i] else ref_pll(bundle.model, sub(protein, {i: plm.AMINO_ACIDS[j]})) - wt
        assert grid[i, j] == pytest.approx(want, abs=TOL)


def test_embeddings_equal_a_brute_force_mean(bundle):
    proteins = [SHORT, LONG, SHORT[:5], SHORT]
    stats = plm.ForwardStats()
    got = plm.embed(bundle, proteins, batch_size=3, stats=stats)
    assert got.shape == (4, 32) and got.dtype == np.float32
    for n, protein in enumerate(proteins):
        rows, states = [], {}
        for i in range(len(protein)):
            ws, we = ref_window(len(protein), i, i + 1)
            if (ws, we) not in states:
                ids = torch.tensor([[TOK["<cls>"]] + [TOK[c] for c in protein[ws:we]] + [TOK["<eos>"]]])
                with torch.no_grad():
                    states[ws, we] = bundle.model.esm(input_ids=ids).last_hidden_state[0]
            rows.append(states[ws, we][i - ws + 1])
        np.testing.assert_allclose(got[n], torch.stack(rows).mean(0).numpy(), atol=TOL)
    assert stats.forwards == 1 + len({ref_window(100, i, i + 1) for i in range(100)}) + 1  # SHORT once


# ---- input errors ----------------------------------------------------------------------------------------------

def test_unknown_letters_and_bad_arguments_are_input_errors(bundle):
    with pytest.raises(InputError, match=r"pairs\[1\] mutant: 'J' at residue 3"):
        plm.score_variants(bundle, [(SHORT, SHORT), (SHORT, SHORT[:2] + "J" + SHORT[3:])], "wt-marginals")
    with pytest.raises(InputError, match=r"pairs\[0\] wild type: '\*' at residue 25"):
        plm.score_variants(bundle, [(SHORT + "*", SHORT + "A")], "wt-marginals")
    with pytest.raises(InputError, match="'m' at residue 1"):
        plm.score_variants(bundle, [("mKT", "MKT")], "wt-marginals")
    with pytest.raises(InputError, match="empty protein"):
        plm.score_variants(bundle, [("", "M")], "pseudo-ppl")
    with pytest.raises(InputError, match="strategy 'esm1v'"):
        plm.score_variants(bundle, [(SHORT, SHORT)], "esm1v")
    with pytest.raises(InputError, match="batch size 0"):
        plm.score_variants(bundle, [(SHORT, SHORT[1:])], "wt-marginals", batch_size=0)
    with pytest.raises(InputError, match="'1' at residue 2"):
        plm.saturation(bundle, "M1K")
    with pytest.raises(InputError, match=r"proteins\[1\]: 'Ü'"):
        plm.embed(bundle, ["MK", "MÜ"])
