"""A real run on legal but awkward input: every path under a folder named like a shell injection,
contigs named as GRCh38's HLA alleles and a region string, truth and genes on those names.

Nothing may run from the data (no PWNED file anywhere), and no contig may lose its calls.
"""

from __future__ import annotations

import gzip
import json
import shutil
from pathlib import Path

import pysam
import pytest

from tests.conftest import REPO, run_snakemake, write_config

pytestmark = pytest.mark.slow

HOSTILE = "in put $(touch PWNED) `touch PWNED` 'q' \"d\""
RENAME = {"chr1": "chr1:1-100", "chr2": "HLA-A*01:01:01:01"}


def _rename_fasta(src: Path, dst: Path) -> None:
    with gzip.open(src, "rt") as fh, open(dst, "w") as out:
        for line in fh:
            out.write(f">{RENAME[line[1:].split()[0]]}\n" if line.startswith(">") else line)


def _rename_vcf(src: Path, dst: Path) -> None:
    with pysam.VariantFile(str(src)) as vcf:
        header = vcf.header.copy()
        text = str(header)
        for old, new in RENAME.items():
            text = text.replace(f"##contig=<ID={old},", f"##contig=<ID={new},")
        lines = [line for line in text.splitlines()]
        with open(dst.with_suffix(""), "w") as out:
            out.write("\n".join(lines) + "\n")
            for rec in vcf:
                fields = str(rec).split("\t")
                fields[0] = RENAME[fields[0]]
                out.write("\t".join(fields))
    pysam.tabix_compress(str(dst.with_suffix("")), str(dst), force=True)
    pysam.tabix_index(str(dst), preset="vcf", force=True)


@pytest.fixture(scope="module")
def hostile_project(sim_data, esm_store, tmp_path_factory):
    root = tmp_path_factory.mktemp("hostile")
    data = root / HOSTILE
    data.mkdir()
    _rename_fasta(sim_data.reference, data / "genome.fa")
    gff = sim_data.annotation.read_text()
    for old, new in RENAME.items():
        gff = gff.replace(f"\n{old}\t", f"\n{new}\t").replace(f"sequence-region {old} ", f"sequence-region {new} ")
    (data / "genes.gff3").write_text(gff)
    fq1, fq2 = sim_data.reads["S1"]
    shutil.copy(fq1, data / "S1 R1.fq.gz")
    shutil.copy(fq2, data / "S1 R2.fq.gz")
    _rename_vcf(sim_data.truth_vcfs["S1"], data / "truth S1.vcf.gz")
    (data / "confident regions.bed").write_text("".join(f"{n}\t0\t150000\n" for n in RENAME.values()))
    (data / "samples.tsv").write_text("sample\tfq1\tfq2\ttruth\nS1\tS1 R1.fq.gz\tS1 R2.fq.gz\ttruth S1.vcf.gz\n")
    shutil.copytree(esm_store.path, data / "model store")
    return root, data


@pytest.fixture(scope="module")
def hostile_run(hostile_project, esm_store):
    root, data = hostile_project
    workdir = root / "run"
    workdir.mkdir()
    cfg = write_config(
        workdir / "config.yaml", samples=str(data / "samples.tsv"), reference=str(data / "genome.fa"),
        evaluation={"bed": str(data / "confident regions.bed")},
        calling={"chunk_size": 100_000},
        splice={"annotation": str(data / "genes.gff3")},
        protein={"enabled": True, "annotation": str(data / "genes.gff3"), "model": esm_store.model,
                 "model_store": str(data / "model store")},
    )
    res = run_snakemake(workdir, "--cores", "2", "--configfile", str(cfg))
    assert res.returncode == 0, res.stderr[-5000:]
    return workdir


def test_nothing_runs_from_paths_or_names(hostile_run, hostile_project):
    root, _ = hostile_project
    assert not [p for p in root.rglob("PWNED")]
    assert not (REPO / "PWNED").exists() and not Path("PWNED").exists()


def test_every_contig_keeps_its_calls(hostile_run, hostile_project):
    """The colon names used to lose every call (bcftools split the --regions value at ':')."""
    m = json.loads((hostile_run / "results" / "eval" / "S1.json").read_text())
    assert m["snv"]["recall"] >= 0.97 and m["indel"]["recall"] >= 0.85, m
    with pysam.VariantFile(str(hostile_run / "results" / "calls" / "S1.vcf.gz")) as vcf:
        per_contig = {name: sum(1 for _ in vcf.fetch(name)) for name in RENAME.values()}
    with pysam.VariantFile(str(hostile_project[1] / "truth S1.vcf.gz")) as truth:
        expected = {name: sum(1 for _ in truth.fetch(name)) for name in RENAME.values()}
    for name in RENAME.values():
        assert per_contig[name] >= 0.9 * expected[name] > 50, (name, per_contig, expected)


def test_ai_stages_read_the_awkward_paths(hostile_run):
    res = hostile_run / "results"
    for out in ("splice/S1.vcf.gz", "splice/S1.parquet", "protein/S1.vcf.gz", "protein/S1.parquet"):
        assert (res / out).stat().st_size > 0, out
    import pyarrow.parquet as pq

    consequences = pq.read_table(res / "protein" / "S1.consequences.parquet").to_pydict()
    assert set(consequences["chrom"]) == set(RENAME.values())


def test_protein_workflow_with_an_awkward_fasta_path(hostile_project, esm_store):
    root, data = hostile_project
    fasta = data / "my proteins.fa"
    fasta.write_text(">sp|P01|ALPHA desc\nMKTAYIAKQRQISFVKSHFSRQLEERLGLIEVQAPILSRVGDGTQDNLSGAEK\n")
    workdir = root / "protein run"
    workdir.mkdir()
    cfg = write_config(workdir / "config.yaml", proteins=str(fasta), model=esm_store.model,
                       model_store=str(data / "model store"), mutagenesis={"strategy": "wt-marginals"})
    res = run_snakemake(workdir, "--cores", "2", "--configfile", str(cfg),
                        snakefile=REPO / "workflows" / "protein" / "Snakefile")
    assert res.returncode == 0, res.stderr[-5000:]
    assert (workdir / "results" / "plm" / "embeddings.parquet").stat().st_size > 0
    assert len(list((workdir / "results" / "plm" / "mutagenesis").glob("*.png"))) == 1
    assert not [p for p in root.rglob("PWNED")]
