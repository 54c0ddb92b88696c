"""Dry runs on a GRCh38-shaped reference (the real 195 contigs, 3.1 Gb): job counts at the default chunk size and
at 300 kb (over 10,000 chunks), which must stay a few dozen jobs per sample."""

from __future__ import annotations

import pytest

from aisci.germline.reference import read_contigs
from aisci.germline.regions import plan_chunks
from tests.conftest import run_snakemake, write_config
from tests.workflows.grch38 import many_samples, write_grch38_shaped
from tests.workflows.test_dryrun import job_counts


@pytest.fixture(scope="module")
def grch38(tmp_path_factory):
    return write_grch38_shaped(tmp_path_factory.mktemp("grch38"))


def sheet(path, sim_data, samples: int):
    return many_samples(path, *sim_data.reads["S1"], samples)


@pytest.mark.parametrize("chunk_size", [None, 300_000])
def test_whole_genome_dry_run(chunk_size, grch38, sim_data, tmp_path):
    calling = {"chunk_size": chunk_size} if chunk_size else {}
    chunks = plan_chunks(read_contigs(grch38), chunk_size or 2_000_000)
    assert len(chunks) > (10_000 if chunk_size else 1_500)
    cfg = write_config(tmp_path / "c.yaml", samples=str(sheet(tmp_path / "s.tsv", sim_data, 3)), reference=str(grch38),
                       calling=calling)
    res = run_snakemake(tmp_path / "run", "--dry-run", "--cores", "2", "--configfile", str(cfg))
    assert res.returncode == 0, res.stderr[-3000:]
    counts = job_counts(res.stdout)
    # 3 samples + the cohort (joint: auto): 24 calling groups each (calling.groups) and 8 SpliceAI
    # scoring groups (calling.scoring_groups) on the packaged GRCh38 table, whatever the chunk size
    assert counts["call_group"] == 4 * 24 and counts["score_splicing"] == 4 * 8 and counts["write_regions"] == 1
    assert counts["cache_splicing"] == 8
    assert counts["gather_calls"] == counts["stamp_calls"] == counts["gather_splicing"] == 4
    assert counts["align_reads"] == 3 and sum(counts.values()) < 190
    assert not (tmp_path / "run" / "results").exists()


def test_chunk_size_below_the_genome_shape(grch38, sim_data, tmp_path):
    """The schema's smallest chunk (10 kb): 310,000 chunks, still 24 jobs per callset, planned in seconds."""
    cfg = write_config(tmp_path / "c.yaml", samples=str(sheet(tmp_path / "s.tsv", sim_data, 1)), reference=str(grch38),
                       calling={"chunk_size": 10_000})
    res = run_snakemake(tmp_path / "run", "--dry-run", "--cores", "2", "--configfile", str(cfg))
    assert res.returncode == 0, res.stderr[-3000:]
    assert job_counts(res.stdout)["call_group"] == 24
