"""SpliceAI in PyTorch: architecture, loading the official .h5 weights, and exactness against the official Keras outputs."""

from __future__ import annotations

import gzip
import json
import shutil
import subprocess
import sys

import h5py
import numpy as np
import pytest
import torch

from aisci.errors import InputError
from aisci.fileio import sha256
from aisci.splice import model as arch
from aisci.splice import weights
from aisci.splice.encode import codes, one_hot, reverse_complement
from aisci.splice.engine import AltJob, Engine
from tests.conftest import REPO

DATA = REPO / "tests" / "unit" / "data" / "splice"
NA12878_FASTA = "ucsc.hg19.chr20.unittest.fasta.gz"


@pytest.fixture(scope="module")
def ensemble():
    return weights.load_ensemble()


def test_architecture_is_spliceai_10k():
    net = arch.SpliceAI()
    assert arch.FLANK == 5000 and arch.CONTEXT == 10000
    # every stored Keras tensor has a counterpart: parameters plus BN running statistics
    n = sum(p.numel() for p in net.parameters())
    n += sum(b.numel() for name, b in net.named_buffers() if not name.endswith("num_batches_tracked"))
    keras = sum(np.prod(ds.shape) for ds in _h5_datasets(weights.weights_dir() / "spliceai1.h5"))
    assert n == keras
    x = torch.zeros(2, 4, 10_123)
    assert net.eval()(x).shape == (2, 3, 123)


def _h5_datasets(path):
    out = []
    with h5py.File(path, "r") as fh:
        fh["model_weights"].visititems(lambda _n, obj: out.append(obj) if isinstance(obj, h5py.Dataset) else None)
        return [np.asarray(d) for d in out]


def test_registry_states_the_licence_and_checksums():
    assert weights.SPLICEAI.licence == "GPL-3.0"
    folder = weights.verify_weights()
    for name in weights.FILES:
        assert sha256(folder / name) == weights.SPLICEAI.sha256[name]


def test_every_tensor_is_loaded(ensemble):
    """Each network's tensors equal the file's (transposed for convolutions), none left at init values."""
    path = weights.weights_dir() / "spliceai3.h5"
    net = ensemble.models[2]
    with h5py.File(path, "r") as fh:
        kernel = fh["model_weights/conv1d_39/conv1d_39/kernel:0"][()]
        gamma = fh["model_weights/batch_normalization_1/batch_normalization_1/gamma:0"][()]
        var = fh["model_weights/batch_normalization_32/batch_normalization_32/moving_variance:0"][()]
    np.testing.assert_array_equal(net.out.weight.detach().numpy(), kernel.transpose(2, 1, 0))
    np.testing.assert_array_equal(net.units[0].bn1.weight.detach().numpy(), gamma)
    np.testing.assert_array_equal(net.units[15].bn2.running_var.detach().numpy(), var)
    assert not torch.equal(ensemble.models[0].stem.weight, ensemble.models[1].stem.weight)


def _copy_weights(tmp_path):
    folder = tmp_path / "w"
    shutil.copytree(weights.weights_dir(), folder, ignore=shutil.ignore_patterns("*.py*"))
    return folder


def test_missing_and_altered_files_are_clear_errors(tmp_path):
    folder = _copy_weights(tmp_path)
    (folder / "spliceai4.h5").unlink()
    with pytest.raises(InputError, match=r"spliceai4\.h5: SpliceAI weight file missing"):
        weights.load_ensemble(folder)
    with pytest.raises(InputError, match=r"spliceai4\.h5.*pip install spliceai==1.3.1"):
        weights.verify_weights(folder)
    shutil.copy(weights.weights_dir() / "spliceai4.h5", folder / "spliceai4.h5")
    with h5py.File(folder / "spliceai2.h5", "r+") as fh:
        fh["model_weights/conv1d_5/conv1d_5/bias:0"][0] += 1.0
    with pytest.raises(InputError, match=r"spliceai2\.h5: SHA-256 differs"):
        weights.load_ensemble(folder)
    # without the checksum the altered tensor loads: the check is what catches it
    assert len(weights.load_ensemble(folder, verify=False).models) == 5


def test_missing_tensor_wrong_shape_and_wrong_architecture(tmp_path):
    folder = _copy_weights(tmp_path)
    path = folder / "spliceai1.h5"
    with h5py.File(path, "r+") as fh:
        del fh["model_weights/batch_normalization_7/batch_normalization_7/moving_mean:0"]
    with pytest.raises(InputError, match=r"layer 'batch_normalization_7' has no 'moving_mean' tensor"):
        weights.load_keras_h5(path)

    shutil.copy(weights.weights_dir() / "spliceai1.h5", path)
    with h5py.File(path, "r+") as fh:
        del fh["model_weights/conv1d_4/conv1d_4/kernel:0"]
        fh["model_weights/conv1d_4/conv1d_4"].create_dataset("kernel:0", data=np.zeros((9, 32, 32), np.float32))
    with pytest.raises(InputError, match=r"layer 'conv1d_4' kernel has shape \(9, 32, 32\)"):
        weights.load_keras_h5(path)

    shutil.copy(weights.weights_dir() / "spliceai1.h5", path)
    with h5py.File(path, "r+") as fh:
        cfg = json.loads(fh.attrs["model_config"])
        for layer in cfg["config"]["layers"]:
            if layer["name"] == "conv1d_22":
                layer["config"]["dilation_rate"] = [8]
        fh.attrs["model_config"] = json.dumps(cfg)
    with pytest.raises(InputError, match=r"not the SpliceAI-10k architecture: layer 'conv1d_22'"):
        weights.load_keras_h5(path)

    (folder / "junk.h5").write_bytes(b"not hdf5")
    with pytest.raises(InputError, match="not a readable HDF5 file"):
        weights.load_keras_h5(folder / "junk.h5")


def _set_config(path, text):
    with h5py.File(path, "r+") as fh:
        fh.attrs["model_config"] = text


def _official_config():
    with h5py.File(weights.weights_dir() / "spliceai1.h5", "r") as fh:
        return json.loads(fh.attrs["model_config"])


def test_malformed_model_graph_is_an_input_error_naming_the_file(tmp_path):
    """With --no-verify-weights a damaged model_config reaches the loader: it names the file and the fault."""
    path = tmp_path / "spliceai1.h5"
    shutil.copy(weights.weights_dir() / "spliceai1.h5", path)
    _set_config(path, '{"class_name": "Model", "config": {"layers": [')
    with pytest.raises(InputError, match=r"spliceai1\.h5: malformed Keras model graph \(the model_config attribute\): "
                                         r"not JSON \(Expecting value: line 1"):
        weights.load_keras_h5(path)
    _set_config(path, json.dumps({"class_name": "Model", "config": {}}))
    with pytest.raises(InputError, match=r"spliceai1\.h5: malformed Keras model graph .*: no config\.layers list"):
        weights.load_keras_h5(path)
    broken = _official_config()
    del broken["config"]["layers"][3]["class_name"]
    _set_config(path, json.dumps(broken))
    with pytest.raises(InputError, match=r"spliceai1\.h5: malformed .*: layer 3 lacks a name, class_name or config"):
        weights.load_keras_h5(path)
    broken = _official_config()
    broken["config"]["layers"][5]["inbound_nodes"] = [{"args": [], "kwargs": {}}]  # Keras 3's form
    _set_config(path, json.dumps(broken))
    with pytest.raises(InputError, match=r"layer '\w+' has malformed inbound_nodes"):
        weights.load_keras_h5(path)
    broken = _official_config()
    broken["config"]["layers"][5]["inbound_nodes"][0][0][0] = "nowhere"
    _set_config(path, json.dumps(broken))
    with pytest.raises(InputError, match=r"takes input from 'nowhere', which is not a layer"):
        weights.load_keras_h5(path)
    broken = _official_config()
    for layer in broken["config"]["layers"]:
        if layer["class_name"] == "BatchNormalization":
            layer["config"]["epsilon"] = "0.001"
            break
    _set_config(path, json.dumps(broken))
    with pytest.raises(InputError, match=r"not the SpliceAI-10k architecture: layer '\w+' has epsilon 0\.001"):
        weights.load_keras_h5(path)


def test_malformed_model_graph_stops_splice_score_with_one_line(na12878, tmp_path, capsys):
    from aisci.cli import main

    folder = _copy_weights(tmp_path)
    _set_config(folder / "spliceai1.h5", "not json")
    out = tmp_path / "out" / "x.vcf.gz"
    argv = ["splice", "score", "--vcf", str(DATA / "distance.vcf"), "--ref", str(na12878 / NA12878_FASTA),
            "--annotation", str(DATA / "custom.gff3"), "--splice-weights", str(folder), "--no-verify-weights",
            "--out", str(out), "--parquet", str(tmp_path / "out" / "x.parquet")]
    assert main(argv) == 1
    err = capsys.readouterr().err.strip()
    assert err.startswith("aisci splice: error: ") and "\n" not in err
    assert f"{folder / 'spliceai1.h5'}: malformed Keras model graph (the model_config attribute): not JSON" in err
    assert not out.parent.exists() or not list(out.parent.iterdir())


def test_one_hot_follows_the_official_byte_rules():
    c = codes("ACGTNacgtnRY")
    assert c.tolist() == [1, 2, 3, 4, 0, 1, 2, 3, 4, 0, 82 % 5, 89 % 5]
    x = one_hot(c[None])[0].T.numpy()
    assert x[:5].tolist() == [[1, 0, 0, 0], [0, 1, 0, 0], [0, 0, 1, 0], [0, 0, 0, 1], [0, 0, 0, 0]]
    # reverse complement == the official x[::-1, ::-1] on the one-hot matrix
    np.testing.assert_array_equal(one_hot(reverse_complement(c)[None])[0].T.numpy(), x[::-1, ::-1])


def _official_positions():
    table: dict[tuple[str, int], tuple[float, float]] = {}
    with gzip.open(DATA / "official_positions.tsv.gz", "rt") as fh:
        next(fh)
        for line in fh:
            chrom, pos, a, d = line.split("\t")
            table[chrom, int(pos)] = (float(a), float(d))
    return table


@pytest.mark.parametrize("fasta,region", [
    (None, "chr20:10030001-10031000"),  # real sequence, an ANKEF1 exon with strong sites
    ("windows.fa", "nrich:5001-7000"),  # N blocks every 400 nt and a 1 kb N run
    ("windows.fa", "edge:1-1500"),  # contig start: N beyond the end only
    ("windows.fa", "edge:5501-7000"),  # contig end
], ids=["real", "n-rich", "contig-start", "contig-end"])
def test_predict_equals_official_keras(fasta, region, na12878, tmp_path):
    """`aisci splice predict` = the official package's 5-model mean within 1e-4 (fixtures: make_fixtures.py)."""
    ref = na12878 / NA12878_FASTA if fasta is None else DATA / fasta
    out = tmp_path / "p.tsv"
    res = subprocess.run([sys.executable, "-m", "aisci.cli", "splice", "predict", "--ref", str(ref),
                          "--region", region, "--out", str(out)], capture_output=True, text=True)
    assert res.returncode == 0, res.stderr
    official = _official_positions()
    lines = out.read_text().splitlines()
    assert lines[0] == "chrom\tpos\tacceptor\tdonor"
    chrom, span = region.split(":")
    first, last = map(int, span.split("-"))
    assert len(lines) - 1 == last - first + 1
    ours = np.array([[float(v) for v in ln.split("\t")[2:]] for ln in lines[1:]])
    theirs = np.array([official[chrom, p] for p in range(first, last + 1)])
    assert np.abs(ours - theirs).max() < 1e-4
    assert theirs.max() > 0.05 or fasta is not None  # the real window holds real splice sites


def test_predict_minus_strand_is_the_reverse_complement(na12878, ensemble):
    """Predicting '-' equals predicting '+' on the reverse-complemented contig, position by position."""
    import pysam

    fa = pysam.FastaFile(str(na12878 / NA12878_FASTA))
    seq = codes(fa.fetch("chr20", 10385000, 10385000 + 10600))
    engine = Engine(ensemble, "cpu")
    minus = engine.predict(reverse_complement(seq))[::-1]
    with torch.inference_mode():
        direct = ensemble(one_hot(reverse_complement(seq)[None]))[0].T.numpy()[::-1]
    np.testing.assert_allclose(minus, direct, atol=1e-6)


@pytest.mark.parametrize("ref_len,alt", [(1, "A"), (1, "CTTAG"), (6, "G"), (3, "T")], ids=["snv", "ins", "del5", "del2"])
def test_incremental_alt_equals_full_forward(ref_len, alt, na12878, ensemble):
    """The engine's slab recomputation gives the full forward pass of the alternative window."""
    import pysam

    fa = pysam.FastaFile(str(na12878 / NA12878_FASTA))
    tile = codes(fa.fetch("chr20", 10020000, 10020000 + 12000))
    d, h = 50, 5050
    starts = (5400, 5460, 6500)
    jobs = [AltJob(start=c, ref_len=ref_len, alt=codes(alt), out_lo=c - d, n_out=2 * d + 1 - ref_len + len(alt))
            for c in starts]
    ref, jobs = Engine(ensemble, "cpu", batch_size=2).run_tile(tile, jobs)
    with torch.inference_mode():
        for c, job in zip(starts, jobs):
            window = np.concatenate([tile[c - h:c], codes(alt), tile[c + ref_len:c + h + 1]])
            full = ensemble(one_hot(window[None]))[0].T.numpy()
            assert job.result.shape == full.shape
            np.testing.assert_allclose(job.result, full, atol=1e-6)
            ref_full = ensemble(one_hot(tile[None, c - h:c + h + 1]))[0].T.numpy()
            np.testing.assert_allclose(ref[c - h:c - h + 2 * d + 1], ref_full, atol=1e-6)
