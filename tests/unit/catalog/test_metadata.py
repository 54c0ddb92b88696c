"""aisci.catalog.metadata: every pipeline's pipeline.yaml, versions, references, and the files a release carries."""

from __future__ import annotations

import pytest

from aisci.catalog.metadata import parse_ref, pipeline_files, read_pipeline, semver_key
from aisci.errors import InputError
from aisci.share import PIPELINES
from tests.conftest import REPO


@pytest.mark.parametrize("name", PIPELINES)
def test_every_pipeline_has_valid_metadata(name):
    pipeline = read_pipeline(REPO / "workflows" / name)
    assert pipeline.name == name
    assert pipeline.meta["changelog"][pipeline.version]
    files = pipeline_files(pipeline)
    assert f"workflows/{name}/Snakefile" in files and f"workflows/{name}/pipeline.yaml" in files
    assert any(rel.startswith("rules/") for rel in files) and any(rel.startswith("envs/") for rel in files)
    assert all(path.is_file() for path in files.values())


def test_a_release_carries_the_included_rules_and_their_envs_only():
    files = pipeline_files(read_pipeline(REPO / "workflows" / "protein"))
    assert sorted(f for f in files if f.startswith("rules/")) == ["rules/plm.smk"]
    # plm.smk names envs/esm.yaml and envs/aisci.yaml; the germline pipeline's bcftools env is not carried
    assert sorted(f for f in files if f.startswith("envs/")) == ["envs/aisci.yaml", "envs/esm.yaml"]


def test_semantic_version_order():
    versions = ["1.0.0", "1.10.0", "1.2.0", "1.2.0-rc.1", "1.2.0-alpha", "1.2.0-alpha.beta", "1.2.0-alpha.1", "0.9.9"]
    assert sorted(versions, key=semver_key) == ["0.9.9", "1.0.0", "1.2.0-alpha", "1.2.0-alpha.1", "1.2.0-alpha.beta",
                                                "1.2.0-rc.1", "1.2.0", "1.10.0"]


@pytest.mark.parametrize("ref", ["../germline", "a/b", "germline@1.0", "germline@../1.0.0", "germline@", "Germline",
                                 "germline@1.0.0/../../x", "germline@01.0.0"])
def test_refs_that_are_not_safe_are_refused(ref):
    with pytest.raises(InputError):
        parse_ref(ref)


def test_ref_with_and_without_version():
    assert parse_ref("protein@1.2.0-rc.1") == ("protein", "1.2.0-rc.1")
    assert parse_ref("protein") == ("protein", None)


def test_unknown_key_and_bad_version_name_the_line(protein_copy):
    path = protein_copy / "pipeline.yaml"
    text = path.read_text().replace("version: 1.0.0", "version: '1.0'").replace("licence: MIT", "licence: MIT\nlicense: MIT")
    path.write_text(text)
    with pytest.raises(InputError) as err:
        read_pipeline(protein_copy)
    lines = text.split("\n")
    version_line = next(i for i, line in enumerate(lines, 1) if line.startswith("version:"))
    license_line = next(i for i, line in enumerate(lines, 1) if line.startswith("license:"))
    message = str(err.value)
    assert f"pipeline.yaml line {version_line}: version '1.0' is not a semantic version" in message
    assert f"pipeline.yaml line {license_line}: unknown key 'license' (allowed: name, version," in message


def test_a_missing_file_is_named(protein_copy):
    (protein_copy.parent.parent / "envs" / "esm.yaml").unlink()
    with pytest.raises(InputError, match="envs/esm.yaml: named by the pipeline, missing"):
        pipeline_files(read_pipeline(protein_copy))
