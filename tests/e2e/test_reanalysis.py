"""`aisci reanalyze` end to end on a real Dask LocalCluster: a synthetic cohort on the simulated genome, scored by
the real SpliceAI models and a small ESM-2; one sample added; a run killed and resumed; a malformed VCF."""

from __future__ import annotations

import os
import re
import signal
import subprocess
import sys
import time
from collections import Counter
from pathlib import Path

import pyarrow.parquet as pq
import pytest

pytestmark = pytest.mark.slow

from tests.unit.cohort.test_store import expected_counts as count_records
from tests.unit.cohort.test_store import store_counts as summary_counts

REPO = Path(__file__).resolve().parents[2]


def aisci(*args: str, timeout: int = 600) -> subprocess.CompletedProcess:
    """Run the aisci CLI as a user would."""
    return subprocess.run([sys.executable, "-m", "aisci.cli", *args], capture_output=True, text=True, timeout=timeout,
                          cwd=REPO)


def model_args(sim_data, esm_store) -> list[str]:
    return ["--ref", str(sim_data.reference), "--annotation", str(sim_data.annotation), "--model", esm_store.model,
            "--model-store", str(esm_store.path), "--threads", "1"]


def expected_counts(vcfs: list[Path]) -> dict[str, tuple[int, ...]]:
    """variant_id -> (ac, called_alleles, n_records, carriers, hom_alt), counted independently from pysam's records."""
    import pysam

    samples = {}
    for path in vcfs:
        with pysam.VariantFile(str(path)) as vcf:
            samples[str(path)] = [
                (r.chrom, r.pos, r.ref, ",".join(r.alts),
                 "/".join("." if a is None else str(a) for a in (r.samples[0]["GT"] or (None,))))
                for r in vcf if r.alts]
    return count_records(samples)


def store_counts(store: Path) -> dict[str, tuple[int, ...]]:
    from aisci.cohort.store import CohortStore

    return summary_counts(CohortStore(store))


def cache_rows(store: Path, stage: str) -> Counter:
    """variant_id -> number of cache files holding it (1 everywhere = scored once)."""
    seen: Counter = Counter()
    for part in (store / "scores" / stage).rglob("*.parquet"):
        seen.update(set(pq.read_table(part, columns=["variant_id"]).column("variant_id").to_pylist()))
    return seen


@pytest.fixture(scope="module")
def cohort(sim_data, tmp_path_factory):
    """Eight bcftools-style sample VCFs on the simulated genome, half the sites in its genes; the last one held back."""
    from aisci.demo.cohort import simulate_cohort

    out = tmp_path_factory.mktemp("cohort")
    manifest = simulate_cohort(out, 8, 25, seed=5, reference=sim_data.reference, annotation=sim_data.annotation)
    lines = manifest.read_text().splitlines()
    first = out / "first7.tsv"
    first.write_text("\n".join(lines[:-1]) + "\n")
    return out, first, manifest


@pytest.fixture(scope="module")
def first_run(cohort, sim_data, esm_store, tmp_path_factory):
    """`aisci reanalyze --stage all` of seven samples on a 2-worker LocalCluster."""
    out, first, _ = cohort
    store = tmp_path_factory.mktemp("run") / "store"
    proc = aisci("reanalyze", "--manifest", str(first), "--store", str(store), "--stage", "all", "--workers", "2",
                 "--shard-size", "3", "--no-progress", *model_args(sim_data, esm_store))
    assert proc.returncode == 0, proc.stdout + proc.stderr
    return store, proc


def test_localcluster_run_builds_the_store_and_scores_each_variant_once(cohort, first_run):
    out, first, _ = cohort
    store, proc = first_run
    assert "Dask dashboard: http://" in proc.stderr
    assert "samples ingested: 7" in proc.stdout
    vcfs = [out / line.split("\t")[1] for line in first.read_text().splitlines()[1:]]
    expected = expected_counts(vcfs)
    assert store_counts(store) == expected
    shared = [k for k, v in expected.items() if v[2] >= 2]
    assert shared, "the cohort must share variants between samples for this test to mean anything"
    for stage in ("splice", "protein"):
        seen = cache_rows(store, stage)
        assert set(seen) == set(expected), stage  # every variant of the store has an entry ...
        assert set(seen.values()) == {1}, stage  # ... written once, though many are in several samples
        assert f"{stage}: {len(expected)} variants scored now, 0 taken from the score cache" in proc.stdout
    # no file in the store is visible under a temporary name
    assert not [p for p in store.rglob("*") if p.is_file() and ".part" in p.name and ".staging" not in p.parts]


def test_second_run_recomputes_nothing(cohort, first_run, sim_data, esm_store):
    _, first, _ = cohort
    store, _ = first_run
    before = {p: p.stat().st_mtime_ns for p in store.rglob("*.parquet")}
    proc = aisci("reanalyze", "--manifest", str(first), "--store", str(store), "--stage", "all", "--workers", "1",
                 "--no-progress", *model_args(sim_data, esm_store))
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert "samples ingested: 0, already in the store and unchanged: 7" in proc.stdout
    assert "splice: 0 variants scored now" in proc.stdout and "protein: 0 variants scored now" in proc.stdout
    assert {p: p.stat().st_mtime_ns for p in store.rglob("*.parquet")} == before


def test_adding_one_sample_touches_its_files_and_scores_only_its_new_variants(cohort, first_run, sim_data,
                                                                               esm_store):
    out, first, manifest = cohort
    store, _ = first_run
    calls_before = {p: p.stat().st_mtime_ns for p in (store / "calls").rglob("*.parquet")}
    known = set(store_counts(store))
    proc = aisci("reanalyze", "--manifest", str(manifest), "--store", str(store), "--stage", "all", "--workers", "1",
                 "--no-progress", *model_args(sim_data, esm_store))
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert "samples ingested: 1, already in the store and unchanged: 7" in proc.stdout
    vcfs = [out / line.split("\t")[1] for line in manifest.read_text().splitlines()[1:]]
    expected = expected_counts(vcfs)
    assert store_counts(store) == expected  # summaries updated incrementally = counted from scratch
    new = len(set(expected) - known)
    assert f"splice: {new} variants scored now, {len(known)} taken from the score cache" in proc.stdout
    calls_after = {p: p.stat().st_mtime_ns for p in (store / "calls").rglob("*.parquet")}
    assert {p: t for p, t in calls_after.items() if p in calls_before} == calls_before  # old samples' files untouched
    added = set(calls_after) - set(calls_before)
    assert added and all(p.name.startswith(manifest.read_text().splitlines()[-1].split("\t")[0] + ".") for p in added)


def test_killed_run_resumes_from_committed_shards_and_cached_scores(cohort, sim_data, esm_store, tmp_path):
    """SIGKILL to the whole process group mid-scoring, then the same command again."""
    _, _, manifest = cohort
    store = tmp_path / "store"
    cmd = [sys.executable, "-m", "aisci.cli", "reanalyze", "--manifest", str(manifest), "--store", str(store),
           "--stage", "protein", "--workers", "1", "--shard-size", "1", "--score-chunk", "4", "--no-progress",
           *model_args(sim_data, esm_store)]
    proc = subprocess.Popen(cmd, cwd=REPO, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, start_new_session=True)
    deadline = time.monotonic() + 300
    try:
        while time.monotonic() < deadline and proc.poll() is None:
            if len(list((store / "scores").rglob("*.parquet"))) >= 2:
                break
            time.sleep(0.05)
        assert proc.poll() is None, "the run finished before it could be killed:\n" + proc.stdout.read().decode()
        os.killpg(proc.pid, signal.SIGKILL)
    finally:
        proc.wait(timeout=60)
    parts_before = {p: p.stat().st_mtime_ns for p in (store / "scores").rglob("*.parquet")}
    done_before = cache_rows(store, "protein")
    # every visible Parquet file is complete
    for p in store.rglob("*.parquet"):
        pq.read_metadata(p)
    resumed = aisci(*cmd[3:])
    assert resumed.returncode == 0, resumed.stdout + resumed.stderr
    assert "samples ingested: 0, already in the store and unchanged: 8" in resumed.stdout
    expected = expected_counts([Path(line.split("\t")[1]) if Path(line.split("\t")[1]).is_absolute()
                                else manifest.parent / line.split("\t")[1]
                                for line in manifest.read_text().splitlines()[1:]])
    assert store_counts(store) == expected
    seen = cache_rows(store, "protein")
    assert set(seen) == set(expected) and set(seen.values()) == {1}  # nothing scored twice
    assert f"protein: {len(expected) - len(done_before)} variants scored now, {len(done_before)} taken" in resumed.stdout
    assert all(p.stat().st_mtime_ns == t for p, t in parts_before.items())
    # the kill may land while a cache file is written: its temporary is a hidden name that no *.parquet glob
    # matches; every visible Parquet file is complete
    assert all(p.name.startswith(".") and not p.name.endswith(".parquet")
               for p in store.rglob("*") if p.is_file() and ".part" in p.name)
    for p in store.rglob("*.parquet"):
        pq.read_metadata(p)


def test_malformed_vcf_fails_its_sample_only(cohort, tmp_path):
    out, first, _ = cohort
    lines = first.read_text().splitlines()
    bad = tmp_path / "bad.vcf"
    text = (out / lines[1].split("\t")[1]).read_bytes()
    import gzip

    body = gzip.decompress(text).decode().splitlines()
    data = [i for i, line in enumerate(body) if not line.startswith("#")]
    fields = body[data[2]].split("\t")
    fields[1] = "12x"
    body[data[2]] = "\t".join(fields)
    bad.write_text("\n".join(body) + "\n")
    manifest = tmp_path / "samples.tsv"
    rows = [f"{line.split(chr(9))[0]}\t{out / line.split(chr(9))[1]}" for line in lines[1:3]]
    manifest.write_text("sample\tvcf\n" + "\n".join(rows) + "\nBAD1\t" + str(bad) + "\n")
    store = tmp_path / "store"
    proc = aisci("reanalyze", "--manifest", str(manifest), "--store", str(store), "--stage", "none", "--workers", "1",
                 "--no-progress")
    assert proc.returncode == 1
    assert "samples ingested: 2" in proc.stdout
    assert "FAILED (1):" in proc.stdout
    line_no = data[2] + 1
    assert f"sample BAD1: {bad} line {line_no}: POS '12x'" in proc.stdout
    from aisci.cohort.store import CohortStore

    assert sorted(CohortStore(store).samples()) == sorted(r.split("\t")[0] for r in rows)


def test_bad_manifest_stops_before_any_worker_starts(tmp_path):
    manifest = tmp_path / "samples.tsv"
    manifest.write_text("sample\tvcf\nA 1\tx.vcf.gz\n")
    proc = aisci("reanalyze", "--manifest", str(manifest), "--store", str(tmp_path / "store"), "--stage", "none")
    assert proc.returncode == 1
    assert f"{manifest} line 2: sample 'A 1' must match" in proc.stderr
    assert "Dask dashboard" not in proc.stderr
    assert not (tmp_path / "store").exists()


def test_reanalysis_workflow_runs_one_job_per_shard(cohort, sim_data, esm_store, tmp_path):
    """`snakemake --profile profiles/local` on workflows/reanalysis, protein stage: counts and cache complete."""
    from tests.conftest import run_snakemake, write_config

    out, first, _ = cohort
    store = tmp_path / "store"
    config = write_config(tmp_path / "config.yaml", manifest=str(first), store=str(store), shard_size=3,
                          stages=["protein"], reference=str(sim_data.reference),
                          protein={"annotation": str(sim_data.annotation), "model": esm_store.model,
                                   "model_store": str(esm_store.path)})
    proc = run_snakemake(tmp_path, "--profile", str(REPO / "profiles" / "local"), "--configfile", str(config),
                         snakefile=REPO / "workflows" / "reanalysis" / "Snakefile")
    assert proc.returncode == 0, proc.stdout + proc.stderr
    reports = sorted((tmp_path / "results" / "reanalysis" / "shards").glob("*.json"))
    assert [p.name for p in reports] == ["0.json", "1.json", "2.json"]  # 7 samples in shards of 3
    expected = expected_counts([out / line.split("\t")[1] for line in first.read_text().splitlines()[1:]])
    assert store_counts(store) == expected
    seen = cache_rows(store, "protein")
    assert set(seen) == set(expected) and set(seen.values()) == {1}
    assert (tmp_path / "results" / "reanalysis" / "cohort.tsv").read_text().startswith("chrom\tvariants\tsamples\n")
    # the run's page, opened in a real browser: every section, the numbers of the store, no console message
    from tests.browser import check_page

    page = tmp_path / "results" / "reanalysis" / "report.html"
    seen, console = check_page(page, tmp_path)
    assert seen["sections"] == ["cohort", "variants", "scores", "ingest"] and console == [], (seen, console)
    html = page.read_text()
    assert f"<div><b>{len(expected):,}</b><span>distinct variants</span></div>" in html
    assert "<div><b>7</b><span>samples</span></div>" in html


def test_slurm_workers_cpu_and_gpu_jobs(cohort, sim_data, esm_store, tmp_path):
    """`--slurm`: dask-jobqueue starts a CPU worker job in partition cpu and a GPU worker job (gres gpu:1) in
    partition gpu on the local Slurm cluster; every model task runs on the GPU worker."""
    from datetime import datetime, timedelta

    from tests.slurm_cluster import ensure_cluster, sacct_rows

    ensure_cluster()
    out, first, _ = cohort
    manifest = tmp_path / "samples.tsv"
    lines = first.read_text().splitlines()
    manifest.write_text("\n".join([lines[0]] + [f"{r.split(chr(9))[0]}\t{out / r.split(chr(9))[1]}"
                                                 for r in lines[1:4]]) + "\n")
    start = (datetime.now() - timedelta(seconds=5)).strftime("%Y-%m-%dT%H:%M:%S")
    proc = aisci("reanalyze", "--manifest", str(manifest), "--store", str(tmp_path / "store"), "--stage", "protein",
                 "--slurm", "--slurm-cpu-jobs", "1", "--slurm-gpu-jobs", "1", "--slurm-cpu-memory", "2GB",
                 "--slurm-gpu-memory", "3GB", "--slurm-walltime", "00:20:00", "--score-chunk", "10",
                 "--slurm-log-directory", str(tmp_path / "logs"), "--no-progress",
                 *model_args(sim_data, esm_store))
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert "samples ingested: 3" in proc.stdout
    tasks = re.search(r"protein: \d+ variants scored now, 0 taken from the score cache; (\d+) scoring tasks, "
                      r"(\d+) on GPU workers", proc.stdout)
    assert tasks and int(tasks.group(1)) > 0 and tasks.group(1) == tasks.group(2), proc.stdout
    rows = sacct_rows("-X", "--allusers", "-S", start, "--name", "aisci-dask-cpu,aisci-dask-gpu",
                      "-o", "JobID,JobName,Partition,AllocTRES,State")
    cpu = [r for r in rows if r["JobName"] == "aisci-dask-cpu"]
    gpu = [r for r in rows if r["JobName"] == "aisci-dask-gpu"]
    assert len(cpu) == 1 and cpu[0]["Partition"] == "cpu" and "gres/gpu" not in cpu[0]["AllocTRES"], rows
    assert len(gpu) == 1 and gpu[0]["Partition"] == "gpu" and "gres/gpu=1" in gpu[0]["AllocTRES"], rows


def test_joins_an_existing_scheduler_and_leaves_it_running(cohort, tmp_path):
    """`--scheduler tcp://...`: a real `dask scheduler` + `dask worker` started outside aisci; progress bars shown."""
    import json

    out, first, _ = cohort
    rows = first.read_text().splitlines()
    manifest = tmp_path / "samples.tsv"
    manifest.write_text("\n".join([rows[0]] + [f"{r.split(chr(9))[0]}\t{out / r.split(chr(9))[1]}"
                                               for r in rows[1:3]]) + "\n")
    bindir = Path(sys.executable).parent
    info = tmp_path / "scheduler.json"
    procs = [subprocess.Popen([str(bindir / "dask"), "scheduler", "--scheduler-file", str(info), "--port", "0",
                               "--dashboard-address", ":0"], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)]
    try:
        deadline = time.monotonic() + 60
        while not info.exists() and time.monotonic() < deadline:
            time.sleep(0.2)
        procs.append(subprocess.Popen([str(bindir / "dask"), "worker", "--scheduler-file", str(info), "--nworkers",
                                       "1", "--nthreads", "1"], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL))
        address = json.loads(info.read_text())["address"]
        proc = aisci("reanalyze", "--manifest", str(manifest), "--store", str(tmp_path / "store"), "--stage", "none",
                     "--scheduler", address)
        assert proc.returncode == 0, proc.stdout + proc.stderr
        assert "samples ingested: 2" in proc.stdout
        assert "ingest: 100%" in proc.stderr  # the progress bar
        assert "Dask dashboard: http://" in proc.stderr
        assert all(p.poll() is None for p in procs)  # aisci only disconnected
    finally:
        for p in procs[::-1]:
            p.terminate()
            p.wait(timeout=30)


def test_run_killed_during_ingest_continues_from_committed_shards(cohort, tmp_path):
    """SIGKILL while the two large samples at the end are being ingested (shards of one sample): the eight
    committed samples are kept and not parsed again; the result equals the independent count."""
    import json

    from aisci.demo.cohort import simulate_cohort

    out, _, manifest = cohort
    big = simulate_cohort(tmp_path / "big", 2, 120_000, seed=9, sample_prefix="BIG")
    rows = [f"{r.split(chr(9))[0]}\t{out / r.split(chr(9))[1]}" for r in manifest.read_text().splitlines()[1:]]
    rows += [f"{r.split(chr(9))[0]}\t{big.parent / r.split(chr(9))[1]}" for r in big.read_text().splitlines()[1:]]
    both = tmp_path / "samples.tsv"
    both.write_text("sample\tvcf\n" + "\n".join(rows) + "\n")
    store = tmp_path / "store"
    cmd = [sys.executable, "-m", "aisci.cli", "reanalyze", "--manifest", str(both), "--store", str(store),
           "--stage", "none", "--workers", "1", "--shard-size", "1", "--no-progress"]
    proc = subprocess.Popen(cmd, cwd=REPO, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, start_new_session=True)
    committed = 0
    try:
        deadline = time.monotonic() + 300
        while time.monotonic() < deadline and proc.poll() is None and committed < 8:
            try:
                committed = len(json.loads((store / "store.json").read_text())["samples"])
            except (OSError, ValueError, KeyError):
                pass
            time.sleep(0.02)
        os.killpg(proc.pid, signal.SIGKILL)
    finally:
        proc.wait(timeout=60)
    committed = len(json.loads((store / "store.json").read_text())["samples"])
    assert 8 <= committed < 10, f"the kill must land while a large sample is being ingested ({committed} committed)"
    kept = {p: p.stat().st_mtime_ns for p in (store / "calls").rglob("*.parquet")}
    resumed = aisci(*cmd[3:])
    assert resumed.returncode == 0, resumed.stdout + resumed.stderr
    assert f"samples ingested: {10 - committed}, already in the store and unchanged: {committed}" in resumed.stdout
    assert all(p.stat().st_mtime_ns == t for p, t in kept.items())
    assert store_counts(store) == expected_counts([Path(r.split("\t")[1]) for r in rows])
