"""Benchmark: ESM saturation mutagenesis scored by aisci.protein.plm (batched, deduplicated) vs a naive per-variant loop.

Run with `python benchmarks/plm_speed/run.py [--device cpu|cuda] [--precision fp32|fp16|bf16] [--layers 6] [--length 300]`.
Not part of the tests; nothing is downloaded.

The model has the shape of ESM-2 8M (facebook/esm2_t6_8M_UR50D: hidden 320, 20 heads, intermediate 1280,
1026 positions, rotary, token dropout) with random weights, written in the hub layout to a temporary
directory and loaded with `aisci.protein.esm.load_esm`. The protein is random (seeded). Every single
substitution (length x 19) is scored with `score_variants` for wt-marginals and masked-marginals. The naive
loop runs one unbatched forward pass per variant (the wild type, with the variant's position masked for
masked-marginals) and reads the score off the log-softmax; it is timed on a random subsample of variants
(--naive-sample) and its rate extrapolated to all variants. Prints variants/s, the speed-up (goal >= 50x for
wt-marginals) and the largest difference between the batched and naive scores, and writes the results to
benchmarks/plm_speed/results-<device>.json (results-<device>-<precision>.json with --precision fp16 or bf16).
"""

from __future__ import annotations

import argparse
import json
import os
import random
import sys
import tempfile
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parents[1]))

VOCAB = ("<cls>", "<pad>", "<eos>", "<unk>", "L", "A", "G", "V", "S", "E", "R", "T", "I", "D", "P", "K", "Q", "N", "F",
         "Y", "M", "H", "W", "C", "X", "B", "U", "Z", "O", ".", "-", "<null_1>", "<mask>")  # ESM's alphabet, in order
AAS = "ACDEFGHIKLMNPQRSTVWY"


def write_model(folder: Path, layers: int, seed: int) -> Path:
    """A randomly initialised ESM-2-8M-shaped EsmForMaskedLM in the hub layout."""
    import torch
    from transformers import EsmConfig, EsmForMaskedLM

    torch.manual_seed(seed)
    config = EsmConfig(vocab_size=33, hidden_size=320, num_hidden_layers=layers, num_attention_heads=20,
                       intermediate_size=1280, max_position_embeddings=1026, position_embedding_type="rotary",
                       token_dropout=True, emb_layer_norm_before=False, mask_token_id=32, pad_token_id=1,
                       layer_norm_eps=1e-5, hidden_dropout_prob=0.0, attention_probs_dropout_prob=0.0,
                       initializer_range=0.1)  # wider than 0.02 so the random model's scores are not all ~0
    EsmForMaskedLM(config).save_pretrained(folder)
    (folder / "vocab.txt").write_text("\n".join(VOCAB) + "\n")
    (folder / "tokenizer_config.json").write_text(json.dumps({"do_lower_case": False,
                                                              "tokenizer_class": "EsmTokenizer"}))
    (folder / "special_tokens_map.json").write_text(json.dumps(
        {"cls_token": "<cls>", "eos_token": "<eos>", "mask_token": "<mask>", "pad_token": "<pad>", "unk_token": "<unk>"}))
    return folder


def naive(bundle, protein: str, variants: list[tuple[int, str]], masked: bool) -> tuple[list[float], float]:
    """One forward pass per variant, written plainly. Returns the scores and the seconds taken."""
    import torch

    tok = {t: i for i, t in enumerate(VOCAB)}
    scores = []
    t0 = time.perf_counter()
    for pos, aa in variants:
        ids = [tok["<cls>"]] + [tok[c] for c in protein] + [tok["<eos>"]]
        if masked:
            ids[pos + 1] = tok["<mask>"]
        with torch.inference_mode():
            logits = bundle.model(input_ids=torch.tensor([ids], device=bundle.device)).logits[0].float()
        lp = torch.log_softmax(logits, dim=-1)
        scores.append(float(lp[pos + 1, tok[aa]] - lp[pos + 1, tok[protein[pos]]]))
    return scores, time.perf_counter() - t0


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--device", default="cpu", help="cpu or cuda")
    ap.add_argument("--precision", choices=("fp32", "fp16", "bf16"), default="fp32",
                    help="fp32, or a half precision on CUDA (default fp32)")
    ap.add_argument("--layers", type=int, default=6)
    ap.add_argument("--length", type=int, default=300)
    ap.add_argument("--batch-size", type=int, default=16)
    ap.add_argument("--naive-sample", type=int, default=300, help="variants the naive loop is timed on")
    ap.add_argument("--seed", type=int, default=7)
    args = ap.parse_args()
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    import numpy as np
    import torch

    from aisci.fileio import atomic_output
    from aisci.protein import plm
    from aisci.protein.esm import load_esm

    rng = random.Random(args.seed)
    protein = "".join(rng.choice(AAS) for _ in range(args.length))
    variants = [(i, aa) for i in range(len(protein)) for aa in AAS if aa != protein[i]]
    pairs = [(protein, protein[:i] + aa + protein[i + 1:]) for i, aa in variants]
    with tempfile.TemporaryDirectory(prefix="plm_bench.") as tmp:
        bundle = load_esm(write_model(Path(tmp) / "esm2_random_8M", args.layers, args.seed), device=args.device,
                          half=False if args.precision == "fp32" else args.precision)
    device = torch.device(bundle.device)
    name = torch.cuda.get_device_name(device) if device.type == "cuda" else f"{os.cpu_count()} CPUs, " \
        f"{torch.get_num_threads()} torch threads"
    print(f"device: {device} ({name}); dtype {str(bundle.dtype).replace('torch.', '')}; model: ESM-2 8M shape, "
          f"{args.layers} layers, random weights; protein: {len(protein)} residues; variants: {len(variants)}")
    naive(bundle, protein, variants[:2], masked=False)  # warm-up (one-time allocations, kernels)
    plm.score_variants(bundle, pairs[:40], "masked-marginals", batch_size=args.batch_size)

    sample = sorted(rng.sample(range(len(variants)), min(args.naive_sample, len(variants))))
    results: dict = {"device": str(device), "device_name": name, "dtype": str(bundle.dtype).replace("torch.", ""),
                     "layers": args.layers, "length": len(protein), "variants": len(variants),
                     "batch_size": args.batch_size, "naive_sample": len(sample), "torch": torch.__version__}
    for strategy in ("wt-marginals", "masked-marginals"):
        stats = plm.ForwardStats()
        t0 = time.perf_counter()
        scores = plm.score_variants(bundle, pairs, strategy, batch_size=args.batch_size, stats=stats)
        batched_s = time.perf_counter() - t0
        ours = np.array([s.score for s in scores])
        ref, naive_s = naive(bundle, protein, [variants[k] for k in sample], masked=strategy == "masked-marginals")
        diff = float(np.max(np.abs(ours[sample] - np.array(ref))))
        batched_rate, naive_rate = len(variants) / batched_s, len(sample) / naive_s
        results[strategy] = {
            "batched_seconds": batched_s, "batched_variants_per_s": batched_rate, "forwards": stats.forwards,
            "batches": stats.batches, "naive_seconds_on_sample": naive_s, "naive_variants_per_s": naive_rate,
            "naive_seconds_extrapolated": len(variants) / naive_rate, "speedup": batched_rate / naive_rate,
            "max_abs_diff": diff, "score_sd": float(ours.std()),
        }
        print(f"{strategy}: batched {len(variants)} variants in {batched_s:.2f} s ({batched_rate:,.0f} variants/s, "
              f"{stats.forwards} forwards in {stats.batches} batches of <= {args.batch_size})")
        print(f"  naive loop, one forward per variant: {len(sample)} variants in {naive_s:.2f} s "
              f"({naive_rate:,.1f} variants/s; all {len(variants)} would take ~{len(variants) / naive_rate:.0f} s, "
              f"extrapolated from the sample)")
        print(f"  speed-up {batched_rate / naive_rate:,.0f}x (goal >= 50x); max |batched - naive| = {diff:.2e} "
              f"(scores' sd {ours.std():.3f})")
    suffix = "" if args.precision == "fp32" else f"-{args.precision}"
    out = HERE / f"results-{device.type}{suffix}.json"
    with atomic_output(out) as tmp_out:
        tmp_out.write_text(json.dumps(results, indent=2) + "\n")
    print(f"wrote {out}")


if __name__ == "__main__":
    from aisci.errors import AisciError

    try:
        main()
    except AisciError as exc:  # e.g. --precision fp16 on a CPU, --device cuda without a GPU
        sys.exit(f"error: {exc}")
