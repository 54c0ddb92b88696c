"""One spelling per variant: split multi-allelic alleles trimmed as `bcftools norm` does, alleles upper-cased."""

from __future__ import annotations

import subprocess

import pyarrow as pa
import pytest

from aisci.cohort.normalize import normalize_batch, trim
from aisci.cohort.schema import CALLS


@pytest.mark.parametrize("ref, alt, pos, expected", [
    ("TCC", "TC", 100, ("TC", "T", 100)),      # the second ALT of TCC>T,TC: a 1-bp deletion
    ("TCC", "T", 100, ("TCC", "T", 100)),      # already minimal
    ("ATT", "AGT", 5, ("T", "G", 6)),          # an MNP-shaped pair that is one SNV
    ("GAAA", "GAA", 7, ("GA", "G", 7)),        # suffix first: the anchor base stays on the left
    ("CAG", "CTTAG", 9, ("C", "CTT", 9)),
    ("A", "G", 1, ("A", "G", 1)),
])
def test_trim(ref, alt, pos, expected):
    assert trim(ref, alt, pos) == expected


def batch(rows):
    cols = {f.name: pa.nulls(len(rows), f.type) for f in CALLS}
    cols.update(chrom=pa.array(["chr1"] * len(rows)), sample=pa.array(["S"] * len(rows)),
                pos=pa.array([r[0] for r in rows], pa.int64()),
                ref=pa.array([r[1] for r in rows]), alt=pa.array([r[2] for r in rows]),
                alt_index=pa.array([1] * len(rows), pa.int8()))
    return pa.RecordBatch.from_arrays([cols[f.name] for f in CALLS], schema=CALLS)


def test_batch_rows_trimmed_and_upper_cased():
    out = normalize_batch(batch([(100, "TCC", "T"), (100, "TCC", "TC"), (200, "acg", "a"),
                                 (300, "AT", "<DEL>"), (400, "A", "*"), (500, "ATT", "AGT")]))
    assert out.schema.equals(CALLS)
    assert out.select(["pos", "ref", "alt"]).to_pylist() == [
        {"pos": 100, "ref": "TCC", "alt": "T"},
        {"pos": 100, "ref": "TC", "alt": "T"},
        {"pos": 200, "ref": "ACG", "alt": "A"},
        {"pos": 300, "ref": "AT", "alt": "<DEL>"},
        {"pos": 400, "ref": "A", "alt": "*"},
        {"pos": 501, "ref": "T", "alt": "G"},       # a trimmed prefix moves POS
    ]


def test_a_slice_is_normalized_by_its_own_rows():
    whole = batch([(1, "aCC", "A"), (2, "TCC", "TC"), (3, "G", "C")])
    assert normalize_batch(whole.slice(2)).select(["pos", "ref", "alt"]).to_pylist() == [
        {"pos": 3, "ref": "G", "alt": "C"}]  # the lower case and the long alleles before the slice are not its own
    assert normalize_batch(whole.slice(1, 1)).select(["ref", "alt"]).to_pylist() == [{"ref": "TC", "alt": "T"}]


def test_nothing_to_do_returns_the_batch_itself():
    b = batch([(100, "A", "G"), (101, "AT", "A")])
    assert normalize_batch(b) is b


def test_agrees_with_bcftools_norm_on_split_records(tmp_path):
    """`bcftools norm -f REF -m-` splits, trims (and left-aligns); on these records, where no allele sits in a
    repeat that left-alignment would move, our split rows (as vcf.read_calls yields them) trim the same way."""
    import random

    random.seed(1)
    seq = [random.choice("ACGT") for _ in range(1000)]
    for pos, ref in ((100, "TCCA"), (200, "GAAAC"), (300, "ATTG")):  # each followed by a different base
        seq[pos - 1:pos - 1 + len(ref)] = ref
    seq[98], seq[198], seq[298] = "G", "T", "C"  # and preceded by one that breaks a repeat
    fasta = tmp_path / "ref.fa"
    fasta.write_text(">chr1\n" + "".join(seq) + "\n")
    vcf = tmp_path / "x.vcf"
    vcf.write_text("##fileformat=VCFv4.2\n##contig=<ID=chr1,length=1000>\n"
                   '##FORMAT=<ID=GT,Number=1,Type=String,Description="Genotype">\n'
                   "#CHROM\tPOS\tID\tREF\tALT\tQUAL\tFILTER\tINFO\tFORMAT\tS\n"
                   "chr1\t100\t.\tTCC\tT,TC\t50\tPASS\t.\tGT\t1/2\n"
                   "chr1\t200\t.\tGAAA\tGAA,G,GAAAA\t50\tPASS\t.\tGT\t1/3\n"
                   "chr1\t300\t.\tATT\tAGT,A\t50\tPASS\t.\tGT\t1/2\n")
    norm = subprocess.run(["bcftools", "norm", "-f", str(fasta), "-m-", str(vcf)], capture_output=True, text=True,
                          check=True).stdout
    expected = sorted((int(f[1]), f[3], f[4]) for f in (line.split("\t") for line in norm.splitlines())
                      if not f[0].startswith("#"))
    rows = [(100, "TCC", "T"), (100, "TCC", "TC"), (200, "GAAA", "GAA"), (200, "GAAA", "G"), (200, "GAAA", "GAAAA"),
            (300, "ATT", "AGT"), (300, "ATT", "A")]
    out = normalize_batch(batch(rows))
    assert sorted(zip(out.column("pos").to_pylist(), out.column("ref").to_pylist(),
                      out.column("alt").to_pylist())) == expected
    assert (100, "TC", "T") in expected and (301, "T", "G") in expected  # the test means something
