"""Loading ESM from a directory in the hub layout of facebook/esm2_t6_8M_UR50D, written here by hand, and its errors.

The directory mirrors the hub repository (files written by transformers 4): config.json with that model's fields,
model.safetensors with the hub's tensor names -- per-layer rotary inv_freq buffers and the contact head included --
vocab.txt, tokenizer_config.json and special_tokens_map.json. The weights are random; nothing is downloaded.
"""

from __future__ import annotations

import json

import pytest
import torch
from safetensors.torch import save_file

from aisci.errors import InputError
from aisci.protein.esm import load_esm

VOCAB = ("<cls>", "<pad>", "<eos>", "<unk>", "L", "A", "G", "V", "S", "E", "R", "T", "I", "D", "P", "K", "Q", "N", "F",
         "Y", "M", "H", "W", "C", "X", "B", "U", "Z", "O", ".", "-", "<null_1>", "<mask>")  # ESM's alphabet, in order

# config.json of facebook/esm2_t6_8M_UR50D (written by transformers 4.25).
HUB_CONFIG = {
    "_name_or_path": "/tmp/facebook/esm2_t6_8M_UR50D", "architectures": ["EsmForMaskedLM"],
    "attention_probs_dropout_prob": 0.0, "classifier_dropout": None, "emb_layer_norm_before": False,
    "esmfold_config": None, "hidden_act": "gelu", "hidden_dropout_prob": 0.0, "hidden_size": 320,
    "initializer_range": 0.02, "intermediate_size": 1280, "is_folding_model": False, "layer_norm_eps": 1e-05,
    "mask_token_id": 32, "max_position_embeddings": 1026, "model_type": "esm", "num_attention_heads": 20,
    "num_hidden_layers": 6, "pad_token_id": 1, "position_embedding_type": "rotary", "token_dropout": True,
    "torch_dtype": "float32", "transformers_version": "4.25.0.dev0", "use_cache": True, "vocab_list": None,
    "vocab_size": 33,
}
SMALL = {"hidden_size": 32, "num_attention_heads": 4, "intermediate_size": 64, "num_hidden_layers": 2}
PROTEIN = "MKTAYIAKQRQISFVKSHFSRQLEERLGLIEVQAPILSRVGDGTQDNLSGAEKAVQVKVKALPDAQFEVVHSLAKWKRQTLGQHDFSAGEGLYTHMKALRPDEDRLSPLHSVYVDQWDWERVMGDGERQFSTLKSTVEAIWAGIKATEAAVSEEFGLAPFLPDQIHFVHSQELLSRYPDLDAKGRERAIAKDLGAVFLVGIGGKLSDGHRHDVRAPDYDDWUAXBZ"


def hub_tensors(config: dict, seed: int = 0) -> dict[str, torch.Tensor]:
    """Random tensors under the names (and shapes) of the hub's model.safetensors."""
    gen = torch.Generator().manual_seed(seed)
    h, inter, layers = config["hidden_size"], config["intermediate_size"], config["num_hidden_layers"]
    heads, vocab = config["num_attention_heads"], config["vocab_size"]
    head_dim = h // heads

    def rnd(*shape, scale=0.2):
        return torch.randn(*shape, generator=gen) * scale

    def norm(prefix):
        return {prefix + ".weight": 1 + rnd(h, scale=0.1), prefix + ".bias": rnd(h, scale=0.1)}

    inv_freq = 1.0 / (10000 ** (torch.arange(0, head_dim, 2, dtype=torch.float32) / head_dim))
    t = {"esm.embeddings.word_embeddings.weight": rnd(vocab, h, scale=1.0)}
    for n in range(layers):
        p = f"esm.encoder.layer.{n}."
        for proj in ("query", "key", "value"):
            t[p + f"attention.self.{proj}.weight"] = rnd(h, h)
            t[p + f"attention.self.{proj}.bias"] = rnd(h)
        t[p + "attention.self.rotary_embeddings.inv_freq"] = inv_freq.clone()
        t[p + "attention.output.dense.weight"], t[p + "attention.output.dense.bias"] = rnd(h, h), rnd(h)
        t.update(norm(p + "attention.LayerNorm"))
        t[p + "intermediate.dense.weight"], t[p + "intermediate.dense.bias"] = rnd(inter, h), rnd(inter)
        t[p + "output.dense.weight"], t[p + "output.dense.bias"] = rnd(h, inter), rnd(h)
        t.update(norm(p + "LayerNorm"))
    t.update(norm("esm.encoder.emb_layer_norm_after"))
    t["esm.contact_head.regression.weight"] = rnd(1, layers * heads)
    t["esm.contact_head.regression.bias"] = rnd(1)
    t["lm_head.dense.weight"], t["lm_head.dense.bias"] = rnd(h, h), rnd(h)
    t.update(norm("lm_head.layer_norm"))
    t["lm_head.decoder.weight"] = t["esm.embeddings.word_embeddings.weight"].clone()  # tied in ESM-2
    t["lm_head.bias"] = rnd(vocab)
    return t


def write_hub_dir(folder, config=None, tensors=None, weights="model.safetensors"):
    config = config or {**HUB_CONFIG, **SMALL}
    tensors = hub_tensors(config) if tensors is None else tensors
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "config.json").write_text(json.dumps(config, indent=2))
    if weights == "model.safetensors":
        save_file(tensors, str(folder / weights), metadata={"format": "pt"})
    elif weights:
        torch.save(tensors, folder / weights)
    (folder / "vocab.txt").write_text("\n".join(VOCAB) + "\n")
    (folder / "tokenizer_config.json").write_text(json.dumps(
        {"do_lower_case": False, "model_max_length": 1000000000000000019884624838656, "tokenizer_class": "EsmTokenizer"}))
    (folder / "special_tokens_map.json").write_text(json.dumps(
        {"cls_token": "<cls>", "eos_token": "<eos>", "mask_token": "<mask>", "pad_token": "<pad>", "unk_token": "<unk>"}))
    return folder


def reference_logits(config: dict, tensors: dict, protein: str) -> torch.Tensor:
    """Logits of a model built from the same tensors without aisci: transformers' EsmForMaskedLM, keys mapped by hand."""
    from transformers import EsmConfig, EsmForMaskedLM

    model = EsmForMaskedLM(EsmConfig(**{k: v for k, v in config.items() if not k.startswith("_")}))
    state = {k: v for k, v in tensors.items() if ".rotary_embeddings." not in k}
    state["esm.rotary_embeddings.inv_freq"] = tensors["esm.encoder.layer.0.attention.self.rotary_embeddings.inv_freq"]
    model.load_state_dict(state, strict=True)
    ids = torch.tensor([[0] + [VOCAB.index(c) for c in protein] + [2]])
    with torch.no_grad():
        return model.eval()(input_ids=ids).logits


def logits(bundle, protein: str) -> torch.Tensor:
    ids = torch.tensor([[0] + [VOCAB.index(c) for c in protein] + [2]])
    with torch.no_grad():
        return bundle.model(input_ids=ids).logits


def test_hub_layout_of_esm2_t6_8M_loads_exactly(tmp_path):
    """The real model's shape (6 layers, hidden 320, 20 heads, 1026 positions), as on the hub."""
    tensors = hub_tensors(HUB_CONFIG, seed=1)
    folder = write_hub_dir(tmp_path / "esm2_t6_8M_UR50D", HUB_CONFIG, tensors)
    bundle = load_esm(folder, device="cpu")
    assert bundle.name == "esm2_t6_8M_UR50D" and bundle.window == 1024
    assert bundle.dtype == torch.float32 and bundle.device.type == "cpu" and not bundle.model.training
    loaded = bundle.model.state_dict()
    for key, value in tensors.items():  # every tensor of the file is in the model, none left at init values
        key = "esm.rotary_embeddings.inv_freq" if ".rotary_embeddings." in key else key
        assert torch.equal(loaded[key], value), key
    got = logits(bundle, PROTEIN)
    want = reference_logits(HUB_CONFIG, tensors, PROTEIN)
    assert got.shape == (1, len(PROTEIN) + 2, 33)
    torch.testing.assert_close(got, want, rtol=0, atol=1e-5)
    assert bundle.tokenizer.get_vocab()["<mask>"] == 32


@pytest.mark.parametrize("variant", ["pytorch_model.bin", "no tied decoder", "position_ids", "sharded"])
def test_other_forms_of_the_same_weights(tmp_path, variant):
    config = {**HUB_CONFIG, **SMALL}
    tensors = hub_tensors(config, seed=2)
    written = dict(tensors)
    folder = tmp_path / "m"
    if variant == "pytorch_model.bin":
        write_hub_dir(folder, config, written, weights="pytorch_model.bin")
    elif variant == "no tied decoder":  # safetensors conversions drop the copy shared with the embeddings
        del written["lm_head.decoder.weight"]
        write_hub_dir(folder, config, written)
    elif variant == "position_ids":  # a persistent buffer in checkpoints of transformers < 4.31
        written["esm.embeddings.position_ids"] = torch.arange(1026).unsqueeze(0)
        write_hub_dir(folder, config, written)
    else:
        write_hub_dir(folder, config, written, weights=None)
        keys = sorted(written)
        halves = {"model-00001-of-00002.safetensors": keys[:20], "model-00002-of-00002.safetensors": keys[20:]}
        for name, part in halves.items():
            save_file({k: written[k] for k in part}, str(folder / name), metadata={"format": "pt"})
        index = {"metadata": {}, "weight_map": {k: name for name, part in halves.items() for k in part}}
        (folder / "model.safetensors.index.json").write_text(json.dumps(index))
    bundle = load_esm(folder, device="cpu", name="given")
    assert bundle.name == "given"
    torch.testing.assert_close(logits(bundle, PROTEIN[:50]), reference_logits(config, tensors, PROTEIN[:50]),
                               rtol=0, atol=1e-5)


def _error(tmp_path, match, *, config=None, tensors=None, drop=None, **kwargs):
    folder = write_hub_dir(tmp_path / "bad", config, tensors)
    if drop:
        (folder / drop).unlink()
    with pytest.raises(InputError, match=match):
        load_esm(folder, device="cpu", **kwargs)


def test_missing_files_are_named(tmp_path):
    _error(tmp_path / "a", r"/bad: config\.json missing", drop="config.json")
    _error(tmp_path / "b", r"/bad: no weights: neither model\.safetensors nor pytorch_model\.bin", drop="model.safetensors")
    _error(tmp_path / "c", r"/bad: vocab\.txt missing", drop="vocab.txt")
    with pytest.raises(InputError, match="nowhere: ESM model directory not found"):
        load_esm(tmp_path / "nowhere", device="cpu")


def test_tensor_mismatches_are_named(tmp_path):
    config = {**HUB_CONFIG, **SMALL}
    missing = hub_tensors(config)
    del missing["esm.encoder.layer.1.intermediate.dense.bias"]
    _error(tmp_path / "a", r"model\.safetensors: missing tensor\(s\) .*esm\.encoder\.layer\.1\.intermediate\.dense\.bias",
           tensors=missing)
    extra = hub_tensors(config)
    extra["esm.encoder.layer.2.output.dense.bias"] = torch.zeros(32)
    _error(tmp_path / "b", r"model\.safetensors: unexpected tensor\(s\).*esm\.encoder\.layer\.2\.output\.dense\.bias",
           tensors=extra)
    wrong = hub_tensors(config)
    wrong["lm_head.bias"] = torch.zeros(34)
    _error(tmp_path / "c", r"model\.safetensors: tensor lm_head\.bias has shape \(34,\); .* expects \(33,\)",
           tensors=wrong)
    untied = hub_tensors(config)
    untied["lm_head.decoder.weight"] = untied["lm_head.decoder.weight"] + 1
    _error(tmp_path / "d", r"lm_head\.decoder\.weight differs from esm\.embeddings\.word_embeddings\.weight",
           tensors=untied)
    freq = hub_tensors(config)
    freq["esm.encoder.layer.1.attention.self.rotary_embeddings.inv_freq"] *= 2
    _error(tmp_path / "e", r"rotary frequencies esm\.encoder\.layer\.1\..* differ", tensors=freq)


def test_config_problems_and_half_on_cpu(tmp_path):
    _error(tmp_path / "a", r"config\.json: model_type is 'bert', expected 'esm'",
           config={**HUB_CONFIG, **SMALL, "model_type": "bert"})
    _error(tmp_path / "b", r"config\.json: architectures \['EsmForTokenClassification'\] is not EsmForMaskedLM",
           config={**HUB_CONFIG, **SMALL, "architectures": ["EsmForTokenClassification"]})
    _error(tmp_path / "c", r"vocab\.txt: 33 tokens, but config\.json has vocab_size 34",
           config={**HUB_CONFIG, **SMALL, "vocab_size": 34})
    _error(tmp_path / "d", r"half precision \(float16\) needs a CUDA device", half=True)
    _error(tmp_path / "e", r"half precision \(bfloat16\) needs a CUDA device", half="bf16")
    folder = write_hub_dir(tmp_path / "f")
    (folder / "config.json").write_text("{not json")
    with pytest.raises(InputError, match=r"f/config\.json: cannot read as JSON"):
        load_esm(folder, device="cpu")


class _RunsCode:
    """A pickle that runs code when loaded without weights_only: creates the marker file."""

    def __init__(self, marker):
        self.marker = str(marker)

    def __reduce__(self):
        return (open, (self.marker, "w"))


def test_check_weights_is_the_loaders_check_without_a_model(tmp_path):
    """check_weights (staging) accepts what load_esm loads and refuses, with the same message, what it refuses."""
    from aisci.protein.esm import check_weights

    config = {**HUB_CONFIG, **SMALL}
    good = write_hub_dir(tmp_path / "good", config, hub_tensors(config), weights="pytorch_model.bin")
    assert check_weights(good) == len(load_esm(good, device="cpu").model.state_dict())
    wrong = hub_tensors(config)
    wrong["esm.encoder.layer.0.output.dense.weight"] = torch.zeros(64, 32)
    bad = write_hub_dir(tmp_path / "bad", config, wrong)
    with pytest.raises(InputError) as from_load:
        load_esm(bad, device="cpu")
    with pytest.raises(InputError) as from_check:
        check_weights(bad)
    assert str(from_check.value) == str(from_load.value) == (
        f"{bad / 'model.safetensors'}: tensor esm.encoder.layer.0.output.dense.weight has shape (64, 32); "
        "the model of config.json expects (32, 64)")
    marker = tmp_path / "ran"
    evil = write_hub_dir(tmp_path / "evil", config, {**hub_tensors(config), "x": _RunsCode(marker)},
                         weights="pytorch_model.bin")
    (evil / "model.safetensors").unlink(missing_ok=True)
    for call in (check_weights, lambda d: load_esm(d, device="cpu")):
        with pytest.raises(InputError, match=r"pytorch_model\.bin: cannot read the weights \(not plain tensors, "
                                             r"refused without running anything in it: Unsupported global"):
            call(evil)
    assert not marker.exists()
    heads = write_hub_dir(tmp_path / "heads", {**config, "num_attention_heads": 5}, hub_tensors(config))
    with pytest.raises(InputError, match=r"heads/config\.json: does not describe a model that can be built"):
        check_weights(heads)
