"""Dry-runs of the germline workflow x every scenario, lint, and bad input that must stop before any job.

workflows/protein has its own: tests/workflows/test_protein_dryrun.py.
"""

from __future__ import annotations

import re
import shutil

import pytest

from tests.conftest import GERMLINE, REPO, run_snakemake, write_config
from tests.workflows.scenarios import SCENARIOS, scenario_config


def job_counts(stdout: str) -> dict[str, int]:
    """Parse the 'Job stats' table of a dry-run."""
    table = stdout.split("Job stats:", 1)[1].split("total", 1)[0]
    return {m[1]: int(m[2]) for m in re.finditer(r"^(\w+)\s+(\d+)\s*$", table, re.M)}


@pytest.mark.parametrize("scenario", SCENARIOS)
def test_dry_run(scenario, sim_data, esm_store, tmp_path):
    cfg = scenario_config(scenario, sim_data, tmp_path, esm_store)
    res = run_snakemake(tmp_path, "--dry-run", "--cores", "2", "--configfile", str(cfg), snakefile=GERMLINE)
    assert res.returncode == 0, res.stdout + res.stderr
    counts = job_counts(res.stdout)
    n = {"na12878": 1}.get(scenario, 2)
    assert counts["align_reads"] == n and counts["check_reads"] == n and counts["filter_calls"] >= n
    if scenario == "bwa":
        assert counts["index_bwa"] == 1 and "index_minimap2" not in counts
    else:
        assert counts["index_minimap2"] == 1 and "index_bwa" not in counts
    if scenario == "joint":
        # two 150 kb contigs, chunks of <= 100 kb: 4 chunks, each its own group, x (2 samples + cohort)
        assert counts["filter_calls"] == 3 and counts["call_group"] == 12
    if scenario == "na12878":
        assert counts["bam_to_fastq"] == 1 and counts["evaluate_calls"] == 1
    # SpliceAI: one job per callset and scoring group (joint calling is on by default with 2 samples:
    # 3 callsets; the joint scenario's 100 kb chunks make 4 groups, as does the na12878 chr20 at 20 Mb),
    # gathered once per callset; the bwa scenario switches the stage off
    callsets = {"bwa": 0, "na12878": 1}.get(scenario, 3)
    groups = {"joint": 4, "na12878": 4}.get(scenario, 1)
    assert counts.get("score_splicing", 0) == callsets * groups and counts.get("gather_splicing", 0) == callsets
    # score once: one cache_splicing job per scoring group scores the alleles of every callset
    assert counts.get("cache_splicing", 0) == (groups if callsets else 0)
    # protein stage: off by default, on in the joint scenario (annotation + scoring per callset and group)
    protein = {"joint": 12}.get(scenario, 0)
    assert counts.get("annotate_coding", 0) == protein and counts.get("score_missense", 0) == protein
    assert counts.get("gather_protein", 0) == protein // 4 and counts.get("cache_missense", 0) == protein // 3
    assert not (tmp_path / "results").exists()


def test_root_snakefile_runs_default_pipeline(sim_data, tmp_path):
    """`snakemake` from the repo root (its Snakefile) plans the germline pipeline by default."""
    cfg = scenario_config("default", sim_data, tmp_path)
    res = run_snakemake(tmp_path, "--dry-run", "--cores", "2", "--configfile", str(cfg), snakefile=REPO / "Snakefile")
    assert res.returncode == 0, res.stderr
    assert job_counts(res.stdout)["all"] == 1 and "align_reads" in job_counts(res.stdout)


def test_command_line_overrides_of_the_repo_config(sim_data, esm_store, tmp_path):
    """The repo's config.yaml with `--config samples=... reference=...`, as a user would run it."""
    shutil.copy(REPO / "config.yaml", tmp_path / "config.yaml")
    res = run_snakemake(
        tmp_path, "--dry-run", "--cores", "2", "--config",
        f"samples={sim_data.sample_sheet}", f"reference={sim_data.reference}", "aligner=bwa",
        f"splice={{'annotation': '{sim_data.annotation}', 'distance': 100}}",
        f"protein={{'enabled': True, 'annotation': '{sim_data.annotation}', 'model_store': '{esm_store.path}', "
        f"'model': '{esm_store.model}'}}",
        snakefile=REPO / "Snakefile",
    )
    assert res.returncode == 0, res.stderr
    counts = job_counts(res.stdout)
    assert counts["align_reads"] == 2 and counts["index_bwa"] == 1 and counts["evaluate_calls"] == 2
    # two samples + the cohort (joint: auto, two samples), each scored for splicing and protein effects
    assert counts["score_splicing"] == 3 and counts["score_missense"] == 3 and counts["annotate_coding"] == 3


def test_lint_clean(sim_data, esm_store, tmp_path):
    cfg = scenario_config("joint", sim_data, tmp_path, esm_store)
    res = run_snakemake(tmp_path, "--lint", "--configfile", str(cfg), snakefile=GERMLINE)
    assert res.returncode == 0, res.stdout + res.stderr
    assert "Lints for" not in res.stdout + res.stderr


def _sheet(tmp_path, text):
    path = tmp_path / "bad.tsv"
    path.write_text(text)
    return path


BAD_INPUTS = {
    "missing reads file": ("sample\tfq1\tfq2\nS1\t{fq1}\t/nonexistent/r2.fq.gz\n", {},
                           "bad.tsv line 2: fq2: file not found: /nonexistent/r2.fq.gz"),
    "duplicate sample": ("sample\tfq1\tfq2\nS1\t{fq1}\t{fq2}\nS1\t{fq1}\t{fq2}\n", {},
                         "bad.tsv line 3: duplicate sample 'S1'"),
    "sample name with shell metacharacters": ("sample\tfq1\tfq2\n$(touch pwned)\t{fq1}\t{fq2}\n", {},
                                              "must match ^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$"),
    "both fastq and bam": ("sample\tfq1\tfq2\tbam\nS1\t{fq1}\t{fq2}\t{fq1}\n", {},
                           "line 2: give either fq1 and fq2, or bam"),
    "neither fastq nor bam": ("sample\ttruth\nS1\t{fq1}\n", {}, "line 2: give either fq1 and fq2, or bam"),
    "unknown column": ("sample\tfq1\tfq2\tflowcell\nS1\t{fq1}\t{fq2}\tL1\n", {}, "line 1: unknown column 'flowcell'"),
    "config typo": ("sample\tfq1\tfq2\nS1\t{fq1}\t{fq2}\n", {"aligenr": "bwa"}, "unknown key 'aligenr'"),
    "reference without sequences": ("sample\tfq1\tfq2\nS1\t{fq1}\t{fq2}\n", {"reference": "EMPTY"},
                                    "contains no sequences"),
    "BAM contigs not in reference": ("sample\tbam\nS1\t{na12878_bam}\n", {},
                                     "has reads on contigs not in the reference: chr20"),
    "splicing annotation missing": ("sample\tfq1\tfq2\nS1\t{fq1}\t{fq2}\n",
                                    {"splice": {"annotation": "/nonexistent/genes.gff3"}},
                                    "splice.annotation: file not found: /nonexistent/genes.gff3"),
    "splicing annotation malformed": ("sample\tfq1\tfq2\nS1\t{fq1}\t{fq2}\n", {"splice": {"annotation": "BADGFF"}},
                                      "splice.annotation: "),
    "SpliceAI weights not staged": ("sample\tfq1\tfq2\nS1\t{fq1}\t{fq2}\n", {"weights": "EMPTYDIR"},
                                    "spliceai1.h5: SpliceAI weight file missing; stage the weights with "
                                    "`pip install spliceai==1.3.1`"),
    "protein stage without an annotation": ("sample\tfq1\tfq2\nS1\t{fq1}\t{fq2}\n", {"protein": {"enabled": True}},
                                            "protein.annotation: required while protein.enabled is true"),
    "protein model not staged": ("sample\tfq1\tfq2\nS1\t{fq1}\t{fq2}\n",
                                 {"protein": {"enabled": True, "annotation": "SIMGFF", "model_store": "EMPTYDIR",
                                              "model": "esm2_t6_8M"}},
                                 "protein.model: "),
    "protein annotation on other contig names": ("sample\tfq1\tfq2\nS1\t{fq1}\t{fq2}\n",
                                                 {"protein": {"enabled": True, "annotation": "OTHERNAMES",
                                                              "model_store": "EMPTYDIR"}},
                                                 "annotation and reference use different names"),
    "splicing distance out of range": ("sample\tfq1\tfq2\nS1\t{fq1}\t{fq2}\n", {"splice": {"distance": 5000}},
                                       "splice.distance"),
}


@pytest.mark.parametrize("case", BAD_INPUTS, ids=str)
def test_bad_input_stops_before_any_job(case, sim_data, na12878, tmp_path, monkeypatch):
    text, extra, message = BAD_INPUTS[case]
    if extra.get("weights") == "EMPTYDIR":  # a site whose compute nodes read weights from an unstaged folder
        (tmp_path / "weights").mkdir()
        monkeypatch.setenv("AISCI_SPLICEAI_WEIGHTS", str(tmp_path / "weights"))
        extra = {}
    if extra.get("splice", {}).get("annotation") == "BADGFF":
        bad = tmp_path / "genes.gff3"
        bad.write_text("##gff-version 3\nchr1\tx\texon\t10\tnine\t.\t+\t.\tParent=t1\n")
        extra = {"splice": {"annotation": str(bad)}}
        message = f"splice.annotation: {bad} line 2"
    protein = extra.get("protein", {})
    if protein.get("annotation") == "SIMGFF":
        protein["annotation"] = str(sim_data.annotation)
    if protein.get("annotation") == "OTHERNAMES":  # genes of another assembly's scaffolds
        gff = tmp_path / "scaffolds.gff3"
        gff.write_text("".join(line.replace("chr", "scaffold_", 1) if not line.startswith("#") else line
                               for line in sim_data.annotation.read_text().splitlines(keepends=True)))
        protein["annotation"] = str(gff)
    if protein.get("model_store") == "EMPTYDIR":
        (tmp_path / "models").mkdir()
        protein["model_store"] = str(tmp_path / "models")
        if case == "protein model not staged":  # the exact command that stages it
            message += (f"model 'esm2_t6_8M' is not staged: the model store {tmp_path / 'models'} has no "
                        f"manifest.json; stage it with `aisci models pull facebook/esm2_t6_8M_UR50D --model-store {tmp_path / 'models'} "
                        "--name esm2_t6_8M`")
    fq1, fq2 = sim_data.reads["S1"]
    sheet = _sheet(tmp_path, text.format(fq1=fq1, fq2=fq2, na12878_bam=na12878 / "NA12878_S1.chr20.10_10p1mb.bam"))
    if extra.get("reference") == "EMPTY":
        (tmp_path / "empty.fa").write_text(">chr1\n")
        extra = {**extra, "reference": str(tmp_path / "empty.fa")}
    cfg = write_config(tmp_path / "config.yaml", **{"samples": str(sheet), "reference": str(sim_data.reference), **extra})
    workdir = tmp_path / "run"
    workdir.mkdir()
    # a real (not dry) run: it must refuse before scheduling anything
    res = run_snakemake(workdir, "--cores", "1", "--configfile", str(cfg))
    assert res.returncode != 0
    assert message in res.stderr, res.stderr
    assert "Traceback" not in res.stderr
    assert not (workdir / "results").exists() and not (workdir / "resources").exists()
    assert not (workdir / "pwned").exists()


@pytest.mark.parametrize("aligner", ["minimap2", "bwa"])
def test_prebuilt_index_is_used_and_a_foreign_one_refused(aligner, sim_data, tmp_path):
    """config index.<aligner>: no index job, align_reads names the prebuilt index; one built from another
    FASTA stops the run before any job, naming the file and the contig."""
    import gzip
    import subprocess

    fasta = tmp_path / "genome.fa"
    fasta.write_bytes(gzip.decompress(sim_data.reference.read_bytes()))
    other = tmp_path / "other.fa"
    other.write_text(fasta.read_text().replace(">chr2", ">chr2_renamed", 1))
    for fa in (fasta, other):
        if aligner == "minimap2":
            subprocess.run(["minimap2", "-x", "sr", "-d", f"{fa}.mmi", str(fa)], check=True, capture_output=True)
        else:
            subprocess.run(["bwa", "index", str(fa)], check=True, capture_output=True)
    index = {"minimap2": f"{fasta}.mmi", "bwa": str(fasta)}[aligner]
    cfg = write_config(tmp_path / "c.yaml", samples=str(sim_data.sample_sheet), reference=str(sim_data.reference),
                       aligner=aligner, index={aligner: index}, splice={"enabled": False})
    res = run_snakemake(tmp_path / "run", "--dry-run", "--cores", "2", "--configfile", str(cfg), "--printshellcmds")
    assert res.returncode == 0, res.stderr[-3000:]
    counts = job_counts(res.stdout)
    assert "index_minimap2" not in counts and "index_bwa" not in counts and counts["align_reads"] == 2
    assert f"--index {index}" in res.stdout
    foreign = {"minimap2": f"{other}.mmi", "bwa": str(other)}[aligner]
    cfg = write_config(tmp_path / "c2.yaml", samples=str(sim_data.sample_sheet), reference=str(sim_data.reference),
                       aligner=aligner, index={aligner: foreign}, splice={"enabled": False})
    res = run_snakemake(tmp_path / "run2", "--dry-run", "--cores", "2", "--configfile", str(cfg))
    assert res.returncode != 0
    out = res.stdout + res.stderr
    assert f"c2.yaml: index.{aligner}: " in out and "chr2_renamed" in out, out[-2000:]
    assert not (tmp_path / "run2" / "results").exists()


def test_lane_rows_align_in_one_job_with_a_read_group_each(sim_data, tmp_path):
    """Two rows of one sample (lanes, as nf-core/sarek sheets give them): one check and one alignment job,
    every lane's pair passed with its lane id."""
    (a1, a2), (b1, b2) = sim_data.reads["S1"], sim_data.reads["S2"]
    sheet = tmp_path / "lanes.tsv"
    sheet.write_text(f"sample\tlane\tfq1\tfq2\nS1\tL001\t{a1}\t{a2}\nS1\tL002\t{b1}\t{b2}\n")
    cfg = write_config(tmp_path / "c.yaml", samples=str(sheet), reference=str(sim_data.reference),
                       splice={"enabled": False})
    res = run_snakemake(tmp_path / "run", "--dry-run", "--cores", "2", "--configfile", str(cfg), "--printshellcmds")
    assert res.returncode == 0, res.stdout[-3000:] + res.stderr[-3000:]
    counts = job_counts(res.stdout)
    assert counts["align_reads"] == counts["check_reads"] == 1 and "score_splicing" not in counts
    lanes = f"--lane L001 {a1} {a2} --lane L002 {b1} {b2}"
    assert f"aisci check-reads --sample S1 {lanes} --out" in res.stdout
    assert f"--index resources/reference/genome.mmi {lanes} --sample S1" in res.stdout
