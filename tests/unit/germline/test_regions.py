"""Tests for aisci.germline.regions: the scatter plan covers every base once, in order."""

import pytest

from aisci.germline.reference import Contig
from aisci.germline.regions import plan_chunks, plan_groups


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


NAMES = ["chr1:1-100", "HLA-A*01:01:01:01", "gi|568336023|gb|CM000663.2|", "chrX"]


def _tiny_genome(tmp_path):
    """A 4-contig reference with awkward legal names, and a BAM with one het SNV at base 2001 of each."""
    import random

    import pysam

    rng = random.Random(5)
    seq = "".join(rng.choice("ACGT") for _ in range(5000))
    ref = tmp_path / "ref.fa"
    ref.write_text("".join(f">{n}\n" + "".join(seq[i:i + 60] + "\n" for i in range(0, 5000, 60)) for n in NAMES))
    pysam.faidx(str(ref))
    header = {"HD": {"VN": "1.6", "SO": "coordinate"}, "SQ": [{"SN": n, "LN": 5000} for n in NAMES],
              "RG": [{"ID": "s", "SM": "s"}]}
    unsorted = tmp_path / "u.bam"
    with pysam.AlignmentFile(str(unsorted), "wb", header=header) as out:
        for tid in range(len(NAMES)):
            for start in range(100, 4800, 10):
                for copy in range(2):
                    bases = list(seq[start:start + 100])
                    if copy and start <= 2000 < start + 100:
                        bases[2000 - start] = "A" if bases[2000 - start] != "A" else "C"
                    a = pysam.AlignedSegment()
                    a.query_name, a.flag, a.reference_id, a.reference_start = f"r{tid}_{start}_{copy}", 0, tid, start
                    a.mapping_quality, a.cigarstring, a.query_sequence = 60, "100M", "".join(bases)
                    a.query_qualities = pysam.qualitystring_to_array("I" * 100)
                    a.set_tag("RG", "s")
                    out.write(a)
    bam = tmp_path / "a.bam"
    pysam.sort("-o", str(bam), str(unsorted))
    pysam.index(str(bam))
    return ref, bam


def test_regions_files_call_every_contig_with_real_bcftools(tmp_path):
    """bcftools splits a --regions value at ':' (HLA-A*01:01:01:01 became nothing, silently); a file does not."""
    import subprocess

    from aisci.germline.reference import contigs_digest, read_contigs
    from aisci.germline.regions import write_regions

    ref, bam = _tiny_genome(tmp_path)
    contigs = read_contigs(ref)
    files = write_regions(ref, 6000, contigs_digest(contigs), tmp_path / "regions", max_groups=24)
    assert [f.name for f in files] == ["0000.tsv", "0001.tsv", "0002.tsv", "0003.tsv"]
    assert files[1].read_text() == "HLA-A*01:01:01:01\t1\t5000\t0001\n"  # bcftools reads 3 columns
    called = []
    for regions in files:
        mpileup = subprocess.run(["bcftools", "mpileup", "--fasta-ref", str(ref), "--regions-file", str(regions),
                                  "--annotate", "FORMAT/AD", str(bam)], capture_output=True, check=True)
        calls = subprocess.run(["bcftools", "call", "-mv"], input=mpileup.stdout, capture_output=True, check=True)
        called += [line.split("\t")[:2] for line in calls.stdout.decode().splitlines() if not line.startswith("#")]
    assert called == [[n, "2001"] for n in NAMES]


def test_regions_refused_when_the_reference_changed_since_the_plan(tmp_path):
    from aisci.errors import InputError
    from aisci.germline.reference import contigs_digest
    from aisci.germline.regions import write_regions

    ref = tmp_path / "genome.fa"
    ref.write_text(">c1\nACGT\n")
    planned = contigs_digest([Contig("c1", 1000)])  # what a stale .fai beside the user's FASTA said
    with pytest.raises(InputError, match=r"genome.fa: its contigs differ from those the pipeline planned with .*stale .fai"):
        write_regions(ref, 100, planned, tmp_path / "regions", max_groups=4)
    assert not (tmp_path / "regions").exists()


def test_groups_are_consecutive_balanced_and_cover_every_chunk_once():
    chunks = plan_chunks([Contig(f"c{i}", 1000 * (i + 1)) for i in range(30)], 700)
    for max_groups in (1, 5, 24, len(chunks) - 1, len(chunks), 10_000):
        groups = plan_groups(chunks, max_groups)
        assert [c for g in groups for c in g.chunks] == chunks  # in order, each once
        assert len(groups) == min(max_groups, len(chunks)) and all(g.chunks for g in groups)
        assert [g.name for g in groups] == [f"{i:04d}" for i in range(len(groups))]
    sizes = [g.length for g in plan_groups(chunks, 24)]
    assert max(sizes) < 1.5 * sum(sizes) / 24  # about equal shares of the genome
    with pytest.raises(ValueError):
        plan_groups(chunks, 0)


def test_grch38_at_300kb_is_ten_thousand_chunks_in_a_few_groups():
    """The real GRCh38 contig table (195 contigs, 3.1 Gb): chunk names past 9999 keep their digits."""
    from tests.conftest import REPO

    table = REPO.parent / "shared" / "data" / "grch38" / "GRCh38.genome.tsv"
    contigs = [Contig(n, int(length)) for n, length in (line.split("\t") for line in table.read_text().splitlines())]
    chunks = plan_chunks(contigs, 300_000)
    assert len(contigs) == 195 and len(chunks) > 10_000 and chunks[10_000].name == "10000"
    groups = plan_groups(chunks, 24)
    assert len(groups) == 24 and sum(len(g.chunks) for g in groups) == len(chunks)
    assert groups[0].regions_tsv().splitlines()[0] == "chr1\t1\t299948\t0000"
