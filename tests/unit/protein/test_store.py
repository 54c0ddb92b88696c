"""Tests for aisci.protein.store, aisci.protein.models (CLI) and aisci.protein.demo_model: staging, verification, checks."""

from __future__ import annotations

import argparse
import hashlib
import json
import logging
import os
import re
import shlex
import subprocess
import sys
import time
from pathlib import Path

import pytest

from aisci.protein import models as cli
from aisci.errors import AisciError, InputError
from aisci.protein import store as ms
from aisci.protein.hub import pull_model
from aisci.protein.demo_model import write_random_esm
from aisci.protein import stamps
from aisci.protein.stamps import STAMPS


def fake_esm(directory: Path, *, hidden: int = 8, layers: int = 2, **config) -> Path:
    """A small random ESM folder in the hub layout: config.json, model.safetensors, vocab.txt, special_tokens_map.json.

    Real tensors (staging reads them through the loader's strict check); the weights' seed is the folder's name, so
    two folders of different names hold different bytes. ``config`` entries are written over config.json's.
    """
    seed = int.from_bytes(hashlib.sha256(directory.name.encode()).digest()[:4], "big")
    write_random_esm(directory, layers=layers, hidden=hidden, heads=2, intermediate=16, seed=seed)
    (directory / "tokenizer_config.json").unlink()
    if config:
        _edit_config(directory, **config)
    return directory


def snapshot(root: Path) -> dict[str, bytes]:
    """Every file under ``root`` (hidden ones included) with its content."""
    return {str(p.relative_to(root)): p.read_bytes() for p in sorted(root.rglob("*")) if p.is_file()}


def run_cli(*argv: str) -> int:
    """`aisci models ...` as aisci.cli.main runs it (user errors -> message on stderr, exit 1)."""
    parser = argparse.ArgumentParser(prog="aisci models")
    cli.configure_parser(parser)
    try:
        return cli.run(parser.parse_args(argv))
    except AisciError as exc:
        print(f"aisci models: error: {exc}", file=sys.stderr)
        return 1


@pytest.fixture(autouse=True)
def cache(tmp_path, monkeypatch):
    """Each test's own user cache: the verification stamps of check_model go there, never into ~/.cache."""
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "cache"))
    return tmp_path / "cache" / "aisci" / STAMPS


@pytest.fixture
def src(tmp_path):
    return fake_esm(tmp_path / "src" / "esm_small")


@pytest.fixture
def store(tmp_path):
    return tmp_path / "store"


def test_add_list_verify_round_trip(src, store, caplog):
    (src / "tf_model.h5").write_bytes(b"other framework")  # not what the loader reads: not copied
    (src / "pytorch_model.bin").write_bytes(b"PK pickle")  # model.safetensors is preferred
    (src / ".cache").mkdir()
    (src / ".cache" / "x.lock").write_text("")
    with caplog.at_level(logging.WARNING):
        entry = ms.add_model(store, "small", src)
    assert "recorded as 'unknown'" in caplog.text
    assert entry.path == store / "small" and entry.licence == "unknown" and entry.source == f"local:{src}"
    assert (entry.layers, entry.hidden, entry.window, entry.architecture) == (2, 8, 1024, "EsmForMaskedLM")
    assert sorted(p.name for p in entry.path.iterdir()) == ["config.json", "model.safetensors",
                                                             "special_tokens_map.json", "vocab.txt"]
    manifest = json.loads((store / "manifest.json").read_text())
    assert manifest["format"] == 1 and list(manifest["models"]) == ["small"]
    rec = manifest["models"]["small"]
    for rel, info in rec["files"].items():
        data = (src / rel).read_bytes()
        assert info == {"size": len(data), "sha256": hashlib.sha256(data).hexdigest()}
    assert {k for k in rec} == {"source", "licence", "architecture", "layers", "hidden", "window", "added", "files"}
    assert [e.name for e in ms.list_models(store)] == ["small"] and ms.list_models(store)[0] == entry
    assert ms.verify_model(store, "small") == []
    assert ms.check_model(store, "small", where="config.yaml: model") == store / "small"
    assert not [p for p in store.iterdir() if p.name.startswith(".") and p.name != ".manifest.lock"]
    umask = os.umask(0)
    os.umask(umask)  # a site store is readable by all whom the umask allows: not mkdtemp's 0700
    assert {p.stat().st_mode & 0o777 for p in entry.path.iterdir()} == {0o666 & ~umask}
    assert entry.path.stat().st_mode & 0o777 == 0o777 & ~umask


def test_licence_from_argument_or_known_source(src, store):
    (src / "README.md").write_text("---\nlicense: mit\n---\n# ESM-2\n")
    assert ms.add_model(store, "a", src).licence == "unknown"
    assert (store / "a" / "README.md").is_file()  # the model card is kept
    assert ms.add_model(store, "b", src, licence="CC-BY-4.0", source="hf:x/y@abc").licence == "CC-BY-4.0"
    assert ms.add_model(store, "c", src, source="hf:facebook/esm2_t6_8M_UR50D@abc").licence == "MIT"


def test_refuses_to_overwrite_unless_force(src, store, tmp_path):
    ms.add_model(store, "small", src)
    before = snapshot(store)
    with pytest.raises(InputError, match="already holds a model named 'small'.*--force"):
        ms.add_model(store, "small", fake_esm(tmp_path / "other"))
    assert snapshot(store) == before
    (store / "stray").mkdir()
    with pytest.raises(InputError, match="stray: exists but is not in"):
        ms.add_model(store, "stray", src)
    other = fake_esm(tmp_path / "other")
    entry = ms.add_model(store, "small", other, force=True)
    assert (store / "small" / "model.safetensors").read_bytes() == (other / "model.safetensors").read_bytes()
    old_files = json.loads(before["manifest.json"])["models"]["small"]["files"]
    assert ms.list_models(store)[0].files == entry.files != old_files
    assert ms.verify_model(store, "small") == []
    assert sorted(p.name for p in store.iterdir()) == [".manifest.lock", "manifest.json", "small", "stray"]


@pytest.mark.parametrize("breakage, message", [
    (lambda d: (d / "config.json").unlink(), r"config\.json: missing"),
    (lambda d: (d / "config.json").write_text('{"model_type": "bert"}'), r"config\.json: model_type is 'bert'"),
    (lambda d: (d / "config.json").write_text("{oops"), r"config\.json: not valid JSON"),
    (lambda d: _edit_config(d, architectures=["EsmModel"]), r"config\.json: architectures is \['EsmModel'\]"),
    (lambda d: _edit_config(d, hidden_size=0), r"config\.json: hidden_size must be a positive integer"),
    (lambda d: (d / "model.safetensors").unlink(), r"esm_small: no weights file \(model\.safetensors or pytorch"),
    (lambda d: (d / "vocab.txt").unlink(), r"vocab\.txt: missing"),
    (lambda d: (d / "vocab.txt").write_text("<cls>\n<pad>\n<eos>\n<unk>\n<mask>\nA\n"), r"vocab\.txt: 6 tokens, but"),
    (lambda d: _truncate(d / "model.safetensors"), r"model\.safetensors: \d+ bytes, its header describes \d+"),
    (lambda d: (d / "model.safetensors").write_text("version https://git-lfs.github.com/spec/v1\noid sha256:ab\n"),
     r"model\.safetensors: a Git LFS pointer"),
    (lambda d: _edit_config(d, hidden_size=16), r"word_embeddings\.weight has shape \[33, 8\], config\.json implies"),
])
def test_invalid_model_dir_refused(src, store, breakage, message):
    ms.add_model(store, "kept", fake_esm(src.parent / "good"))
    before = snapshot(store)
    breakage(src)
    with pytest.raises(InputError, match=message):
        ms.add_model(store, "bad", src)
    assert snapshot(store) == before and not (store / "bad").exists()


def _edit_config(d: Path, **changes) -> None:
    cfg = json.loads((d / "config.json").read_text())
    (d / "config.json").write_text(json.dumps({**cfg, **changes}))


def _truncate(path: Path) -> None:
    path.write_bytes(path.read_bytes()[:-10])


def test_failed_copy_leaves_nothing(src, store, monkeypatch):
    ms.add_model(store, "kept", src)
    before = snapshot(store)
    real = ms._place
    calls = []

    def failing(a, *rest):
        calls.append(a)
        if len(calls) == 2:
            raise OSError(28, "No space left on device")
        return real(a, *rest)

    monkeypatch.setattr(ms, "_place", failing)
    with pytest.raises(OSError, match="No space left"):
        ms.add_model(store, "new", src)
    assert snapshot(store) == before and sorted(os.listdir(store)) == [".manifest.lock", "kept", "manifest.json"]


def test_corruption_detected_by_verify_and_check(src, store):
    ms.add_model(store, "small", src)
    where = "config.yaml: protein.model"
    ms.check_model(store, "small", where=where)  # hashes, writes the stamp
    weights = store / "small" / "model.safetensors"
    st = weights.stat()
    time.sleep(0.05)  # ctime ticks are coarse: the edit must fall in a later tick than the stamp
    data = bytearray(weights.read_bytes())
    data[-1] ^= 0xFF  # one byte, same size
    weights.write_bytes(bytes(data))
    os.utime(weights, ns=(st.st_atime_ns, st.st_mtime_ns))  # mtime restored: ctime still betrays the edit
    assert weights.stat().st_size == st.st_size and weights.stat().st_mtime_ns == st.st_mtime_ns
    assert ms.verify_model(store, "small") == [f"{weights}: SHA-256 differs from the manifest (altered or corrupted)"]
    with pytest.raises(InputError) as err:
        ms.check_model(store, "small", where=where)
    text = str(err.value)
    assert text.startswith(f"{where}: model 'small' failed verification: {weights}: SHA-256 differs")
    assert f"`aisci models verify small --model-store {store}`" in text
    assert f"`aisci models add small /path/to/small --model-store {store} --force`" in text


def test_deleted_changed_and_extra_files(src, store):
    ms.add_model(store, "small", src)
    d = store / "small"
    (d / "vocab.txt").unlink()
    (d / "config.json").write_text((d / "config.json").read_text() + " ")
    (d / "pytorch_model.bin").write_bytes(b"PK")
    problems = ms.verify_model(store, "small")
    size = len((src / "config.json").read_bytes())
    assert problems == [f"{d / 'config.json'}: {size + 1} bytes, the manifest says {size}",
                        f"{d / 'vocab.txt'}: missing",
                        f"{d / 'pytorch_model.bin'}: weight file not in the manifest (a loader could read it instead)"]
    with pytest.raises(InputError, match=r"vocab\.txt: missing"):
        ms.check_model(store, "small", where="w")
    assert ms.verify_model(store, "nope") == [f"{store}: no model named 'nope' (the store holds: small)"]


def test_check_model_missing_gives_the_staging_command(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    where = "config.yaml: protein.model"
    with pytest.raises(InputError) as err:  # relative store: the command names it absolute
        ms.check_model("models", "esm2_t6_8M", where=where)
    assert str(err.value) == (
        f"{where}: model 'esm2_t6_8M' is not staged: the model store {tmp_path / 'models'} does not exist; "
        f"stage it with `aisci models pull facebook/esm2_t6_8M_UR50D --model-store {tmp_path / 'models'} --name esm2_t6_8M`")
    fake_esm(tmp_path / "x")
    ms.add_model("models", "other", tmp_path / "x")
    with pytest.raises(InputError) as err:
        ms.check_model("models", "mine", where=where)
    assert str(err.value).startswith(
        f"{where}: model 'mine' is not in the model store {tmp_path / 'models'} (it holds: other); "
        f"stage it with `aisci models add mine /path/to/mine --model-store {tmp_path / 'models'}` "
        f"(or, for a test run with random weights, `aisci models demo mine --model-store {tmp_path / 'models'}`)")
    with pytest.raises(InputError, match=r"^w: model name '\.\./x' must match"):
        ms.check_model("models", "../x", where="w")


def test_store_from_environment(src, tmp_path, monkeypatch, capsys):
    monkeypatch.delenv(ms.STORE_ENV, raising=False)
    with pytest.raises(InputError, match="no model store: pass --model-store DIR or set AISCI_MODELS"):
        ms.store_dir()
    with pytest.raises(InputError, match="^w: model 'm' needs a model store"):
        ms.check_model(None, "m", where="w")
    monkeypatch.setenv(ms.STORE_ENV, str(tmp_path / "env-store"))
    assert ms.store_dir() == tmp_path / "env-store" and ms.store_dir(tmp_path / "s") == tmp_path / "s"
    assert run_cli("add", "small", str(src)) == 0
    assert ms.check_model(None, "small", where="w") == tmp_path / "env-store" / "small"
    assert run_cli("list") == 0
    assert f"1 model in {tmp_path / 'env-store'}" in capsys.readouterr().out


def test_second_check_skips_hashing(src, store, monkeypatch):
    ms.add_model(store, "small", src)
    hashed = []
    real = ms.file_sha256
    monkeypatch.setattr(ms, "file_sha256", lambda p: hashed.append(Path(p).name) or real(p))
    ms.check_model(store, "small", where="w")
    assert sorted(hashed) == ["config.json", "model.safetensors", "special_tokens_map.json", "vocab.txt"]
    hashed.clear()
    ms.check_model(store, "small", where="w")
    assert hashed == []
    os.utime(store / "small" / "vocab.txt")  # touched, same content: re-hashed once, still intact
    ms.check_model(store, "small", where="w")
    ms.check_model(store, "small", where="w")
    assert hashed == ["vocab.txt"]
    hashed.clear()
    assert ms.verify_model(store, "small") == [] and len(hashed) == 4  # verify always re-hashes

    def read_only(path):
        raise PermissionError(13, "Read-only file system", str(path))

    monkeypatch.setattr(stamps, "atomic_output", read_only)  # no stamp can be written: checks re-hash, and pass
    os.utime(store / "small" / "config.json")
    hashed.clear()
    assert ms.check_model(store, "small", where="w") == ms.check_model(store, "small", where="w") == store / "small"
    assert hashed == ["config.json", "config.json"]


def test_pull_offline_fails_clearly_and_leaves_store_untouched(src, store, monkeypatch):
    ms.add_model(store, "kept", src)
    before = snapshot(store)
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    with pytest.raises(InputError) as err:
        pull_model(store, "facebook/esm2_t6_8M_UR50D")
    text = str(err.value)
    assert "this machine cannot reach the Hugging Face hub (HF_HUB_OFFLINE is set)" in text
    assert "`aisci models pull facebook/esm2_t6_8M_UR50D --model-store DIR --name esm2_t6_8M`" in text
    assert "`hf download facebook/esm2_t6_8M_UR50D --local-dir esm2_t6_8M`" in text
    assert (f"`aisci models add esm2_t6_8M /path/to/esm2_t6_8M --model-store {store} --licence MIT "
            "--source hf:facebook/esm2_t6_8M_UR50D`") in text
    monkeypatch.delenv("HF_HUB_OFFLINE")
    with pytest.raises(InputError, match=r"cannot reach the Hugging Face hub \((ConnectError|OfflineModeIsEnabled)"):
        pull_model(store, "someone/esm_x", endpoint="http://127.0.0.1:9")  # nothing listens on port 9
    assert snapshot(store) == before
    with pytest.raises(InputError):
        pull_model(store.parent / "fresh", "someone/esm_x", endpoint="http://127.0.0.1:9")
    assert not (store.parent / "fresh").exists()


def test_pull_from_a_fake_hub(store, monkeypatch):
    import huggingface_hub

    monkeypatch.delenv("HF_HUB_OFFLINE", raising=False)
    sha, calls = "c0ffee" * 6 + "abcd", []

    class Api:
        def __init__(self, endpoint=None):
            pass

        def model_info(self, repo_id, revision=None, timeout=None):
            return argparse.Namespace(sha=sha, card_data={"license": "apache-2.0"})

    def download(repo_id, *, allow_patterns, revision, local_dir, endpoint):
        calls.append((repo_id, revision, allow_patterns))
        fake_esm(Path(local_dir), hidden=16)
        (Path(local_dir) / ".cache").mkdir()
        return local_dir

    monkeypatch.setattr(huggingface_hub, "HfApi", Api)
    monkeypatch.setattr(huggingface_hub, "snapshot_download", download)
    entry = pull_model(store, "facebook/esm2_t6_8M_UR50D")
    assert calls == [("facebook/esm2_t6_8M_UR50D", sha, ms.PULL_PATTERNS)]
    assert (entry.name, entry.licence, entry.hidden) == ("esm2_t6_8M", "MIT", 16)
    assert entry.source == f"hf:facebook/esm2_t6_8M_UR50D@{sha}"
    assert sorted(os.listdir(store)) == [".manifest.lock", "esm2_t6_8M", "manifest.json"]
    with pytest.raises(InputError, match="already holds"):
        pull_model(store, "facebook/esm2_t6_8M_UR50D")
    assert len(calls) == 1  # refused before any download
    other = pull_model(store, "someone/esm_finetuned")  # unknown repo: the hub's model card gives the licence
    assert (other.name, other.licence) == ("esm_finetuned", "apache-2.0")


def test_concurrent_adds_all_land(src, store):
    # Each write of the manifest is slowed down so that unlocked read-modify-write cycles would overlap
    # (without the lock, entries are lost: checked by hand with a no-op `_locked`).
    # The weights check (torch) is switched off: this test is about the lock, and 4 torch imports are slow.
    code = ("import sys, time; from aisci.protein import store as ms; w = ms._write_manifest; "
            "ms._write_manifest = lambda *a: (time.sleep(0.1), w(*a)); ms._check_weights = lambda *a: None; "
            "[ms.add_model(sys.argv[1], f'{sys.argv[2]}_{i}', sys.argv[3], licence='MIT') for i in range(3)]")
    procs = [subprocess.Popen([sys.executable, "-c", code, str(store), f"p{k}", str(src)]) for k in range(4)]
    assert [p.wait(timeout=60) for p in procs] == [0] * 4
    names = sorted(json.loads((store / "manifest.json").read_text())["models"])
    assert names == sorted(f"p{k}_{i}" for k in range(4) for i in range(3))
    assert all(ms.verify_model(store, n) == [] for n in names)


def test_cli_list_add_verify(src, store, capsys):
    s = ["--model-store", str(store)]
    assert run_cli("list", *s) == 0
    assert capsys.readouterr().out == f"0 models in {store}\n"
    assert run_cli("add", "small", str(src), "--licence", "MIT", "--source", "hf:me/small", *s) == 0
    size = cli.human_size(ms.list_models(store)[0].size)
    assert size.endswith(" kB")
    assert capsys.readouterr().out == (f"small: 2 layers, hidden 8, {size}, licence MIT, source hf:me/small "
                                       f"-> {store / 'small'}\n")
    assert run_cli("add", "small", str(src), *s) == 1
    assert "aisci models: error: " in capsys.readouterr().err
    assert run_cli("list", *s) == 0
    lines = capsys.readouterr().out.splitlines()
    assert lines[0] == f"1 model in {store}"
    assert lines[1].split() == ["NAME", "LAYERS", "HIDDEN", "SIZE", "LICENCE", "SOURCE"]
    assert lines[2].split() == ["small", "2", "8", *size.split(), "MIT", "hf:me/small"]
    assert run_cli("verify", *s) == 0 and capsys.readouterr().out == "small: ok\n"
    (store / "small" / "vocab.txt").unlink()
    assert run_cli("verify", "small", "ghost", *s) == 1
    assert capsys.readouterr().out.splitlines() == [
        "small: 1 problem", f"  {store / 'small' / 'vocab.txt'}: missing",
        "ghost: 1 problem", f"  {store}: no model named 'ghost' (the store holds: small)",
        "2 of 2 models failed verification"]
    assert run_cli("add", "bad", str(store), *s) == 1
    assert f"{store / 'config.json'}: missing" in capsys.readouterr().err


def test_cli_pull_offline(store, monkeypatch, capsys):
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    assert run_cli("pull", "facebook/esm2_t12_35M_UR50D", "--model-store", str(store)) == 1
    err = capsys.readouterr().err
    assert "cannot reach the Hugging Face hub" in err and "aisci models add esm2_t12_35M" in err
    assert not store.exists()


def test_demo_model_is_deterministic_and_loads(store, capsys, tmp_path):
    import torch
    from transformers import EsmForMaskedLM, EsmTokenizer

    from aisci.protein.demo_model import write_random_esm

    state = torch.random.get_rng_state()
    assert run_cli("demo", "d0", "--model-store", str(store)) == 0
    assert torch.equal(state, torch.random.get_rng_state())  # the caller's random state is untouched
    assert run_cli("demo", "d0b", "--model-store", str(store), "--seed", "0") == 0
    assert run_cli("demo", "d1", "--model-store", str(store), "--seed", "1") == 0
    assert run_cli("demo", "d1", "--model-store", str(store)) == 1
    entries = {e.name: e for e in ms.list_models(store)}
    assert entries["d0"].licence == "none (random weights, demo only)" and entries["d0"].source == "demo:random-seed0"
    sha = {n: e.files["model.safetensors"]["sha256"] for n, e in entries.items()}
    assert sha["d0"] == sha["d0b"] != sha["d1"]
    assert sorted(entries["d0"].files) == ["config.json", "model.safetensors", "special_tokens_map.json",
                                           "tokenizer_config.json", "vocab.txt"]
    assert (entries["d0"].layers, entries["d0"].hidden, entries["d0"].window) == (2, 64, 1024)
    again = write_random_esm(tmp_path / "again", seed=0)
    assert hashlib.sha256((again / "model.safetensors").read_bytes()).hexdigest() == sha["d0"]
    model = EsmForMaskedLM.from_pretrained(store / "d0", local_files_only=True).eval()
    tok = EsmTokenizer.from_pretrained(store / "d0", local_files_only=True)
    ids = tok("MKV", return_tensors="pt")["input_ids"]
    assert ids.tolist() == [[0, 20, 15, 7, 2]]
    with torch.no_grad():
        assert model(input_ids=ids).logits.shape == (1, 5, 33)
    assert not [p for p in store.iterdir() if p.name.startswith(".demo")]


# --- trust: stamps outside the store, manifest confined to the store, weights checked at staging ------------------

def test_forged_stamp_cannot_vouch_for_altered_weights(src, store, cache):
    ms.add_model(store, "small", src)
    before = snapshot(store)
    ms.check_model(store, "small", where="w")
    assert snapshot(store) == before  # the check writes nothing in the store
    (stamp,) = cache.iterdir()  # this user's stamp: the four files, as hashed
    recorded = json.loads(stamp.read_text())["files"]
    manifest = json.loads((store / "manifest.json").read_text())["models"]["small"]["files"]
    assert sorted(recorded) == sorted(manifest)
    assert all(recorded[f]["sha256"] == manifest[f]["sha256"] for f in manifest)
    assert stamp.stat().st_mode & 0o777 == 0o600 and cache.stat().st_mode & 0o777 == 0o700

    weights = store / "small" / "model.safetensors"
    data = bytearray(weights.read_bytes())
    data[-1] ^= 0xFF  # same size
    weights.write_bytes(bytes(data))
    st = weights.stat()
    forged = {"sha256": manifest["model.safetensors"]["sha256"], "size": st.st_size, "dev": st.st_dev,
              "ino": st.st_ino, "mtime_ns": st.st_mtime_ns, "ctime_ns": st.st_ctime_ns}
    # the stamp the store used to hold, rewritten to vouch for the altered file (format of before this fix) ...
    (store / "small" / ".aisci-verified.json").write_text(json.dumps(
        {"format": 1, "files": {"model.safetensors": {k: forged[k] for k in ("size", "mtime_ns", "ctime_ns",
                                                                              "sha256")}}}))
    # ... and a store-level stamp: neither is read
    (store / ".aisci-verified.json").write_text(json.dumps({"format": 1, "files": {"model.safetensors": forged}}))
    with pytest.raises(InputError) as err:
        ms.check_model(store, "small", where="w")
    assert str(err.value).startswith(
        f"w: model 'small' failed verification: {weights}: SHA-256 differs from the manifest (altered or corrupted)")


def test_stamp_others_can_write_is_ignored(src, store, cache, caplog):
    ms.add_model(store, "small", src)
    ms.check_model(store, "small", where="w")
    (stamp,) = cache.iterdir()
    weights = store / "small" / "model.safetensors"
    data = bytearray(weights.read_bytes())
    data[-1] ^= 0xFF
    weights.write_bytes(bytes(data))
    st = weights.stat()
    record = json.loads(stamp.read_text())
    record["files"]["model.safetensors"].update(dev=st.st_dev, ino=st.st_ino, mtime_ns=st.st_mtime_ns,
                                                ctime_ns=st.st_ctime_ns)
    stamp.write_text(json.dumps(record))  # forged in the cache itself
    cache.chmod(0o777)  # ... which others could write: not trusted
    with caplog.at_level(logging.WARNING), pytest.raises(InputError, match="model.safetensors: SHA-256 differs"):
        ms.check_model(store, "small", where="w")
    assert f"ignoring the verification stamp {stamp}: it or its folder is not yours alone" in caplog.text
    cache.chmod(0o700)  # the user's own cache is trusted (the residual trust of `stamp_dir`): the forgery passes
    assert ms.check_model(store, "small", where="w") == store / "small"
    assert ms.verify_model(store, "small") == [f"{weights}: SHA-256 differs from the manifest (altered or corrupted)"]


BAD_NAMES = ["../x", "/abs/x", "-x", ".x", "..", "_x", "a" * 201, "a b", ""]


@pytest.mark.parametrize("name", BAD_NAMES)
def test_bad_model_names_refused_everywhere(src, store, name, capsys):
    ms.add_model(store, "kept", src)
    before = snapshot(store)
    with pytest.raises(InputError, match=r"^model name .* (must match|is 201 characters|must be a non-empty)"):
        ms.add_model(store, name, src)
    with pytest.raises(InputError, match=r"^model name "):
        ms.verify_model(store, name)
    with pytest.raises(InputError, match=r"^config\.yaml: protein\.model: model name "):
        ms.check_model(store, name, where="config.yaml: protein.model")
    assert run_cli("demo", "--model-store", str(store), "--", name) == 1  # '--': '-x' as the name, not as an option
    assert capsys.readouterr().err.startswith("aisci models: error: model name ")
    assert snapshot(store) == before
    assert sorted(os.listdir(store)) == [".manifest.lock", "kept", "manifest.json"]
    assert not (store.parent / "x").exists() and not Path("/abs/x").exists()


def _tamper(store: Path, change) -> None:
    path = store / "manifest.json"
    manifest = json.loads(path.read_text())
    change(manifest["models"])
    path.write_text(json.dumps(manifest))


def _rename(models: dict, new: str) -> None:
    models[new] = models.pop("small")


def _file(models: dict, rel: str) -> None:
    models["small"]["files"][rel] = models["small"]["files"].pop("vocab.txt")


@pytest.mark.parametrize("change, message", [
    (lambda m: _rename(m, "../x"), r"manifest\.json: models: model name '\.\./x' must match"),
    (lambda m: _rename(m, "/etc"), r"manifest\.json: models: model name '/etc' must match"),
    (lambda m: _rename(m, "-x"), r"manifest\.json: models: model name '-x' must match"),
    (lambda m: _rename(m, ".x"), r"manifest\.json: models: model name '\.x' must match"),
    (lambda m: _rename(m, "m" * 201), r"manifest\.json: models: model name 'm{77}\.\.\.' is 201 characters long"),
    (lambda m: _file(m, "../../outside.txt"),
     r"manifest\.json: models\.small\.files: '\.\./\.\./outside\.txt' is not a file of a staged model folder"),
    (lambda m: _file(m, "/etc/passwd"), r"manifest\.json: models\.small\.files: '/etc/passwd' is not a file of"),
    (lambda m: _file(m, "sub/vocab.txt"), r"manifest\.json: models\.small\.files: 'sub/vocab\.txt' is not a file of"),
    (lambda m: _file(m, ".hidden"), r"manifest\.json: models\.small\.files: '\.hidden' is not a file of"),
    (lambda m: m["small"]["files"]["config.json"].update(sha256="zz"),
     r"manifest\.json: models\.small\.files\.config\.json\.sha256: expected 64 lower-case hex digits, got 'zz'"),
    (lambda m: m["small"]["files"]["config.json"].update(size=-1),
     r"manifest\.json: models\.small\.files\.config\.json\.size: expected a byte count, got -1"),
    (lambda m: m["small"].update(layers="2"), r"manifest\.json: models\.small\.layers: expected a positive integer"),
    (lambda m: m["small"].pop("files"), r"manifest\.json: models\.small: missing field\(s\) files"),
    (lambda m: m.update(small=[]), r"manifest\.json: models\.small: expected an object, got list"),
])
def test_manifest_names_and_paths_confined_to_the_store(src, store, tmp_path, change, message):
    ms.add_model(store, "small", src)
    (tmp_path / "outside.txt").write_text("x")
    _tamper(store, change)
    for call in (lambda: ms.list_models(store), lambda: ms.check_model(store, "small", where="w"),
                 lambda: ms.verify_model(store, "small")):
        with pytest.raises(InputError, match=f"^(w: )?{re.escape(str(store))}/{message}"):
            call()


def test_manifest_path_through_a_symlink_out_of_the_store(src, store, tmp_path):
    ms.add_model(store, "small", src)
    outside = tmp_path / "elsewhere"
    (store / "small").rename(outside)
    (store / "small").symlink_to(outside)  # the files are intact, but outside the store
    with pytest.raises(InputError, match=rf"^{re.escape(str(store))}/manifest\.json: models\.small\.files: "
                                         rf"'config\.json' resolves to {re.escape(str(outside))}/config\.json, "
                                         rf"outside the store {re.escape(str(store))}$"):
        ms.check_model(store, "small", where="w")


def test_manifest_not_utf8_is_a_one_line_error(src, store, capsys):
    ms.add_model(store, "small", src)
    (store / "manifest.json").write_bytes(b'{"format": 1, "models": {"sm\xe9all": {}}}')
    message = f"{store / 'manifest.json'}: not UTF-8 text (byte 0xe9 at offset 28): not an aisci model manifest"
    with pytest.raises(InputError) as err:
        ms.check_model(store, "small", where="w")
    assert str(err.value) == message
    assert run_cli("list", "--model-store", str(store)) == 1
    assert capsys.readouterr().err == f"aisci models: error: {message}\n"


class RunsCode:
    """A pickle that runs code when loaded without weights_only: a shell command, or open(), creates the marker."""

    def __init__(self, marker: Path, how: str):
        self.marker, self.how = str(marker), how

    def __reduce__(self):
        if self.how == "shell":
            return (os.system, (f"touch {shlex.quote(self.marker)}",))
        return (open, (self.marker, "w"))


def _as_bin(src: Path, change=None) -> Path:
    """Replace the folder's model.safetensors by a pytorch_model.bin of the same tensors, ``change``d."""
    import torch
    from safetensors.torch import load_file

    tensors = load_file(str(src / "model.safetensors"))
    (src / "model.safetensors").unlink()
    torch.save(change(tensors) if change else tensors, src / "pytorch_model.bin")
    return src / "pytorch_model.bin"


def test_add_reads_a_pytorch_bin_of_the_right_tensors(src, store):
    _as_bin(src)
    entry = ms.add_model(store, "small", src)
    assert sorted(entry.files) == ["config.json", "pytorch_model.bin", "special_tokens_map.json", "vocab.txt"]
    from aisci.protein.esm import load_esm

    assert load_esm(entry.path, device="cpu").window == 1024


@pytest.mark.parametrize("write, message", [
    (lambda d: _text_bin(d),
     r"pytorch_model\.bin: cannot read the weights \(.+\)$"),
    (lambda d: _as_bin(d, lambda t: list(t.values())),
     r"pytorch_model\.bin: holds a list, not a dictionary of tensors"),
    (lambda d: _as_bin(d, lambda t: {**t, "note": "hello"}),
     r"pytorch_model\.bin: entry 'note' is a str, not a tensor"),
    (lambda d: _as_bin(d, lambda t: {**t, "lm_head.bias": t["lm_head.bias"][:-1]}),
     r"pytorch_model\.bin: tensor lm_head\.bias has shape \(32,\); the model of config\.json expects \(33,\)"),
    (lambda d: _as_bin(d, lambda t: {k: v for k, v in t.items() if "layer.1." not in k}),
     r"pytorch_model\.bin: missing tensor\(s\) that the model of config\.json needs: esm\.encoder\.layer\.1\."),
    (lambda d: _reshape_safetensors(d, "esm.encoder.layer.0.intermediate.dense.weight"),
     r"model\.safetensors: tensor esm\.encoder\.layer\.0\.intermediate\.dense\.weight has shape \(8, 16\); "
     r"the model of config\.json expects \(16, 8\)"),
])
def test_add_refuses_weights_the_loader_would_refuse(src, store, write, message):
    write(src)
    ms.add_model(store, "kept", fake_esm(src.parent / "good"))
    before = snapshot(store)
    with pytest.raises(InputError, match=f"^{re.escape(str(src))}/{message}"):
        ms.add_model(store, "bad", src)
    assert snapshot(store) == before and not (store / "bad").exists()


def _text_bin(d: Path) -> None:
    (d / "model.safetensors").unlink()
    (d / "pytorch_model.bin").write_text("these are not weights\n")


def _reshape_safetensors(d: Path, key: str) -> None:
    from safetensors.torch import load_file, save_file

    tensors = load_file(str(d / "model.safetensors"))
    tensors[key] = tensors[key].T.contiguous()
    save_file(tensors, str(d / "model.safetensors"), metadata={"format": "pt"})


@pytest.mark.parametrize("how, refused", [("shell", "unsupported GLOBAL posix.system"),
                                         ("open", "Unsupported global: GLOBAL io.open")])
def test_add_refuses_a_pickle_that_runs_code_without_running_it(src, store, tmp_path, capsys, how, refused):
    import torch

    marker = tmp_path / "pwned"
    (src / "model.safetensors").unlink()
    torch.save({"esm.embeddings.word_embeddings.weight": torch.zeros(33, 8), "x": RunsCode(marker, how)},
               src / "pytorch_model.bin")
    assert run_cli("add", "evil", str(src), "--model-store", str(store)) == 1
    err = capsys.readouterr().err
    assert err.startswith(f"aisci models: error: {src / 'pytorch_model.bin'}: cannot read the weights (not plain "
                          "tensors, refused without running anything in it: ")
    assert refused in err
    assert len(err.splitlines()) == 1
    assert not marker.exists()  # the code was not run
    assert os.listdir(store) == []  # nothing staged, no manifest


def test_a_long_name_staged_by_an_earlier_version_stays_readable(src, store):
    """Names up to 100 characters were allowed before the one 64-character rule: such a store still works."""
    ms.add_model(store, "kept", src)
    legacy = "esm2_t6_8M_UR50D_finetuned_on_clinvar_missense_2024_03_lr1e-5_epoch10_seed42"  # 76 characters
    _tamper(store, lambda m: m.__setitem__(legacy, m["kept"]))
    assert [e.name for e in ms.list_models(store)] == sorted(["kept", legacy])
    assert ms.check_model(store, "kept", where="w") == store / "kept"
    with pytest.raises(InputError, match=r"^model name .* is 76 characters long \(at most 64\)"):
        ms.add_model(store, legacy, src)  # new names follow the rule
