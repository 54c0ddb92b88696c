"""Tests for aisci.reads: FASTQ pairs are checked end to end, with the file and record named."""

import gzip
import json
import random

import pytest

from aisci.cli import main
from aisci.errors import InputError
from aisci.reads import check_pair


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
