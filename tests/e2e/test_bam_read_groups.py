"""A sample given as a BAM of two libraries (three read groups) keeps its read groups through the pipeline.

Only the alignment targets are built (reference preparation, bam_to_fastq, check_reads,
align_reads): what comes after reads the aligned BAM whatever its read groups.
"""

from __future__ import annotations

import json

import pysam
import pytest

from tests.conftest import run_snakemake, write_config
from tests.unit.germline.test_align import TWO_LIBRARIES, fastq_pairs, write_unaligned_bam

pytestmark = pytest.mark.slow

N_PAIRS = 1500  # pairs of each read group, from the simulated S1's reads


@pytest.fixture(scope="module")
def reference(sim_data, tmp_path_factory):
    """The simulated reference, uncompressed and indexed (the input BAM's @SQ lines come from its .fai)."""
    import subprocess

    fa = tmp_path_factory.mktemp("ref") / "genome.fa"
    subprocess.run(f"gzip -cdf {sim_data.reference} > {fa}", shell=True, check=True)
    pysam.faidx(str(fa))
    return fa


def _run(workdir, reference, bam):
    sheet = workdir / "samples.tsv"
    sheet.write_text(f"sample\tbam\nS1\t{bam}\n")
    cfg = write_config(workdir / "c.yaml", samples=str(sheet), reference=str(reference))
    # the targets before --configfile, which takes every argument after it
    return run_snakemake(workdir, "results/align/S1.bam", "results/qc/S1.reads.json",
                         "--cores", "2", "--configfile", str(cfg))


@pytest.fixture(scope="module")
def bam_run(reference, sim_data, tmp_path_factory):
    """The input BAM ({read name: read group}) and the run's directory."""
    workdir = tmp_path_factory.mktemp("bam_read_groups")
    fq1, fq2 = sim_data.reads["S1"]
    pairs = [(rg["ID"], *p) for i, rg in enumerate(TWO_LIBRARIES)
             for p in fastq_pairs(fq1, fq2, N_PAIRS, skip=i * N_PAIRS)]
    bam = write_unaligned_bam(workdir / "donor7.bam", reference, TWO_LIBRARIES, pairs)
    res = _run(workdir, reference, bam)
    assert res.returncode == 0, res.stderr[-5000:]
    return {p[1]: p[0] for p in pairs}, workdir


def test_read_groups_and_each_reads_group_are_kept(bam_run):
    group_of, workdir = bam_run
    with pysam.AlignmentFile(str(workdir / "results" / "align" / "S1.bam")) as bam:
        # the input's @RG lines, in order, every field kept; SM is the sheet's sample name
        assert bam.header["RG"] == [{**rg, "SM": "S1"} for rg in TWO_LIBRARIES]
        reads = list(bam.fetch(until_eof=True))
    primary = [r for r in reads if not (r.is_secondary or r.is_supplementary)]
    assert len(primary) == 2 * len(group_of)
    assert all(r.get_tag("RG") == group_of[r.query_name] for r in reads)
    checked = json.loads((workdir / "results" / "qc" / "S1.reads.json").read_text())
    assert checked["read_groups"] == {rg["ID"]: N_PAIRS for rg in TWO_LIBRARIES}
    log = (workdir / "logs" / "align_reads" / "S1.log").read_text()
    assert "read group run1.A has SM donor7; set to the sample-sheet name S1" in log
    # duplicates marked per library: libA alone, libB over its two read groups
    stats = (workdir / "results" / "qc" / "S1.markdup.txt").read_text()
    assert "LIBRARY: libA (read groups: run1.A)\n" in stats
    assert "LIBRARY: libB (read groups: run2.B, run3.B)\n" in stats


def test_a_read_group_missing_from_the_header_stops_before_alignment(reference, sim_data, tmp_path):
    fq1, fq2 = sim_data.reads["S1"]
    pairs = [("run1.A", *p) for p in fastq_pairs(fq1, fq2, 200)] + [("lost", *p) for p in fastq_pairs(fq1, fq2, 5, skip=200)]
    bam = write_unaligned_bam(tmp_path / "bad rg.bam", reference, TWO_LIBRARIES[:1], pairs)
    res = _run(tmp_path, reference, bam)
    assert res.returncode != 0
    log = (tmp_path / "logs" / "check_reads" / "S1.log").read_text()
    assert f"is in read group 'lost', which the header of {bam} has no @RG line for (its @RG IDs: run1.A)" in log
    assert "Traceback" not in log
    assert not (tmp_path / "results" / "align").exists()
