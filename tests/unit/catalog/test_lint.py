"""aisci.catalog.lint without running pipelines: the packaged pipelines pass; each broken thing fails its own check,
naming the file and line; --fix repairs the mechanical ones."""

from __future__ import annotations

import pytest

from aisci.catalog.lint import CHECKS, TITLES, lint, summary
from aisci.catalog.metadata import read_pipeline
from aisci.share import PIPELINES
from tests.conftest import REPO


def findings(folder, **kw):
    results, fixed = lint(read_pipeline(folder), run_test=False, **kw)
    return {k: v for k, v in results.items() if v}, fixed


def test_there_are_at_least_twenty_named_checks():
    assert len(CHECKS) + len(TITLES) >= 20
    assert all(title for title, _ in CHECKS.values())


@pytest.mark.parametrize("name", PIPELINES)
def test_packaged_pipelines_pass_every_static_check(name):
    failed, _ = findings(REPO / "workflows" / name)
    assert failed == {}
    results, _ = lint(read_pipeline(REPO / "workflows" / name), run_test=False)
    assert summary(results)["failed"] == 2  # the two checks that run the pipeline were skipped, so it cannot publish
    assert results["test_profile"] is None and results["snakemake_lint"] is None


def line_of(path, text):
    return next(i for i, line in enumerate(path.read_text().split("\n"), 1) if text in line)


def test_a_rule_without_log_benchmark_and_resources(protein_copy):
    smk = protein_copy.parent.parent / "rules" / "plm.smk"
    text = smk.read_text()
    text = text.replace('    log:\n        "logs/plot_mutagenesis/{protein}.log",\n', "")
    text = text.replace('    benchmark:\n        "benchmarks/plot_mutagenesis/{protein}.tsv"\n', "")
    text = text.replace("        mem_mb=mem_per_attempt(2000),\n", "", 1)
    smk.write_text(text)
    failed, _ = findings(protein_copy)
    line = line_of(smk, "rule plot_mutagenesis:")
    for check in ("rule_log", "rule_benchmark", "rule_memory_runtime"):
        assert [(f.file, f.line) for f in failed[check]] == [("rules/plm.smk", line)], check
    assert "plot_mutagenesis" in failed["rule_log"][0].message and "log" in failed["rule_log"][0].fix


def test_a_rule_that_reaches_the_network(protein_copy):
    smk = protein_copy.parent.parent / "rules" / "plm.smk"
    smk.write_text(smk.read_text().replace('"aisci plm heatmap ', '"curl -sO https://example.org/x && aisci plm heatmap ', 1))
    failed, _ = findings(protein_copy)
    [found] = failed["no_network"]
    assert found.file == "rules/plm.smk" and "plot_mutagenesis" in found.message and "curl" in found.message


def test_unpinned_env_and_defaults_channel(protein_copy):
    env = protein_copy.parent.parent / "envs" / "esm.yaml"
    env.write_text(env.read_text().replace("  - numpy =2.4", "  - numpy").replace("  - nodefaults", "  - defaults"))
    failed, _ = findings(protein_copy)
    [found] = failed["env_pinned"]
    assert (found.file, found.line) == ("envs/esm.yaml", line_of(env, "  - numpy")) and "'numpy'" in found.message
    assert failed["env_channels"][0].file == "envs/esm.yaml"


def test_metadata_checks(protein_copy):
    meta = protein_copy / "pipeline.yaml"
    text = meta.read_text().replace("resources: [cpu, gpu]", "resources: [cpu]").replace("licence: MIT", "licence: Proprietary")
    text = text.replace("version: 1.0.0", "version: 1.1.0")  # no changelog entry for it
    meta.write_text(text.replace("    - results/plm/report.html\n", "    - results/plm/report.html\n    - results/other.txt\n"))
    failed, _ = findings(protein_copy)
    assert failed["resource_classes"][0].line == line_of(meta, "resources:")
    assert "['cpu', 'gpu']" in failed["resource_classes"][0].message
    assert failed["licence_spdx"][0].line == line_of(meta, "licence:")
    assert failed["changelog_entry"][0].message == "no changelog entry for version 1.1.0"
    assert "results/other.txt" in failed["test_outputs_declared"][0].message


def test_models_must_match_the_installed_package_and_the_store_form(tmp_path):
    from tests.unit.catalog.conftest import copy_pipeline

    folder = copy_pipeline("germline", tmp_path)
    meta = folder / "pipeline.yaml"
    meta.write_text(meta.read_text().replace("e1fd5adcef7489d6", "00000adcef7489d6").replace(
        "      vocab.txt: {size: 94,", "      weights.npz: {size: 94,"))
    failed, _ = findings(folder)
    assert "spliceai/models/spliceai1.h5" in failed["models_package_present"][0].message
    assert "esm2-demo" in failed["models_manifest_form"][0].message


def test_fix_repairs_the_mechanical_findings(tmp_path):
    from tests.unit.catalog.conftest import copy_pipeline

    folder = copy_pipeline("protein", tmp_path)
    meta = folder / "pipeline.yaml"
    meta.write_text(meta.read_text().replace("name: protein", "name: proteins").replace("summary:", "summary:  ", 1)
                    .rstrip("\n"))
    # a pipeline of its own: its config schema in its folder, one object left open
    schema = folder / "own.schema.yaml"
    schema.write_text((REPO / "aisci" / "schemas" / "protein.schema.yaml").read_text().replace(
        "    additionalProperties: false\n", "", 1))
    meta.write_text(meta.read_text().replace("config_schema: protein", "config_schema: own.schema.yaml"))
    failed, _ = findings(folder)
    assert set(failed) == {"meta_name", "text_whitespace", "schema_closed"}
    assert failed["schema_closed"][0].file == "workflows/protein/own.schema.yaml"
    failed, fixed = findings(folder, fix=True)
    assert failed == {} and len(fixed) == 3
    assert findings(folder)[0] == {}
    assert "name: protein\n" in meta.read_text()


def test_fix_closes_a_nullable_object_inside_its_own_block(tmp_path):
    from tests.unit.catalog.conftest import copy_pipeline

    folder = copy_pipeline("protein", tmp_path)
    schema = folder / "own.schema.yaml"
    schema.write_text("""$schema: "https://json-schema.org/draft/2020-12/schema"
title: own
description: a pipeline's own config
type: object
additionalProperties: false
properties:
  proteins: {type: string, description: FASTA}
  extra:
    type: [object, "null"]
    description: open and nullable
    properties:
      inner:
        type: object
        additionalProperties: false
        description: closed already
""")
    meta = folder / "pipeline.yaml"
    meta.write_text(meta.read_text().replace("config_schema: protein", "config_schema: own.schema.yaml"))
    failed, _ = findings(folder)
    assert [(f.check, f.line) for f in failed["schema_closed"]] == [("schema_closed", 8)]  # the line of `extra:`
    failed, fixed = findings(folder, fix=True)
    assert "schema_closed" not in failed and fixed == ["workflows/protein/own.schema.yaml: closed 1 of 1 open objects"]
    assert schema.read_text().count("additionalProperties: false") == 3


def test_config_findings_name_the_line(protein_copy):
    test = protein_copy / "test.yaml"
    test.write_text(test.read_text() + "mutagenesis_typo: 1\n")
    failed, _ = findings(protein_copy)
    [found] = failed["test_config_valid"]
    assert (found.file, found.line) == ("workflows/protein/test.yaml", len(test.read_text().splitlines()))
    assert found.message.startswith("mutagenesis_typo:")
