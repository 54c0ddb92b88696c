"""The germline pipeline on a real local Slurm cluster: partitions, GPUs, retries, restarts, usage report."""

from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import sys
import time
from collections import Counter
from pathlib import Path

import pytest

from aisci.slurm.sacct import RUN_ID_DEFAULT_SINCE, rule_of
from tests.conftest import REPO, run_snakemake, write_config
from tests.slurm_cluster import ensure_cluster, sacct_rows

pytestmark = pytest.mark.slow

PROFILE = REPO / "profiles" / "slurm"
# the plugin's first status check waits 40 s by default; a test cluster answers at once
FAST = ["--slurm-init-seconds-before-status-checks", "2", "--slurm-partition-config", str(PROFILE / "partitions.yaml")]


@pytest.fixture(scope="module", autouse=True)
def cluster():
    ensure_cluster()


def slurm_args(cfg: Path) -> list[str]:
    return ["--profile", str(PROFILE), "--configfile", str(cfg), *FAST]


def run_id(output: str) -> str:
    m = re.search(r"SLURM run ID: (\S+)", output)
    assert m, "no SLURM run ID in the output"
    return m.group(1)


def sacct(run: str, *fields: str) -> list[dict[str, str]]:
    """One row per job (allocation lines only) of a run, with the given columns.

    ``-S``: without it sacct shows only jobs since midnight, and a run that crossed midnight lost its first jobs.
    """
    return sacct_rows("--name", run, "-X", "--allusers", "-S", RUN_ID_DEFAULT_SINCE, "-o", ",".join(fields))


def popen_snakemake(workdir: Path, *args: str) -> subprocess.Popen:
    env = dict(os.environ, PATH=f"{Path(sys.executable).parent}{os.pathsep}{os.environ['PATH']}")
    cmd = [sys.executable, "-m", "snakemake", "--snakefile", str(REPO / "workflows/germline/Snakefile"),
           "--directory", str(workdir), *args]
    log = open(workdir.parent / f"{workdir.name}.driver.log", "w")
    return subprocess.Popen(cmd, stdout=log, stderr=subprocess.STDOUT, env=env, start_new_session=True)


def running_jobs(rule_fragment: str) -> list[str]:
    out = subprocess.run(["squeue", "-h", "-t", "RUNNING", "-o", "%i|%k"], capture_output=True, text=True).stdout
    return [line.split("|")[0] for line in out.splitlines() if rule_fragment in line]


def wait_for(predicate, timeout: float, what: str):
    end = time.time() + timeout
    while time.time() < end:
        value = predicate()
        if value:
            return value
        time.sleep(0.5)
    raise AssertionError(f"timed out after {timeout:.0f} s waiting for {what}")


def check_results(workdir: Path, samples) -> None:
    for sample in samples:
        m = json.loads((workdir / "results" / "eval" / f"{sample}.json").read_text())
        assert m["snv"]["recall"] >= 0.97 and m["snv"]["precision"] >= 0.98, m["snv"]
        assert (workdir / "results" / "context" / f"{sample}.context.parquet").exists()
    assert not list((workdir / "results").rglob("*.tmp*"))


def first_genes(gff3: Path, n: int, out: Path) -> Path:
    """The first ``n`` genes of a GFF3: the SpliceAI jobs stay a few seconds long on the CPU-only test node
    (all ~70 demo genes take minutes there; on a real GPU they take seconds)."""
    keep, genes = [], 0
    for line in gff3.read_text().splitlines():
        f = line.split("\t")
        if len(f) == 9 and f[2] == "gene":
            genes += 1
        if line.startswith("#") or genes <= n:
            keep.append(line)
    out.write_text("\n".join(keep) + "\n")
    return out


@pytest.fixture(scope="module")
def slurm_run(demo_data, esm_store, tmp_path_factory):
    """The germline pipeline on the demo data (as `make demo` makes it) through profiles/slurm, run once."""
    workdir = tmp_path_factory.mktemp("slurm_run")
    # 250 kb chunks: 8 per callset, more than the node's 2 cores, so the 'calls' groups must
    # stack their chunks in series to fit (the profile's `cores`)
    genes = str(first_genes(demo_data.annotation, 8, workdir / "genes.gff3"))
    cfg = write_config(workdir / "c.yaml", samples=str(demo_data.sample_sheet), reference=str(demo_data.reference),
                       calling={"joint": True, "chunk_size": 250000, "scoring_groups": 1}, splice={"annotation": genes},
                       protein={"enabled": True, "annotation": genes, "model_store": str(esm_store.path),
                                "model": esm_store.model}, report={"multiqc": True})
    t0 = time.time()
    res = run_snakemake(workdir / "run", *slurm_args(cfg), timeout=900)
    wall = time.time() - t0
    assert res.returncode == 0, res.stderr[-5000:]
    print(f"\nslurm pipeline wall: {wall:.1f} s")
    return workdir / "run", run_id(res.stdout + res.stderr), wall


def test_cpu_rules_on_cpu_partition_gpu_rules_on_gpu_partition(slurm_run, demo_data):
    sim_data = demo_data
    workdir, run, _ = slurm_run
    check_results(workdir, sim_data.samples)
    assert (workdir / "results" / "calls" / "cohort.vcf.gz.tbi").exists()
    jobs = sacct(run, "JobID", "Partition", "AllocTRES", "Comment", "State", "AllocCPUS")
    assert jobs, "sacct shows no jobs for the run"
    assert all(int(j["AllocCPUS"]) <= 2 for j in jobs), jobs  # every job fits the 2-CPU node
    gpu_rules = ("annotate_context", "cache_splicing", "cache_missense")
    gpu = [j for j in jobs if any(r in j["Comment"] for r in gpu_rules)]
    cpu = [j for j in jobs if not any(r in j["Comment"] for r in gpu_rules)]
    # context per sample; SpliceAI and protein LM scores once for all callsets (one scoring group)
    assert len(gpu) == len(sim_data.samples) + 2 and cpu
    for j in cpu:
        assert j["Partition"] == "cpu" and "gres/gpu" not in j["AllocTRES"], j
    for j in gpu:
        assert j["Partition"] == "gpu" and "gres/gpu=1" in j["AllocTRES"], j
    assert all(j["State"] == "COMPLETED" for j in jobs), jobs
    # grouped: one 'align' and one 'calls' job per sample (Snakemake names a group job
    # <group>_<member rules>), plus one 'reference' job (the genome's copy and its index)
    assert sum(j["Comment"].startswith("rule_align_align_reads_") for j in jobs) == len(sim_data.samples)
    assert [j["Comment"] for j in jobs if j["Comment"].startswith("rule_reference_")] == [
        "rule_reference_index_minimap2_prepare_reference"]
    # (the 'calls' group job's rules, sorted: annotate_coding first, as the protein stage is on)
    assert sum(j["Comment"].startswith("rule_calls_annotate_coding_bcftools_stats_call_group_") for j in jobs) == len(sim_data.samples) + 1
    # per sample 'align', 'calls' (with the coding consequences) and annotate_context; the cohort's
    # 'calls'; per callset 'splice' and 'protein' (its scores from the cache, gathered); once, the
    # 'reference' group and the cache_splicing and cache_missense jobs that score every callset's alleles;
    # last, the report, then MultiQC
    n = len(sim_data.samples)
    assert len(jobs) == 3 * n + 1 + 2 * (n + 1) + 1 + 2 + 1 + 1, [j["Comment"] for j in jobs]
    assert [j["Partition"] for j in jobs if j["Comment"] in ("rule_report", "rule_multiqc")] == ["cpu", "cpu"]
    # the rules declare their groups, so the Snakemake inside a group job runs all its rules in one job
    # step (without the directive: one step per rule, each starting Snakemake again)
    grouped = [j["JobID"] for j in jobs if rule_of(j["Comment"], "").startswith("group:")]
    assert len(grouped) == 1 + 2 * n + 1 + 2 * (n + 1), [j["Comment"] for j in jobs]
    steps = sacct_rows("-j", ",".join(grouped), "--allusers", "-S", RUN_ID_DEFAULT_SINCE, "-o", "JobID")
    numbered = Counter(s["JobID"].split(".")[0] for s in steps if re.fullmatch(r"\d+\.\d+", s["JobID"]))
    assert numbered == dict.fromkeys(grouped, 1), (numbered, grouped)
    for sample in sim_data.samples:
        log = (workdir / "logs" / "annotate_context" / f"{sample}.log").read_text()
        assert re.search(r"CUDA_VISIBLE_DEVICES=[01]\b", log), log
    log = (workdir / "logs" / "cache_splicing" / "0000.log").read_text()
    assert re.search(r"CUDA_VISIBLE_DEVICES=[01]\b", log) and "scored now" in log, log
    log = (workdir / "logs" / "cache_missense" / "0000.log").read_text()
    assert re.search(r"CUDA_VISIBLE_DEVICES=[01]\b", log) and "scored now" in log, log
    for callset in [*sim_data.samples, "cohort"]:
        log = (workdir / "logs" / "score_splicing" / callset / "0000.log").read_text()
        assert "0 not in the cache before" in log and "allele x gene scored" in log, log
        assert (workdir / "results" / "splice" / f"{callset}.parquet").exists()
        log = (workdir / "logs" / "score_missense" / callset / "0000.log").read_text()
        assert "0 not in the cache before" in log and "scored rows" in log, log
        assert (workdir / "results" / "protein" / f"{callset}.parquet").exists()


def test_report_of_a_slurm_run_shows_its_cluster_use(slurm_run):
    """The report job runs in Slurm: it finds its run by its own job name and draws the run's jobs from sacct."""
    workdir, run, _ = slurm_run
    html = (workdir / "results" / "report.html").read_text()
    cluster = re.search(r'<section id="cluster">(.*?)</section>', html, re.S)
    assert cluster and f"Slurm run {run}:" in cluster.group(1), html[-3000:]
    assert '<svg class="gantt"' in cluster.group(1) and "<td>cache_splicing</td>" in cluster.group(1)
    assert "<td>gpu</td>" in cluster.group(1) and "<td>cpu</td>" in cluster.group(1)  # per partition
    # the same numbers as MultiQC custom content, and MultiQC (its own Slurm job after the report) read them
    usage = (workdir / "results" / "qc" / "usage_mqc.tsv").read_text()
    assert "# section_name: Cluster use (aisci)" in usage
    assert re.search(r"^cache_splicing\t1\tgpu\t", usage, re.M), usage
    assert f"\n{run}\t" not in usage and "<td>report</td>" not in cluster.group(1)  # its own job: not yet recorded
    raw = json.loads((workdir / "results" / "multiqc" / "multiqc_data" / "multiqc_data.json").read_text())
    assert raw["report_saved_raw_data"]["multiqc_aisci_usage_table"]["cache_splicing"]["partitions"] == "gpu"


def test_usage_report_from_real_sacct(slurm_run, tmp_path):
    workdir, run, _ = slurm_run
    out = subprocess.run(
        [sys.executable, "-m", "aisci.cli", "usage", "--run-id", run, "--format", "json",
         "--plot", str(tmp_path / "gantt.png")],
        capture_output=True, text=True,
    )
    assert out.returncode == 0, out.stderr
    report = json.loads(out.stdout)
    rules = {r["rule"]: r for r in report["rules"]}
    assert set(rules) == {"group:reference", "group:align", "group:calls", "annotate_context",
                          "cache_splicing", "cache_missense", "group:splice", "group:protein", "report", "multiqc"}
    assert rules["group:reference"]["jobs"] == 1
    assert rules["group:align"]["jobs"] == 2 and rules["group:calls"]["jobs"] == 3
    assert rules["annotate_context"]["gpu_h"] > 0 and rules["cache_splicing"]["gpu_h"] > 0
    assert rules["cache_splicing"]["jobs"] == 1 and rules["cache_missense"]["jobs"] == 1
    assert rules["cache_missense"]["gpu_h"] > 0 and rules["group:calls"]["gpu_h"] == 0
    # per callset, its scores written from the caches: CPU jobs
    assert rules["group:splice"]["jobs"] == 3 and rules["group:splice"]["gpu_h"] == 0
    assert rules["group:protein"]["jobs"] == 3 and rules["group:protein"]["gpu_h"] == 0
    parts = {p["partition"]: p for p in report["partitions"]}
    assert set(parts) == {"cpu", "gpu"} and parts["cpu"]["gpu_h"] == 0 and parts["gpu"]["gpu_h"] > 0
    assert report["jobs"] == len(sacct(run, "JobID"))
    assert (tmp_path / "gantt.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_scancelled_job_is_retried_and_the_run_completes(sim_data, tmp_path):
    # the SpliceAI stage's placement is tested above; here it would only add minutes of CPU inference
    cfg = write_config(tmp_path / "c.yaml", samples=str(sim_data.sample_sheet), reference=str(sim_data.reference),
                       splice={"enabled": False})
    workdir = tmp_path / "run"
    workdir.mkdir()
    proc = popen_snakemake(workdir, *slurm_args(cfg))
    try:
        victim = wait_for(lambda: running_jobs("rule_align_align_reads"), 300, "a running align job")[0]
        subprocess.run(["scancel", victim], check=True)
        assert proc.wait(timeout=900) == 0, (tmp_path / "run.driver.log").read_text()[-5000:]
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGKILL)
    run = run_id((tmp_path / "run.driver.log").read_text())
    states = [(j["JobID"], j["State"]) for j in sacct(run, "JobID", "State", "Comment")]
    assert (victim, "CANCELLED by 0") in states or any(s.startswith("CANCELLED") for i, s in states if i == victim)
    check_results(workdir, sim_data.samples)


def finished_align_sample(driver_log: Path) -> str | None:
    """A sample whose align group the driver has recorded as finished (from its log), if any.

    The driver logs each job with its jobid and wildcards when it submits it, and
    `Finished jobid: N (Rule: align_reads)` once it has processed its completion.
    """
    text = driver_log.read_text()
    finished = set(re.findall(r"Finished jobid: (\d+) \(Rule: align_reads\)", text))
    block: dict[str, str] = {}
    for line in text.splitlines() + [""]:
        line = line.strip()
        if line.startswith("rule ") or not line:
            if block.get("rule") == "align_reads" and block.get("jobid") in finished:
                return block["sample"]
            block = {"rule": line[5:].rstrip(":")} if line.startswith("rule ") else {}
        elif line.startswith("jobid: "):
            block["jobid"] = line.split()[1]
        elif line.startswith("wildcards: sample="):
            block["sample"] = line.split("=", 1)[1]
    return None


def test_killed_driver_restarts_without_recomputing(sim_data, tmp_path):
    # the SpliceAI stage's placement is tested above; here it would only add minutes of CPU inference
    cfg = write_config(tmp_path / "c.yaml", samples=str(sim_data.sample_sheet), reference=str(sim_data.reference),
                       splice={"enabled": False})
    workdir = tmp_path / "run"
    workdir.mkdir()
    driver_log = tmp_path / "run.driver.log"
    proc = popen_snakemake(workdir, *slurm_args(cfg))
    try:
        # wait until one sample's align group has finished and the driver has recorded it
        sample = wait_for(lambda: finished_align_sample(driver_log), 600, "a finished align group")
        os.killpg(proc.pid, signal.SIGKILL)  # the driver dies mid-run, as on a login-node crash
        proc.wait()
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGKILL)
    done = [workdir / "results" / "align" / f"{sample}.bam", workdir / "results" / "align" / f"{sample}.bam.bai",
            *(workdir / "results" / "qc" / f"{sample}.{kind}" for kind in
              ("reads.json", "markdup.txt", "stats.txt", "flagstat.txt"))]
    finished = {p: p.stat().st_mtime_ns for p in done}
    run = run_id(driver_log.read_text())
    # the killed driver's jobs run on in Slurm: cancel them, as docs/slurm.md tells users to
    subprocess.run(["scancel", "--name", run], check=True)
    wait_for(lambda: not subprocess.run(["squeue", "-h", "--name", run], capture_output=True, text=True).stdout.strip(),
             120, "the old run's jobs to leave the queue")
    assert run_snakemake(workdir, "--unlock", "--configfile", str(cfg)).returncode == 0
    res = run_snakemake(workdir, *slurm_args(cfg), timeout=900)
    assert res.returncode == 0, res.stderr[-5000:]
    check_results(workdir, sim_data.samples)
    for path, mtime in finished.items():
        assert path.stat().st_mtime_ns == mtime, f"{path} was recomputed"
    assert "align_reads" not in _rules_run(res.stdout + res.stderr, sample)


def _rules_run(output: str, sample: str) -> set[str]:
    """Rules the restarted run executed for a sample (from its job listings)."""
    rules, current = set(), None
    for line in output.splitlines():
        line = line.strip()
        if line.startswith("rule "):
            current = line[5:].rstrip(":")
        elif line == f"wildcards: sample={sample}" and current:
            rules.add(current)
    return rules


def test_out_of_memory_job_is_retried_with_more(tmp_path):
    res = run_snakemake(
        tmp_path, "--executor", "slurm", "--jobs", "2", "--retries", "2", "--latency-wait", "5",
        "--default-resources", "slurm_partition=cpu", *FAST[:2],
        snakefile=REPO / "tests" / "e2e" / "data" / "oom" / "Snakefile", timeout=600,
    )
    assert res.returncode == 0, res.stderr[-5000:]
    assert (tmp_path / "done.txt").read_text().strip() == "800"
    run = run_id(res.stdout + res.stderr)
    jobs = sacct(run, "JobID", "State", "ReqMem")
    assert [j["ReqMem"] for j in jobs] == ["400M", "800M"], jobs
    # without cgroups Slurm's OverMemoryKill ends the job FAILED (its step CANCELLED), not OUT_OF_MEMORY
    assert jobs[0]["State"] in ("OUT_OF_MEMORY", "FAILED"), jobs
    assert jobs[1]["State"] == "COMPLETED"
    log = subprocess.run(["sacct", "--name", run, "-S", RUN_ID_DEFAULT_SINCE, "--parsable2", "-o",
                          "JobID,State,MaxRSS"], capture_output=True, text=True, check=True).stdout
    assert re.search(r"^\d+\.0\|CANCELLED", log, re.M), log  # the over-memory step was killed


def test_planned_profile_runs_on_slurm_with_estimates_from_the_last_run(slurm_run, sim_data, tmp_path):
    """Closing the loop: sacct data of the last run -> history -> plan -> a profile that runs.

    The plan reads the same site description that `aisci profile new` wrote profiles/slurm from."""
    _, run, _ = slurm_run
    history = tmp_path / "history.tsv"
    out = subprocess.run([sys.executable, "-m", "aisci.cli", "usage", "--run-id", run, "--record", str(history)],
                         capture_output=True, text=True, check=False)
    assert out.returncode == 0, out.stderr
    recorded = history.read_text().splitlines()[1:]
    # single-rule jobs only: the group jobs (reference, align, calls, splice, protein) hold several rules' times
    assert {line.split("\t")[0] for line in recorded} >= {"annotate_context", "cache_splicing", "cache_missense"}
    # the small simulated data set (the history was measured on the demo data: estimates scale with size)
    genes = str(first_genes(sim_data.annotation, 4, tmp_path / "genes.gff3"))
    cfg = write_config(tmp_path / "c.yaml", samples=str(sim_data.sample_sheet), reference=str(sim_data.reference),
                       calling={"joint": False, "chunk_size": 1000000}, splice={"annotation": genes})
    profile = tmp_path / "planned"
    out = subprocess.run(
        [sys.executable, "-m", "aisci.cli", "plan", "--site", str(REPO / "profiles/slurm/site.yaml"),
         "--snakefile", str(REPO / "workflows/germline/Snakefile"), "--configfile", str(cfg),
         "--directory", str(tmp_path / "run"), "--history", str(history), "--gpu-speedup", "1",
         "--out", str(profile)],
        capture_output=True, text=True, timeout=300, check=False,
    )
    assert out.returncode == 0, out.stderr[-3000:]
    assert "cache_splicing" in out.stdout and "profile written to" in out.stdout
    # the measured rules are estimated from the history, the others from the default
    assert "cache_splicing/gpu: mean" in out.stderr or "cache_splicing/gpu: fit" in out.stderr, out.stderr[-3000:]
    import yaml

    config = yaml.safe_load((profile / "config.yaml").read_text())
    res = run_snakemake(tmp_path / "run", "--profile", str(profile), "--configfile", str(cfg), timeout=900)
    assert res.returncode == 0, res.stderr[-5000:]
    check_results(tmp_path / "run", sim_data.samples)
    jobs = sacct(run_id(res.stdout + res.stderr), "JobID", "Partition", "AllocTRES", "Comment", "State")
    assert jobs and all(j["State"] == "COMPLETED" for j in jobs), jobs
    checked = 0
    for j in jobs:
        m = re.match(r"rule_(.+?)(?:_wildcards_(.*))?$", j["Comment"])
        rule = m.group(1) if m else None
        if rule not in config["set-resources"]:
            continue  # a group job (its rules share one placement, checked below)
        expected = {}
        for key, value in config["set-resources"][rule].items():
            if isinstance(value, str):  # an expression (per-job choice or string literal): evaluate as Snakemake does
                value = eval(value, {"wildcards": [m.group(2) or ""], "attempt": 1})
            expected[key] = value
        assert j["Partition"] == expected["slurm_partition"], (j, expected)
        if expected.get("gpu") == 0 or rule not in ("annotate_context", "cache_splicing"):
            assert "gres/gpu" not in j["AllocTRES"], j
        else:
            assert "gres/gpu=1" in j["AllocTRES"], j
        checked += 1
    # the single-rule jobs: annotate_context per sample and cache_splicing (the rest run in group jobs)
    assert checked >= 3, jobs
    for group in ("align", "calls", "splice"):
        members = [r for r, g in config.get("groups", {}).items() if g == group]
        parts = {str(config["set-resources"][r]["slurm_partition"]) for r in members}
        assert len(parts) <= 1, (group, parts)
