"""Benchmark: the placement simulator against real runs on the two local Slurm clusters.

Run with `python benchmarks/placement/reality.py [--samples 4]` (or `make bench-reality`), as root on
a machine where `scripts/slurm-local up` works. Not part of the tests; takes about 10 minutes.

1. Simulates a small data set (`aisci.demo.germline.simulate`: 300 kb, --samples samples) in a project
   under /var/tmp, which both local clusters share (their /tmp is not shared).
2. Runs the germline pipeline (splicing off, the context stage on: a GPU-class rule) twice on the
   two clusters of profiles/multicluster/site.yaml:
   (b) with the profile `aisci profile new` writes (Slurm's multi-cluster routing, `-M home,partner`),
   (plan) with the profile `aisci plan` writes, planned in run (b)'s project: its runtime estimates
   come from run (b)'s benchmark files and sacct history, as a user who plans after a run gets them.
3. Reads each run's jobs from sacct and builds the simulator's view of the same run: the DAG of rule
   jobs (aisci.placement.dag) joined into the Slurm jobs the run submitted (Snakemake's group jobs: the
   jobs of one group connected in the DAG), each with the measured mean runtime, cores, memory and
   GPUs of its kind, on the partitions its kind ran on (aisci.placement.simulate.simulate).
   Fed the measured runtimes and placement, the simulator's busy time per partition equals the
   measured one by construction; the predictions of busy time are (b) Slurm's routing model
   (aisci.placement.baselines.earliest_start: placement predicted, each kind's mean runtime) and,
   for the plan, what `aisci plan` expected (plan.json: jobs x minutes per partition).
4. Compares the simulator's makespan and per-partition busy time (job-seconds) with the measured
   ones (a) with no overheads; (b) with overheads measured, not fitted: a dispatch delay per
   dependency step (a finished job's dependants start that much later) = run (b)'s median
   submission (from the last job end before a job's submission to it: the plugin's status query,
   sbatch) + its median queue wait, and Slurm's backfill pass (bf_interval, from scontrol): a job
   behind a blocked higher-priority one starts only at a pass; (c) with the dispatch delay fitted
   on run (b)'s makespan, applied unchanged to the plan's run. Start-up (a Slurm job's elapsed time
   minus its rules' benchmark seconds: the job step's Snakemake) is inside the measured runtimes
   and printed.

Writes reality.json here.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from collections import Counter, defaultdict
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(REPO))

SITE = REPO / "profiles/multicluster/site.yaml"
SNAKEFILE = REPO / "workflows/germline/Snakefile"


def sh(cmd: list[str], **kwargs) -> subprocess.CompletedProcess:
    return subprocess.run(cmd, text=True, capture_output=True, check=False, **kwargs)


def run_pipeline(workdir: Path, profile: Path, cfg: Path) -> tuple[str, float]:
    """One real run; returns the Slurm run id and the driver's wall time."""
    env = dict(os.environ, PATH=f"{Path(sys.executable).parent}{os.pathsep}{os.environ['PATH']}")
    env.pop("SLURM_CLUSTERS", None)
    t0 = time.monotonic()
    res = sh([sys.executable, "-m", "snakemake", "--snakefile", str(SNAKEFILE), "--directory", str(workdir),
              "--profile", str(profile), "--configfile", str(cfg)], env=env, timeout=3600)
    wall = time.monotonic() - t0
    if res.returncode != 0:
        sys.exit(f"the run in {workdir} failed:\n{res.stderr[-4000:]}")
    m = re.search(r"SLURM run ID: (\S+)", res.stdout + res.stderr)
    if not m:
        sys.exit("no SLURM run ID in the driver's output")
    return m.group(1), wall


def profile_groups(profile: Path) -> dict[str, str]:
    """rule -> group for the run: the rules' own `group:` directives, the profile's on top."""
    import yaml

    from aisci.slurm.profile import rule_groups

    groups = dict(rule_groups())
    groups.update(yaml.safe_load((profile / "config.yaml").read_text()).get("groups") or {})
    return groups


def slurm_kind(group: str | None, rules: set[str]) -> str:
    """How aisci.slurm.sacct.rule_of names a Slurm job of these rules: rule, or group:<group>."""
    from aisci.slurm.profile import GROUPS

    if group is None or (len(rules) == 1 and group in rules):
        return next(iter(rules))
    return f"group:{group}" if group in set(GROUPS.values()) else group


def simulator_view(wf_jobs, groups: dict[str, str], measured, sites):
    """The run as the simulator sees it: one Job per Slurm job, with the measured figures of its kind."""
    from aisci.placement.model import CPU, GPU, Job

    parent = list(range(len(wf_jobs)))

    def find(i: int) -> int:
        while parent[i] != i:
            parent[i] = parent[parent[i]]
            i = parent[i]
        return i

    for j in wf_jobs:
        g = groups.get(j.rule)
        for d in j.deps:
            if g is not None and groups.get(wf_jobs[d].rule) == g:
                parent[find(j.id)] = find(d)
    members: dict[int, list[int]] = defaultdict(list)
    for j in wf_jobs:
        members[find(j.id)].append(j.id)
    roots = sorted(members)
    index = {r: k for k, r in enumerate(roots)}
    kinds = {}
    for r in roots:
        rules = {wf_jobs[i].rule for i in members[r]}
        kinds[r] = slurm_kind(groups.get(wf_jobs[r].rule), rules)
    done = [m for m in measured if m.state == "COMPLETED" and m.start and m.end]
    by_kind = defaultdict(list)
    for m in done:
        by_kind[m.rule].append(m)
    parts = {p.id: p for p in sites.partitions}
    jobs, placement, assignment = [], {}, {}
    # a kind's jobs are dealt to the partitions it ran on, as many to each as ran there (which job of
    # the kind ran where sacct cannot say: group jobs carry no wildcards), each with the mean runtime
    # of its kind on that partition
    dealt: dict[str, list[str]] = {}
    for kind in set(kinds.values()):
        seen = sorted(by_kind.get(kind, []), key=lambda m: (m.start, m.job_id))
        dealt[kind] = [m.where for m in seen]
    for r in roots:
        kind = kinds[r]
        seen = by_kind.get(kind)
        if not seen:
            raise SystemExit(f"no completed Slurm job of kind {kind} in the run (kinds: {sorted(by_kind)})")
        where = Counter(m.where for m in seen)
        placement[kind] = tuple(w for w, _ in where.most_common() if w in parts)
        here = dealt[kind].pop(0) if dealt[kind] else placement[kind][0]
        assignment[index[r]] = here
        runtime = statistics.fmean(m.elapsed_s for m in seen if m.where == here)
        deps = sorted({index[find(d)] for i in members[r] for d in wf_jobs[i].deps} - {index[r]})
        gpus = max(m.gpus for m in seen)
        jobs.append(Job(id=index[r], rule=kind, wildcards=str(index[r]), threads=max(1, round(statistics.fmean(m.alloc_cpus for m in seen))),
                        mem_mb=max(1, round(statistics.fmean((m.req_mem or 0) for m in seen) / 2**20)), gpus=gpus,
                        deps=tuple(deps), runtime_s={CPU: runtime, GPU: runtime} if gpus else {CPU: runtime}))
    return jobs, placement, assignment, Counter(kinds.values()), Counter(m.rule for m in done)


def measured_figures(measured) -> dict:
    done = [m for m in measured if m.start and m.end]
    t0 = min(m.submit for m in done)
    busy = defaultdict(float)
    for m in done:
        busy[m.where] += m.elapsed_s
    waits = [m.queue_wait_s for m in done if m.queue_wait_s is not None]
    # submission: from the last job end before a job's submission to it (the driver noticing the end
    # through its status query, then sbatch); jobs submitted at the start have no end before them
    ends = sorted(m.end for m in done)
    gaps = [(m.submit - max(e for e in ends if e <= m.submit)).total_seconds() for m in done
            if any(e <= m.submit for e in ends)]
    return {"makespan_s": (max(m.end for m in done) - t0).total_seconds(), "busy_s": dict(busy),
            "jobs": len(done), "median_queue_wait_s": statistics.median(waits),
            "median_submission_s": statistics.median(gaps) if gaps else 0.0}


def start_up_s(workdir: Path, measured) -> float:
    """Mean per Slurm job of (its elapsed time - the benchmark seconds of the rules it ran)."""
    bench = 0.0
    for f in (workdir / "benchmarks").rglob("*.tsv"):
        lines = f.read_text().splitlines()
        if len(lines) >= 2:
            bench += float(lines[1].split("\t")[0])
    done = [m for m in measured if m.state == "COMPLETED"]
    return (sum(m.elapsed_s for m in done) - bench) / max(len(done), 1)


def backfill_interval() -> float:
    """Slurm's backfill pass interval (SchedulerParameters bf_interval; 30 s when unset)."""
    out = sh(["scontrol", "show", "config"]).stdout
    m = re.search(r"bf_interval=(\d+)", out)
    return float(m.group(1)) if m else 30.0


def simulated(jobs, placement, sites, dispatch_s: float, backfill_s: float = 0.0, assignment=None) -> dict:
    from aisci.placement.simulate import simulate

    res = simulate(jobs, sites, placement, assignment=assignment, dispatch_s=dispatch_s, backfill_s=backfill_s)
    busy = defaultdict(float)
    for r in res.runs:
        busy[r.partition] += r.end_s - r.start_s
    return {"makespan_s": res.makespan_s, "busy_s": dict(busy)}


def routing_prediction(jobs, sites) -> dict:
    """The run as Slurm's routing model predicts it (aisci.placement.baselines.earliest_start): each job
    to the partition of its class that starts it first, with its kind's mean runtime anywhere."""
    from dataclasses import replace

    from aisci.placement.baselines import earliest_start

    mean: dict[str, list[float]] = {}
    for j in jobs:
        mean.setdefault(j.rule, []).append(next(iter(j.runtime_s.values())))
    routed = earliest_start([replace(j, runtime_s={c: statistics.fmean(mean[j.rule]) for c in j.runtime_s})
                             for j in jobs], sites)
    busy: dict[str, float] = defaultdict(float)
    for r in routed.runs:
        busy[r.partition] += r.end_s - r.start_s
    return {"makespan_s": routed.makespan_s, "busy_s": dict(busy)}


def fit_dispatch(jobs, placement, assignment, sites, target_s: float, backfill_s: float) -> float:
    """The dispatch delay whose simulated makespan comes closest to the measured one (bisection)."""
    lo, hi = 0.0, 120.0
    for _ in range(40):
        mid = (lo + hi) / 2
        if simulated(jobs, placement, sites, mid, backfill_s, assignment)["makespan_s"] < target_s:
            lo = mid
        else:
            hi = mid
    return (lo + hi) / 2


def errors(sim: dict, real: dict) -> dict:
    parts = sorted(set(sim["busy_s"]) | set(real["busy_s"]))
    busy = {p: (sim["busy_s"].get(p, 0.0) - real["busy_s"].get(p, 0.0)) / max(real["busy_s"].get(p, 0.0), 1e-9)
            for p in parts if real["busy_s"].get(p, 0.0) > 0}
    return {"makespan": (sim["makespan_s"] - real["makespan_s"]) / real["makespan_s"], "busy": busy}


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--samples", type=int, default=4)
    ap.add_argument("--keep", action="store_true", help="keep the project folder")
    args = ap.parse_args()

    from aisci.demo.germline import simulate as simulate_data
    from aisci.placement.dag import workflow_jobs
    from aisci.slurm.sacct import load_jobs
    from aisci.slurm.site import load_site
    from tests.slurm_cluster import ensure_cluster

    ensure_cluster()
    sites = load_site(SITE)
    root = Path(tempfile.mkdtemp(prefix="aisci-reality-", dir="/var/tmp"))
    try:
        data = simulate_data(root / "data", genome_size=300_000, n_contigs=2, n_samples=args.samples, depth=20.0, seed=3)
        import yaml

        cfg = root / "config.yaml"
        cfg.write_text(yaml.safe_dump({"samples": str(data.sample_sheet), "reference": str(data.reference),
                                       "calling": {"joint": False, "chunk_size": 100000}, "splice": {"enabled": False}}))
        routed = root / "profile-routing"
        out = sh([sys.executable, "-m", "aisci.cli", "profile", "new", "--site", str(SITE), "--out", str(routed)])
        if out.returncode:
            sys.exit(out.stderr)
        results = {}
        runs = {}
        print("run (b): Slurm's multi-cluster routing ...", flush=True)
        run_b, wall_b = run_pipeline(root / "run-b", routed, cfg)
        runs["b"] = (run_b, root / "run-b", routed, wall_b)
        history = root / "history.tsv"
        sh([sys.executable, "-m", "aisci.cli", "usage", "--run-id", run_b, "--record", str(history)])
        planned = root / "profile-plan"
        out = sh([sys.executable, "-m", "aisci.cli", "plan", "--site", str(SITE), "--snakefile", str(SNAKEFILE),
                  "--configfile", str(cfg), "--directory", str(root / "run-b"), "--history", str(history),
                  "--out", str(planned)])
        if out.returncode:
            sys.exit(out.stderr[-3000:])
        print("run (plan): aisci plan's profile ...", flush=True)
        run_p, wall_p = run_pipeline(root / "run-plan", planned, cfg)
        runs["plan"] = (run_p, root / "run-plan", planned, wall_p)

        wf = workflow_jobs(SNAKEFILE, configfiles=[cfg], workdir=root / "plan-dir", forceall=True,
                           cores=max(p.cores for p in sites.partitions))
        views = {}
        for name, (run_id, workdir, profile, wall) in runs.items():
            measured = load_jobs(run_id=run_id)
            jobs, placement, assignment, sim_kinds, real_kinds = simulator_view(
                list(wf.jobs), profile_groups(profile), measured, sites)
            real = measured_figures(measured)
            real["driver_wall_s"] = wall
            real["start_up_s"] = start_up_s(workdir, measured)
            views[name] = (jobs, placement, assignment, real)
            results[name] = {"run_id": run_id, "measured": real, "slurm_jobs": {"simulated": dict(sim_kinds), "measured": dict(real_kinds)}}
        plan_json = json.loads((planned / "plan.json").read_text())
        predicted_busy = defaultdict(float)
        for row in plan_json["decisions"]:
            predicted_busy[row["partition"]] += row["jobs"] * row["min_per_job"] * 60
        results["plan"]["planner"] = {"makespan_s": plan_json["makespan_s"], "busy_s": dict(predicted_busy)}
        backfill = backfill_interval()
        for name, (jobs, placement, assignment, real) in views.items():
            results[name]["dispatch_fitted_here_s"] = fit_dispatch(jobs, placement, assignment, sites,
                                                                   real["makespan_s"], backfill)
        # measured on run (b): a job's submission after the end that released it, and Slurm starting it
        measured_dispatch = views["b"][3]["median_submission_s"] + views["b"][3]["median_queue_wait_s"]
        dispatch = results["b"]["dispatch_fitted_here_s"]
        results["b"]["routing_model"] = routing_prediction(views["b"][0], sites)
        results["b"]["error_routing_model"] = errors(results["b"]["routing_model"], views["b"][3])
        results["plan"]["error_planner"] = errors(results["plan"]["planner"], views["plan"][3])
        for name, (jobs, placement, assignment, real) in views.items():
            variants = {"raw": simulated(jobs, placement, sites, 0.0, 0.0, assignment),
                        "measured": simulated(jobs, placement, sites, measured_dispatch, backfill, assignment),
                        "calibrated": simulated(jobs, placement, sites, dispatch, backfill, assignment)}
            for key, sim in variants.items():
                results[name][f"simulated_{key}"] = sim
                results[name][f"error_{key}"] = errors(sim, real)
        results.update({"calibrated_dispatch_s": dispatch, "measured_dispatch_s": measured_dispatch, "backfill_s": backfill})
        print_report(results)
        (Path(__file__).parent / "reality.json").write_text(json.dumps(results, indent=1) + "\n")
    finally:
        if not args.keep:
            shutil.rmtree(root, ignore_errors=True)
        else:
            print(f"project kept in {root}")
    return 0


def print_report(results: dict) -> None:
    print(f"\noverheads: dispatch measured on run (b) {results['measured_dispatch_s']:.1f} s (submission + queue "
          f"wait medians), fitted on run (b) {results['calibrated_dispatch_s']:.1f} s; Slurm's backfill pass every "
          f"{results['backfill_s']:.0f} s")
    for name in ("b", "plan"):
        r = results[name]
        m = r["measured"]
        print(f"\nrun ({name}) {r['run_id']}: {m['jobs']} Slurm jobs, measured makespan {m['makespan_s']:.0f} s "
              f"(driver {m['driver_wall_s']:.0f} s); median submission {m['median_submission_s']:.1f} s after the "
              f"last job end, queue wait {m['median_queue_wait_s']:.1f} s, start-up {m['start_up_s']:.1f} s per job")
        print(f"  dispatch delay that would fit this run alone: {r['dispatch_fitted_here_s']:.1f} s")
        for key, label in (("planner", "aisci plan's prediction before the run (rule jobs, runtimes from run (b), "
                                        "no overheads)"),
                           ("routing_model", "Slurm's routing model, placement predicted (no overheads)")):
            if key in r:
                err = r[f"error_{key}"]
                print(f"  {label}: makespan {r[key]['makespan_s']:.0f} s ({err['makespan']:+.1%}); busy: "
                      + ", ".join(f"{p} {r[key]['busy_s'].get(p, 0):.0f}/{m['busy_s'][p]:.0f} s ({e:+.1%})"
                                  for p, e in sorted(err["busy"].items())))
        if r["slurm_jobs"]["simulated"] != r["slurm_jobs"]["measured"]:
            print(f"  Slurm jobs by kind differ: simulated {r['slurm_jobs']['simulated']}, measured {r['slurm_jobs']['measured']}")
        for label, key in (("no overheads", "raw"), ("measured overheads", "measured"),
                           ("dispatch fitted on (b)", "calibrated")):
            sim, err = r[f"simulated_{key}"], r[f"error_{key}"]
            print(f"  simulator, {label}: makespan {sim['makespan_s']:.0f} s ({err['makespan']:+.1%}); busy: "
                  + ", ".join(f"{p} {sim['busy_s'].get(p, 0):.0f}/{m['busy_s'][p]:.0f} s ({e:+.1%})" for p, e in sorted(err["busy"].items())))


if __name__ == "__main__":
    raise SystemExit(main())
