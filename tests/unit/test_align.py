"""Tests for aisci.align: real minimap2/bwa + samtools pipes on simulated reads, one pair or one per lane."""

import gzip
import itertools
import re
import subprocess

import pysam
import pytest

from aisci.align import aligner_command, align, read_group
from aisci.cli import main
from aisci.errors import InputError, ToolError
from aisci.reads import Lane


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


# Multi-lane samples: one read group per lane, lanes merged before duplicate marking.

N_LANE = 1500  # pairs of each lane taken from S1's reads
N_COPIES = 200  # lane 1's first pairs, sequenced again on lane 2 under new names


def _fastq(path, records):
    with gzip.open(path, "wt") as fh:
        fh.writelines(records)
    return path


def _headers(path):
    """The header lines of a gzipped FASTQ."""
    with gzip.open(path, "rt") as fh:
        return list(itertools.islice(fh, 0, None, 4))


@pytest.fixture(scope="module")
def two_lanes(ref_and_reads, tmp_path_factory):
    """Lane L1: S1's first pairs; lane L2: the next pairs, then copies of L1's first pairs named `dup-<name>`."""
    _, _, fq1, fq2 = ref_and_reads
    d = tmp_path_factory.mktemp("lanes")
    lanes = []
    for mate, fq in ((1, fq1), (2, fq2)):
        with gzip.open(fq, "rt") as fh:
            lines = list(itertools.islice(fh, 4 * 2 * N_LANE))
        records = ["".join(lines[i:i + 4]) for i in range(0, len(lines), 4)]
        copies = ["@dup-" + r[1:] for r in records[:N_COPIES]]
        lanes.append((_fastq(d / f"L1_{mate}.fq.gz", records[:N_LANE]),
                      _fastq(d / f"L2_{mate}.fq.gz", records[N_LANE:] + copies)))
    l1, l2 = (Lane(lane, *pair) for lane, pair in zip(("L1", "L2"), zip(*lanes)))
    names = {lane.id: {r.split(None, 1)[0][1:-2] for r in _headers(lane.fq1)} for lane in (l1, l2)}
    return l1, l2, names


def _dup_pairs(stats):
    """`samtools markdup -f`'s DUPLICATE PAIR count: reads in duplicate pairs."""
    return int(re.search(r"^DUPLICATE PAIR: (\d+)$", stats.read_text(), re.M).group(1))


@pytest.fixture(scope="module")
def merged(ref_and_reads, two_lanes, tmp_path_factory):
    """S1's two lanes aligned with minimap2 into one BAM, with markdup statistics."""
    _, mmi, _, _ = ref_and_reads
    l1, l2, _ = two_lanes
    out = tmp_path_factory.mktemp("merged")
    align(aligner="minimap2", index=mmi, lanes=[l1, l2], sample="S1", out_bam=out / "S1.bam",
          dup_stats=out / "dup.txt", threads=2)
    return out


def test_read_group_per_lane():
    assert read_group("S1", "L1") == r"@RG\tID:S1.L1\tSM:S1\tLB:S1\tPU:L1\tPL:ILLUMINA"


def test_two_lanes_give_one_sorted_indexed_bam_with_a_read_group_per_lane(merged, two_lanes):
    _, _, names = two_lanes
    assert sorted(p.name for p in merged.iterdir()) == ["S1.bam", "S1.bam.bai", "dup.txt"]
    with pysam.AlignmentFile(str(merged / "S1.bam")) as bam:
        assert bam.header["HD"]["SO"] == "coordinate"
        assert bam.header["RG"] == [
            {"ID": "S1.L1", "SM": "S1", "LB": "S1", "PU": "L1", "PL": "ILLUMINA"},
            {"ID": "S1.L2", "SM": "S1", "LB": "S1", "PU": "L2", "PL": "ILLUMINA"},
        ]
        reads = list(bam.fetch(until_eof=True))
        mapped = [r for r in reads if not r.is_unmapped]
        # the index answers region queries: every mapped read is found through it
        assert sum(bam.count(contig) for contig in bam.references) == len(mapped)
    primary = [r for r in reads if not (r.is_secondary or r.is_supplementary)]
    assert len(primary) == 2 * (N_LANE + N_LANE + N_COPIES)
    lane_of = {name: lane for lane, ns in names.items() for name in ns}
    assert len(lane_of) == 2 * N_LANE + N_COPIES  # no read name on both lanes
    assert all(r.get_tag("RG") == f"S1.{lane_of[r.query_name]}" for r in reads)
    positions = [(r.reference_id, r.reference_start) for r in mapped]
    assert positions == sorted(positions)


def test_duplicates_across_lanes_are_marked(merged, two_lanes, ref_and_reads, tmp_path):
    _, l2, names = two_lanes
    with pysam.AlignmentFile(str(merged / "S1.bam")) as bam:
        reads = [r for r in bam.fetch(until_eof=True) if not (r.is_secondary or r.is_supplementary)]
    copied = {n[len("dup-"):] for n in names["L2"] if n.startswith("dup-")}
    both_mapped = {r.query_name for r in reads if not (r.is_unmapped or r.mate_is_unmapped)}
    expected = {n for n in copied if n in both_mapped}
    assert len(expected) > 0.95 * N_COPIES
    duplicates = [r for r in reads if r.is_duplicate]
    # exactly one of each copied pair (an L1 original or its L2 copy) is marked, both mates, nothing else
    assert sorted(r.query_name.removeprefix("dup-") for r in duplicates) == sorted(2 * list(expected))
    assert len({r.query_name for r in duplicates}) == len(expected)
    assert _dup_pairs(merged / "dup.txt") == 2 * len(expected)
    # marked per lane, L2 alone has no duplicates: only merging the lanes first finds them
    _, mmi, _, _ = ref_and_reads
    align(aligner="minimap2", index=mmi, lanes=[l2], sample="S1", out_bam=tmp_path / "L2.bam",
          dup_stats=tmp_path / "L2.dup.txt")
    assert _dup_pairs(tmp_path / "L2.dup.txt") == 0
    with pysam.AlignmentFile(str(tmp_path / "L2.bam")) as bam:
        assert bam.header["RG"] == [{"ID": "S1.L2", "SM": "S1", "LB": "S1", "PU": "L2", "PL": "ILLUMINA"}]


def test_lane_ids_are_checked_before_anything_runs(ref_and_reads, two_lanes, tmp_path, capsys):
    _, mmi, _, _ = ref_and_reads
    l1, l2, _ = two_lanes
    out = tmp_path / "out" / "S1.bam"
    with pytest.raises(InputError, match=r"lane '\.\./L2' must match"):
        align(aligner="minimap2", index=mmi, lanes=[l1, Lane("../L2", l2.fq1, l2.fq2)], sample="S1", out_bam=out)
    with pytest.raises(InputError, match="lane 'L1' is given twice"):
        align(aligner="minimap2", index=mmi, lanes=[l1, l1], sample="S1", out_bam=out)
    with pytest.raises(InputError, match="either fq1 and fq2, or lanes"):
        align(aligner="minimap2", index=mmi, fq1=l1.fq1, fq2=l1.fq2, lanes=[l2], sample="S1", out_bam=out)
    argv = ["align", "--index", str(mmi), "--sample", "S1", "--out", str(out), "--lane", "L 1", str(l1.fq1), str(l1.fq2)]
    assert main(argv) == 1
    assert "lane 'L 1' must match" in capsys.readouterr().err
    with pytest.raises(SystemExit):  # argparse: --fq1 and --lane together
        main([*argv[:-4], "--fq1", str(l1.fq1), "--fq2", str(l1.fq2), *argv[-4:]])
    assert not out.parent.exists()


def test_failed_lane_leaves_no_bam(ref_and_reads, two_lanes, tmp_path):
    _, mmi, _, _ = ref_and_reads
    l1, _, _ = two_lanes
    out = tmp_path / "S1.bam"
    with pytest.raises(ToolError, match="minimap2 exited with status"):
        align(aligner="minimap2", index=mmi, lanes=[l1, Lane("L2", tmp_path / "gone_1.fq", tmp_path / "gone_2.fq")],
              sample="S1", out_bam=out, dup_stats=None)
    assert list(tmp_path.iterdir()) == []


def test_cli_with_lanes(ref_and_reads, two_lanes, tmp_path):
    _, mmi, _, _ = ref_and_reads
    l1, l2, _ = two_lanes
    out = tmp_path / "S1.bam"
    assert main(["align", "--index", str(mmi), "--sample", "S1", "--out", str(out), "--dup-stats", str(tmp_path / "d.txt"),
                 "--lane", "L1", str(l1.fq1), str(l1.fq2), "--lane", "L2", str(l2.fq1), str(l2.fq2)]) == 0
    with pysam.AlignmentFile(str(out)) as bam:
        assert [rg["ID"] for rg in bam.header["RG"]] == ["S1.L1", "S1.L2"]
    assert _dup_pairs(tmp_path / "d.txt") > 0
