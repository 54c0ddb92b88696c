"""samtools stats and bcftools stats read back from the real tools' output on small files made here."""

from __future__ import annotations

import subprocess
from pathlib import Path

import pysam
import pytest

from aisci.errors import InputError
from aisci.report.stats import read_bcftools_stats, read_samtools_stats

REF = "ACGT" * 250  # 1 kb


def small_bam(tmp: Path) -> Path:
    """Ten proper pairs (insert 300) and two unmapped reads, on a 1 kb contig."""
    header = {"HD": {"VN": "1.6", "SO": "coordinate"}, "SQ": [{"SN": "c1", "LN": len(REF)}]}
    bam = tmp / "s.bam"
    with pysam.AlignmentFile(str(bam), "wb", header=header) as out:
        reads = []
        for i in range(10):
            for first, pos, mate in ((True, 100 + i, 350 + i), (False, 350 + i, 100 + i)):
                a = pysam.AlignedSegment()
                a.query_name, a.reference_id, a.reference_start = f"r{i}", 0, pos
                a.query_sequence = REF[pos:pos + 50]
                a.query_qualities = pysam.qualitystring_to_array("I" * 50)
                a.cigarstring, a.mapping_quality = "50M", 60
                a.flag = 0x1 | 0x2 | (0x40 if first else 0x80) | (0x20 if first else 0x10)
                a.next_reference_id, a.next_reference_start = 0, mate
                a.template_length = 300 if first else -300
                reads.append(a)
        for i in range(2):
            a = pysam.AlignedSegment()
            a.query_name, a.flag, a.reference_id, a.reference_start = f"u{i}", 0x4, -1, -1
            a.query_sequence, a.query_qualities = "A" * 50, pysam.qualitystring_to_array("I" * 50)
            reads.append(a)
        for a in sorted(reads, key=lambda r: (r.reference_id < 0, r.reference_start)):
            out.write(a)
    return bam


def test_samtools_stats_of_a_real_file(tmp_path):
    stats = tmp_path / "s.stats.txt"
    stats.write_text(subprocess.run(["samtools", "stats", str(small_bam(tmp_path))], capture_output=True, text=True,
                                    check=True).stdout)
    st = read_samtools_stats(stats)
    assert st.summary["raw total sequences"] == 22 and st.read_pairs == 11
    assert st.rate("reads mapped") == pytest.approx(20 / 22)
    assert st.summary["insert size average"] == pytest.approx(300)
    assert dict(st.insert_sizes)[300] == 10
    # 20 reads x 50 bp over the covered bases: depth weighted by bases equals aligned bases / covered bases
    covered = sum(n for _, n in st.coverage)
    assert st.mean_depth == pytest.approx(1000 / covered)


def test_bcftools_stats_of_a_real_vcf(tmp_path):
    vcf = tmp_path / "c.vcf"
    vcf.write_text(
        "##fileformat=VCFv4.2\n##contig=<ID=c1,length=1000>\n"
        '##FORMAT=<ID=GT,Number=1,Type=String,Description="Genotype">\n'
        '##INFO=<ID=DP,Number=1,Type=Integer,Description="Depth">\n'
        "#CHROM\tPOS\tID\tREF\tALT\tQUAL\tFILTER\tINFO\tFORMAT\tS\n"
        "c1\t10\t.\tA\tG\t50\tPASS\tDP=20\tGT\t0/1\n"  # transition
        "c1\t20\t.\tA\tC\t60\tPASS\tDP=30\tGT\t1/1\n"  # transversion
        "c1\t30\t.\tC\tT\t70\tPASS\tDP=30\tGT\t0/1\n"  # transition
        "c1\t40\t.\tACG\tA\t80\tPASS\tDP=25\tGT\t0/1\n"  # 2 bp deletion
        "c1\t50\t.\tA\tAT\t90\tPASS\tDP=25\tGT\t0/1\n"  # 1 bp insertion
    )
    stats = tmp_path / "c.bcftools_stats.txt"
    stats.write_text(subprocess.run(["bcftools", "stats", str(vcf)], capture_output=True, text=True, check=True).stdout)
    st = read_bcftools_stats(stats)
    assert st.summary["records"] == 5 and st.summary["SNPs"] == 3 and st.summary["indels"] == 2
    assert st.tstv == pytest.approx(2.0)
    assert dict(st.indel_lengths) == {-2: 1, 1: 1}
    assert sum(n for _, n in st.qual) == 5


@pytest.mark.parametrize("reader, text, message", [
    (read_samtools_stats, "# not stats\n", "not `samtools stats` output"),
    (read_bcftools_stats, "SN\t0\tnumber of samples:\t1\n", "not `bcftools stats` output"),
    (read_samtools_stats, "SN\traw total sequences:\tmany\n", "line 1: 'many' is not a number"),
])
def test_broken_files_are_named(tmp_path, reader, text, message):
    path = tmp_path / "x.txt"
    path.write_text(text)
    with pytest.raises(InputError, match=message) as err:
        reader(path)
    assert str(path) in str(err.value)
    with pytest.raises(InputError, match="missing.txt"):
        reader(tmp_path / "missing.txt")
