"""workflows/reanalysis: dry-runs (one job per shard, never per sample), rerun triggers, lint, and bad config or
manifest stopping before any job with the file, line and field named.

Dry-runs never open a VCF, so the manifests here name empty placeholder files; real runs: tests/e2e/test_reanalysis.py.
"""

from __future__ import annotations

import os
import re
from pathlib import Path

import pytest

from tests.conftest import REPO, run_snakemake, write_config
from tests.workflows.test_dryrun import job_counts

REANALYSIS = REPO / "workflows" / "reanalysis" / "Snakefile"


def write_cohort(folder: Path, n: int, first: int = 0) -> Path:
    """A manifest of ``n`` samples with (empty) VCFs under ``folder``/vcfs; appends when it exists."""
    (folder / "vcfs").mkdir(parents=True, exist_ok=True)
    manifest = folder / "samples.tsv"
    rows = [] if manifest.exists() else ["sample\tvcf"]
    for i in range(first, first + n):
        (folder / "vcfs" / f"S{i:04d}.vcf.gz").touch()
        rows.append(f"S{i:04d}\tvcfs/S{i:04d}.vcf.gz")
    with open(manifest, "a") as fh:
        fh.write("\n".join(rows) + "\n")
    return manifest


@pytest.fixture
def inputs(tmp_path, esm_store) -> dict:
    """Config values for both stages: reference and annotation placeholders, the test model store."""
    (tmp_path / "ref.fa").touch()
    (tmp_path / "genes.gff3").touch()
    return {"store": str(tmp_path / "store"), "reference": str(tmp_path / "ref.fa"),
            "splice": {"annotation": str(tmp_path / "genes.gff3")},
            "protein": {"annotation": str(tmp_path / "genes.gff3"), "model": esm_store.model,
                        "model_store": str(esm_store.path)}}


def test_one_shard_plans_one_ingest_job_and_each_stage(inputs, esm_store, tmp_path):
    manifest = write_cohort(tmp_path, 7)
    cfg = write_config(tmp_path / "config.yaml", manifest=str(manifest), **inputs)
    res = run_snakemake(tmp_path, "--dry-run", "--printshellcmds", "--cores", "2", "--configfile", str(cfg),
                        snakefile=REANALYSIS)
    assert res.returncode == 0, res.stderr
    assert job_counts(res.stdout) == {"ingest_shard": 1, "score_variants": 2, "cohort_summary": 1, "report_cohort": 1, "all": 1}
    out = res.stdout
    store = inputs["store"]
    assert (f"aisci cohort ingest --manifest {manifest} --store {store} --shard 0 --shard-size 50"
            " --report results/reanalysis/shards/0.json > logs/ingest_shard/0.log 2>&1") in out
    assert (f"aisci cohort score --store {store} --stage splice --ref {inputs['reference']} --annotation "
            f"{tmp_path}/genes.gff3 --distance 50 --threads 2 --report results/reanalysis/scores/splice.json") in out
    assert (f"--stage protein --ref {inputs['reference']} --annotation {tmp_path}/genes.gff3 --model esm2-test "
            f"--model-store {esm_store.path} --strategy masked-marginals --threads 2") in out
    assert f"aisci cohort info --store {store} --out results/reanalysis/cohort.tsv" in out
    # the GPU rule says so itself; the shard's VCFs are its inputs, so a changed VCF reruns the shard
    assert re.search(r"rule score_variants:.*?resources: [^\n]*gpu=1", out, re.DOTALL)
    assert f"{tmp_path}/vcfs/S0006.vcf.gz" in out.split("rule ingest_shard:", 1)[1].split("output:", 1)[0]
    assert not (tmp_path / "results").exists() and not Path(store).exists()


def test_three_shards_from_the_repo_config(inputs, tmp_path):
    """The repository's config.yaml overridden on the command line, as a user would; 7 samples by 3: 3 shards."""
    manifest = write_cohort(tmp_path, 7)
    res = run_snakemake(tmp_path, "--dry-run", "--cores", "2", "--configfile",
                        str(REPO / "workflows" / "reanalysis" / "config.yaml"), "--config", f"manifest={manifest}",
                        f"store={inputs['store']}", f"reference={inputs['reference']}", "shard_size=3",
                        "stages=[splice]", f"splice={{annotation: {tmp_path}/genes.gff3}}", snakefile=REANALYSIS)
    assert res.returncode == 0, res.stderr
    assert job_counts(res.stdout) == {"ingest_shard": 3, "score_variants": 1, "cohort_summary": 1, "report_cohort": 1, "all": 1}
    assert "results/reanalysis/shards/2.json" in res.stdout and "shards/3.json" not in res.stdout


def test_200_samples_then_only_what_changed_reruns(inputs, tmp_path):
    """200 samples: 4 ingest jobs of 50. Once their outputs are up to date, a changed splice option reruns the
    splice stage only (Snakemake's params trigger); an appended sample and a replaced VCF rerun their two shards."""
    manifest = write_cohort(tmp_path, 200)
    cfg = write_config(tmp_path / "config.yaml", manifest=str(manifest), **inputs)
    args = ("--cores", "1", "--configfile", str(cfg))
    res = run_snakemake(tmp_path, "--dry-run", *args, snakefile=REANALYSIS)
    assert res.returncode == 0, res.stderr
    assert job_counts(res.stdout) == {"ingest_shard": 4, "score_variants": 2, "cohort_summary": 1, "report_cohort": 1, "all": 1}

    # Outputs as a finished run leaves them, with Snakemake's records of each job (--touch --forceall), no job run.
    results = tmp_path / "results" / "reanalysis"
    for path in [*(f"shards/{i}.json" for i in range(4)), "scores/splice.json", "scores/protein.json", "cohort.tsv"]:
        (results / path).parent.mkdir(parents=True, exist_ok=True)
        (results / path).write_text("{}\n")
    res = run_snakemake(tmp_path, "--touch", "--forceall", *args, snakefile=REANALYSIS)
    assert res.returncode == 0, res.stderr

    inputs["splice"]["distance"] = 100
    write_config(cfg, manifest=str(manifest), **inputs)
    res = run_snakemake(tmp_path, "--dry-run", *args, snakefile=REANALYSIS)
    assert res.returncode == 0, res.stderr
    assert job_counts(res.stdout) == {"score_variants": 1, "cohort_summary": 1, "report_cohort": 1, "all": 1}
    assert "wildcards: stage=splice" in res.stdout and "Params have changed" in res.stdout

    write_cohort(tmp_path, 1, first=200)                          # a new sample: a fifth shard
    # A replaced VCF in shard 1: newer, with other content (Snakemake compares checksums of small inputs).
    replaced = tmp_path / "vcfs" / "S0060.vcf.gz"
    replaced.write_text("replaced\n")
    later = (results / "cohort.tsv").stat().st_mtime + 10
    os.utime(replaced, (later, later))
    res = run_snakemake(tmp_path, "--dry-run", *args, snakefile=REANALYSIS)
    assert res.returncode == 0, res.stderr
    assert job_counts(res.stdout) == {"ingest_shard": 2, "score_variants": 2, "cohort_summary": 1, "report_cohort": 1, "all": 1}
    shards = re.findall(r"rule ingest_shard:.*?wildcards: shard=(\d+)", res.stdout, re.DOTALL)
    assert sorted(shards) == ["1", "4"]


def test_lint_clean(inputs, tmp_path):
    manifest = write_cohort(tmp_path, 3)
    cfg = write_config(tmp_path / "config.yaml", manifest=str(manifest), **inputs)
    res = run_snakemake(tmp_path, "--lint", "--configfile", str(cfg), snakefile=REANALYSIS)
    assert res.returncode == 0, res.stdout + res.stderr
    assert "Lints for" not in res.stdout + res.stderr


def test_bad_manifest_line_stops_snakemake_before_any_job(inputs, tmp_path):
    manifest = write_cohort(tmp_path, 5)
    lines = manifest.read_text().splitlines()
    lines[3] = "S 3\tvcfs/S0002.vcf.gz"
    manifest.write_text("\n".join(lines) + "\n")
    cfg = write_config(tmp_path / "config.yaml", manifest=str(manifest), **inputs)
    res = run_snakemake(tmp_path, "--cores", "1", "--configfile", str(cfg), snakefile=REANALYSIS)
    assert res.returncode != 0
    assert f"invalid input: {manifest} line 4: sample 'S 3' must match" in res.stderr, res.stderr
    assert "Traceback" not in res.stderr
    assert not (tmp_path / "results").exists() and not (tmp_path / "store").exists()


# The same check Snakemake runs first (ReanalysisPipeline.from_snakemake), without starting Snakemake.
BAD = {
    "typo key": ({"shard_sise": 10}, "config.yaml: unknown key 'shard_sise' (allowed: manifest, protein, reference,"),
    "nested typo key": ({"splice": {"distanse": 10}}, "config.yaml: unknown key 'splice.distanse'"),
    "shard_size 0": ({"shard_size": 0}, "config.yaml: shard_size: 0 is less than the minimum of 1"),
    "shard_size text": ({"shard_size": "ten"}, "config.yaml: shard_size: 'ten' is not of type 'integer'"),
    "unknown stage": ({"stages": ["splice", "rna"]}, "config.yaml: stages.1: 'rna' is not one of splice, protein"),
    "distance too far": ({"splice": {"distance": 5000}}, "config.yaml: splice.distance: 5000 is greater than"),
    "no store": ({"store": None}, "config.yaml: store: None is not of type 'string'"),
    "missing manifest": ({"manifest": "nowhere.tsv"}, "config.yaml: manifest: file not found: nowhere.tsv"),
    "missing VCF": ("missing", "samples.tsv line 3: vcf vcfs/S0001.vcf.gz does not exist"),
    "short line": ("short", "samples.tsv line 5: 1 fields, the header has 2"),
    "duplicate sample": ("duplicate", "samples.tsv line 4: duplicate sample 'S0000' (first on line 2)"),
    "no reference": ({"reference": None}, "config.yaml: reference: required while stages is not empty"),
    "missing reference": ({"reference": "nowhere.fa"}, "config.yaml: reference: file not found: nowhere.fa"),
    "missing annotation": ({"splice": {"annotation": "genes.gtf"}},
                           "config.yaml: splice.annotation: file not found: genes.gtf"),
    "incomplete weights": ({"splice": {"weights": "."}}, "config.yaml: splice.weights: . has no spliceai1.h5"),
    "no protein annotation": ({"protein": {"annotation": None}}, "config.yaml: protein.annotation: required"),
    "model not staged": ({"protein": {"model": "esm2_t33_650M"}},
                         "config.yaml: protein.model: model 'esm2_t33_650M' is not in the model store"),
}


@pytest.mark.parametrize("case", BAD, ids=str)
def test_bad_input_is_named_before_planning(case, inputs, tmp_path, monkeypatch):
    from snakemake.exceptions import WorkflowError

    from aisci.pipelines.reanalysis import ReanalysisPipeline

    monkeypatch.chdir(tmp_path)
    change, message = BAD[case]
    manifest = write_cohort(tmp_path, 4)
    lines = manifest.read_text().splitlines()
    if change == "missing":
        (tmp_path / "vcfs" / "S0001.vcf.gz").unlink()
    elif change == "short":
        lines[4] = "S0003"
    elif change == "duplicate":
        lines[3] = lines[1]
    manifest.write_text("\n".join(lines) + "\n")
    config = {"manifest": str(manifest), **inputs}
    for key, value in (change.items() if isinstance(change, dict) else []):
        if isinstance(value, dict):
            config[key] = {**config[key], **value}
        else:
            config[key] = value
    with pytest.raises(WorkflowError) as err:
        ReanalysisPipeline.from_snakemake(config, [tmp_path / "config.yaml"])
    assert message in str(err.value)
    assert not (tmp_path / "store").exists()


def test_ingest_only_needs_no_reference_and_unknown_shards_are_refused(tmp_path):
    from types import SimpleNamespace

    from aisci.pipelines.reanalysis import ReanalysisPipeline
    from aisci.errors import InputError

    manifest = write_cohort(tmp_path, 120)
    pipeline = ReanalysisPipeline({"manifest": str(manifest), "store": "s", "stages": []})
    assert pipeline.shard_reports() == [f"results/reanalysis/shards/{i}.json" for i in range(3)]
    assert pipeline.score_reports() == []
    last = pipeline.shard_vcfs(SimpleNamespace(shard="2"))
    assert last == [str(tmp_path / "vcfs" / f"S{i:04d}.vcf.gz") for i in range(100, 120)]
    for bad in ("3", "01"):
        with pytest.raises(InputError, match=f"shard '{bad}' does not exist: 120 samples make 3 shards of 50"):
            pipeline.shard_vcfs(SimpleNamespace(shard=bad))


def test_model_options_and_inputs_of_each_stage(inputs, esm_store, tmp_path):
    """What score_variants passes `aisci cohort score` and depends on: every option a model version is made of."""
    from types import SimpleNamespace

    from aisci.pipelines.reanalysis import ReanalysisPipeline
    from aisci.errors import InputError

    weights = tmp_path / "weights"
    weights.mkdir()
    for i in range(1, 6):
        (weights / f"spliceai{i}.h5").touch()
    manifest = write_cohort(tmp_path, 2)
    inputs["splice"] = {"annotation": "grch37", "weights": str(weights), "distance": 500, "mask": True}
    inputs["protein"]["strategy"] = "wt-marginals"
    pipeline = ReanalysisPipeline({"manifest": str(manifest), **inputs})
    splice, protein = SimpleNamespace(stage="splice"), SimpleNamespace(stage="protein")
    assert pipeline.score_options(splice) == (f"--ref {tmp_path}/ref.fa --annotation grch37 --splice-weights {weights}"
                                              " --distance 500 --mask")
    assert pipeline.score_inputs(splice) == {"ref": f"{tmp_path}/ref.fa",
                                             "weights": [f"{weights}/spliceai{i}.h5" for i in range(1, 6)]}
    assert pipeline.score_options(protein) == (f"--ref {tmp_path}/ref.fa --annotation {tmp_path}/genes.gff3 "
                                               f"--model {esm_store.model} --model-store {esm_store.path} "
                                               "--strategy wt-marginals")
    assert pipeline.score_inputs(protein)["model"] == f"{esm_store.path}/{esm_store.model}/config.json"
    assert pipeline.score_env(splice) == "../envs/spliceai.yaml" and pipeline.score_env(protein) == "../envs/esm.yaml"
    only_splice = ReanalysisPipeline({"manifest": str(manifest), **inputs, "stages": ["splice"]})
    with pytest.raises(InputError, match="stage 'protein' is not in the config's stages \\(splice\\)"):
        only_splice.score_options(protein)
