"""A small randomly initialised ESM masked LM in the Hugging Face hub layout, for demos and pipeline tests."""

from __future__ import annotations

import json
import os
from pathlib import Path

# The ESM-2 alphabet in the order of facebook/esm2_t6_8M_UR50D's vocab.txt (token id = line number).
VOCAB = ("<cls>", "<pad>", "<eos>", "<unk>", "L", "A", "G", "V", "S", "E", "R", "T", "I", "D", "P", "K", "Q",
         "N", "F", "Y", "M", "H", "W", "C", "X", "B", "U", "Z", "O", ".", "-", "<null_1>", "<mask>")
# tokenizer_config.json and special_tokens_map.json as the hub repo ships them
TOKENIZER_CONFIG = {"model_max_length": 1000000000000000019884624838656, "tokenizer_class": "EsmTokenizer"}
SPECIAL_TOKENS_MAP = {"cls_token": "<cls>", "eos_token": "<eos>", "mask_token": "<mask>", "pad_token": "<pad>",
                      "unk_token": "<unk>"}


def write_random_esm(out_dir: str | os.PathLike[str], *, layers: int = 2, hidden: int = 64, heads: int = 4,
                     intermediate: int = 128, max_positions: int = 1026, seed: int = 0) -> Path:
    """Write a randomly initialised EsmForMaskedLM (ESM-2 architecture: rotary positions, token dropout).

    Files: config.json, model.safetensors, vocab.txt, tokenizer_config.json, special_tokens_map.json, as in
    facebook/esm2_t6_8M_UR50D. The weights depend only on the arguments: the same seed gives a byte-identical
    model.safetensors. The caller's torch random state is left untouched.

    Args:
        out_dir: directory to write (created; existing files of those names are replaced).
        layers, hidden, heads, intermediate, max_positions: EsmConfig num_hidden_layers, hidden_size,
            num_attention_heads, intermediate_size, max_position_embeddings.
        seed: torch seed of the initialisation.

    Returns:
        ``out_dir`` as a Path.

    Raises:
        InputError: sizes that do not make a valid model.
    """
    import torch
    from safetensors.torch import save_file
    from transformers import EsmConfig, EsmForMaskedLM

    from aisci.errors import InputError

    if min(layers, hidden, heads, intermediate) < 1 or hidden % heads or (hidden // heads) % 2 or max_positions < 3:
        raise InputError(f"demo model: need positive sizes, hidden ({hidden}) divisible by heads ({heads}) into an "
                         f"even head size (rotary embeddings), max_positions >= 3 (got {max_positions})")
    config = EsmConfig(
        vocab_size=len(VOCAB), hidden_size=hidden, num_hidden_layers=layers, num_attention_heads=heads,
        intermediate_size=intermediate, max_position_embeddings=max_positions, position_embedding_type="rotary",
        pad_token_id=VOCAB.index("<pad>"), mask_token_id=VOCAB.index("<mask>"), token_dropout=True,
        emb_layer_norm_before=False, layer_norm_eps=1e-5, hidden_dropout_prob=0.0, attention_probs_dropout_prob=0.0,
        hidden_act="gelu", initializer_range=0.02, architectures=["EsmForMaskedLM"],
    )
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        model = EsmForMaskedLM(config)
    # The decoder weight is tied to the word embeddings: the hub file stores the tensor once.
    state = {k: v.detach().contiguous() for k, v in model.state_dict().items() if k != "lm_head.decoder.weight"}
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    save_file(state, str(out / "model.safetensors"), metadata={"format": "pt"})
    config.save_pretrained(str(out))
    (out / "vocab.txt").write_text("\n".join(VOCAB) + "\n")
    (out / "tokenizer_config.json").write_text(json.dumps(TOKENIZER_CONFIG, indent=2) + "\n")
    (out / "special_tokens_map.json").write_text(json.dumps(SPECIAL_TOKENS_MAP, indent=2) + "\n")
    return out
