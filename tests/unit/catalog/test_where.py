"""aisci.catalog.where: which centres of a site meet a pipeline's needs — GPU partitions, staged models with matching
checksums, reference data — and what is missing at the others."""

from __future__ import annotations

import json

import yaml

from aisci.catalog.metadata import read_pipeline
from aisci.catalog.where import site_fits
from aisci.slurm.site import load_site
from tests.conftest import REPO


def model_store(path, name, files):
    path.mkdir(parents=True)
    (path / "manifest.json").write_text(json.dumps({"format": 1, "models": {name: {"files": files}}}))
    return path


def write_site(tmp_path, store_home, store_partner, reference):
    site = {
        "name": "net", "home": "home",
        "centres": {
            "home": {"slurm_cluster": "home", "model_store": str(store_home), "references": {"grch38": str(reference)},
                     "partitions": {"cpu": {"nodes": 4, "cores": 32, "mem_gb": 128}}},
            "partner": {"slurm_cluster": "partner", "model_store": str(store_partner),
                        "partitions": {"cpu": {"nodes": 4, "cores": 32, "mem_gb": 128},
                                       "gpu": {"nodes": 2, "cores": 16, "mem_gb": 256, "gpus": 4}}},
        },
        "transfers": [{"from": "home", "to": "partner", "gbit_s": 10}],
    }
    path = tmp_path / "site.yaml"
    path.write_text(yaml.safe_dump(site))
    return load_site(path)


def test_each_centre_says_what_it_has_and_lacks(tmp_path):
    meta = read_pipeline(REPO / "workflows" / "germline").meta
    meta["models"].append({"name": "esm2_t33_650M", "kind": "store", "when": "protein.enabled", "source": "", "licence": "",
                           "files": {"model.safetensors": {"sha256": "a" * 64, "size": 1}}})
    reference = tmp_path / "GRCh38.fa"
    reference.write_text(">chr1\nACGT\n")
    home = model_store(tmp_path / "home-models", "esm2_t33_650M", {"model.safetensors": {"sha256": "b" * 64, "size": 1}})
    partner = model_store(tmp_path / "partner-models", "esm2_t33_650M", {"model.safetensors": {"sha256": "a" * 64, "size": 1}})
    fits = {f["centre"]: f for f in site_fits(meta, write_site(tmp_path, home, partner, reference))}
    assert list(fits) == ["home", "partner"]
    home_fit, partner_fit = fits["home"], fits["partner"]
    assert not home_fit["ok"]
    assert any(m.startswith("a GPU partition") for m in home_fit["missing"])
    assert any("model.safetensors" in m and "differs" in m for m in home_fit["missing"])
    assert f"reference grch38 at {reference} (when genome: grch38)" in home_fit["met"]
    # the partner has the GPUs and the right weights, but no GRCh38
    assert "GPU partition gpu" in partner_fit["met"]
    assert any(m.startswith("model esm2_t33_650M staged in") for m in partner_fit["met"])
    assert partner_fit["missing"] == ["reference grch38: not listed under the centre's references (when genome: grch38)"]
    # SpliceAI's weights come with the engine; the test profile's model is made by the test commands
    assert "model spliceai: ships with the engine's Python packages" in partner_fit["met"]
    assert not any("esm2-demo" in line for line in partner_fit["met"] + partner_fit["missing"])


def test_a_site_without_a_model_store_lacks_the_models(tmp_path):
    meta = read_pipeline(REPO / "workflows" / "protein").meta
    meta["models"][0]["when"] = "always"
    path = tmp_path / "site.yaml"
    path.write_text(yaml.safe_dump({"centres": {"solo": {"partitions": {"gpu": {"nodes": 1, "cores": 8, "mem_gb": 64,
                                                                                 "gpus": 1}}}}}))
    [fit] = site_fits(meta, load_site(path))
    assert not fit["ok"]
    assert fit["missing"] == ["model esm2-demo: the centre names no model_store in the site description"]
