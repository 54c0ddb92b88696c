"""Load an ESM masked language model (ESM-2, ESM-1v) from a local hub-layout directory: strict, CPU first, then the device.

The directory is what the hub repository facebook/esm2_t6_8M_UR50D holds: config.json, model.safetensors
(or pytorch_model.bin, or a sharded set with its *.index.json), vocab.txt, tokenizer_config.json and
special_tokens_map.json. Nothing is downloaded. The weights are read on the CPU and compared tensor by
tensor with the model that config.json describes before anything is copied; a missing, unexpected or
misshapen tensor stops the load with a message naming the file and the tensor.
"""

from __future__ import annotations

import json
import logging
import os
import pickle
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from aisci.errors import InputError

log = logging.getLogger(__name__)

WEIGHT_FILES = ("model.safetensors", "pytorch_model.bin")
INDEX_FILES = ("model.safetensors.index.json", "pytorch_model.bin.index.json")
LAYOUT = "config.json, model.safetensors (or pytorch_model.bin), vocab.txt, tokenizer_config.json"

# Known harmless differences between a checkpoint and the model transformers 5 builds, tolerated on purpose
# (anything else is an error):
#   1. esm.encoder.layer.N.attention.self.rotary_embeddings.inv_freq -- transformers 4, which wrote the hub's
#      files, kept a copy of the rotary frequencies in every layer; transformers 5 keeps one shared
#      esm.rotary_embeddings.inv_freq, and its own save_pretrained writes the per-layer name with a literal
#      '*' for N. The copies must agree; the first becomes the shared buffer (as EsmModel.load_hook does).
#   2. *.LayerNorm.gamma / *.LayerNorm.beta -- legacy names that transformers 5's save_pretrained writes for
#      ESM (its conversion_mapping renames them back on load): read as LayerNorm.weight / LayerNorm.bias.
#   3. esm.embeddings.position_ids -- a persistent buffer before transformers 4.31 (an arange), non-persistent
#      since: dropped.
#   4. esm.embeddings.position_embeddings.weight in a rotary model -- unused; transformers ignores it too
#      (EsmPreTrainedModel._keys_to_ignore_on_load_unexpected): dropped.
#   5. lm_head.decoder.weight absent -- tied to esm.embeddings.word_embeddings.weight (tie_word_embeddings, the
#      ESM-2 default; safetensors files drop the shared copy). When present and tied it must equal them.
_PER_LAYER_INV_FREQ = re.compile(r"^esm\.encoder\.layer\.(\d+|\*)\.attention\.self\.rotary_embeddings\.inv_freq$")
_SHARED_INV_FREQ = "esm.rotary_embeddings.inv_freq"
_DECODER, _EMBEDDING = "lm_head.decoder.weight", "esm.embeddings.word_embeddings.weight"


@dataclass
class EsmBundle:
    """A loaded ESM masked language model and what scoring needs to know about it."""

    model: Any  # EsmForMaskedLM, eval(), on `device`
    tokenizer: Any  # EsmTokenizer
    device: Any  # torch.device
    dtype: Any  # torch.float32, or torch.float16 / torch.bfloat16 on CUDA
    name: str  # the directory's name or the name given
    window: int  # residues per forward pass: config.max_position_embeddings - 2 (<cls> and <eos>)


def load_esm(model_dir: str | os.PathLike[str], *, device: Any = "auto", half: bool | str = False,
             name: str | None = None) -> EsmBundle:
    """Load an ESM masked language model from a local directory in the hub layout.

    Args:
        model_dir: directory holding config.json, the weights and vocab.txt (see the module docstring).
        device: "auto" (CUDA when torch sees it, else CPU), "cpu", "cuda" or "cuda:N"; see
            `aisci.device.pick_device`.
        half: False for float32; True or "fp16" for float16, "bf16" for bfloat16 -- CUDA only.
        name: the model's name in logs and outputs (default: the directory's name).

    Returns:
        An `EsmBundle` with the model in eval mode on the device.

    Raises:
        InputError: naming the directory and file when a file is missing or unreadable, config.json does not
            describe an ESM masked language model, vocab.txt disagrees with config.json, a tensor is missing,
            unexpected or of the wrong shape, or half precision is asked for on a CPU.
    """
    os.environ.setdefault("HF_HUB_OFFLINE", "1")  # belt and braces: everything below reads local files only
    from aisci.device import pick_device

    folder = Path(model_dir)
    if not folder.is_dir():
        raise InputError(f"{folder}: ESM model directory not found (it holds {LAYOUT})")
    raw = _read_config(folder)
    vocab = folder / "vocab.txt"
    if not vocab.is_file():
        raise InputError(f"{folder}: vocab.txt missing (an ESM model directory holds {LAYOUT})")
    weight_files, label = _weight_files(folder)
    dtype_name = {None: None, False: None, True: "float16", "fp16": "float16", "float16": "float16",
                  "bf16": "bfloat16", "bfloat16": "bfloat16"}.get(half, "?")
    if dtype_name == "?":
        raise InputError(f"half={half!r}: expected False, True, 'fp16' or 'bf16'")

    import torch
    from transformers import EsmConfig, EsmForMaskedLM, EsmTokenizer
    from transformers.initialization import no_init_weights

    dev = pick_device(device)
    if dtype_name and dev.type != "cuda":
        raise InputError(f"half precision ({dtype_name}) needs a CUDA device; the model would run on {dev}")
    config = EsmConfig.from_dict(raw)
    tokenizer = EsmTokenizer.from_pretrained(str(folder), local_files_only=True)
    _check_vocab(tokenizer, config, vocab)
    with no_init_weights():  # every tensor is overwritten from the file below
        model = _build(EsmForMaskedLM, config, folder)
    state = _normalise(_read_weights(weight_files, label), model, config, label)
    model.load_state_dict(state, strict=True)
    model.to(dev)
    dtype = getattr(torch, dtype_name) if dtype_name else torch.float32
    if dtype_name:
        model.to(dtype)
        rotary = getattr(model.esm, "rotary_embeddings", None)
        if rotary is not None:  # keep the rotary frequencies in float32 (the forward computes cos/sin in float32)
            rotary.inv_freq.data = state[_SHARED_INV_FREQ].to(device=dev, dtype=torch.float32)
    model.eval()
    bundle = EsmBundle(model=model, tokenizer=tokenizer, device=dev, dtype=dtype, name=name or folder.name,
                       window=int(config.max_position_embeddings) - 2)
    log.info("loaded %s from %s: %d layers, hidden %d, window %d residues, %s on %s", bundle.name, label,
             config.num_hidden_layers, config.hidden_size, bundle.window, str(dtype).replace("torch.", ""), dev)
    return bundle


def check_weights(model_dir: str | os.PathLike[str]) -> int:
    """Check an ESM directory's weights tensor by tensor against its config.json, as `load_esm` does, without a device.

    The weights are read on the CPU (a torch pickle with ``weights_only=True``: a file that is not plain tensors is
    refused, nothing in it is run) and checked by the same strict code as `load_esm`: every tensor the model of
    config.json needs, none it does not, each of the right shape. The model is built on torch's "meta" device, so
    no memory is spent on its parameters (the weights themselves are read into memory once, as loading does).
    `aisci models add` calls it on the copy it stages, so a store never holds weights the GPU job would refuse.

    Args:
        model_dir: directory holding config.json and the weights (see the module docstring).

    Returns:
        The number of tensors the model takes from the file(s).

    Raises:
        InputError: naming the file (and the tensor) that cannot be read or does not fit config.json.
    """
    folder = Path(model_dir)
    raw = _read_config(folder)
    weight_files, label = _weight_files(folder)

    import torch
    from transformers import EsmConfig, EsmForMaskedLM

    config = EsmConfig.from_dict(raw)
    with torch.device("meta"):  # shapes and dtypes only
        model = _build(EsmForMaskedLM, config, folder)
    return len(_normalise(_read_weights(weight_files, label), model, config, label))


def _build(cls: Any, config: Any, folder: Path) -> Any:
    """``cls(config)``; sizes that make no model (hidden_size not divisible by the heads, ...) name config.json."""
    try:
        return cls(config)
    except (ValueError, TypeError, RuntimeError) as exc:
        first = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
        raise InputError(f"{folder / 'config.json'}: does not describe a model that can be built ({first})") from None


def _read_config(folder: Path) -> dict[str, Any]:
    path = folder / "config.json"
    if not path.is_file():
        raise InputError(f"{folder}: config.json missing (an ESM model directory holds {LAYOUT})")
    try:
        raw = json.loads(path.read_text())
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise InputError(f"{path}: cannot read as JSON ({exc})") from None
    if not isinstance(raw, dict):
        raise InputError(f"{path}: expected a JSON object")
    if raw.get("model_type") != "esm":
        raise InputError(f"{path}: model_type is {raw.get('model_type')!r}, expected 'esm' "
                         "(an ESM-2 / ESM-1v masked language model such as facebook/esm2_t6_8M_UR50D)")
    arch = raw.get("architectures")
    if raw.get("is_folding_model") or (arch is not None and "EsmForMaskedLM" not in arch):
        raise InputError(f"{path}: architectures {arch} is not EsmForMaskedLM (a masked language model "
                         "with its lm_head is needed to score residues)")
    if raw.get("position_embedding_type", "absolute") not in ("rotary", "absolute"):
        raise InputError(f"{path}: position_embedding_type {raw['position_embedding_type']!r} is not supported")
    for key in ("vocab_size", "hidden_size", "num_hidden_layers", "num_attention_heads", "max_position_embeddings"):
        if not isinstance(raw.get(key), int) or raw[key] < 1:
            raise InputError(f"{path}: {key} must be a positive integer, got {raw.get(key)!r}")
    if raw["max_position_embeddings"] < 3:
        raise InputError(f"{path}: max_position_embeddings {raw['max_position_embeddings']} leaves no residue")
    return raw


def _weight_files(folder: Path) -> tuple[list[Path], Path]:
    """The weight files to read, and the path that names them in messages."""
    for single in WEIGHT_FILES:
        if (folder / single).is_file():
            return [folder / single], folder / single
    for index in INDEX_FILES:
        path = folder / index
        if path.is_file():
            try:
                shards = sorted(set(json.loads(path.read_text())["weight_map"].values()))
            except (OSError, ValueError, KeyError, TypeError, AttributeError) as exc:
                raise InputError(f"{path}: not a weight index (needs a weight_map object): {exc}") from None
            missing = [s for s in shards if not (folder / s).is_file()]
            if missing:
                raise InputError(f"{path}: names shard file(s) missing from {folder}: {', '.join(missing)}")
            return [folder / s for s in shards], path
    raise InputError(f"{folder}: no weights: neither {' nor '.join(WEIGHT_FILES)} (nor a sharded index) is there")


def _read_weights(files: list[Path], label: Path) -> dict[str, Any]:
    """Every tensor of the weight files, read on the CPU; a file that is not a dictionary of tensors is refused."""
    import torch
    from safetensors.torch import load_file

    state: dict[str, Any] = {}
    for path in files:
        try:
            if path.name.endswith(".safetensors"):
                part = load_file(str(path), device="cpu")
            else:  # weights_only: a pickle that is not plain tensors is refused, never executed
                part = torch.load(path, map_location="cpu", weights_only=True)
        except MemoryError:
            raise
        except Exception as exc:  # noqa: BLE001 - a malformed file raises many kinds (UnpicklingError, zip, struct...)
            raise InputError(f"{path}: cannot read the weights ({_load_error(exc)})") from None
        if not isinstance(part, dict):
            raise InputError(f"{path}: holds a {type(part).__name__}, not a dictionary of tensors")
        for key, value in part.items():
            if not isinstance(key, str) or not isinstance(value, torch.Tensor):
                raise InputError(f"{path}: entry {str(key)[:80]!r} is a {type(value).__name__}, not a tensor "
                                 "(not a weights file)")
        clash = sorted(set(part) & set(state))
        if clash:
            raise InputError(f"{label}: tensor {clash[0]} is stored in more than one shard")
        state.update(part)
    return state


def _load_error(exc: Exception) -> str:
    """One line on why torch or safetensors could not read a file (torch's own text spans lines and advises
    ``weights_only=False``, which would run the code a hostile pickle carries: only its reason is kept)."""
    if isinstance(exc, pickle.UnpicklingError):
        lines = (line.strip() for line in str(exc).splitlines())
        why = next((line for line in lines if re.search(r"unsupported|blocked|not an allowed", line, re.I)), "")
        why = why.replace("WeightsUnpickler error:", "").split(" Please use")[0].strip().rstrip(".")
        return f"not plain tensors, refused without running anything in it: {why or 'not a torch checkpoint'}"
    text = " ".join(str(exc).split())
    text = re.sub(r"\x1b\[[0-9;]*m", "", text).split(". ")[0][:200]
    return f"{type(exc).__name__}: {text}" if text else type(exc).__name__


def _check_vocab(tokenizer: Any, config: Any, vocab: Path) -> None:
    ids = tokenizer.get_vocab()
    if len(ids) != config.vocab_size:
        raise InputError(f"{vocab}: {len(ids)} tokens, but config.json has vocab_size {config.vocab_size}")
    for token, key in (("<mask>", "mask_token_id"), ("<pad>", "pad_token_id")):
        want = getattr(config, key)
        if ids.get(token) != want:
            raise InputError(f"{vocab}: {token} is token {ids.get(token)}, but config.json has {key} {want}")
    missing = [t for t in ("<cls>", "<eos>", *"ACDEFGHIKLMNPQRSTVWY") if t not in ids]
    if missing:
        raise InputError(f"{vocab}: not an ESM vocabulary (missing {' '.join(missing)})")


def _normalise(state: dict[str, Any], model: Any, config: Any, label: Path) -> dict[str, Any]:
    """Apply the tolerated differences listed at the top of this module, then check keys and shapes strictly."""
    import torch

    expected = model.state_dict()
    out: dict[str, Any] = {}
    inv_freq: list[tuple[str, Any]] = []
    for key, value in state.items():
        if _PER_LAYER_INV_FREQ.match(key):
            inv_freq.append((key, value))
            continue
        if key == "esm.embeddings.position_ids":
            continue
        if key == "esm.embeddings.position_embeddings.weight" and config.position_embedding_type == "rotary":
            continue
        if key.endswith((".LayerNorm.gamma", ".LayerNorm.beta")):
            key = key.rsplit(".", 1)[0] + (".weight" if key.endswith("gamma") else ".bias")
        if key in out:
            raise InputError(f"{label}: tensor {key} is stored twice (under its current and its legacy name)")
        out[key] = value
    if inv_freq and _SHARED_INV_FREQ in expected:
        inv_freq.sort(key=lambda kv: _layer(kv[0]))
        first_key, first = inv_freq[0]
        for key, value in inv_freq[1:]:
            if value.shape != first.shape or not torch.allclose(value.float(), first.float()):
                raise InputError(f"{label}: rotary frequencies {key} differ from {first_key}")
        out.setdefault(_SHARED_INV_FREQ, first)
    elif inv_freq:
        out[inv_freq[0][0]] = inv_freq[0][1]  # reported as unexpected below (not a rotary model)
    tied = bool(getattr(config, "tie_word_embeddings", True))
    if tied and _EMBEDDING in out:
        if _DECODER not in out:
            out[_DECODER] = out[_EMBEDDING]
        elif out[_DECODER].shape == out[_EMBEDDING].shape and not torch.equal(out[_DECODER], out[_EMBEDDING]):
            raise InputError(f"{label}: {_DECODER} differs from {_EMBEDDING}, but config.json ties them "
                             "(tie_word_embeddings); set tie_word_embeddings to false if that is intended")

    missing = [k for k in expected if k not in out]
    unexpected = [k for k in out if k not in expected]
    if missing:
        raise InputError(f"{label}: missing tensor(s) that the model of config.json needs: {_some(missing)}")
    if unexpected:
        raise InputError(f"{label}: unexpected tensor(s), not part of the model of config.json: {_some(unexpected)}")
    for key, want in expected.items():
        got = out[key]
        if not isinstance(got, torch.Tensor):
            raise InputError(f"{label}: {key} is a {type(got).__name__}, not a tensor")
        if tuple(got.shape) != tuple(want.shape):
            raise InputError(f"{label}: tensor {key} has shape {tuple(got.shape)}; the model of config.json "
                             f"expects {tuple(want.shape)}")
        if got.is_floating_point() != want.is_floating_point():
            raise InputError(f"{label}: tensor {key} has dtype {got.dtype}; expected {want.dtype}")
    return out


def _layer(key: str) -> tuple[int, int]:
    n = key.split(".")[3]
    return (0, int(n)) if n.isdigit() else (1, 0)


def _some(keys: list[str], n: int = 5) -> str:
    return ", ".join(keys[:n]) + (f" (+{len(keys) - n} more)" if len(keys) > n else "")
