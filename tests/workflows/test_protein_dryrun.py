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
    assert counts == {"all": 1, "embed_proteins": 1, "saturate_protein": 3, "plot_mutagenesis": 3}
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
    assert job_counts(res.stdout) == {"all": 1, "saturate_protein": 3, "plot_mutagenesis": 3}


def test_lint_clean(proteins, esm_store, tmp_path):
    cfg = write_config(tmp_path / "config.yaml", proteins=str(proteins), model=esm_store.model,
                       model_store=str(esm_store.path))
    res = run_snakemake(tmp_path, "--lint", "--configfile", str(cfg), snakefile=PROTEIN)
    assert res.returncode == 0, res.stdout + res.stderr
    assert "Lints for" not in res.stdout + res.stderr


BAD = {
    "residue letters": (">p1\nMKTAYJ1K\n", {}, "proteins.fa line 1: p1: letters that are not residues: 1J"),
    "internal stop": (">p1\nMKT\n>p2\nMK*TA\n", {}, "proteins.fa line 3: p2: an internal stop '*'"),
    "duplicate id": (">p1\nMKT\n>p1 again\nMKA\n", {}, "proteins.fa line 3: p1: duplicate id (first at line 1)"),
    "clashing file names": (">a|b\nMKT\n>a_b\nMKA\n", {}, "line 3: a_b: its file name 'a_b' clashes with 'a|b'"),
    "empty record": (">p1\n>p2\nMKA\n", {}, "proteins.fa line 1: p1: empty sequence"),
    "config typo": (">p1\nMKT\n", {"mutagensis": {"enabled": False}}, "unknown key 'mutagensis'"),
    "strategy not allowed": (">p1\nMKT\n", {"mutagenesis": {"strategy": "pseudo-ppl"}},
                             "mutagenesis.strategy: 'pseudo-ppl' is not one of wt-marginals, masked-marginals"),
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
                    f"stage it with `aisci models pull facebook/esm2_t33_650M_UR50D --store {esm_store.path} "
                    "--name esm2_t33_650M`")
    cfg = write_config(tmp_path / "config.yaml", **values)
    workdir = tmp_path / "run"
    workdir.mkdir()
    res = run_snakemake(workdir, "--cores", "1", "--configfile", str(cfg), snakefile=PROTEIN)
    assert res.returncode != 0
    assert message in res.stderr, res.stderr
    assert "Traceback" not in res.stderr
    assert not (workdir / "results").exists()
