"""Tests for aisci.reference: contigs from .fai or by scanning plain/gzip FASTA, and bad references."""

import gzip
import os
import time

import pytest

from aisci.errors import InputError
from aisci.reference import Contig, read_contigs


def test_scan_plain_and_gzip(tmp_path):
    text = ">c1 desc\nACGT\nAC\n>c2\nNNNNA\n"
    plain = tmp_path / "r.fa"
    plain.write_text(text)
    gz = tmp_path / "r.fa.gz"
    with gzip.open(gz, "wt") as fh:
        fh.write(text)
    assert read_contigs(plain) == [Contig("c1", 6), Contig("c2", 5)]
    assert read_contigs(gz) == [Contig("c1", 6), Contig("c2", 5)]


def test_fai_used_when_fresh_and_ignored_when_stale(tmp_path):
    fa = tmp_path / "r.fa"
    fa.write_text(">c1\nACGT\n")
    fai = tmp_path / "r.fa.fai"
    fai.write_text("c1\t999\t4\t4\t5\n")
    assert read_contigs(fa) == [Contig("c1", 999)]  # the index is trusted when not older
    old = time.time() - 100
    os.utime(fai, (old, old))
    assert read_contigs(fa) == [Contig("c1", 4)]


def test_real_reference_uses_its_index(na12878):
    contigs = read_contigs(na12878 / "ucsc.hg19.chr20.unittest.fasta.gz")
    assert contigs == [Contig("chr20", 63025520)]


@pytest.mark.parametrize(
    "text, message",
    [
        ("", "contains no sequences"),
        (">c1\n>c2\n", "contains no sequences"),
        (">c1\nACGT\n>c2\n", "sequence 'c2' is empty"),
        ("ACGT\n", "not a FASTA file"),
        (">c1\nAC\n>c1\nGT\n", "appears more than once"),
        (">\nACGT\n", "header without a name"),
    ],
)
def test_bad_references_are_rejected(tmp_path, text, message):
    fa = tmp_path / "bad.fa"
    fa.write_text(text)
    with pytest.raises(InputError, match=message) as err:
        read_contigs(fa)
    assert "bad.fa" in str(err.value)


def test_missing_reference(tmp_path):
    with pytest.raises(InputError, match="file not found"):
        read_contigs(tmp_path / "nope.fa")


def test_truncated_gzip_reference(tmp_path):
    import random

    rng = random.Random(1)
    gz = tmp_path / "r.fa.gz"
    with gzip.open(gz, "wt") as fh:
        fh.write(">c1\n" + "".join(rng.choice("ACGT") for _ in range(40000)) + "\n")
    data = gz.read_bytes()
    gz.write_bytes(data[: len(data) // 2])
    with pytest.raises(InputError, match="cannot read reference"):
        read_contigs(gz)
