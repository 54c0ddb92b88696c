"""Tests for aisci.germline.reference: contigs from .fai or by scanning plain/gzip FASTA, and bad references."""

import gzip
import os
import time
from pathlib import Path

import pytest

from aisci.errors import InputError
from aisci.germline.reference import Contig, read_contigs


def test_scan_plain_and_gzip(tmp_path):
    text = ">c1 desc\nACGT\nAC\n>c2\nNNNNA\n"
    plain = tmp_path / "r.fa"
    plain.write_text(text)
    gz = tmp_path / "r.fa.gz"
    with gzip.open(gz, "wt") as fh:
        fh.write(text)
    assert read_contigs(plain) == [Contig("c1", 6), Contig("c2", 5)]
    assert read_contigs(gz) == [Contig("c1", 6), Contig("c2", 5)]


def test_fai_used_when_fresh_and_ignored_when_older(tmp_path):
    fa = tmp_path / "r.fa"
    fa.write_text(">c1\nACGT\n")
    fai = tmp_path / "r.fa.fai"
    fai.write_text("c1\t4\t4\t4\t5\n")
    assert read_contigs(fa) == [Contig("c1", 4)]
    fai.write_text("c1\t999\t4\t4\t5\n")  # wrong, but older than the FASTA: not read at all
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


SEQ = "ACGTTGCAAC" * 50  # 500 bases


def _fasta(path, names, width=60, seq=SEQ):
    path.write_text("".join(f">{n} some description\n" + "".join(seq[i:i + width] + "\n" for i in range(0, len(seq), width))
                            for n in names))
    return path


@pytest.mark.parametrize("name", ["HLA-A*01:01:01:01", "gi|568336023|gb|CM000663.2|", "chr1:1-100", "chrUn_KI270302v1",
                                  "chrEBV", "1", "NC_000001.11", "a=b", "x#y"])
def test_legal_sam_names_pass_from_fasta_and_index(tmp_path, name):
    import pysam

    fa = _fasta(tmp_path / "r.fa", [name, "other"])
    assert read_contigs(fa) == [Contig(name, 500), Contig("other", 500)]  # scanned
    pysam.faidx(str(fa))
    assert read_contigs(fa) == [Contig(name, 500), Contig("other", 500)]  # from the checked index


@pytest.mark.parametrize("name", ["chr1$(touch${IFS}PWNED)", "chr1,2", "a'b", 'a"b', "a(b)", "a[1]", "a{b}", "a<b>",
                                  "a\\b", "*x", "=x", "#x"])
def test_names_outside_the_sam_rule_are_refused_with_file_and_line(tmp_path, name):
    fa = _fasta(tmp_path / "r.fa", ["chr0", name])
    with pytest.raises(InputError, match=r"r.fa line 11: sequence name .* breaks the SAM specification's rule"):
        read_contigs(fa)
    assert not (tmp_path / "PWNED").exists() and not list(tmp_path.glob("*PWNED*"))


def _fresh_index(fa, text):
    fai = Path(f"{fa}.fai")
    fai.write_text(text)
    later = fa.stat().st_mtime + 10  # newer than the FASTA, as rsync -a / cp -p / tar x leave a stale one
    os.utime(fai, (later, later))
    return fai


@pytest.mark.parametrize(
    "edit, problem",
    [
        (lambda rows: [["c1", "100", *rows[0][2:]], rows[1]], "line 1: .* sequence 'c1': its sequence does not end where the index says \\(100 bases\\)"),
        (lambda rows: [["c1", "600", *rows[0][2:]], rows[1]], "sequence 'c1': its sequence does not end where the index says \\(600 bases\\)"),
        (lambda rows: [rows[0], [rows[1][0], rows[1][1], str(int(rows[1][2]) + 61), *rows[1][3:]]],
         "line 2: .* sequence 'c2': "),
        (lambda rows: [rows[0], ["c3", *rows[1][1:]]], "line 1: .* sequence 'c1': the next sequence in the FASTA is not 'c3', the index's next line"),
        (lambda rows: [rows[0]], "line 1: .* the FASTA has more sequences after it than the index lists"),
        (lambda rows: [rows[1]], "line 1: .* the FASTA has sequences before it that the index does not list"),
        (lambda rows: [rows[1], rows[0]], "line 1: .* sequence 'c2'"),
    ],
    ids=["shorter", "longer", "offset", "renamed", "missing-last", "missing-first", "reordered"],
)
@pytest.mark.parametrize("compression", ["plain", "bgzip"])
def test_stale_index_is_refused_not_trusted(tmp_path, edit, problem, compression):
    import pysam

    fa = _fasta(tmp_path / "r.fa", ["c1", "c2"])
    if compression == "bgzip":
        pysam.tabix_compress(str(fa), str(fa) + ".gz")
        fa = Path(str(fa) + ".gz")
    pysam.faidx(str(fa))
    good = Path(f"{fa}.fai").read_text()
    assert read_contigs(fa) == [Contig("c1", 500), Contig("c2", 500)]
    rows = [line.split("\t") for line in good.splitlines()]
    _fresh_index(fa, "".join("\t".join(r) + "\n" for r in edit(rows)))
    with pytest.raises(InputError, match=problem + r".*\(a stale index\? delete it or re-run samtools faidx\)"):
        read_contigs(fa)


def test_index_of_other_line_endings_and_widths(tmp_path):
    import pysam

    for width in (7, 60, 500, 1000):
        fa = _fasta(tmp_path / f"w{width}.fa", ["c1", "c2"], width=width, seq=SEQ[:499])
        pysam.faidx(str(fa))
        assert read_contigs(fa) == [Contig("c1", 499), Contig("c2", 499)]
    crlf = tmp_path / "crlf.fa"
    crlf.write_bytes(b">c1\r\nACGT\r\nAC\r\n>c2\r\nGGGG\r\n")
    _fresh_index(crlf, "c1\t6\t5\t4\t6\nc2\t4\t20\t4\t6\n")
    assert read_contigs(crlf) == [Contig("c1", 6), Contig("c2", 4)]


def test_gzip_without_gzi_is_scanned_not_trusted(tmp_path):
    fa = tmp_path / "r.fa.gz"
    with gzip.open(fa, "wt") as fh:
        fh.write(">c1\nACGT\n")
    _fresh_index(fa, "c1\t999\t4\t4\t5\n")  # cannot be checked without a .gzi: the FASTA is read instead
    assert read_contigs(fa) == [Contig("c1", 4)]


def test_non_utf8_fasta_and_index(tmp_path):
    fa = tmp_path / "r.fa"
    fa.write_bytes(b">c1\nAC\xffGT\n")
    with pytest.raises(InputError, match=r"r.fa: not a text FASTA file"):
        read_contigs(fa)
    fa.write_bytes(b">c1\nACGT\n")
    _fresh_index(fa, "c\xe91\t4\t4\t4\t5\n")
    with pytest.raises(InputError, match=r"r.fa.fai"):
        read_contigs(fa)


@pytest.mark.parametrize("text", [
    ">a\nACGT \nAC \n>b\nGG \n",  # trailing spaces on sequence lines
    ">a " + "d" * 70_000 + "\nACGT\nAC\n>b\nGG\n",  # a header line over 64 KiB: the FASTA is scanned instead
    ">a\nACGT\nAC\n" + "\n" * 5000 + ">b\nGG\n",  # thousands of blank lines: scanned instead
], ids=["trailing-spaces", "long-header", "blank-lines"])
def test_what_samtools_indexes_is_not_called_stale(tmp_path, text):
    import pysam

    fa = tmp_path / "r.fa"
    fa.write_text(text)
    pysam.faidx(str(fa))
    assert read_contigs(fa) == [Contig("a", 6), Contig("b", 2)]


def test_index_check_reads_a_few_kib_per_contig(tmp_path):
    """Three 1 Mb single-line contigs in bgzip: the check reads near each end, never a whole contig."""
    import pysam
    import tracemalloc

    fa = tmp_path / "r.fa"
    fa.write_text("".join(f">c{i}\n" + "ACGT" * 250_000 + "\n" for i in range(3)))
    pysam.tabix_compress(str(fa), str(fa) + ".gz")
    gz = Path(str(fa) + ".gz")
    pysam.faidx(str(gz))
    tracemalloc.start()
    assert read_contigs(gz) == [Contig(f"c{i}", 1_000_000) for i in range(3)]
    peak = tracemalloc.get_traced_memory()[1]
    tracemalloc.stop()
    assert peak < 2_000_000, peak
