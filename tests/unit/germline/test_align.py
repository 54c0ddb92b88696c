"""Tests for aisci.germline.align: real minimap2/bwa + samtools pipes on simulated reads, one pair or one per lane."""

import gzip
import itertools
import re
import subprocess

import pysam
import pytest

from aisci.germline.align import aligner_command, align, input_read_groups, libraries, read_group
from aisci.cli import main
from aisci.errors import InputError, ToolError
from aisci.germline.reads import Lane, bam_read_groups, check_pair, parse_read_groups


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


# BAM/CRAM input: reads extracted with `samtools fastq -T RG` keep their read groups and the input's @RG lines.

RG_PAIRS = 800  # pairs of each library taken from S1's reads
RG_COPIES = 100  # pairs copied under new names: within library B (duplicates) and from A into B (not duplicates)


def fastq_pairs(fq1, fq2, n, skip=0):
    """(name, seq1, qual1, seq2, qual2) of pairs skip..skip+n of a gzipped FASTQ pair, names without /1 /2."""
    mates = []
    for fq in (fq1, fq2):
        with gzip.open(fq, "rt") as fh:
            lines = list(itertools.islice(fh, 4 * skip, 4 * (skip + n)))
        mates.append([(lines[i][1:].split()[0].removesuffix("/1").removesuffix("/2"), lines[i + 1].strip(),
                       lines[i + 3].strip()) for i in range(0, len(lines), 4)])
    return [(a[0], a[1], a[2], b[1], b[2]) for a, b in zip(*mates)]


def write_unaligned_bam(path, fasta, read_groups, pairs):
    """An unaligned, name-grouped BAM: @SQ of ``fasta``, ``read_groups`` (dicts) as @RG, ``pairs`` as
    (read group or None, name, seq1, qual1, seq2, qual2)."""
    sq = [{"SN": name, "LN": int(length)} for name, length in
          (line.split("\t")[:2] for line in open(f"{fasta}.fai").read().splitlines())]
    header = {"HD": {"VN": "1.6", "SO": "unsorted"}, "SQ": sq, **({"RG": read_groups} if read_groups else {})}
    with pysam.AlignmentFile(str(path), "wb", header=header) as bam:
        for rg, name, s1, q1, s2, q2 in pairs:
            for flag, seq, qual in ((77, s1, q1), (141, s2, q2)):
                r = pysam.AlignedSegment(bam.header)
                r.query_name, r.flag, r.query_sequence = name, flag, seq
                r.query_qualities = pysam.qualitystring_to_array(qual)
                r.reference_id = r.next_reference_id = -1
                if rg is not None:
                    r.set_tag("RG", rg, "Z")
                bam.write(r)
    return path


def bam_to_fastq(bam, out):
    """The pair rule bam_to_fastq writes (samtools collate | samtools fastq -n -T RG)."""
    fq1, fq2 = out / f"{bam.stem}_R1.fastq.gz", out / f"{bam.stem}_R2.fastq.gz"
    subprocess.run(f"samtools collate -u -O {bam} {out}/{bam.stem}.collate | samtools fastq -n -T RG -1 {fq1}"
                   f" -2 {fq2} -0 /dev/null -s /dev/null -", shell=True, check=True, capture_output=True)
    return fq1, fq2


# library B was sequenced on two lanes (read groups)
TWO_LIBRARIES = [
    {"ID": "run1.A", "SM": "donor7", "LB": "libA", "PU": "FC1.1", "PL": "ILLUMINA"},
    {"ID": "run2.B", "SM": "donor7", "PU": "FC2.3", "LB": "libB", "CN": "ctr:x"},
    {"ID": "run3.B", "SM": "donor7", "PU": "FC3.1", "LB": "libB"},
]


@pytest.fixture(scope="module")
def two_libraries(ref_and_reads, tmp_path_factory):
    """A BAM of S1's reads in three read groups of two libraries, and the pair extracted from it.

    Library B holds, besides its own pairs (read group run2.B), copies of its first pairs on its
    other lane (run3.B, ``dupB-<name>``: duplicates within B, across its read groups) and copies of
    library A's first pairs (``xA-<name>``: the same fragments in another library, not
    duplicates). Returns the BAM, the pair and {read name: read group ID}.
    """
    fa, _, fq1, fq2 = ref_and_reads
    d = tmp_path_factory.mktemp("two_libraries")
    a = fastq_pairs(fq1, fq2, RG_PAIRS)
    b = fastq_pairs(fq1, fq2, RG_PAIRS, skip=RG_PAIRS)
    pairs = ([("run1.A", *p) for p in a] + [("run2.B", *p) for p in b]
             + [("run3.B", f"dupB-{p[0]}", *p[1:]) for p in b[:RG_COPIES]]
             + [("run2.B", f"xA-{p[0]}", *p[1:]) for p in a[:RG_COPIES]])
    bam = write_unaligned_bam(d / "donor7.bam", fa, TWO_LIBRARIES, pairs)
    return bam, bam_to_fastq(bam, d), {p[1]: p[0] for p in pairs}


def test_aligner_copies_comment_tags_instead_of_setting_a_read_group():
    for aligner, flag in (("minimap2", "-y"), ("bwa", "-C")):
        argv = aligner_command(aligner, "i", "a", "b", "S", 2, tags_from_comments=True)
        assert flag in argv and "-R" not in argv
        assert "-R" in aligner_command(aligner, "i", "a", "b", "S", 2) and flag not in aligner_command(aligner, "i", "a", "b", "S", 2)


def test_input_read_groups_set_sm_and_a_missing_lb(caplog):
    groups = parse_read_groups("@HD\tVN:1.6\n@RG\tID:a\tSM:donor7\tLB:libA\tPU:x:1\n@RG\tPL:ILLUMINA\tID:b\n", "in.bam")
    with caplog.at_level("INFO"):
        out = input_read_groups("S1", groups, "in.bam")
    assert [rg.line() for rg in out] == ["@RG\tID:a\tSM:S1\tLB:libA\tPU:x:1", "@RG\tID:b\tPL:ILLUMINA\tSM:S1\tLB:S1"]
    assert libraries(out) == {"libA": ["a"], "S1": ["b"]}
    assert libraries(input_read_groups("S1", parse_read_groups("@RG\tID:a\tLB:x\n@RG\tID:b\tLB:y\n@RG\tID:c\tLB:x", "f"), "f")) == {
        "x": ["a", "c"], "y": ["b"]}
    assert "in.bam: read group a has SM donor7; set to the sample-sheet name S1" in caplog.text
    assert "read group b has no SM" in caplog.text and "read group b has no LB (library); set to the sample name S1" in caplog.text


@pytest.mark.parametrize("aligner", ["minimap2", "bwa"])
def test_bam_input_keeps_its_read_groups(ref_and_reads, two_libraries, tmp_path, aligner, caplog):
    fa, mmi, _, _ = ref_and_reads
    bam_in, (fq1, fq2), group_of = two_libraries
    out = tmp_path / "S1.bam"
    with caplog.at_level("INFO"):
        align(aligner=aligner, index=mmi if aligner == "minimap2" else fa, fq1=fq1, fq2=fq2, sample="S1",
              read_groups_from=bam_in, out_bam=out, dup_stats=tmp_path / "dup.txt", threads=2)
    assert f"{bam_in}: read group run1.A has SM donor7; set to the sample-sheet name S1" in caplog.text
    with pysam.AlignmentFile(str(out)) as bam:
        assert bam.header["HD"]["SO"] == "coordinate"
        assert bam.header["RG"] == [{**rg, "SM": "S1"} for rg in TWO_LIBRARIES]
        assert [line.split("\t")[1] for line in str(bam.header).splitlines() if line.startswith("@RG")] == [
            "ID:run1.A", "ID:run2.B", "ID:run3.B"]
        reads = list(bam.fetch(until_eof=True))
    primary = [r for r in reads if not (r.is_secondary or r.is_supplementary)]
    assert len(primary) == 2 * len(group_of)
    assert all(r.get_tag("RG") == group_of[r.query_name] for r in reads)  # supplementary ones too
    assert sum(not r.is_unmapped for r in primary) / len(primary) > 0.97
    assert all(r.has_tag("ms") for r in primary if not r.is_unmapped)
    # duplicates are marked within a library only: of each dupB- copy (run3.B) and its original
    # (run2.B) one is marked; the xA- copies of library A's pairs are the same fragments, but in library B
    duplicates = {r.query_name.removeprefix("dupB-") for r in primary if r.is_duplicate}
    assert not any(n.startswith("xA-") for n in duplicates)
    assert all(group_of[n] == "run2.B" for n in duplicates)
    assert 0.95 * RG_COPIES < len(duplicates) <= RG_COPIES
    assert len([r for r in primary if r.is_duplicate]) == 2 * len(duplicates)  # one pair of each two, both mates
    stats = (tmp_path / "dup.txt").read_text()
    assert stats.startswith("LIBRARY: libA (read groups: run1.A)\n")
    assert "\nLIBRARY: libB (read groups: run2.B, run3.B)\n" in stats
    assert [int(n) for n in re.findall(r"^DUPLICATE PAIR: (\d+)$", stats, re.M)] == [0, 2 * len(duplicates)]
    assert sorted(p.name for p in tmp_path.iterdir()) == ["S1.bam", "S1.bam.bai", "dup.txt"]


def test_one_library_marks_the_copies_across_read_groups(ref_and_reads, tmp_path):
    """The control of the test above: in one library, the xA- copies are duplicates (one markdup, streamed)."""
    fa, mmi, fq1, fq2 = ref_and_reads
    a = fastq_pairs(fq1, fq2, RG_COPIES)
    one_lib = [{**rg, "LB": "lib"} for rg in TWO_LIBRARIES]
    bam_in = write_unaligned_bam(tmp_path / "one.bam", fa, one_lib,
                                 [("run1.A", *p) for p in a] + [("run2.B", f"xA-{p[0]}", *p[1:]) for p in a])
    out = tmp_path / "S1.bam"
    align(aligner="minimap2", index=mmi, fq1=bam_to_fastq(bam_in, tmp_path)[0], fq2=tmp_path / "one_R2.fastq.gz",
          sample="S1", read_groups_from=bam_in, out_bam=out)
    with pysam.AlignmentFile(str(out)) as bam:
        assert [rg["LB"] for rg in bam.header["RG"]] == ["lib"] * 3
        duplicates = [r for r in bam.fetch(until_eof=True) if r.is_duplicate and not r.is_secondary]
    assert len(duplicates) > 2 * 0.95 * RG_COPIES


def test_bam_input_without_read_groups_gets_one_named_after_the_sample(ref_and_reads, tmp_path, caplog):
    fa, mmi, fq1, fq2 = ref_and_reads
    bam_in = write_unaligned_bam(tmp_path / "plain.bam", fa, [], [(None, *p) for p in fastq_pairs(fq1, fq2, 200)])
    out = tmp_path / "S1.bam"
    with caplog.at_level("INFO"):
        align(aligner="minimap2", index=mmi, fq1=bam_to_fastq(bam_in, tmp_path)[0], fq2=tmp_path / "plain_R2.fastq.gz",
              sample="S1", read_groups_from=bam_in, out_bam=out)
    assert "has no @RG lines: one read group named after the sample" in caplog.text
    with pysam.AlignmentFile(str(out)) as bam:
        assert bam.header["RG"] == [{"ID": "S1", "SM": "S1", "LB": "S1", "PL": "ILLUMINA"}]
        assert all(r.get_tag("RG") == "S1" for r in bam.fetch(until_eof=True))


def test_cli_read_groups_from(ref_and_reads, two_libraries, tmp_path, capsys):
    _, mmi, _, _ = ref_and_reads
    bam_in, (fq1, fq2), _ = two_libraries
    out = tmp_path / "S1.bam"
    assert main(["align", "--index", str(mmi), "--sample", "S1", "--out", str(out), "--fq1", str(fq1), "--fq2", str(fq2),
                 "--read-groups-from", str(bam_in)]) == 0
    with pysam.AlignmentFile(str(out)) as bam:
        assert [rg["ID"] for rg in bam.header["RG"]] == ["run1.A", "run2.B", "run3.B"]
    lane = ["--lane", "L1", str(fq1), str(fq2)]
    assert main(["align", "--index", str(mmi), "--sample", "S1", "--out", str(tmp_path / "x.bam"), *lane,
                 "--read-groups-from", str(bam_in)]) == 1
    assert "--read-groups-from goes with --fq1/--fq2" in capsys.readouterr().err
    assert main(["align", "--index", str(mmi), "--sample", "S1", "--out", str(tmp_path / "x.bam"), "--fq1", str(fq1),
                 "--fq2", str(fq2), "--read-groups-from", str(fq1)]) == 1
    assert "cannot read its header as BAM/CRAM" in capsys.readouterr().err
    assert not (tmp_path / "x.bam").exists()


def test_cram_input_reads_the_same(ref_and_reads, two_libraries, tmp_path):
    """A CRAM's @RG lines are read without its reference, and `samtools fastq -T RG` extracts the same groups."""
    fa, _, _, _ = ref_and_reads
    bam_in, (fq1, _), group_of = two_libraries
    cram = tmp_path / "donor7.cram"
    subprocess.run(["samtools", "view", "-C", "-T", str(fa), "-o", str(cram), str(bam_in)], check=True)
    assert bam_read_groups(cram) == bam_read_groups(bam_in)
    stats = check_pair("S1", *bam_to_fastq(cram, tmp_path), read_groups_from=cram)
    assert stats.read_groups == {"run1.A": RG_PAIRS, "run2.B": RG_PAIRS + RG_COPIES, "run3.B": RG_COPIES}
    assert stats.read_groups == check_pair("S1", fq1, two_libraries[1][1], read_groups_from=bam_in).read_groups
