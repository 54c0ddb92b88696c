"""The catalog end to end, through the `aisci` command line: the three pipelines lint clean (their test profiles
run) and are published to a test catalog with a site; two versions of one pipeline are installed side by side and
each one's test profile runs from its installed copy; a tampered release is refused; a project pinned to a release
records it; the pages load in a real browser."""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path
from urllib.parse import unquote, urlsplit

import pyarrow.parquet as pq
import pytest
import yaml

from tests.browser import rendered, screenshot
from tests.conftest import REPO, write_config
from tests.unit.catalog.conftest import copy_pipeline

pytestmark = pytest.mark.slow


def aisci(*args: str, cwd: Path | None = None, check: bool = True) -> subprocess.CompletedProcess:
    env = dict(os.environ)
    env["PATH"] = f"{Path(sys.executable).parent}{os.pathsep}{env['PATH']}"
    res = subprocess.run([sys.executable, "-m", "aisci.cli", *args], capture_output=True, text=True, cwd=cwd, env=env,
                         timeout=1800)
    if check:
        assert res.returncode == 0, f"aisci {' '.join(args)}:\n{res.stdout[-3000:]}\n{res.stderr[-3000:]}"
    return res


@pytest.fixture(scope="module")
def catalog(tmp_path_factory, esm_store):
    """A test catalog holding the three packaged pipelines (lint with their test profiles run, then published) and
    protein 1.1.0 (the test profile scores masked marginals), with a site of two centres registered."""
    root = tmp_path_factory.mktemp("catalog")
    site = root / "site.yaml"
    site.write_text(yaml.safe_dump({
        "name": "net", "home": "home",
        "centres": {"home": {"slurm_cluster": "home", "partitions": {"cpu": {"nodes": 8, "cores": 32, "mem_gb": 128}}},
                    "partner": {"slurm_cluster": "partner", "model_store": str(esm_store.path),
                                "partitions": {"gpu": {"nodes": 2, "cores": 16, "mem_gb": 256, "gpus": 4}}}},
        "transfers": [{"from": "home", "to": "partner"}]}))
    catalog = root / "catalog"
    for name in ("germline", "protein", "reanalysis"):
        out = aisci("catalog", "publish", name, "--catalog", str(catalog), "--site", str(site)).stdout
        assert f"{name}@1.0.0 published" in out
    v11 = copy_pipeline("protein", root / "v11")
    (v11 / "test.yaml").write_text((v11 / "test.yaml").read_text().replace("strategy: wt-marginals",
                                                                            "strategy: masked-marginals"))
    meta = v11 / "pipeline.yaml"
    meta.write_text(meta.read_text().replace("version: 1.0.0", "version: 1.1.0").replace(
        "changelog:\n", "changelog:\n  1.1.0:\n    - The test profile scores masked marginals.\n"))
    assert "protein@1.1.0 published" in aisci("catalog", "publish", str(v11), "--catalog", str(catalog)).stdout
    return catalog, site


def test_all_three_lint_clean_and_are_listed(catalog):
    catalog, _ = catalog
    lines = aisci("catalog", "list", "--catalog", str(catalog)).stdout.splitlines()
    refs = [line.split("\t")[0] for line in lines if not line.startswith("#")]
    assert refs == ["germline@1.0.0", "protein@1.1.0", "protein@1.0.0", "reanalysis@1.0.0"]
    index = json.loads((catalog / "index.json").read_text())
    for entry in index["pipelines"].values():
        for rel in entry["versions"].values():
            record = json.loads((catalog / "releases" / rel["digest"] / "release.json").read_text())
            statuses = {c["id"]: c["status"] for c in record["lint"]["checks"]}
            assert len(statuses) >= 20 and set(statuses.values()) == {"pass"}
            assert statuses["test_profile"] == statuses["snakemake_lint"] == "pass"


def test_republishing_changed_content_under_a_published_version_is_refused(catalog, tmp_path):
    catalog, _ = catalog
    folder = copy_pipeline("protein", tmp_path)
    (folder / "config.yaml").write_text((folder / "config.yaml").read_text() + "# changed\n")
    res = aisci("catalog", "publish", str(folder), "--catalog", str(catalog), check=False)
    assert res.returncode == 1 and "protein@1.0.0 is already published" in res.stderr


def test_two_versions_installed_side_by_side_each_run_their_test_profile(catalog, tmp_path):
    catalog, _ = catalog
    into = tmp_path / "pipelines"
    scores = {}
    for version in ("1.0.0", "1.1.0"):
        out = aisci("catalog", "install", f"protein@{version}", "--catalog", str(catalog), "--into", str(into)).stdout
        assert f"protein@{version} installed: {into / 'protein' / version}" in out
    for version in ("1.0.0", "1.1.0"):
        run = tmp_path / f"run-{version}"
        out = aisci("catalog", "test", f"protein@{version}", "--catalog", str(catalog), "--into", str(into),
                    "--dir", str(run)).stdout
        assert f"protein@{version}: test profile passed" in out
        log = (run / "catalog-test.log").read_text()
        assert f"--snakefile {into / 'protein' / version / 'workflows/protein/Snakefile'}" in log
        maps = sorted((run / "results/plm/mutagenesis").glob("*.parquet"))
        assert len(maps) == 3
        scores[version] = pq.read_table(maps[0]).column("score").to_pylist()
    # the same proteins and model, each version's own strategy: the maps differ
    assert len(scores["1.0.0"]) == len(scores["1.1.0"]) and scores["1.0.0"] != scores["1.1.0"]


def test_a_tampered_release_is_refused(catalog, tmp_path):
    catalog, _ = catalog
    copy = tmp_path / "catalog"
    shutil.copytree(catalog, copy)
    digest = json.loads((copy / "index.json").read_text())["pipelines"]["reanalysis"]["versions"]["1.0.0"]["digest"]
    target = copy / "releases" / digest / "files" / "rules" / "reanalysis.smk"
    target.chmod(0o644)
    target.write_text(target.read_text().replace("aisci cohort", "aisci  cohort", 1))
    res = aisci("catalog", "install", "reanalysis", "--catalog", str(copy), "--into", str(tmp_path / "p"), check=False)
    assert res.returncode == 1
    assert "rules/reanalysis.smk does not match its SHA-256 in release.json (tampered with or corrupt)" in res.stderr
    assert not (tmp_path / "p" / "reanalysis" / "1.0.0").exists()


def test_show_says_where_it_can_run(catalog):
    catalog, site = catalog
    out = aisci("catalog", "show", "protein@1.0.0", "--catalog", str(catalog), "--site", str(site)).stdout
    assert "net/home: cannot run it yet" in out and "missing: a GPU partition" in out
    assert "net/partner: can run it" in out and "+ GPU partition gpu" in out


def test_a_project_pinned_to_a_release_records_it(catalog, tmp_path, sim_data):
    catalog, _ = catalog
    project = tmp_path / "project"
    out = aisci("init", str(project), "--pipeline", "germline@1.0.0", "--catalog", str(catalog), "--genome", "custom",
                "--reference", str(sim_data.reference), "--samples", str(sim_data.sample_sheet),
                "--into", str(tmp_path / "pipelines")).stdout
    assert "germline@1.0.0: installed" in out
    write_config(project / "extra.yaml", protein={"enabled": False}, splice={"enabled": False})
    env = dict(os.environ)
    env["PATH"] = f"{Path(sys.executable).parent}{os.pathsep}{env['PATH']}"
    res = subprocess.run([sys.executable, "-m", "snakemake", "results/pipeline_info", "--cores", "1",
                          "--configfile", "config.yaml", "extra.yaml"], cwd=project, capture_output=True, text=True, env=env, timeout=600)
    assert res.returncode == 0, res.stderr[-3000:]
    recorded = json.loads((project / "results/pipeline_info/release.json").read_text())
    index = json.loads((catalog / "index.json").read_text())
    assert recorded["name"] == "germline" and recorded["version"] == "1.0.0"
    assert recorded["digest"] == index["pipelines"]["germline"]["versions"]["1.0.0"]["digest"]
    assert recorded["installed_from"] == str(catalog)


def test_the_pages_load_in_a_real_browser(catalog, tmp_path):
    catalog, _ = catalog
    for page in (catalog / "index.html", catalog / "pipelines/germline/1.0.0.html", catalog / "pipelines/protein/1.1.0.html"):
        dom, links, console = rendered(page, tmp_path)
        assert console == [], console
        local = [Path(unquote(urlsplit(u).path)) for u in links if u.startswith("file:")]
        assert local and all(p.is_file() for p in local), local
    version = (catalog / "pipelines/protein/1.1.0.html").read_text()
    assert "1.0.0.html" in version and "masked marginals" in version  # the version list and the changelog
    assert re.search(r"<code>mutagenesis\.strategy</code>", version)  # the parameters table, from the schema
    png = screenshot(catalog / "pipelines/germline/1.0.0.html", tmp_path / "germline.png")
    assert png.stat().st_size > 10_000
