"""`aisci init` and `aisci run`: the project directory a user owns, and where the packaged pipelines are found."""

from __future__ import annotations

import re
import sys
import tomllib

import pytest
import yaml

from aisci.schema import load_schema, validate_config
from aisci.errors import InputError
from aisci.pipelines.launch import snakemake_command
from aisci.pipelines.project import SAMPLES_TEMPLATE, init_project, plan_project, render_config
from aisci.share import PIPELINES, profile_template, root, workflow_snakefile

from tests.conftest import REPO


def _leaves(schema, prefix=""):
    for key, sub in schema.get("properties", {}).items():
        if sub.get("type") == "object":
            yield from _leaves(sub, f"{prefix}{key}.")
        else:
            yield f"{prefix}{key}"


def test_rendered_config_has_every_key_described_and_parses_to_the_defaults():
    text = render_config({"samples": "s.tsv", "reference": "/refs/hg38.fa"})
    parsed = yaml.safe_load(text)
    for leaf in _leaves(load_schema("config")):
        node = parsed
        for part in leaf.split("."):
            node = node[part]
        line = re.search(rf"^\s*{leaf.split('.')[-1]}: ", text, re.M)
        assert line, leaf
        assert text[: line.start()].rstrip().splitlines()[-1].lstrip().startswith("#"), f"{leaf} has no comment"
    assert validate_config(parsed) == validate_config({"samples": "s.tsv", "reference": "/refs/hg38.fa"})


def test_plan_refuses_bad_arguments_before_writing(tmp_path):
    ref = tmp_path / "ref.fa"
    ref.write_text(">chr1\nACGT\n")
    cases = [
        (dict(genome="hg19"), "--genome 'hg19': not one of grch38, grch37, custom"),
        (dict(reference=tmp_path / "nope.fa"), "--reference: file not found: .*nope.fa"),
        (dict(samples=tmp_path / "nope.tsv"), "--samples: file not found: .*nope.tsv"),
        (dict(profile=str(tmp_path / "no-profile")), "--profile .*no-profile: no such profile"),
    ]
    for change, message in cases:
        args = dict(genome="grch38", reference=ref, samples=None, profile="local") | change
        with pytest.raises(InputError, match=message):
            plan_project(tmp_path / "proj", **args)
        assert not (tmp_path / "proj").exists()


def test_init_writes_a_self_contained_project(tmp_path):
    ref = tmp_path / "refs" / "GRCh38.fa.gz"
    ref.parent.mkdir()
    ref.write_bytes(b"")
    plan = plan_project(tmp_path / "proj", "grch38", ref, None, "slurm")
    written, kept = init_project(plan)
    names = sorted(p.relative_to(tmp_path / "proj").as_posix() for p in written)
    assert names == ["Snakefile", "config.yaml", "profile/config.yaml", "profile/partitions.yaml",
                     "profile/site.yaml", "samples.tsv"] and kept == []
    cfg = yaml.safe_load((tmp_path / "proj" / "config.yaml").read_text())
    assert cfg["reference"] == str(ref) and cfg["samples"] == "samples.tsv" and cfg["genome"] == "grch38"
    assert (tmp_path / "proj" / "samples.tsv").read_text() == SAMPLES_TEMPLATE
    profile = yaml.safe_load((tmp_path / "proj" / "profile" / "config.yaml").read_text())
    assert profile["slurm-partition-config"] == "partitions.yaml"  # resolved by Snakemake inside the profile
    snakefile = (tmp_path / "proj" / "Snakefile").read_text()
    assert 'module germline:' in snakefile and 'use rule * from germline' in snakefile


def test_init_never_overwrites_and_refuses_another_project(tmp_path):
    proj = tmp_path / "proj"
    proj.mkdir()
    (proj / "config.yaml").write_text("samples: mine.tsv\n")
    plan = plan_project(proj, "custom", None, None, "local")
    with pytest.raises(InputError, match=r"proj: not empty \(config.yaml\).*--force"):
        init_project(plan)
    assert sorted(p.name for p in proj.iterdir()) == ["config.yaml"]
    written, kept = init_project(plan, force=True)
    assert (proj / "config.yaml").read_text() == "samples: mine.tsv\n"
    assert [p.name for p in kept] == ["config.yaml"] and {p.name for p in written} == {"Snakefile", "samples.tsv", "config.yaml"}


def test_custom_genome_without_annotation_turns_splicing_off(tmp_path):
    plan = plan_project(tmp_path / "p", "custom", None, None, "local")
    cfg = yaml.safe_load(plan.files["config.yaml"])
    assert cfg["splice"]["enabled"] is False and cfg["genome"] == "custom"
    gff = tmp_path / "genes.gff3"
    gff.write_text("##gff-version 3\n")
    cfg = yaml.safe_load(plan_project(tmp_path / "p", "custom", None, None, "local", annotation=gff).files["config.yaml"])
    assert cfg["splice"]["enabled"] is True and cfg["splice"]["annotation"] == str(gff)


def test_run_uses_the_projects_snakefile_for_germline_and_the_packaged_ones_otherwise(tmp_path):
    assert snakemake_command("protein", ["-n"], tmp_path)[-3:] == ["--snakefile", str(workflow_snakefile("protein")), "-n"]
    assert snakemake_command("germline", [], tmp_path)[-1] == str(workflow_snakefile("germline"))
    (tmp_path / "Snakefile").write_text("")
    cmd = snakemake_command("germline", ["--profile", "profile"], tmp_path)
    assert cmd[:3] == [sys.executable, "-m", "snakemake"] and cmd[3:] == ["--snakefile", str(tmp_path / "Snakefile"), "--profile", "profile"]


def test_packaged_pipelines_are_found():
    assert root() in (REPO, REPO / "aisci")  # a checkout (editable install); an installed wheel: e2e/test_install.py
    for name in PIPELINES:
        assert workflow_snakefile(name).is_file()
    assert (profile_template("slurm") / "partitions.yaml").is_file()
    with pytest.raises(InputError, match="unknown pipeline 'rna'"):
        workflow_snakefile("rna")
    with pytest.raises(InputError, match="no packaged profile 'gpu'"):
        profile_template("gpu")


def test_the_wheel_lists_every_package_and_carries_every_pipeline_file():
    """pyproject.toml lists the packages by hand (four are folders outside aisci/): nothing may be missed."""
    setuptools = tomllib.loads((REPO / "pyproject.toml").read_text())["tool"]["setuptools"]
    listed = set(setuptools["packages"])
    found = {".".join(p.parent.relative_to(REPO).parts) for p in (REPO / "aisci").rglob("__init__.py")}
    assert found <= listed, f"add to pyproject.toml's packages: {sorted(found - listed)}"
    mapped = setuptools["package-dir"]
    patterns = setuptools["package-data"]["*"]
    for package, folder in mapped.items():
        for path in (REPO / folder).rglob("*"):
            if path.is_file() and "__pycache__" not in path.parts:
                sub = ".".join([package, *path.parent.relative_to(REPO / folder).parts])
                assert sub in listed, f"{path.relative_to(REPO)}: its folder {sub} is not a listed package"
                assert any(path.match(p) for p in patterns), f"{path.relative_to(REPO)} matches no package-data pattern"


def test_init_pins_a_project_to_an_installed_release(tmp_path):
    """`aisci init --pipeline NAME@VERSION`: the Snakefile uses the installed release's, the config its defaults."""
    from aisci.catalog.metadata import read_pipeline
    from aisci.catalog.release import Catalog, install, publish, resolve
    from tests.unit.catalog.conftest import copy_pipeline

    lint = {"checks": [], "passed": 29, "failed": 0}
    for name in ("germline", "protein"):
        folder = copy_pipeline(name, tmp_path / "src" / name)
        text = (folder / "config.yaml").read_text()
        (folder / "config.yaml").write_text(text.replace("chunk_size: 2000000", "chunk_size: 3000000")
                                            .replace("embeddings: true", "embeddings: false"))
        publish(read_pipeline(folder), tmp_path / "catalog", lint)
    catalogs = [Catalog(str(tmp_path / "catalog"))]
    release, _ = install(resolve("germline@1.0.0", catalogs), tmp_path / "installed")
    plan = plan_project(tmp_path / "proj", "grch38", None, None, "local", release=release)
    snakefile = plan.files["Snakefile"]
    assert f'"{release / "workflows" / "germline" / "Snakefile"}"' in snakefile and "module germline:" in snakefile
    config = yaml.safe_load(plan.files["config.yaml"])
    assert config["calling"]["chunk_size"] == 3_000_000  # the release's default, not this engine's
    assert config["genome"] == "grch38" and "samples.tsv" in plan.files
    release, _ = install(resolve("protein", catalogs), tmp_path / "installed")
    plan = plan_project(tmp_path / "proj2", "grch38", None, None, "local", release=release)
    assert yaml.safe_load(plan.files["config.yaml"])["embeddings"] is False
    assert "module protein:" in plan.files["Snakefile"] and "samples.tsv" not in plan.files


def test_a_hyphenated_pipeline_is_a_module_of_an_identifier(tmp_path):
    from aisci.catalog.metadata import read_pipeline
    from aisci.catalog.release import Catalog, install, publish, resolve
    from tests.unit.catalog.conftest import copy_pipeline

    folder = copy_pipeline("protein", tmp_path / "src")
    mine = folder.parent / "my-pipe"
    folder.rename(mine)
    (mine / "pipeline.yaml").write_text((mine / "pipeline.yaml").read_text().replace("name: protein", "name: my-pipe"))
    publish(read_pipeline(mine), tmp_path / "catalog", {"checks": [], "passed": 1, "failed": 0})
    release, _ = install(resolve("my-pipe", [Catalog(str(tmp_path / "catalog"))]), tmp_path / "installed")
    snakefile = plan_project(tmp_path / "proj", "grch38", None, None, "local", release=release).files["Snakefile"]
    assert "module my_pipe:" in snakefile and "use rule * from my_pipe" in snakefile
    compile(snakefile.split("configfile:")[0], "Snakefile", "exec")  # the header is comments only
