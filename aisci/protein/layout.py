"""ESM model folder layout checks without importing torch: config.json, vocab.txt, weight file headers."""

from __future__ import annotations

import json
import os
import struct
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from aisci.errors import InputError

KEEP_IF_PRESENT = ("tokenizer_config.json", "special_tokens_map.json", "README.md", "LICENSE", "LICENSE.md")
WEIGHT_FILES = ("model.safetensors", "pytorch_model.bin")  # in order of preference
# Every file a staged model folder may hold: a manifest naming any other path is refused.
UNIREP_FILES = ("model_weights.npz", "LICENSE")  # a UniRep folder (`aisci.protein.unirep`)
STORED_FILES = ("config.json", "vocab.txt", *WEIGHT_FILES, *KEEP_IF_PRESENT, UNIREP_FILES[0])
SPECIAL_TOKENS = ("<cls>", "<pad>", "<eos>", "<unk>", "<mask>")


@dataclass(frozen=True)
class EsmLayout:
    """What `inspect_model_dir` found: sizes, and the files the store keeps (config, weights, tokenizer, card)."""

    layers: int
    hidden: int
    window: int
    files: tuple[str, ...]
    architecture: str = "EsmForMaskedLM"


def inspect_model_dir(directory: str | os.PathLike[str]) -> EsmLayout:
    """Check that a directory holds an ESM masked LM in the Hugging Face layout.

    config.json: model_type esm, architectures incl. EsmForMaskedLM, positive sizes; vocab.txt: the ESM special
    tokens, vocab_size lines; weights: model.safetensors (preferred) or pytorch_model.bin, not a Git LFS pointer;
    the safetensors header is parsed to catch a truncated file, a missing lm_head, a wrong embedding shape.

    Raises:
        InputError: naming the file and field that is wrong or missing.
    """
    d = Path(os.path.abspath(os.path.expanduser(os.fspath(directory))))
    cfg_path = d / "config.json"
    if not d.is_dir():
        raise InputError(f"{d}: no such model directory")
    if not cfg_path.is_file():
        raise InputError(f"{cfg_path}: missing (an ESM model directory holds config.json, "
                         "model.safetensors or pytorch_model.bin, and vocab.txt)")
    try:
        cfg = json.loads(cfg_path.read_text())
    except (OSError, UnicodeDecodeError, ValueError) as exc:
        raise InputError(f"{cfg_path}: not valid JSON ({exc})") from None
    if not isinstance(cfg, dict) or cfg.get("model_type") != "esm":
        got = cfg.get("model_type") if isinstance(cfg, dict) else cfg
        raise InputError(f"{cfg_path}: model_type is {got!r}, expected 'esm' (an ESM protein language model)")
    if "EsmForMaskedLM" not in (cfg.get("architectures") or []) or cfg.get("is_folding_model"):
        raise InputError(f"{cfg_path}: architectures is {cfg.get('architectures')!r}, expected it to include "
                         "'EsmForMaskedLM' (variant scores need the masked-LM head; ESMFold is not one)")
    for key in ("num_hidden_layers", "hidden_size", "max_position_embeddings", "vocab_size"):
        value = cfg.get(key)
        if not isinstance(value, int) or isinstance(value, bool) or value < (3 if key.startswith("max") else 1):
            raise InputError(f"{cfg_path}: {key} must be a positive integer, got {value!r}")
    vocab = d / "vocab.txt"
    if not vocab.is_file():
        raise InputError(f"{vocab}: missing (the ESM tokenizer vocabulary, one token per line)")
    tokens = [t.strip() for t in vocab.read_text(errors="replace").splitlines() if t.strip()]
    if [t for t in SPECIAL_TOKENS if t not in tokens]:
        raise InputError(f"{vocab}: not an ESM vocabulary (needs {', '.join(SPECIAL_TOKENS)})")
    if len(tokens) != cfg["vocab_size"]:
        raise InputError(f"{vocab}: {len(tokens)} tokens, but config.json vocab_size is {cfg['vocab_size']}")
    weights = next((d / w for w in WEIGHT_FILES if (d / w).is_file()), None)
    if weights is None:
        raise InputError(f"{d}: no weights file (model.safetensors or pytorch_model.bin)")
    _check_weights(weights, cfg)
    kept = ("config.json", "vocab.txt", weights.name, *(f for f in KEEP_IF_PRESENT if (d / f).is_file()))
    return EsmLayout(cfg["num_hidden_layers"], cfg["hidden_size"], cfg["max_position_embeddings"] - 2, kept)


def _check_weights(path: Path, cfg: dict[str, Any]) -> None:
    size = path.stat().st_size
    with open(path, "rb") as fh:
        head = fh.read(8)
        if head.startswith(b"version ") and size < 1024:
            raise InputError(f"{path}: a Git LFS pointer, not the weights (run `git lfs pull` in the clone, "
                             "or download with `aisci models pull` / `hf download`)")
        if path.suffix != ".safetensors":  # a torch pickle: only torch can read it (aisci.protein.esm does)
            if size == 0:
                raise InputError(f"{path}: empty weights file")
            return
        n = struct.unpack("<Q", head)[0] if len(head) == 8 else -1
        if not 0 < n <= min(size - 8, 100_000_000):
            raise InputError(f"{path}: not a safetensors file (bad header length)")
        try:
            tensors = json.loads(fh.read(n))
            tensors.pop("__metadata__", None)
            end = max((int(t["data_offsets"][1]) for t in tensors.values()), default=0)
        except (ValueError, KeyError, TypeError, IndexError, AttributeError) as exc:
            raise InputError(f"{path}: not a safetensors file (bad header: {exc!r})") from None
    if 8 + n + end != size:
        raise InputError(f"{path}: {size} bytes, its header describes {8 + n + end} (truncated or partial download)")
    embed = next((k for k in tensors if k.endswith("embeddings.word_embeddings.weight")), None)
    want = [cfg["vocab_size"], cfg["hidden_size"]]
    if embed is None or tensors[embed].get("shape") != want:
        found = f"{embed} has shape {tensors[embed].get('shape')}" if embed else "no *embeddings.word_embeddings.weight"
        raise InputError(f"{path}: {found}, config.json implies {want} (vocab_size x hidden_size)")
    if not any(k.startswith("lm_head.") for k in tensors):
        raise InputError(f"{path}: no lm_head.* tensors (an EsmModel checkpoint without the masked-LM head)")
