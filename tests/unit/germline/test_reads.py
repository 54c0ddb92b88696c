"""Tests for aisci.germline.reads: FASTQ pairs (one, or one per lane) are checked end to end, with the lane, file and record named."""

import gzip
import json
import random
import re
from pathlib import Path

import pytest

from aisci.cli import main
from aisci.errors import InputError
from aisci.germline.reads import Lane, bam_read_groups, check_pair, check_sample_lanes, comment_read_group, parse_read_groups


def fastq_records(n, mate, length=50, seed=0):
    rng = random.Random(seed)
    out = []
    for i in range(n):
        seq = "".join(rng.choice("ACGT") for _ in range(length))
        out.append(f"@read{i}/{mate} extra comment\n{seq}\n+\n{'I' * length}\n")
    return out


def write(path, records, gz=True):
    text = "".join(records)
    if gz:
        with gzip.open(path, "wt") as fh:
            fh.write(text)
    else:
        path.write_text(text)
    return path


@pytest.fixture
def pair(tmp_path):
    return (
        write(tmp_path / "r1.fq.gz", fastq_records(100, 1, seed=1)),
        write(tmp_path / "r2.fq", fastq_records(100, 2, seed=2), gz=False),
    )


def test_good_pair_counts(pair):
    stats = check_pair("S", *pair)
    assert (stats.pairs, stats.bases, stats.min_length, stats.max_length) == (100, 10000, 50, 50)


def test_truncated_gzip(tmp_path, pair):
    data = pair[0].read_bytes()
    bad = tmp_path / "trunc.fq.gz"
    bad.write_bytes(data[: len(data) // 2])
    with pytest.raises(InputError, match=r"trunc\.fq\.gz after record \d+: corrupt or truncated gzip"):
        check_pair("S", bad, pair[1])


def test_quality_length_differs(tmp_path, pair):
    recs = fastq_records(10, 1)
    recs[6] = recs[6].replace("I" * 50, "I" * 49)
    bad = write(tmp_path / "q.fq.gz", recs)
    with pytest.raises(InputError, match=r"q\.fq\.gz record 7 \(line 28\): quality length 49 differs from sequence length 50"):
        check_pair("S", bad, pair[1])


def test_different_read_counts(tmp_path):
    r1 = write(tmp_path / "a_1.fq.gz", fastq_records(10, 1))
    r2 = write(tmp_path / "a_2.fq.gz", fastq_records(12, 2))
    with pytest.raises(InputError, match=r"different read counts: .*a_1\.fq\.gz ends after 10 reads"):
        check_pair("S", r1, r2)


def test_mate_names_differ(tmp_path):
    r1 = write(tmp_path / "a_1.fq", fastq_records(5, 1), gz=False)
    recs = fastq_records(5, 2)
    recs[3] = recs[3].replace("@read3/2", "@other/2")
    r2 = write(tmp_path / "a_2.fq", recs, gz=False)
    with pytest.raises(InputError, match="record 4: mate names differ"):
        check_pair("S", r1, r2)


def test_truncated_record_and_missing_plus(tmp_path, pair):
    recs = fastq_records(3, 1)
    bad = write(tmp_path / "cut.fq", recs + ["@read3/1\nACGT\n"], gz=False)
    with pytest.raises(InputError, match=r"cut\.fq record 4 .*file ends inside the record"):
        check_pair("S", bad, write(tmp_path / "x.fq", fastq_records(4, 2), gz=False))
    recs[1] = recs[1].replace("\n+\n", "\n-\n")
    bad = write(tmp_path / "plus.fq", recs, gz=False)
    with pytest.raises(InputError, match=r"plus\.fq record 2 .*must start with '\+'"):
        check_pair("S", bad, pair[1])


def test_empty_files(tmp_path):
    r1 = write(tmp_path / "e1.fq", [], gz=False)
    r2 = write(tmp_path / "e2.fq", [], gz=False)
    with pytest.raises(InputError, match="no reads"):
        check_pair("S", r1, r2)


def test_cli_writes_report_only_on_success(tmp_path, pair, capsys):
    out = tmp_path / "qc" / "S.reads.json"
    assert main(["check-reads", "--sample", "S", "--fq1", str(pair[0]), "--fq2", str(pair[1]), "--out", str(out)]) == 0
    assert json.loads(out.read_text())["pairs"] == 100
    out.unlink()
    bad = write(tmp_path / "short.fq", fastq_records(3, 1), gz=False)
    assert main(["check-reads", "--sample", "S", "--fq1", str(bad), "--fq2", str(pair[1]), "--out", str(out)]) == 1
    assert "different read counts" in capsys.readouterr().err
    assert not out.exists()
    assert list(out.parent.iterdir()) == []  # no temporary file left behind either


# Multi-lane samples: --lane LANE FQ1 FQ2, repeated; totals at the top level, each lane under "lanes".


def lane_args(tmp_path, lanes):
    """--lane arguments for (id, pairs, read length) lanes, written as gzipped FASTQ pairs."""
    args = []
    for lane, n, length in lanes:
        args += ["--lane", lane,
                 str(write(tmp_path / f"{lane}_1.fq.gz", fastq_records(n, 1, length=length, seed=1))),
                 str(write(tmp_path / f"{lane}_2.fq.gz", fastq_records(n, 2, length=length, seed=2)))]
    return args


def test_lanes_report_totals_and_each_lane(tmp_path):
    out = tmp_path / "S.reads.json"
    args = lane_args(tmp_path, [("L1", 100, 50), ("L2", 40, 60)])
    assert main(["check-reads", "--sample", "S", *args, "--out", str(out)]) == 0
    assert json.loads(out.read_text()) == {
        "sample": "S", "pairs": 140, "bases": 100 * 100 + 40 * 120, "min_length": 50, "max_length": 60,
        "mean_length": round(14800 / 280, 2),
        "lanes": {
            "L1": {"pairs": 100, "bases": 10000, "min_length": 50, "max_length": 50, "mean_length": 50.0},
            "L2": {"pairs": 40, "bases": 4800, "min_length": 60, "max_length": 60, "mean_length": 60.0},
        },
    }


def test_one_pair_report_has_no_lanes(tmp_path, pair):
    out = tmp_path / "S.reads.json"
    assert main(["check-reads", "--sample", "S", "--fq1", str(pair[0]), "--fq2", str(pair[1]), "--out", str(out)]) == 0
    assert not {"lanes", "read_groups"} & set(json.loads(out.read_text()))


def test_truncated_lane_is_named(tmp_path, capsys):
    out = tmp_path / "S.reads.json"
    args = lane_args(tmp_path, [("L1", 20, 50), ("L2", 20, 50)])
    good = (tmp_path / "L2_2.fq.gz").read_bytes()
    (tmp_path / "L2_2.fq.gz").write_bytes(good[: len(good) // 2])
    assert main(["check-reads", "--sample", "S", *args, "--out", str(out)]) == 1
    assert re.search(r"error: lane L2: \S*L2_2\.fq\.gz after record \d+: corrupt or truncated gzip",
                     capsys.readouterr().err)
    assert not out.exists()
    missing = [*args[:-1], str(tmp_path / "nope_2.fq")]  # L2's read 2
    assert main(["check-reads", "--sample", "S", *missing, "--out", str(out)]) == 1
    assert re.search(r"error: lane L2: \S*nope_2\.fq: file not found", capsys.readouterr().err)


@pytest.mark.parametrize("lanes, message", [
    ([("L1", "a"), ("../L2", "b")], r"lane '\.\./L2' must match"),
    ([("L1", "a"), ("L1", "b")], "lane 'L1' is given twice"),
])
def test_bad_lane_ids_are_refused(tmp_path, capsys, lanes, message):
    out = tmp_path / "S.reads.json"
    args = []
    for lane, prefix in lanes:
        args += lane_args(tmp_path, [(prefix, 5, 50)])
        args[-3] = lane
    assert main(["check-reads", "--sample", "S", *args, "--out", str(out)]) == 1
    assert re.search(message, capsys.readouterr().err)
    assert not out.exists()


def test_pair_and_lane_options_do_not_mix(tmp_path, pair, capsys):
    out = str(tmp_path / "S.reads.json")
    lane = lane_args(tmp_path, [("L1", 5, 50)])
    with pytest.raises(SystemExit):
        main(["check-reads", "--sample", "S", "--fq1", str(pair[0]), *lane, "--out", out])
    assert "not allowed with argument" in capsys.readouterr().err
    assert main(["check-reads", "--sample", "S", *lane, "--fq2", str(pair[1]), "--out", out]) == 1
    assert "--fq2 goes with --fq1" in capsys.readouterr().err
    assert main(["check-reads", "--sample", "S", "--fq1", str(pair[0]), "--out", out]) == 1
    assert "--fq1 needs --fq2" in capsys.readouterr().err
    with pytest.raises(SystemExit):
        main(["check-reads", "--sample", "S", "--out", out])
    assert "one of the arguments --fq1 --lane is required" in capsys.readouterr().err


def test_check_sample_lanes_returns_each_lane(tmp_path):
    args = lane_args(tmp_path, [("L1", 10, 50), ("L2", 30, 40)])
    lanes = [Lane(args[i + 1], Path(args[i + 2]), Path(args[i + 3])) for i in range(0, len(args), 4)]
    totals, per_lane = check_sample_lanes("S", lanes)
    assert list(per_lane) == ["L1", "L2"]
    assert (per_lane["L2"].pairs, per_lane["L2"].bases) == (30, 2400)
    assert (totals.pairs, totals.bases, totals.min_length, totals.max_length) == (40, 3400, 40, 50)


# Pairs extracted from a BAM/CRAM with `samtools fastq -T RG`: each read's RG:Z comment is checked against
# the file's @RG lines (--read-groups-from).

RG_HEADER = "@HD\tVN:1.6\n@SQ\tSN:c1\tLN:1000\n@RG\tID:a\tSM:X\tLB:libA\tPU:FC:1\n@RG\tPL:ILLUMINA\tID:b\tLB:libB\n"


def header_bam(path, text):
    """A BAM holding only a header."""
    import pysam

    with pysam.AlignmentFile(str(path), "wb", text=text):
        pass
    return path


def rg_records(groups, mate):
    """FASTQ records as `samtools fastq -n -T RG` writes them: `@name<TAB>RG:Z:<id>`, no comment for None."""
    return [r.replace(f"/{mate} extra comment", "" if rg is None else f"\tRG:Z:{rg}")
            for r, rg in zip(fastq_records(len(groups), mate, seed=mate), groups)]


def rg_pair(tmp_path, groups1, groups2=None):
    return (write(tmp_path / "x_R1.fq.gz", rg_records(groups1, 1)),
            write(tmp_path / "x_R2.fq.gz", rg_records(groups1 if groups2 is None else groups2, 2)))


def test_parse_read_groups_keeps_fields_in_order_id_first():
    groups = parse_read_groups(RG_HEADER, "in.bam")
    assert [rg.id for rg in groups] == ["a", "b"]
    assert groups[0].fields == (("ID", "a"), ("SM", "X"), ("LB", "libA"), ("PU", "FC:1"))
    assert groups[1].line() == "@RG\tID:b\tPL:ILLUMINA\tLB:libB"
    assert (groups[1].get("LB"), groups[1].get("SM")) == ("libB", None)
    assert parse_read_groups("@HD\tVN:1.6\n@SQ\tSN:c1\tLN:5\n", "in.bam") == []


@pytest.mark.parametrize("header, message", [
    ("@RG\tSM:x\n", r"in\.bam header line 1: @RG line needs exactly one non-empty ID"),
    ("@HD\tVN:1.6\n@RG\tID:a\n@RG\tID:a\tLB:x\n", r"in\.bam header line 3: read group 'a' has two @RG lines"),
    ("@RG\tID:a\tnonsense\n", r"in\.bam header line 1: @RG field 'nonsense' is not TAG:VALUE"),
])
def test_parse_read_groups_refuses_bad_lines(header, message):
    with pytest.raises(InputError, match=message):
        parse_read_groups(header, "in.bam")


def test_bam_read_groups(tmp_path):
    assert [rg.id for rg in bam_read_groups(header_bam(tmp_path / "in.bam", RG_HEADER))] == ["a", "b"]
    with pytest.raises(InputError, match=r"r\.fq: cannot read its header as BAM/CRAM"):
        bam_read_groups(write(tmp_path / "r.fq", fastq_records(2, 1), gz=False))
    with pytest.raises(InputError, match=r"gone\.bam: file not found"):
        bam_read_groups(tmp_path / "gone.bam")


def test_read_groups_are_checked_and_counted(tmp_path):
    bam = header_bam(tmp_path / "in.bam", RG_HEADER)
    stats = check_pair("S", *rg_pair(tmp_path, ["a", "b", "b", "a", "b"]), read_groups_from=bam)
    assert (stats.pairs, stats.read_groups) == (5, {"a": 2, "b": 3})
    assert check_pair("S", *rg_pair(tmp_path, ["a", "b"])).read_groups is None  # without the BAM: not read


def test_read_group_missing_from_the_header_names_the_file_and_the_id(tmp_path):
    bam = header_bam(tmp_path / "in.bam", RG_HEADER)
    with pytest.raises(InputError, match=r"x_R1\.fq\.gz record 3: read read2 is in read group 'c', which the header of "
                                         r"\S*in\.bam has no @RG line for \(its @RG IDs: a, b\)"):
        check_pair("S", *rg_pair(tmp_path, ["a", "b", "c"]), read_groups_from=bam)
    plain = header_bam(tmp_path / "plain.bam", "@HD\tVN:1.6\n@SQ\tSN:c1\tLN:1000\n")
    with pytest.raises(InputError, match=r"read group 'a', which the header of \S*plain\.bam has no @RG line for "
                                         r"\(its @RG IDs: none\)"):
        check_pair("S", *rg_pair(tmp_path, [None, "a"]), read_groups_from=plain)
    # no @RG lines and no RG tags: the sample's one read group, as before
    assert check_pair("S", *rg_pair(tmp_path, [None, None]), read_groups_from=plain).read_groups == {}


def test_read_without_group_or_mates_in_different_groups(tmp_path):
    bam = header_bam(tmp_path / "in.bam", RG_HEADER)
    with pytest.raises(InputError, match=r"record 2: read read1 has no read group \(RG tag\) in \S*in\.bam, whose "
                                         r"header has @RG lines \(a, b\): every read must name one"):
        check_pair("S", *rg_pair(tmp_path, ["a", None]), read_groups_from=bam)
    with pytest.raises(InputError, match=r"record 2: the mates of read read1 are in different read groups \(b vs a\)"):
        check_pair("S", *rg_pair(tmp_path, ["a", "b"], ["a", "a"]), read_groups_from=bam)


def test_mate_names_are_compared_before_the_comment(tmp_path):
    """A tab and an RG:Z comment after the name: names still compared, and a wrong one still caught."""
    fq1, _ = rg_pair(tmp_path, ["a", "b", "a"])
    recs = rg_records(["a", "b", "a"], 2)
    recs[1] = recs[1].replace("@read1\t", "@other\t")
    with pytest.raises(InputError, match=r"record 2: mate names differ \(read1 vs other\)"):
        check_pair("S", fq1, write(tmp_path / "bad_R2.fq", recs, gz=False))
    assert comment_read_group(b"BC:Z:ACGT\tRG:Z:run 1") == "run 1" and comment_read_group(b"1:N:0:ACGT") is None


def test_empty_read_name(tmp_path, pair):
    recs = fastq_records(3, 1)
    recs[1] = "@\n" + recs[1].split("\n", 1)[1]
    with pytest.raises(InputError, match=r"e\.fq record 2 \(line 5\): empty read name"):
        check_pair("S", write(tmp_path / "e.fq", recs, gz=False), pair[1])


def test_samtools_fastq_output_passes(tmp_path):
    """The real `samtools collate | samtools fastq -n -T RG` output of a two-read-group BAM."""
    import subprocess

    import pysam

    bam = tmp_path / "in.bam"
    with pysam.AlignmentFile(str(bam), "wb", text=RG_HEADER) as out:
        for i in range(40):
            for flag, seq in ((77, "ACGTACGTAC"), (141, "GGCCTTAAGG")):
                r = pysam.AlignedSegment(out.header)
                r.query_name, r.flag, r.query_sequence = f"r{i}", flag, seq
                r.query_qualities = pysam.qualitystring_to_array("I" * 10)
                r.reference_id = r.next_reference_id = -1
                r.set_tag("RG", "ab"[i % 2])
                out.write(r)
    fq1, fq2 = tmp_path / "R1.fq.gz", tmp_path / "R2.fq.gz"
    subprocess.run(f"samtools collate -u -O {bam} {tmp_path}/c | samtools fastq -n -T RG -1 {fq1} -2 {fq2}"
                   " -0 /dev/null -s /dev/null -", shell=True, check=True, capture_output=True)
    assert check_pair("S", fq1, fq2, read_groups_from=bam).read_groups == {"a": 20, "b": 20}


def test_cli_reports_read_groups(tmp_path, capsys):
    bam = header_bam(tmp_path / "in.bam", RG_HEADER)
    fq1, fq2 = rg_pair(tmp_path, ["a", "b", "b"])
    out = tmp_path / "S.reads.json"
    assert main(["check-reads", "--sample", "S", "--fq1", str(fq1), "--fq2", str(fq2), "--read-groups-from", str(bam),
                 "--out", str(out)]) == 0
    assert json.loads(out.read_text())["read_groups"] == {"a": 1, "b": 2}
    assert "S read group b: 2 pairs" in capsys.readouterr().out
    lane = ["--lane", "L1", str(fq1), str(fq2)]
    assert main(["check-reads", "--sample", "S", *lane, "--read-groups-from", str(bam), "--out", str(out)]) == 1
    assert "--read-groups-from goes with --fq1/--fq2" in capsys.readouterr().err
