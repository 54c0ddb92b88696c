"""Tests for aisci.resources: memory and wall time grow with each attempt; runtime follows input size."""

from __future__ import annotations

import math
from pathlib import Path

import pysam
import pytest
from snakemake.iocontainers import InputFiles, Namedlist, Wildcards
from snakemake.resources import Resource

from aisci.germline.align import ALIGNERS
from aisci.resources import (
    ALIGN_MINIMAP2,
    ALIGN_MODELS,
    CALL,
    CRAM_AS_BAM,
    SPLICEAI_CPU,
    SPLICEAI_GPU,
    VCF_BYTES_PER_RECORD,
    estimate_minutes,
    mem_per_attempt,
    records_of,
    runtime_per_attempt,
    tabix_records,
)


def test_memory_doubles_per_attempt():
    mem = mem_per_attempt(1000)
    assert [mem(None, a) for a in (1, 2, 3)] == [1000, 2000, 4000]
    assert mem_per_attempt(300, 1.5)(None, 2) == 450


def test_bad_arguments():
    with pytest.raises(ValueError):
        mem_per_attempt(0)
    with pytest.raises(ValueError):
        mem_per_attempt(100, 0.5)


# --------------------------------------------------------------------------- runtime


def sized(path: Path, size: int) -> str:
    """A real file of exactly ``size`` bytes (sparse: nothing is written)."""
    with open(path, "wb") as fh:
        fh.truncate(size)
    return str(path)


def named(**files) -> InputFiles:
    """A job's input as Snakemake passes it: InputFiles with names (one file or a list per name)."""
    return InputFiles(fromdict=files)


@pytest.fixture
def reads(tmp_path) -> InputFiles:
    """A 1.5 GB + 0.5 GB FASTQ pair (2 GB, decimal) and a small index."""
    return named(fq1=sized(tmp_path / "r1.fq.gz", 1_500_000_000), fq2=sized(tmp_path / "r2.fq.gz", 500_000_000),
                 index=sized(tmp_path / "genome.mmi", 1000))


WILDCARDS = Wildcards(fromdict={"sample": "NA12878"})


def test_minutes_follow_input_size(reads, tmp_path):
    runtime = runtime_per_attempt(base_min=5, min_per_gb=10, inputs=("fq1", "fq2"))
    assert runtime(WILDCARDS, reads, threads=1, attempt=1) == 25  # 5 + 10 * 2 GB
    one = named(fq1=sized(tmp_path / "a.fq.gz", 1_500_000_000), fq2=sized(tmp_path / "b.fq.gz", 0))
    assert runtime(WILDCARDS, one) == 20  # 5 + 15, defaults: one thread, first attempt
    # fractions of a minute round up: 5 + 10 * 0.0301 GB = 5.301
    small = named(fq1=sized(tmp_path / "c.fq.gz", 30_100_000), fq2=sized(tmp_path / "d.fq.gz", 0))
    assert runtime(WILDCARDS, small) == 6


def test_retry_doubles_runtime_like_memory(reads):
    runtime = runtime_per_attempt(base_min=5, min_per_gb=10, inputs=("fq1", "fq2"))
    assert [runtime(WILDCARDS, reads, attempt=a) for a in (1, 2, 3)] == [25, 50, 100]
    slower = runtime_per_attempt(base_min=5, min_per_gb=10, inputs=("fq1", "fq2"), factor=1.5)
    assert [slower(WILDCARDS, reads, attempt=a) for a in (1, 2, 3)] == [25, 38, 57]  # 37.5, 56.25 rounded up


def test_floor_and_ceiling_clamp(reads, tmp_path):
    runtime = runtime_per_attempt(base_min=5, min_per_gb=10, inputs=("fq1", "fq2"), floor=30, ceiling=60)
    assert [runtime(WILDCARDS, reads, attempt=a) for a in (1, 2, 3)] == [30, 50, 60]
    empty = named(fq1=sized(tmp_path / "e1", 0), fq2=sized(tmp_path / "e2", 0))
    assert runtime_per_attempt(base_min=0, min_per_gb=10, inputs=("fq1", "fq2"))(WILDCARDS, empty) == 1


def test_missing_inputs_fall_back_to_the_base(tmp_path):
    """At DAG-build time (a dry run) inputs made by earlier jobs do not exist: base, never an error."""
    runtime = runtime_per_attempt(base_min=7, min_per_gb=10, inputs=("fq1", "fq2"))
    nothing = named(fq1=str(tmp_path / "absent_1.fq.gz"), fq2=str(tmp_path / "absent_2.fq.gz"))
    assert runtime(WILDCARDS, nothing) == 7
    assert runtime(WILDCARDS, nothing, attempt=2) == 14
    # one of the pair missing: the half that exists would understate the job, so the base again
    half = named(fq1=sized(tmp_path / "here.fq.gz", 2_000_000_000), fq2=str(tmp_path / "absent.fq.gz"))
    assert runtime(WILDCARDS, half) == 7
    assert runtime_per_attempt(base_min=7, min_per_k_records=1, records=("vcf",))(
        WILDCARDS, named(vcf=str(tmp_path / "absent.vcf.gz"))) == 7


def test_fallback_bytes_when_inputs_do_not_exist_yet(tmp_path):
    seen = []

    def sheet_bytes(wildcards):
        seen.append(wildcards.sample)
        return 3e9

    runtime = runtime_per_attempt(base_min=5, min_per_gb=10, inputs=("fq1", "fq2"), fallback_bytes=sheet_bytes)
    nothing = named(fq1=str(tmp_path / "absent_1.fq.gz"), fq2=str(tmp_path / "absent_2.fq.gz"))
    assert runtime(WILDCARDS, nothing) == 35 and seen == ["NA12878"]
    present = named(fq1=sized(tmp_path / "r1", 1_000_000_000), fq2=sized(tmp_path / "r2", 0))
    assert runtime(WILDCARDS, present) == 15 and seen == ["NA12878"]  # measured, not asked
    unknown = runtime_per_attempt(base_min=5, min_per_gb=10, inputs=("fq1", "fq2"), fallback_bytes=lambda w: None)
    assert unknown(WILDCARDS, nothing) == 5


def test_threads_divide_the_work_not_the_base(reads):
    linear = runtime_per_attempt(base_min=5, min_per_gb=10, inputs=("fq1", "fq2"))
    assert linear(WILDCARDS, reads, threads=4) == 10  # 5 + 20 / 4
    assert linear(WILDCARDS, reads, threads=0) == 25  # Snakemake never passes 0; treated as 1
    half = runtime_per_attempt(base_min=5, min_per_gb=10, inputs=("fq1", "fq2"), efficiency=0.5)
    assert half(WILDCARDS, reads, threads=4) == 13  # 5 + 20 / (1 + 0.5 * 3)
    gpu = runtime_per_attempt(base_min=5, min_per_gb=10, inputs=("fq1", "fq2"), efficiency=0)
    assert gpu(WILDCARDS, reads, threads=8) == 25


def test_share_of_the_inputs(reads):
    chunk = runtime_per_attempt(base_min=1, min_per_gb=10, inputs=("fq1", "fq2"), share=0.25)
    assert chunk(WILDCARDS, reads) == 6  # 1 + 20 * 0.25
    by_wildcards = runtime_per_attempt(base_min=1, min_per_gb=10, inputs=("fq1", "fq2"),
                                       share=lambda w: 0.1 if w.sample == "NA12878" else 1.0)
    assert by_wildcards(WILDCARDS, reads) == 3
    bad = runtime_per_attempt(base_min=1, min_per_gb=10, inputs=("fq1", "fq2"), share=lambda w: 0.0)
    with pytest.raises(ValueError, match="share"):
        bad(WILDCARDS, reads)


def test_list_inputs_and_cram_weight(tmp_path):
    """A named input holding several files (every BAM of a cohort) counts them all; a CRAM as the BAM it would be."""
    bams = [sized(tmp_path / f"s{i}.bam", 1_000_000_000) for i in range(3)]
    runtime = runtime_per_attempt(base_min=1, min_per_gb=10, inputs=("bams",))
    # Snakemake gives a named list input as a Namedlist (a slice of the job's input)
    assert runtime(WILDCARDS, named(bams=Namedlist(toclone=bams))) == 31
    cram = named(bam=sized(tmp_path / "s.cram", 100_000_000))
    assert runtime_per_attempt(base_min=1, min_per_gb=10, inputs=("bam",))(WILDCARDS, cram) == math.ceil(
        1 + 10 * 0.1 * CRAM_AS_BAM)


def test_records_from_the_tabix_index(tmp_path):
    header = ["##fileformat=VCFv4.2", "##contig=<ID=chr1>", "##contig=<ID=chr2>",
              "#CHROM\tPOS\tID\tREF\tALT\tQUAL\tFILTER\tINFO"]
    body = [f"chr{1 + i % 2}\t{100 + i}\t.\tA\tG\t50\tPASS\t." for i in range(2500)]
    body.sort(key=lambda line: (line.split("\t")[0], int(line.split("\t")[1])))
    plain = tmp_path / "calls.vcf"
    plain.write_text("\n".join(header + body) + "\n")
    vcf = pysam.tabix_index(str(plain), preset="vcf", force=True)  # htslib writes the counts
    assert tabix_records(f"{vcf}.tbi") == 2500
    assert records_of([vcf]) == records_of([f"{vcf}.tbi"]) == 2500
    runtime = runtime_per_attempt(base_min=5, min_per_k_records=2, records=("vcf",))
    assert runtime(WILDCARDS, named(vcf=vcf, tbi=f"{vcf}.tbi")) == 10  # 5 + 2 * 2.5
    assert runtime_per_attempt(base_min=5, min_per_k_records=2, records=("tbi",))(
        WILDCARDS, named(vcf=vcf, tbi=f"{vcf}.tbi")) == 10


def test_records_without_an_index_come_from_the_size(tmp_path, na12878):
    unindexed = sized(tmp_path / "calls.vcf.gz", 500_000)
    assert records_of([unindexed]) == 500_000 / VCF_BYTES_PER_RECORD
    assert tabix_records(sized(tmp_path / "junk.tbi", 10)) is None
    # an index written without counts (the shared truth VCF's) is no count: the size is used
    truth = na12878 / "test_nist.b37_chr20_100kbp_at_10mb.vcf.gz"
    assert tabix_records(f"{truth}.tbi") is None
    assert records_of([truth]) == truth.stat().st_size / VCF_BYTES_PER_RECORD


def test_unknown_input_name_is_named(reads):
    runtime = runtime_per_attempt(base_min=5, min_per_gb=10, inputs=("fq1", "fastq2"))
    with pytest.raises(ValueError, match="'fastq2'"):
        runtime(WILDCARDS, reads)


@pytest.mark.parametrize("kwargs", [
    {"base_min": -1},
    {"base_min": 5, "min_per_gb": -1, "inputs": ("fq1",)},
    {"base_min": 5, "min_per_gb": 10},  # a coefficient without inputs
    {"base_min": 5, "inputs": ("fq1",)},  # inputs without a coefficient
    {"base_min": 5, "min_per_k_records": 1},
    {"base_min": 5, "min_per_gb": 10, "inputs": "fq1"},  # a string, not a tuple of names
    {"base_min": 5, "efficiency": 1.5},
    {"base_min": 5, "efficiency": -0.1},
    {"base_min": 5, "share": 0},
    {"base_min": 5, "share": 1.5},
    {"base_min": 5, "factor": 0.5},
    {"base_min": 5, "floor": 0},
    {"base_min": 5, "floor": 10, "ceiling": 5},
])
def test_invalid_runtime_arguments(kwargs):
    with pytest.raises(ValueError):
        runtime_per_attempt(**kwargs)


def test_snakemake_passes_threads_and_attempt(reads):
    """Evaluated the way Snakemake evaluates a rule's resource (Resource.evaluate picks arguments by name)."""
    resource = Resource("runtime", runtime_per_attempt(base_min=5, min_per_gb=10, inputs=("fq1", "fq2")))
    value = resource.evaluate(WILDCARDS, input=reads, threads=4, attempt=2, rulename="align_reads",
                              async_run=None).value
    assert value == 20  # (5 + 20 / 4) * 2


def test_presets():
    assert set(ALIGN_MODELS) == set(ALIGNERS)
    assert ALIGN_MODELS["bwa"].min_per_gb == 3 * ALIGN_MODELS["minimap2"].min_per_gb
    # a 30x genome: ~50 GB of binned FASTQ.gz on 2 threads -> (10 + 20 * 50 / 1.75) min, ~9.7 h
    assert estimate_minutes(10, 20, 50, 0, 0, threads=2, efficiency=ALIGN_MINIMAP2.efficiency) == 582
    # SpliceAI on 2 CPU threads: 1.8 min per 1,000 records (measured: 3.3-3.5 entries/s, 0.363 per record)
    assert 1.7 < SPLICEAI_CPU.min_per_k_records / (1 + SPLICEAI_CPU.efficiency) < 1.9
    assert SPLICEAI_GPU.efficiency == 0
    # one of 40 calling groups of a 30x genome (35 GB of binned BAM) on 2 threads: 1 + 8 * 35 / 40 / 1.9
    assert estimate_minutes(CALL.base_min, CALL.min_per_gb, 35, 0, 0, threads=2, efficiency=CALL.efficiency,
                            share=1 / 40) == 5
