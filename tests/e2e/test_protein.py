"""End-to-end run of workflows/protein with a small local ESM model: embeddings, mutagenesis maps, heatmaps."""

from __future__ import annotations

import numpy as np
import pyarrow.parquet as pq
import pytest

from tests.conftest import REPO, run_snakemake, write_config

pytestmark = pytest.mark.slow

PROTEINS = {
    "sp|P01|ALPHA": "MKTAYIAKQRQISFVKSHFSRQLEERLGLIEVQAPILSRVGDGTQDNLSGAEKAVQVKVKALPDAQ",
    "beta": "MSDNGPQNQRNAPRITFGGPSDSTGSNQNGERSGARSKQRRPQGLPNNTASWFTALTQHGK",
}


@pytest.fixture(scope="module")
def protein_run(esm_store, tmp_path_factory):
    workdir = tmp_path_factory.mktemp("protein_run")
    fasta = workdir / "proteins.fa"
    fasta.write_text("".join(f">{k} description\n{v}*\n" for k, v in PROTEINS.items()))
    cfg = write_config(workdir / "config.yaml", proteins=str(fasta), model=esm_store.model,
                       model_store=str(esm_store.path), mutagenesis={"strategy": "wt-marginals"})
    res = run_snakemake(workdir, "--cores", "2", "--configfile", str(cfg),
                        snakefile=REPO / "workflows" / "protein" / "Snakefile")
    assert res.returncode == 0, res.stderr[-5000:]
    return workdir


def _model(esm_store):
    from aisci.protein.esm import load_esm

    return load_esm(esm_store.path / esm_store.model, device="cpu", name=esm_store.model)


def test_mutagenesis_maps(protein_run, esm_store):
    from aisci.protein.plm import AMINO_ACIDS, saturation

    bundle = _model(esm_store)
    for key, name in (("sp_P01_ALPHA", "sp|P01|ALPHA"), ("beta", "beta")):
        seq = PROTEINS[name]
        table = pq.read_table(protein_run / "results" / "plm" / "mutagenesis" / f"{key}.parquet").to_pydict()
        assert list(table) == ["protein", "position", "wt", "mt", "score", "model", "strategy"]
        assert len(table["position"]) == 19 * len(seq)  # all 19 substitutions at every position
        assert set(table["protein"]) == {name} and set(table["model"]) == {esm_store.model}
        assert all(seq[p - 1] == w != m for p, w, m in zip(table["position"], table["wt"], table["mt"]))
        # the job's scores are the library's, recomputed here in this process
        expect = saturation(bundle, seq, "wt-marginals")
        got = [expect[p - 1, AMINO_ACIDS.index(m)] for p, m in zip(table["position"], table["mt"])]
        assert np.allclose(table["score"], got, atol=1e-5)
        png = (protein_run / "results" / "plm" / "mutagenesis" / f"{key}.png").read_bytes()
        assert png[:8] == b"\x89PNG\r\n\x1a\n" and len(png) > 5000
        log = (protein_run / "logs" / "saturate_protein" / f"{key}.log").read_text()
        assert "device: cpu" in log and "variants/s" in log


def test_embeddings(protein_run, esm_store):
    from aisci.protein.plm import embed

    table = pq.read_table(protein_run / "results" / "plm" / "embeddings.parquet")
    assert table.column_names == ["protein", "length", "model", "embedding"]
    assert table.column("protein").to_pylist() == list(PROTEINS)
    assert table.column("length").to_pylist() == [len(s) for s in PROTEINS.values()]
    vectors = np.array(table.column("embedding").to_pylist())
    assert vectors.shape == (2, 64)
    assert np.allclose(vectors, embed(_model(esm_store), list(PROTEINS.values())), atol=1e-5)


def test_second_run_has_nothing_to_do(protein_run):
    res = run_snakemake(protein_run, "--dry-run", "--cores", "1", "--configfile", str(protein_run / "config.yaml"),
                        snakefile=REPO / "workflows" / "protein" / "Snakefile")
    assert res.returncode == 0 and "Nothing to be done" in res.stdout + res.stderr


def test_report_holds_the_runs_maps_and_model(protein_run, esm_store, tmp_path, capsys):
    """results/plm/report.html: the model's manifest entry, each map's numbers and heatmap, the embeddings."""
    import base64
    import re

    from aisci.cli import main
    from aisci.protein.store import list_models

    html = (protein_run / "results" / "plm" / "report.html").read_text()
    assert re.findall(r'<section id="(\w+)">', html) == ["run", "mutagenesis", "embeddings"]
    entry = next(e for e in list_models(esm_store.path) if e.name == esm_store.model)
    assert all(f["sha256"] in html for f in entry.files.values())
    for key, name in (("sp_P01_ALPHA", "sp|P01|ALPHA"), ("beta", "beta")):
        scores = pq.read_table(protein_run / "results" / "plm" / "mutagenesis" / f"{key}.parquet").column("score")
        row = re.search(rf"<tr><td>{re.escape(name)}</td>(.*?)</tr>", html).group(1)
        values = re.findall(r'data-v="([^"]*)"', row)
        assert int(values[0]) == len(PROTEINS[name]) and int(values[1]) == len(scores)
        assert float(values[2]) == pytest.approx(float(np.mean(scores.to_numpy())))
        assert float(values[3]) == pytest.approx(float(np.min(scores.to_numpy())))
        png = (protein_run / "results" / "plm" / "mutagenesis" / f"{key}.png").read_bytes()
        assert base64.b64encode(png).decode() in html  # the pipeline's own heatmap, embedded
    # a heatmap without its table is named, and no page is written
    out = tmp_path / "report.html"
    stray = protein_run / "results" / "plm" / "mutagenesis" / "beta.png"
    assert main(["report", "protein", "--heatmaps", str(stray), "--slurm-run", "none", "--out", str(out)]) == 1
    assert "beta.png: no mutagenesis table of beta given" in capsys.readouterr().err and not out.exists()
