"""Dispatch overhead on Slurm: the germline pipeline on the real NA12878 slice, profiles/local vs profiles/slurm.

    python benchmarks/slurm_dispatch/run.py [--repeats 2] [--slurm-profile profiles/slurm [OTHER ...]]

Runs the germline pipeline on the 100 kb NA12878 chr20 slice of ../shared/data (the scenario of
tests/configs/na12878: real reads re-aligned from the BAM, calling, NIST evaluation, SpliceAI on the
GENCODE grch37 table) once with profiles/local and once through the local Slurm cluster
(scripts/slurm-local, brought up as the e2e tests do) with profiles/slurm, each in a fresh working
directory; with --repeats N, N rounds of the two; with several --slurm-profile, each in every round
(to compare settings under the same load). Both runs must find the 49 NIST truth variants of the
confident regions and write the same calls. Prints both wall times and their ratio (goal: Slurm /
local <= 2), and where the Slurm run's time went, from sacct: when each Slurm job was submitted,
started and ended, the time in which no job of the run was running (start-up of the driver, the
plugin's status checks, submission), and the time inside the jobs beyond the rules' own (Snakemake
starting twice in every job: in the job, and again in its one job step).

Unless --no-floor is given, each round also runs a chain of as many trivial rules (`touch`) as the
pipeline's longest chain of Slurm jobs, locally and through the same Slurm profile: what the
Slurm executor costs per job in a chain before any rule does work (sbatch, scheduling, Snakemake
starting inside the job and again in its job step, the plugin's status-check waits). The pipeline's
Slurm run minus its local run, set against that floor, says how much of the overhead is the
pipeline's own.

Not part of the test suite: the machine has 2 cores shared with other work, so the times are noisy;
run it more than once. Writes results.json next to this file (--out to change).
"""

from __future__ import annotations

import argparse
import csv
import gzip
import json
import os
import platform
import re
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from datetime import datetime
from importlib.metadata import version
from pathlib import Path

import yaml

HERE = Path(__file__).resolve().parent
REPO = HERE.parents[1]
sys.path.insert(0, str(REPO))

from aisci.slurm.sacct import Job, load_jobs  # noqa: E402
from tests.slurm_cluster import ensure_cluster  # noqa: E402

SCENARIO = REPO / "tests" / "configs" / "na12878"
SNAKEFILE = REPO / "workflows" / "germline" / "Snakefile"
ENV = dict(os.environ, PATH=f"{Path(sys.executable).parent}{os.pathsep}{os.environ['PATH']}")
# what the real-data e2e test (tests/e2e/test_germline.py::test_real_na12878) asks of the calls
TRUTH_TP = 49
GOAL = 2.0


def scenario_config(out: Path) -> Path:
    """tests/configs/na12878/config.yaml with its relative paths made absolute, written to ``out``."""
    cfg = yaml.safe_load((SCENARIO / "config.yaml").read_text())
    for key in ("samples", "reference"):
        cfg[key] = str((SCENARIO / cfg[key]).resolve())
    cfg["evaluation"]["bed"] = str((SCENARIO / cfg["evaluation"]["bed"]).resolve())
    missing = [p for p in (cfg["reference"], cfg["evaluation"]["bed"]) if not Path(p).is_file()]
    if missing:
        raise SystemExit(f"real test data missing: {', '.join(missing)} (see ../shared/data/README.md)")
    out.write_text(yaml.safe_dump(cfg, sort_keys=False))
    return out


def run_pipeline(name: str, profile: Path, config: Path, work: Path) -> dict:
    """One run of the germline pipeline in a fresh directory under ``work``, timed end to end."""
    workdir = Path(tempfile.mkdtemp(prefix=f"{name}-", dir=work))
    log = workdir.with_suffix(".log")
    load = os.getloadavg()[0]  # of the last minute: how busy the machine was before the run
    started = datetime.now()
    t0 = time.perf_counter()
    with log.open("w") as out:
        res = subprocess.run(
            [sys.executable, "-m", "snakemake", "--snakefile", str(SNAKEFILE), "--directory", str(workdir),
             "--configfile", str(config), "--profile", str(profile)],
            stdout=out, stderr=subprocess.STDOUT, env=ENV, check=False,
        )
    wall = time.perf_counter() - t0
    ended = datetime.now()
    if res.returncode != 0:
        raise SystemExit(f"{name} run failed (exit {res.returncode}); its output: {log}\n"
                         + log.read_text()[-3000:])
    metrics = json.loads((workdir / "results" / "eval" / "NA12878.json").read_text())["all"]
    if metrics["tp"] != TRUTH_TP or metrics["fn"] != 0:
        raise SystemExit(f"{name} run: {metrics['tp']} truth variants found, {metrics['fn']} missed "
                         f"(expected {TRUTH_TP}, 0): {workdir}")
    return {"name": name, "profile": str(profile), "wall_s": wall, "load_before": load, "workdir": workdir,
            "log": log, "started": started, "ended": ended, "tp": metrics["tp"], "fp": metrics["fp"]}


FLOOR_RULE = """
rule step{i}:
    {needs}output:
        "step{i}.txt",
    resources:
        runtime=5,
    shell:
        "touch {{output}}"
"""


def floor_chain(n: int, work: Path) -> Path:
    """A Snakefile of ``n`` trivial rules, each needing the previous one's file: the Slurm executor's cost
    per job in a chain, before any rule works."""
    path = work / f"floor{n}.smk"
    rules = [FLOOR_RULE.format(i=i, needs=f'input:\n        "step{i - 1}.txt",\n    ' if i else "")
             for i in range(n)]
    path.write_text(f'rule all:\n    input:\n        "step{n - 1}.txt",\n\n' + "\n".join(rules))
    return path


def run_floor(name: str, profile: Path, snakefile: Path, work: Path) -> float:
    """Wall time of the trivial chain through ``profile`` in a fresh directory."""
    workdir = Path(tempfile.mkdtemp(prefix=f"floor-{name}-", dir=work))
    t0 = time.perf_counter()
    res = subprocess.run([sys.executable, "-m", "snakemake", "--snakefile", str(snakefile), "--directory",
                          str(workdir), "--profile", str(profile)], capture_output=True, text=True, env=ENV,
                         check=False)
    wall = time.perf_counter() - t0
    if res.returncode != 0:
        raise SystemExit(f"floor chain ({name}) failed: {res.stdout[-2000:]}{res.stderr[-2000:]}")
    shutil.rmtree(workdir, ignore_errors=True)
    return wall


def chain_depth(jobs: list[Job]) -> int:
    """The longest chain of Slurm jobs of a run: a job waits for every job that ended before its submission."""
    depth: dict[str, int] = {}
    for j in sorted(jobs, key=lambda j: j.submit or datetime.min):
        before = [depth[k.job_id] for k in jobs if k.job_id in depth and k.end and j.submit and k.end <= j.submit]
        depth[j.job_id] = 1 + max(before, default=0)
    return max(depth.values(), default=0)


def call_records(workdir: Path) -> list[str]:
    """The published calls' records (header left out: it names the run's own files)."""
    with gzip.open(workdir / "results" / "calls" / "NA12878.vcf.gz", "rt") as vcf:
        return [line for line in vcf if not line.startswith("#")]


def rule_seconds(workdir: Path) -> float:
    """Seconds the rules' own commands took (the `s` column of every rule's benchmark file)."""
    total = 0.0
    for tsv in (workdir / "benchmarks").rglob("*.tsv"):
        with tsv.open() as f:
            total += sum(float(row["s"]) for row in csv.DictReader(f, delimiter="\t"))
    return total


def slurm_jobs(run: dict, timeout: float = 60) -> list[Job]:
    """The run's Slurm jobs from sacct, waiting until slurmdbd has recorded every job's end."""
    run_id = re.search(r"SLURM run ID: (\S+)", run["log"].read_text())
    if run_id is None:
        raise SystemExit(f"no SLURM run ID in {run['log']}")
    deadline = time.monotonic() + timeout
    while True:
        jobs = load_jobs(run_id=run_id.group(1))
        if all(j.end for j in jobs) or time.monotonic() > deadline:
            return sorted(jobs, key=lambda j: (j.submit or run["started"], j.job_id))
        time.sleep(2)


def busy_seconds(jobs: list[Job], t0: datetime, t1: datetime) -> float:
    """Seconds between t0 and t1 in which at least one of the jobs was running."""
    spans = sorted((max(j.start, t0), min(j.end, t1)) for j in jobs if j.start and j.end)
    busy, cursor = 0.0, t0
    for start, end in spans:
        start = max(start, cursor)
        if end > start:
            busy += (end - start).total_seconds()
            cursor = end
    return busy


def dispatch_breakdown(run: dict) -> dict:
    """Where the Slurm run's wall time went: per job (submit, start, end), idle time, in-job overhead."""
    jobs = slurm_jobs(run)
    t0 = run["started"]

    def offset(t: datetime | None) -> float | None:
        return None if t is None else round((t - t0).total_seconds(), 1)

    busy = busy_seconds(jobs, run["started"], run["ended"])
    in_jobs = sum(j.elapsed_s for j in jobs)
    rules = rule_seconds(run["workdir"])
    return {
        "jobs": [{"job_id": j.job_id, "rule": j.rule, "partition": j.partition, "state": j.state,
                  "submit_s": offset(j.submit), "start_s": offset(j.start), "end_s": offset(j.end),
                  "elapsed_s": j.elapsed_s} for j in jobs],
        "slurm_jobs": len(jobs),
        "chain_depth": chain_depth(jobs),
        "no_job_running_s": round(run["wall_s"] - busy, 1),
        "some_job_running_s": round(busy, 1),
        "job_seconds": in_jobs,
        "rule_seconds": round(rules, 1),
        "in_job_overhead_s": round(in_jobs - rules, 1),
    }


def print_breakdown(b: dict) -> None:
    print(f"    {'job':>6} {'rule or group':28} {'partition':9} {'submit':>7} {'start':>7} {'end':>7} {'run':>5}")
    for j in b["jobs"]:
        print(f"    {j['job_id']:>6} {j['rule'][:28]:28} {j['partition'][:9]:9} {j['submit_s']:7.1f} "
              f"{j['start_s']:7.1f} {j['end_s']:7.1f} {j['elapsed_s']:5d}")
    print(f"    no job of the run running: {b['no_job_running_s']:.1f} s (driver start-up and end, status-check "
          "waits, submission, local rules)")
    print(f"    inside the {b['slurm_jobs']} jobs: {b['job_seconds']} s, of which the rules' own commands "
          f"{b['rule_seconds']:.1f} s (the rest: Snakemake starting twice in each job, in the job and its job step)")


def shown(path: Path) -> str:
    """A path as recorded: relative to the repository when inside it."""
    return str(path.relative_to(REPO)) if path.is_relative_to(REPO) else str(path)


def profile_settings(profile: Path) -> dict:
    """The profile keys that decide the dispatch overhead, as recorded with the results."""
    cfg = yaml.safe_load((profile / "config.yaml").read_text())
    keys = ("slurm-init-seconds-before-status-checks", "slurm-status-command", "groups", "group-components")
    return {k: cfg[k] for k in keys if k in cfg}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--repeats", type=int, default=1, help="rounds of local then Slurm runs (default 1)")
    parser.add_argument("--local-profile", type=Path, default=REPO / "profiles" / "local")
    parser.add_argument("--slurm-profile", type=Path, nargs="+", default=[REPO / "profiles" / "slurm"],
                        help="one or more Slurm profiles, each run once per round (to compare settings)")
    parser.add_argument("--work", type=Path, default=Path(tempfile.gettempdir()) / "aisci-bench-slurm-dispatch",
                        help="where the runs' fresh directories go (Slurm jobs must see it: on a real cluster, "
                             "a shared file system)")
    parser.add_argument("--keep", action="store_true", help="keep the run directories")
    parser.add_argument("--no-floor", dest="floor", action="store_false",
                        help="skip the chain of trivial rules (the Slurm executor's own cost per job in a chain)")
    parser.add_argument("--out", type=Path, default=HERE / "results.json")
    args = parser.parse_args()
    local_profile = args.local_profile.resolve()
    slurm_profiles = [p.resolve() for p in args.slurm_profile]

    ensure_cluster()
    args.work.mkdir(parents=True, exist_ok=True)
    config = scenario_config(args.work / "na12878.yaml")
    rounds = []
    for i in range(args.repeats):
        local = run_pipeline("local", local_profile, config, args.work)
        print(f"round {i + 1}: local {local['wall_s']:.1f} s (load {local['load_before']:.2f})")
        runs = [local]
        this = {"local_s": round(local["wall_s"], 1), "load_before": round(local["load_before"], 2), "slurm": []}
        for profile in slurm_profiles:
            slurm = run_pipeline("slurm", profile, config, args.work)
            runs.append(slurm)
            if call_records(local["workdir"]) != call_records(slurm["workdir"]):
                raise SystemExit(f"the two runs wrote different calls: {local['workdir']} vs {slurm['workdir']}")
            breakdown = dispatch_breakdown(slurm)
            ratio = slurm["wall_s"] / local["wall_s"]
            print(f"  slurm {slurm['wall_s']:.1f} s (load {slurm['load_before']:.2f}), ratio {ratio:.2f}  "
                  f"{shown(profile)}")
            print_breakdown(breakdown)
            entry = {"profile": shown(profile), "slurm_s": round(slurm["wall_s"], 1), "ratio": round(ratio, 2),
                     "load_before": round(slurm["load_before"], 2), **breakdown}
            if args.floor:
                chain = floor_chain(breakdown["chain_depth"], args.work)
                floor_local = run_floor("local", local_profile, chain, args.work)
                floor_slurm = run_floor("slurm", profile, chain, args.work)
                added = slurm["wall_s"] - local["wall_s"]
                entry["floor"] = {"chain": breakdown["chain_depth"], "local_s": round(floor_local, 1),
                                  "slurm_s": round(floor_slurm, 1), "slurm_adds_s": round(floor_slurm - floor_local, 1),
                                  "pipeline_adds_s": round(added, 1),
                                  "beyond_floor_s": round(added - (floor_slurm - floor_local), 1)}
                f = entry["floor"]
                print(f"    floor: a chain of {f['chain']} trivial rules takes {f['local_s']:.1f} s locally and "
                      f"{f['slurm_s']:.1f} s through Slurm: the executor adds {f['slurm_adds_s']:.1f} s before any "
                      f"rule works; the pipeline's Slurm run adds {f['pipeline_adds_s']:.1f} s, "
                      f"{f['beyond_floor_s']:.1f} s beyond that floor")
            this["slurm"].append(entry)
        rounds.append(this)
        if not args.keep:
            for run in runs:
                shutil.rmtree(run["workdir"], ignore_errors=True)
                run["log"].unlink(missing_ok=True)

    local_s = round(statistics.median(r["local_s"] for r in rounds), 1)
    print()
    print(f"slurm_dispatch: germline pipeline, NA12878 chr20 100 kb slice, {os.cpu_count()} CPUs, "
          f"median of {len(rounds)}")
    print(f"  profiles/local  {local_s:8.1f} s")
    summary = []
    for k, profile in enumerate(slurm_profiles):
        slurm_s = round(statistics.median(r["slurm"][k]["slurm_s"] for r in rounds), 1)
        ratio = round(statistics.median(r["slurm"][k]["ratio"] for r in rounds), 2)
        print(f"  Slurm           {slurm_s:8.1f} s   ratio slurm/local {ratio:.2f} (median of the rounds' ratios; "
              f"goal <= {GOAL:g}: {'met' if ratio <= GOAL else 'NOT met'})  {shown(profile)}")
        floors = [r["slurm"][k]["floor"] for r in rounds if "floor" in r["slurm"][k]]
        floor = {}
        if floors:
            floor = {key: round(statistics.median(f[key] for f in floors), 1)
                     for key in ("chain", "local_s", "slurm_s", "slurm_adds_s", "pipeline_adds_s", "beyond_floor_s")}
            print(f"    the Slurm executor's floor for a chain of {floor['chain']:g} jobs: +{floor['slurm_adds_s']:.1f} s "
                  f"over local; this pipeline: +{floor['pipeline_adds_s']:.1f} s, {floor['beyond_floor_s']:.1f} s "
                  "beyond the floor (medians)")
        summary.append({"profile": shown(profile), "settings": profile_settings(profile), "slurm_s": slurm_s,
                        "ratio": ratio, **({"floor": floor} if floor else {})})
    report = {
        "host": {"cpus": os.cpu_count(), "platform": platform.platform()},
        "versions": {p: version(p) for p in ("snakemake", "snakemake-executor-plugin-slurm",
                                             "snakemake-executor-plugin-slurm-jobstep")},
        "goal": GOAL, "local_s": local_s, "slurm": summary, "rounds": rounds,
    }
    args.out.write_text(json.dumps(report, indent=1) + "\n")
    print(f"\nreport: {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
