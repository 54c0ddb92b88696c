"""Tests for aisci.regions: the scatter plan covers every base once, in order."""

import pytest

from aisci.reference import Contig
from aisci.regions import plan_chunks


def covered(chunks):
    return [(iv.chrom, pos) for c in chunks for iv in c.intervals for pos in range(iv.start, iv.end + 1)]


def test_long_contig_split_evenly_and_short_ones_packed():
    contigs = [Contig("chr1", 2500), Contig("chr2", 300), Contig("chr3", 400), Contig("chrM", 16)]
    chunks = plan_chunks(contigs, 1000)
    assert [str(iv) for iv in chunks[0].intervals] == ["chr1:1-834"]
    assert [c.length for c in chunks[:3]] == [834, 834, 832]
    assert chunks[3].region == "chr2:1-300,chr3:1-400,chrM:1-16"
    assert [c.name for c in chunks] == ["0000", "0001", "0002", "0003"]
    expected = [(c.name, p) for c in contigs for p in range(1, c.length + 1)]
    assert covered(chunks) == expected


def test_contig_exactly_chunk_size_is_one_chunk():
    chunks = plan_chunks([Contig("a", 1000), Contig("b", 1000)], 1000)
    assert [c.region for c in chunks] == ["a:1-1000", "b:1-1000"]


def test_chunk_size_must_be_positive():
    with pytest.raises(ValueError):
        plan_chunks([Contig("a", 10)], 0)
