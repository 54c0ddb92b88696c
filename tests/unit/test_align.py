"""Tests for aisci.align: real minimap2/bwa + samtools pipes on simulated reads."""

import subprocess

import pysam
import pytest

from aisci.align import aligner_command, align, read_group
from aisci.errors import InputError, ToolError


@pytest.fixture(scope="module")
def ref_and_reads(sim_data, tmp_path_factory):
    """Uncompressed reference with minimap2 and bwa indexes, and sample S1's reads."""
    d = tmp_path_factory.mktemp("align")
    fa = d / "genome.fa"
    subprocess.run(f"gzip -cdf {sim_data.reference} > {fa}", shell=True, check=True)
    pysam.faidx(str(fa))
    subprocess.run(["minimap2", "-x", "sr", "-d", str(d / "genome.mmi"), str(fa)], check=True, capture_output=True)
    subprocess.run(["bwa", "index", str(fa)], check=True, capture_output=True)
    fq1, fq2 = sim_data.reads["S1"]
    return fa, d / "genome.mmi", fq1, fq2


def test_read_group_is_tab_escaped_for_the_aligners():
    assert read_group("S1") == r"@RG\tID:S1\tSM:S1\tLB:S1\tPL:ILLUMINA"
    with pytest.raises(InputError, match="not one of"):
        aligner_command("bowtie", "i", "a", "b", "S", 1)


@pytest.mark.parametrize("aligner", ["minimap2", "bwa"])
def test_align_writes_sorted_marked_indexed_bam(ref_and_reads, sim_data, tmp_path, aligner):
    fa, mmi, fq1, fq2 = ref_and_reads
    out = tmp_path / "S1.bam"
    stats = tmp_path / "dup.txt"
    align(aligner=aligner, index=mmi if aligner == "minimap2" else fa, fq1=fq1, fq2=fq2, sample="S1",
          out_bam=out, dup_stats=stats, threads=2)
    assert out.exists() and (tmp_path / "S1.bam.bai").exists()
    assert sorted(p.name for p in tmp_path.iterdir()) == ["S1.bam", "S1.bam.bai", "dup.txt"]
    with pysam.AlignmentFile(str(out)) as bam:
        assert bam.header["HD"]["SO"] == "coordinate"
        assert bam.header["RG"] == [{"ID": "S1", "SM": "S1", "LB": "S1", "PL": "ILLUMINA"}]
        reads = list(bam.fetch(until_eof=True))
    primary = [r for r in reads if not (r.is_secondary or r.is_supplementary)]
    assert len(primary) == 2 * sim_data.n_pairs["S1"]
    mapped = [r for r in primary if not r.is_unmapped]
    assert len(mapped) / len(primary) > 0.97
    assert sum(r.is_proper_pair for r in mapped) / len(mapped) > 0.9
    assert all(r.get_tag("RG") == "S1" for r in reads)
    assert all(r.has_tag("ms") for r in mapped)  # fixmate -m ran before markdup
    positions = [(r.reference_id, r.reference_start) for r in mapped]
    assert positions == sorted(positions)
    assert "DUPLICATE TOTAL" in stats.read_text()


def test_failed_tool_leaves_no_bam(ref_and_reads, tmp_path):
    fa, mmi, fq1, fq2 = ref_and_reads
    out = tmp_path / "x.bam"
    with pytest.raises(ToolError, match="minimap2 exited with status"):
        align(aligner="minimap2", index=tmp_path / "missing.mmi", fq1=fq1, fq2=fq2, sample="x", out_bam=out)
    assert list(tmp_path.iterdir()) == []
