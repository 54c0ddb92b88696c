"""The reanalysis manifest: every bad row is named by file, line and field; shards cover the manifest exactly."""

from __future__ import annotations

import pytest

from aisci.cohort.manifest import n_shards, read_manifest, shard
from aisci.errors import InputError


def write(tmp_path, text, files=("a.vcf.gz", "b.vcf.gz")):
    for name in files:
        (tmp_path / name).write_bytes(b"")
    path = tmp_path / "samples.tsv"
    path.write_text(text)
    return path


def test_reads_rows_and_resolves_relative_paths(tmp_path):
    (tmp_path / "sub").mkdir()
    (tmp_path / "sub" / "c.vcf.gz").write_bytes(b"")
    path = write(tmp_path, f"sample\tvcf\nA\ta.vcf.gz\n# a comment\n\nB\t{tmp_path / 'b.vcf.gz'}\nC\tsub/c.vcf.gz\n")
    samples = read_manifest(path)
    assert [(s.name, s.vcf, s.line) for s in samples] == [
        ("A", tmp_path / "a.vcf.gz", 2), ("B", tmp_path / "b.vcf.gz", 5), ("C", tmp_path / "sub" / "c.vcf.gz", 6)]


def test_column_order_is_free(tmp_path):
    path = write(tmp_path, "vcf\tsample\na.vcf.gz\tA\n")
    assert read_manifest(path)[0].name == "A"


@pytest.mark.parametrize("text, message", [
    ("", "empty manifest"),
    ("sample\tpath\nA\ta.vcf.gz\n", "line 1: unknown column 'path'"),
    ("sample\nA\n", "line 1: the header has no 'vcf' column"),
    ("sample\tvcf\n", "no samples after the header"),
    ("sample\tvcf\nA b\ta.vcf.gz\n", "line 2: sample 'A b' must match"),
    ("sample\tvcf\n-A\ta.vcf.gz\n", "line 2: sample '-A' must match"),
    ("sample\tvcf\n" + "L" * 65 + "\ta.vcf.gz\n",
     "line 2: sample '" + "L" * 65 + "' is 65 characters long (at most 64)"),
    ("sample\tvcf\n" + "L" * 300 + "\ta.vcf.gz\n", "line 2: sample '" + "L" * 77 + "...' is 300 characters long"),
    ("sample\tvcf\nA\ta.vcf.gz\nA\tb.vcf.gz\n", "line 3: duplicate sample 'A' (first on line 2)"),
    ("sample\tvcf\nA\ta.vcf.gz\nB\n", "line 3: 1 fields, the header has 2"),
    ("sample\tvcf\nA\tmissing.vcf.gz\n", "line 2: vcf missing.vcf.gz does not exist"),
    ("sample\tvcf\nA\t \n", "line 2: vcf is empty"),
])
def test_bad_manifests_name_the_line_and_field(tmp_path, text, message):
    path = write(tmp_path, text)
    with pytest.raises(InputError) as err:
        read_manifest(path)
    assert message in str(err.value) and str(path) in str(err.value)


def test_missing_files_are_allowed_when_not_checked(tmp_path):
    path = write(tmp_path, "sample\tvcf\nA\tnowhere.vcf.gz\n", files=())
    assert read_manifest(path, check_files=False)[0].vcf == tmp_path / "nowhere.vcf.gz"


def test_shards_cover_every_sample_once(tmp_path):
    names = [f"S{i}" for i in range(7)]
    path = write(tmp_path, "sample\tvcf\n" + "".join(f"{n}\t{n}.vcf\n" for n in names), files=[f"{n}.vcf" for n in names])
    samples = read_manifest(path)
    assert n_shards(7, 3) == 3 and n_shards(6, 3) == 2 and n_shards(1, 50) == 1
    assert [s.name for k in range(3) for s in shard(samples, k, 3)] == names
    with pytest.raises(InputError, match="shard 3 does not exist: 7 samples make 3 shards of 3"):
        shard(samples, 3, 3)
    with pytest.raises(InputError, match="at least 1"):
        n_shards(7, 0)
