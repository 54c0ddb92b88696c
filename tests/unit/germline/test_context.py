"""Tests for aisci.germline.context: torch features equal a plain-Python reference; Parquet schema; device choice."""

import logging
import math
import random
from collections import Counter

import numpy as np
import pyarrow.parquet as pq
import pysam
import pytest
import torch

from aisci.device import pick_device
from aisci.germline.context import COLUMNS, Site, annotate, context_features, encode_windows


def reference_features(seq: str, k: int = 3) -> dict:
    """The same features computed the obvious way, one window at a time."""
    called = [b for b in seq if b != "N"]
    centre = len(seq) // 2
    run = 0
    if seq[centre] != "N":
        i = centre
        while i >= 0 and seq[i] == seq[centre]:
            i -= 1
        j = centre
        while j < len(seq) and seq[j] == seq[centre]:
            j += 1
        run = j - i - 1
    kmers = Counter(seq[i: i + k] for i in range(len(seq) - k + 1) if "N" not in seq[i: i + k])
    total = sum(kmers.values())
    entropy = -sum(c / total * math.log2(c / total) for c in kmers.values()) if total else 0.0
    return {
        "gc": sum(b in "GC" for b in called) / max(len(called), 1),
        "cpg": sum(seq[i: i + 2] == "CG" for i in range(len(seq) - 1)),
        "homopolymer": run,
        "entropy": entropy,
        "n_fraction": 1 - len(called) / len(seq),
    }


def test_features_match_reference_implementation():
    rng = random.Random(5)
    seqs = ["".join(rng.choice("ACGTN" if i % 7 == 0 else "ACGT") for _ in range(41)) for i in range(200)]
    seqs += ["A" * 41, "N" * 41, "ACGT" * 10 + "A", "C" * 15 + "GGGGGGGGGGG" + "T" * 15]
    lut = {b: i for i, b in enumerate("ACGTN")}
    codes = np.array([[lut[b] for b in s] for s in seqs], dtype=np.int8)
    got = context_features(codes, torch.device("cpu"))
    for i, s in enumerate(seqs):
        want = reference_features(s)
        for key, value in want.items():
            assert got[key][i] == pytest.approx(value, abs=1e-5), (key, s)


@pytest.fixture
def small_ref(tmp_path):
    rng = random.Random(1)
    chr1 = "".join(rng.choice("ACGT") for _ in range(300))
    chr2 = "GGGGGCCCCC" * 5
    fa = tmp_path / "ref.fa"
    fa.write_text(f">chr1\n{chr1}\n>chr2\n{chr2}\n")
    pysam.faidx(str(fa))
    return fa, {"chr1": chr1, "chr2": chr2}


def test_windows_pad_contig_edges_with_n(small_ref):
    fa, seqs = small_ref
    with pysam.FastaFile(str(fa)) as fasta:
        codes = encode_windows([Site("chr1", 3, "A", "C"), Site("chr2", 50, "C", "T")], fasta, flank=5)
    decoded = ["".join("ACGTN"[c] for c in row) for row in codes]
    assert decoded[0] == "NNN" + seqs["chr1"][:8]
    assert decoded[1] == seqs["chr2"][44:] + "NNNNN"


def test_annotate_writes_parquet_with_exact_schema(small_ref, tmp_path, caplog, monkeypatch):
    fa, seqs = small_ref
    vcf = tmp_path / "calls.vcf"
    vcf.write_text(
        "##fileformat=VCFv4.2\n##contig=<ID=chr1,length=300>\n##contig=<ID=chr2,length=50>\n"
        '##FORMAT=<ID=GT,Number=1,Type=String,Description="Genotype">\n'
        "#CHROM\tPOS\tID\tREF\tALT\tQUAL\tFILTER\tINFO\tFORMAT\tS\n"
        f"chr1\t100\t.\t{seqs['chr1'][99]}\tA,T\t50\tPASS\t.\tGT\t1/2\n"
        f"chr2\t1\t.\tG\tGA\t50\tPASS\t.\tGT\t0/1\n"
    )
    monkeypatch.setenv("CUDA_VISIBLE_DEVICES", "0")
    out = tmp_path / "ctx.parquet"
    with caplog.at_level(logging.INFO):
        assert annotate(vcf, fa, out, flank=10, device="auto") == 3
    if not torch.cuda.is_available():
        assert "device: cpu (torch cannot use the granted device(s)), CUDA_VISIBLE_DEVICES=0" in caplog.text
    table = pq.read_table(out)
    assert tuple(table.column_names) == COLUMNS
    rows = table.to_pylist()
    assert [(r["chrom"], r["pos"], r["alt"]) for r in rows] == [("chr1", 100, "A"), ("chr1", 100, "T"), ("chr2", 1, "GA")]
    want = reference_features(seqs["chr1"][89:110])
    assert rows[0]["gc"] == pytest.approx(want["gc"], abs=1e-6) and rows[0]["entropy"] == pytest.approx(want["entropy"], abs=1e-5)
    assert rows[2]["homopolymer"] == 5 and rows[2]["n_fraction"] == pytest.approx(10 / 21, abs=1e-6)


def test_cuda_request_without_gpu_is_a_clear_error():
    if torch.cuda.is_available():
        pytest.skip("a GPU is present: the error path cannot be reached")
    from aisci.errors import InputError

    with pytest.raises(InputError, match="no CUDA device"):
        pick_device("cuda")
