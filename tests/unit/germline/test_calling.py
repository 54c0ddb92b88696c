"""aisci call: one job calls a group's chunks in parallel and concatenates them in order, as separate chunk jobs did."""

from __future__ import annotations

import subprocess

import pysam
import pytest

from aisci.germline.calling import CallOptions, call_group, read_group_regions
from aisci.errors import InputError, ToolError
from aisci.germline.reference import contigs_digest, read_contigs
from aisci.germline.regions import write_regions

from tests.unit.germline.test_regions import NAMES, _tiny_genome


def records(path):
    with pysam.VariantFile(str(path)) as vcf:
        return [str(r) for r in vcf]


def test_a_group_equals_its_chunks_called_one_by_one(tmp_path):
    ref, bam = _tiny_genome(tmp_path)
    # 4 contigs of 5 kb in 2 kb chunks (12 chunks), all in one group: one job, 2 threads
    (group,) = write_regions(ref, 2000, contigs_digest(read_contigs(ref)), tmp_path / "regions", max_groups=1)
    assert len(read_group_regions(group)) == 12
    out = tmp_path / "group.bcf"
    assert call_group([str(bam)], str(ref), group, out, threads=2) == 12
    # the reference: each chunk called by the command the per-chunk jobs ran, concatenated in order
    expected = []
    for name, text in read_group_regions(group):
        (tmp_path / f"{name}.tsv").write_text(text)
        mpileup = subprocess.run(["bcftools", "mpileup", "--fasta-ref", str(ref), "--regions-file", str(tmp_path / f"{name}.tsv"),
                                  "--annotate", "FORMAT/AD,FORMAT/DP", "--min-MQ", "20", "--min-BQ", "13", "--max-depth", "500",
                                  "--output-type", "u", str(bam)], capture_output=True, check=True)
        calls = subprocess.run(["bcftools", "call", "--multiallelic-caller", "--variants-only"], input=mpileup.stdout,
                               capture_output=True, check=True)
        expected += [line for line in calls.stdout.decode().splitlines() if not line.startswith("#")]
    got = records(out)
    assert [line.rstrip("\n") for line in got] == expected
    assert [r.split("\t")[:2] for r in got] == [[n, "2001"] for n in NAMES]


def test_options_reach_mpileup(tmp_path):
    ref, bam = _tiny_genome(tmp_path)
    (group,) = write_regions(ref, 6000, contigs_digest(read_contigs(ref)), tmp_path / "regions", max_groups=1)
    out = tmp_path / "q.bcf"
    call_group([str(bam)], str(ref), group, out, threads=2, options=CallOptions(min_mapq=61))  # reads are MAPQ 60
    assert records(out) == []


def test_a_failing_chunk_is_named_and_nothing_is_written(tmp_path):
    ref, bam = _tiny_genome(tmp_path)
    (group,) = write_regions(ref, 6000, contigs_digest(read_contigs(ref)), tmp_path / "regions", max_groups=1)
    out = tmp_path / "bad.bcf"
    with pytest.raises(ToolError, match=r"chunk 000\d: bcftools failed"):
        call_group([str(tmp_path / "missing.bam")], str(ref), group, out, threads=2)
    assert sorted(p.name for p in tmp_path.iterdir() if p.name.startswith((".call-", "bad"))) == []
    bad = tmp_path / "bad.tsv"
    bad.write_text("chr1\t1\t100\n")
    with pytest.raises(InputError, match="bad.tsv line 1: expected CHROM, BEG, END, CHUNK"):
        call_group([str(bam)], str(ref), bad, out)
