"""aisci.catalog.release: content-addressed releases published to a folder, resolved over several catalogs, installed
with every checksum verified; refusals of changed versions, tampered files, corrupt indexes and escaping names."""

from __future__ import annotations

import functools
import http.server
import json
import multiprocessing
import threading

import pytest

from aisci.catalog.metadata import read_pipeline
from aisci.catalog.release import (
    Catalog,
    canonical_digest,
    content,
    install,
    installed_release,
    publish,
    read_release,
    resolve,
    verify_installed,
)
from aisci.errors import InputError
from tests.unit.catalog.conftest import copy_pipeline, set_version

LINT = {"checks": [{"id": "meta_name", "title": "t", "status": "pass", "findings": 0}], "passed": 29, "failed": 0}


def test_publish_writes_an_immutable_content_addressed_release(protein_copy, tmp_path):
    catalog = tmp_path / "catalog"
    pipeline = read_pipeline(protein_copy)
    done = publish(pipeline, catalog, LINT)
    digest, paths, files = content(pipeline)
    assert done.new and done.digest == digest == canonical_digest(files)
    record = json.loads((catalog / "releases" / digest / "release.json").read_text())
    assert record["name"] == "protein" and record["version"] == "1.0.0" and record["files"] == files
    assert record["config_schema"]["title"] and record["samples_schema"] is None
    for rel, src in paths.items():
        copy = catalog / "releases" / digest / "files" / rel
        assert copy.read_bytes() == src.read_bytes() and not copy.stat().st_mode & 0o222
    index = json.loads((catalog / "index.json").read_text())
    assert index["pipelines"]["protein"]["versions"]["1.0.0"]["digest"] == digest
    # the same content again: nothing changes
    assert not publish(pipeline, catalog, LINT).new
    with pytest.raises(InputError, match="its files changed while lint ran"):
        publish(pipeline, catalog, LINT, digest="0" * 64)


def test_a_published_version_never_changes(protein_copy, tmp_path):
    catalog = tmp_path / "catalog"
    publish(read_pipeline(protein_copy), catalog, LINT)
    smk = protein_copy.parent.parent / "rules" / "plm.smk"
    smk.write_text(smk.read_text() + "\n# a change\n")
    with pytest.raises(InputError, match=r"protein@1\.0\.0 is already published .* with other content.*raise `version`"):
        publish(read_pipeline(protein_copy), catalog, LINT)
    set_version(protein_copy, "1.1.0", "a comment in plm.smk")
    assert publish(read_pipeline(protein_copy), catalog, LINT).new
    assert resolve("protein", [Catalog(str(catalog))]).version == "1.1.0"
    assert resolve("protein@1.0.0", [Catalog(str(catalog))]).version == "1.0.0"


def test_two_versions_install_side_by_side_and_verify(protein_copy, tmp_path):
    catalog, root = tmp_path / "catalog", tmp_path / "installed"
    publish(read_pipeline(protein_copy), catalog, LINT)
    set_version(protein_copy, "1.1.0", "second")
    publish(read_pipeline(protein_copy), catalog, LINT)
    cats = [Catalog(str(catalog))]
    one, new1 = install(resolve("protein@1.0.0", cats), root)
    two, new2 = install(resolve("protein@1.1.0", cats), root)
    assert new1 and new2 and one == root / "protein" / "1.0.0" and two == root / "protein" / "1.1.0"
    assert "version: 1.0.0" in (one / "workflows/protein/pipeline.yaml").read_text()
    assert "version: 1.1.0" in (two / "workflows/protein/pipeline.yaml").read_text()
    assert verify_installed(one) == [] and verify_installed(two) == []
    assert installed_release(one / "workflows/protein/Snakefile")["version"] == "1.0.0"
    assert installed_release(protein_copy / "Snakefile") is None  # a checkout is no release
    assert install(resolve("protein@1.0.0", cats), root) == (one, False)  # again: verified, not rewritten
    changed = one / "rules" / "plm.smk"
    changed.chmod(0o644)
    changed.write_text(changed.read_text() + "# edited\n")
    assert verify_installed(one) == [f"{changed}: changed since install (SHA-256 differs from the release's)"]


def test_a_tampered_release_is_refused_naming_the_file(protein_copy, tmp_path):
    catalog = tmp_path / "catalog"
    done = publish(read_pipeline(protein_copy), catalog, LINT)
    target = catalog / "releases" / done.digest / "files" / "rules" / "plm.smk"
    target.chmod(0o644)
    target.write_text(target.read_text().replace("aisci plm heatmap", "rm -rf ~; aisci plm heatmap"))
    with pytest.raises(InputError, match=r"protein@1\.0\.0: rules/plm\.smk does not match its SHA-256.*install refused"):
        install(resolve("protein", [Catalog(str(catalog))]), tmp_path / "installed")
    assert not (tmp_path / "installed" / "protein" / "1.0.0").exists()  # nothing half-installed
    assert [p.name for p in (tmp_path / "installed" / "protein").iterdir()] == []
    # a release.json rewritten to match the tampered file no longer matches its content address
    record_path = catalog / "releases" / done.digest / "release.json"
    record = json.loads(record_path.read_text())
    record["files"]["rules/plm.smk"]["size"] += 1
    record_path.chmod(0o644)
    record_path.write_text(json.dumps(record))
    with pytest.raises(InputError, match="does not match its content address"):
        read_release(resolve("protein", [Catalog(str(catalog))]))


@pytest.mark.parametrize("text", ['{"format": 1, "pipelines": {"prot', "", '{"format": 1, "pipelines": {"x": {"versions": '
                                  '{"1.0.0": {"digest": "../../etc"}}}}}', '{"format": 1, "pipelines": {"../x": '
                                  '{"versions": {"1.0.0": {"digest": "' + "a" * 64 + '"}}}}}'])
def test_a_corrupt_or_hostile_index_is_refused(tmp_path, text):
    (tmp_path / "index.json").write_text(text)
    with pytest.raises(InputError, match=r"corrupt|no valid digest|must match"):
        resolve("protein", [Catalog(str(tmp_path))])


def test_several_catalogs_are_searched_in_order(protein_copy, tmp_path):
    site, partner = tmp_path / "site", tmp_path / "partner"
    publish(read_pipeline(protein_copy), partner, LINT)
    found = resolve("protein@1.0.0", [Catalog(str(partner))])
    assert found.catalog.location == str(partner)
    (site).mkdir()
    (site / "index.json").write_text('{"format": 1, "pipelines": {}}')
    with pytest.raises(InputError, match=r"protein@2\.0\.0: not in the catalogs .*versions there: 1\.0\.0"):
        resolve("protein@2.0.0", [Catalog(str(site)), Catalog(str(partner))])
    assert resolve("protein", [Catalog(str(site)), Catalog(str(partner))]).catalog.location == str(partner)


def _publish_one(args):
    name, root, catalog = args
    from aisci.catalog.metadata import read_pipeline as read
    from aisci.catalog.release import publish as pub

    folder = copy_pipeline(name, root)
    return pub(read(folder), catalog, LINT).ref


def test_concurrent_publishes_of_different_pipelines_both_land(tmp_path):
    catalog = tmp_path / "catalog"
    jobs = [("protein", tmp_path / "a", catalog), ("reanalysis", tmp_path / "b", catalog),
            ("germline", tmp_path / "c", catalog)]
    with multiprocessing.get_context("spawn").Pool(3) as pool:
        refs = pool.map(_publish_one, jobs)
    assert sorted(refs) == ["germline@1.0.0", "protein@1.0.0", "reanalysis@1.0.0"]
    index = json.loads((catalog / "index.json").read_text())
    assert sorted(index["pipelines"]) == ["germline", "protein", "reanalysis"]
    assert not list(catalog.glob("releases/.*.tmp")) and not list(catalog.glob(".index.json.*"))


def test_install_over_http(protein_copy, tmp_path):
    catalog = tmp_path / "catalog"
    publish(read_pipeline(protein_copy), catalog, LINT)
    handler = functools.partial(http.server.SimpleHTTPRequestHandler, directory=str(catalog))
    handler.log_message = lambda *a: None
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        url = f"http://127.0.0.1:{server.server_address[1]}/"
        folder, new = install(resolve("protein@1.0.0", [Catalog(url)]), tmp_path / "installed")
        assert new and verify_installed(folder) == []
        assert json.loads((folder / "release.json").read_text())["installed_from"] == url
    finally:
        server.shutdown()


def test_show_names_a_model_no_centre_has(protein_copy, tmp_path, capsys):
    from aisci.cli import main

    meta = protein_copy / "pipeline.yaml"
    meta.write_text(meta.read_text().replace("    when: test\n", "    when: always\n"))
    publish(read_pipeline(protein_copy), tmp_path / "catalog", LINT)
    site = tmp_path / "site.yaml"
    site.write_text("centres:\n  solo:\n    partitions:\n      gpu: {nodes: 1, cores: 8, mem_gb: 64, gpus: 1}\n")
    assert main(["catalog", "show", "protein", "--catalog", str(tmp_path / "catalog"), "--site", str(site)]) == 1
    out = capsys.readouterr().out
    assert "site/solo: cannot run it yet" in out and "+ GPU partition gpu" in out
    assert "model esm2-demo (when always) is staged at no centre" in out
    assert f"protein@1.0.0: no centre of {site} can run it yet" in out


def test_lint_cli_writes_json_and_fails_when_the_runs_are_skipped(tmp_path, capsys):
    from aisci.cli import main

    assert main(["catalog", "lint", "protein", "--no-test-run", "--json", str(tmp_path / "lint.json")]) == 1
    result = json.loads((tmp_path / "lint.json").read_text())
    assert result["pipeline"] == "protein@1.0.0" and result["failed"] == 2 and result["findings"] == []
    assert {c["id"] for c in result["checks"] if c["status"] == "skip"} == {"snakemake_lint", "test_profile"}
    assert "protein@1.0.0: 27 checks passed, 2 failed or skipped" in capsys.readouterr().out


def test_release_json_metadata_must_be_its_pipeline_yaml(protein_copy, tmp_path):
    catalog = tmp_path / "catalog"
    done = publish(read_pipeline(protein_copy), catalog, LINT)
    path = catalog / "releases" / done.digest / "release.json"
    record = json.loads(path.read_text())
    path.chmod(0o644)
    for field, value in (("engine", ">=0"), ("summary", "Something else entirely, not what was published.")):
        changed = json.loads(json.dumps(record))
        changed["metadata"][field] = value
        path.write_text(json.dumps(changed))
        with pytest.raises(InputError, match=r"metadata in release\.json is not that of its workflows/protein/pipeline\.yaml"):
            install(resolve("protein", [Catalog(str(catalog))]), tmp_path / "p")
    changed = dict(record, name="evil", version="9.9.9")
    path.write_text(json.dumps(changed))
    with pytest.raises(InputError, match=r"is evil@9\.9\.9, the index says protein@1\.0\.0"):
        read_release(resolve("protein", [Catalog(str(catalog))]))


def _install_one(args):
    from aisci.catalog.release import Catalog as C
    from aisci.catalog.release import install as inst
    from aisci.catalog.release import resolve as res

    catalog, root = args
    return inst(res("protein@1.0.0", [C(catalog)]), root)[1]


def test_concurrent_installs_of_one_release_and_leftovers(protein_copy, tmp_path):
    catalog, root = tmp_path / "catalog", tmp_path / "installed"
    publish(read_pipeline(protein_copy), catalog, LINT)
    with multiprocessing.get_context("spawn").Pool(3) as pool:
        news = pool.map(_install_one, [(str(catalog), root)] * 3)
    assert news.count(True) == 1  # every one succeeds; one installed it, the others found it there and verified it
    assert verify_installed(root / "protein" / "1.0.0") == [] and len(list((root / "protein").iterdir())) == 1
    extra = root / "protein" / "1.0.0" / "rules" / "extra.smk"
    extra.parent.chmod(0o755)
    extra.write_text("rule x:\n    shell: 'x'\n")
    assert verify_installed(root / "protein" / "1.0.0") == [f"{extra}: added since install (not a file of the release)"]
    (tmp_path / "other" / "protein" / "1.0.0").mkdir(parents=True)  # a folder that is no release
    with pytest.raises(InputError, match="exists but holds no readable release.json"):
        install(resolve("protein@1.0.0", [Catalog(str(catalog))]), tmp_path / "other")


def test_catalogs_from_the_environment_take_urls(monkeypatch):
    from aisci.catalog.release import catalogs_from

    monkeypatch.setenv("AISCI_CATALOGS", "/shared/catalog  https://partner.example.org/catalog")
    assert [c.location for c in catalogs_from(None)] == ["/shared/catalog", "https://partner.example.org/catalog"]
    monkeypatch.delenv("AISCI_CATALOGS")
    with pytest.raises(InputError, match="no catalog"):
        catalogs_from(None)


def test_newest_release_wins_over_a_newer_prerelease_and_an_exact_version_reads_no_further(protein_copy, tmp_path):
    catalog = tmp_path / "catalog"
    publish(read_pipeline(protein_copy), catalog, LINT)
    set_version(protein_copy, "2.0.0-rc.1", "release candidate")
    publish(read_pipeline(protein_copy), catalog, LINT)
    broken = tmp_path / "broken"
    broken.mkdir()
    (broken / "index.json").write_text("{not json")
    assert resolve("protein@1.0.0", [Catalog(str(catalog)), Catalog(str(broken))]).version == "1.0.0"
    assert resolve("protein", [Catalog(str(catalog))]).version == "1.0.0"
    assert resolve("protein@2.0.0-rc.1", [Catalog(str(catalog))]).version == "2.0.0-rc.1"


def test_a_symlinked_file_keeps_its_own_name(protein_copy, tmp_path):
    from aisci.catalog.metadata import pipeline_files

    test = protein_copy / "test.yaml"
    shared = protein_copy.parent.parent / "shared-test.yaml"
    test.rename(shared)
    test.symlink_to(shared)
    files = pipeline_files(read_pipeline(protein_copy))
    assert files["workflows/protein/test.yaml"] == shared.resolve()


def test_an_installed_release_refuses_an_engine_outside_its_range(tmp_path):
    from aisci.pipelines.glue import _check_release_engine

    folder = tmp_path / "x" / "1.0.0"
    (folder / "workflows" / "x").mkdir(parents=True)
    (folder / "workflows" / "x" / "Snakefile").write_text("")
    (folder / "release.json").write_text(json.dumps({"name": "x", "version": "1.0.0", "metadata": {"engine": ">=9"}}))
    with pytest.raises(InputError, match=r"x@1\.0\.0 \(installed at .*\) needs aisci >=9; this is aisci"):
        _check_release_engine(folder / "workflows" / "x" / "Snakefile")


def test_stamps_are_per_engine_code(protein_copy, monkeypatch):
    from aisci.catalog import testrun

    pipeline = read_pipeline(protein_copy)
    run = testrun.TestRun(protein_copy, 1.0, {"x": 1})
    testrun.write_stamp("f" * 64, pipeline, run)
    assert testrun.read_stamp("f" * 64)["pipeline"] == "protein@1.0.0"
    monkeypatch.setattr(testrun, "engine_fingerprint", lambda: "0" * 64)  # the engine's code changed
    assert testrun.read_stamp("f" * 64) is None


def test_sites_need_a_name_and_never_replace_another(tmp_path):
    from aisci.catalog.cli import register_sites
    from aisci.slurm.site import load_site

    one, two = tmp_path / "one.yaml", tmp_path / "two.yaml"
    one.write_text("name: net\ncentres:\n  a:\n    partitions:\n      cpu: {nodes: 1, cores: 4, mem_gb: 8}\n")
    two.write_text("name: net\ncentres:\n  b:\n    partitions:\n      cpu: {nodes: 1, cores: 4, mem_gb: 8}\n")
    register_sites(tmp_path / "catalog", [(one, load_site(one))])
    register_sites(tmp_path / "catalog", [(one, load_site(one))])  # the same again: fine
    with pytest.raises(InputError, match="another site is registered as 'net'"):
        register_sites(tmp_path / "catalog", [(two, load_site(two))])


def test_an_installed_release_needs_no_catalog(protein_copy, tmp_path):
    from aisci.catalog.release import obtain

    catalog, root = tmp_path / "catalog", tmp_path / "installed"
    publish(read_pipeline(protein_copy), catalog, LINT)
    folder, done = obtain("protein@1.0.0", [str(catalog)], root)
    assert done == f"protein@1.0.0: installed in {folder}"
    assert obtain("protein@1.0.0", None, root) == (folder, f"protein@1.0.0: installed already in {folder}, files verified")
    (folder / "workflows/protein/test.yaml").chmod(0o644)
    (folder / "workflows/protein/test.yaml").write_text("edited: true\n")
    with pytest.raises(InputError, match=r"test\.yaml: changed since install"):
        obtain("protein@1.0.0", None, root)
    with pytest.raises(InputError, match="no catalog"):
        obtain("protein", None, root)  # the newest version: only a catalog knows
