"""workflows/protein: dry-runs, lint, and bad input (FASTA, config, unstaged model) stopping before any job."""

from __future__ import annotations

import pytest

from tests.conftest import REPO, run_snakemake, write_config
from tests.workflows.test_dryrun import job_counts

PROTEIN = REPO / "workflows" / "protein" / "Snakefile"
FASTA = (">sp|P01|ALPHA first protein\nMKTAYIAKQRQISFVKSHFSRQLEERLGLIEVQAPILSRVGDGTQDNLSGAEKAVQVKVKALPDAQ\n"
         ">beta\nMSDNGPQNQRNAPRITFGGPSDSTGSNQNGERSGARSKQRRPQGLPNNTASWFTALTQHGK*\n"
         ">gamma\nmvlspadktn vkaawgkvga\nhageygaeal\n")


@pytest.fixture
def proteins(tmp_path):
    path = tmp_path / "proteins.fa"
    path.write_text(FASTA)
    return path


def test_dry_run_plans_every_protein(proteins, esm_store, tmp_path):
    cfg = write_config(tmp_path / "config.yaml", proteins=str(proteins), model=esm_store.model,
                       model_store=str(esm_store.path))
    res = run_snakemake(tmp_path, "--dry-run", "--cores", "2", "--configfile", str(cfg), snakefile=PROTEIN)
    assert res.returncode == 0, res.stderr
    counts = job_counts(res.stdout)
    assert counts == {"all": 1, "embed_proteins": 1, "saturate_protein": 3, "plot_mutagenesis": 3, "report_proteins": 1}
    # file-name-safe keys of the FASTA ids
    assert "results/plm/mutagenesis/sp_P01_ALPHA.parquet" in res.stdout
    assert "results/plm/mutagenesis/gamma.png" in res.stdout
    assert not (tmp_path / "results").exists()


def test_switches_and_the_repo_config(proteins, esm_store, tmp_path):
    """The repository's workflows/protein/config.yaml, overridden on the command line as a user would."""
    res = run_snakemake(tmp_path, "--dry-run", "--cores", "2", "--configfile",
                        str(REPO / "workflows" / "protein" / "config.yaml"), "--config", f"proteins={proteins}",
                        f"model_store={esm_store.path}", f"model={esm_store.model}", "embeddings=false",
                        snakefile=PROTEIN)
    assert res.returncode == 0, res.stderr
    assert job_counts(res.stdout) == {"all": 1, "saturate_protein": 3, "plot_mutagenesis": 3, "report_proteins": 1}


def test_lint_clean(proteins, esm_store, tmp_path):
    cfg = write_config(tmp_path / "config.yaml", proteins=str(proteins), model=esm_store.model,
                       model_store=str(esm_store.path))
    res = run_snakemake(tmp_path, "--lint", "--configfile", str(cfg), snakefile=PROTEIN)
    assert res.returncode == 0, res.stdout + res.stderr
    assert "Lints for" not in res.stdout + res.stderr


# More FASTA and schema cases, without Snakemake: tests/unit/protein/test_proteins.py and tests/unit/pipelines/test_inputs.py.
BAD = {
    "residue letters": (">p1\nMKTAYJ1K\n", {}, "proteins.fa line 1: p1: letters that are not residues: 1J"),
    "config typo": (">p1\nMKT\n", {"mutagensis": {"enabled": False}}, "unknown key 'mutagensis'"),
    "model not staged": (">p1\nMKT\n", {"model": "esm2_t33_650M"},
                         "model: "),
    "no model store": (">p1\nMKT\n", {"model_store": None}, "model_store: "),
}


@pytest.mark.parametrize("case", BAD, ids=str)
def test_bad_input_stops_before_any_job(case, esm_store, tmp_path, monkeypatch):
    text, extra, message = BAD[case]
    (tmp_path / "proteins.fa").write_text(text)
    monkeypatch.delenv("AISCI_MODELS", raising=False)
    values = {"proteins": str(tmp_path / "proteins.fa"), "model": esm_store.model, "model_store": str(esm_store.path),
              **extra}
    if case == "model not staged":  # the message gives the exact command that stages it
        message += (f"model 'esm2_t33_650M' is not in the model store {esm_store.path} (it holds: esm2-test); "
                    f"stage it with `aisci models pull facebook/esm2_t33_650M_UR50D --model-store {esm_store.path} "
                    "--name esm2_t33_650M`")
    cfg = write_config(tmp_path / "config.yaml", **values)
    workdir = tmp_path / "run"
    workdir.mkdir()
    res = run_snakemake(workdir, "--cores", "1", "--configfile", str(cfg), snakefile=PROTEIN)
    assert res.returncode != 0
    assert message in res.stderr, res.stderr
    assert "Traceback" not in res.stderr
    assert not (workdir / "results").exists()
