"""Tests for aisci.pipelines.germline: the plan a config turns into (targets, reads, chunks)."""

from types import SimpleNamespace as W

import pytest

from aisci.pipelines.germline import GermlinePipeline


@pytest.fixture
def pipeline(sim_data, na12878, tmp_path):
    sheet = tmp_path / "samples.tsv"
    fq1, fq2 = sim_data.reads["S1"]
    sheet.write_text(
        f"sample\tfq1\tfq2\tbam\ttruth\nS1\t{fq1}\t{fq2}\t\t{sim_data.truth_vcfs['S1']}\n"
        f"N\t\t\t{na12878 / 'NA12878_S1.chr20.10_10p1mb.bam'}\t\n"
    )
    cfg = {"samples": str(sheet), "reference": str(na12878 / "ucsc.hg19.chr20.unittest.fasta.gz"),
           "calling": {"chunk_size": 30_000_000, "joint": True}}
    return GermlinePipeline(cfg)


def test_targets_cover_samples_cohort_and_evaluation(pipeline):
    targets = pipeline.targets()
    assert "results/calls/cohort.vcf.gz" in targets and "results/calls/N.vcf.gz.tbi" in targets
    assert "results/eval/S1.json" in targets and "results/eval/N.json" not in targets
    assert pipeline.callsets() == ["S1", "N", "cohort"]


def test_reads_come_from_the_sheet_or_the_bam(pipeline, sim_data):
    assert pipeline.reads(W(sample="S1"))["fq1"] == str(sim_data.reads["S1"][0])
    assert pipeline.reads(W(sample="N")) == {"fq1": "results/reads/N_R1.fastq.gz", "fq2": "results/reads/N_R2.fastq.gz"}
    assert pipeline.input_bam(W(sample="N")).endswith("NA12878_S1.chr20.10_10p1mb.bam")
    # the BAM's read groups are kept: its header travels to check-reads and align
    assert pipeline.read_pairs(W(sample="N"))[-2:] == ["--read-groups-from", pipeline.input_bam(W(sample="N"))]
    assert "--read-groups-from" not in pipeline.read_pairs(W(sample=sim_data.samples[0]))


def test_chunks_and_cohort_bams(pipeline):
    # 63,025,520 bp in chunks of at most 30 Mb: three equal pieces
    assert [c.region for c in pipeline.chunks] == [
        "chr20:1-21008507", "chr20:21008508-42017014", "chr20:42017015-63025520"]
    assert pipeline.chunks[1].regions_tsv() == "chr20\t21008508\t42017014\n"
    # fewer chunks than calling.groups (24): one group, one job, per chunk
    assert [g.chunks for g in pipeline.groups] == [(c,) for c in pipeline.chunks]
    assert pipeline.regions_files() == [f"resources/reference/regions/{i:04d}.tsv" for i in range(3)] + [
        f"resources/reference/regions/score/{i:04d}.tsv" for i in range(3)]
    assert pipeline.splice_parts(W(callset="N"))["vcfs"] == [f"results/splice/groups/N/{i:04d}.vcf.gz" for i in range(3)]
    assert pipeline.protein_vcf(W(callset="N", group="0001"))["vcf"] == "results/splice/groups/N/0001.vcf.gz"
    assert pipeline.group_calls(W(callset="cohort")) == [
        f"results/calls/groups/cohort/{i:04d}.bcf" for i in range(3)]
    assert pipeline.callset_bams(W(callset="cohort")) == ["results/align/S1.bam", "results/align/N.bam"]
    assert pipeline.callset_bams(W(callset="N")) == ["results/align/N.bam"]


def test_aligner_index_follows_config(pipeline):
    assert pipeline.aligner_index() == ["resources/reference/genome.mmi"]
    pipeline.config["aligner"] = "bwa"
    assert pipeline.aligner_index_arg() == "resources/reference/genome.fa"
    assert pipeline.aligner_index()[2] == "resources/reference/genome.fa.bwt"
    assert pipeline.bed_option() == ""


def test_splice_weights_are_checked_before_any_job_and_passed_to_the_stage(sim_data, tmp_path):
    """`splice.weights`: a folder without the five files is refused naming the key; a good one reaches the rules."""
    from aisci.errors import InputError
    from aisci.splice.weights import weights_dir

    cfg = {"samples": str(sim_data.sample_sheet), "reference": str(sim_data.reference),
           "splice": {"annotation": str(sim_data.annotation), "weights": str(tmp_path / "nowhere")}}
    with pytest.raises(InputError, match=r"^config: splice.weights: \S*nowhere/spliceai1.h5: SpliceAI weight file missing"):
        GermlinePipeline(cfg)
    real = weights_dir(None).resolve()  # the spliceai package's own files
    cfg["splice"]["weights"] = str(real)
    pipeline = GermlinePipeline(cfg)
    assert pipeline.splice_options().endswith(f"--splice-weights {real}")
    assert pipeline.provenance_options()[:2] == ["--splice-weights", str(real)]
    del cfg["splice"]["weights"]
    assert "--splice-weights" not in GermlinePipeline(cfg).splice_options()
