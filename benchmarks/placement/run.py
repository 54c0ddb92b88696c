"""Benchmark: converged placement of 1,000 samples of the germline + AI pipeline: the plan against
honest baselines.

Run with `python benchmarks/placement/run.py [--samples 1000] [--chunks 8] [--seeds 20]` (or
`make bench-placement`). Not part of the tests.

1. Simulates a small genome with `aisci simulate` and writes a sample sheet of N samples (all pointing at
   its reads: the DAG, not the data, matters here), with splicing and protein stages on and joint calling
   off, scattered over --chunks calling chunks per sample.
2. Builds the real DAG of the default pipeline with Snakemake's API (aisci.placement.dag).
3. Runtimes: benchmarks/placement/runtimes.yaml (assumed per-job times of a 30x genome; see its header);
   each sample's jobs move 60 GB to the partner centre.
4. Plans with `--objective makespan` on benchmarks/placement/site.yaml (home: 512 CPU cores, 4 GPUs;
   partner: 512 cores, 8 GPUs, with backlogs), as `aisci plan` does (the ILP's plan or HEFT's
   mapping, whichever the simulator finishes first), and simulates against
   (a) the static mapping (home only: CPU rules on home CPUs, GPU rules on home GPUs),
   (b) Slurm's multi-cluster routing (`sbatch -M home,partner`: each ready job to the partition of
       its class that can start it first, no lookahead; aisci.placement.baselines.earliest_start),
   (c) HEFT list scheduling (its mapping run by the simulator),
   (d) a lower bound on the makespan (longest chain; work over capacity, by a linear program).
5. Repeats with every job's runtime multiplied by exp(N(0, 0.3^2)) (--seeds seeds): the plan and HEFT
   keep the mapping made from the estimates, (b) routes with the true runtimes, (d) is recomputed;
   wall time limits are lifted for every scenario (a job that outran one would time out and retry).
6. Times the ILP alone on 10,000 jobs x 20 partitions (5 centres x 4 partitions).

Prints the makespans, utilisation, the plan's ratios to (b), (c) and (d) (goals: <= 0.85x the better of
(b)/(c), <= 1.15x the bound, mean utilisation >= 85 %) and the perturbed medians and worst cases, and
writes results.json and utilisation.png here.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import subprocess
import sys
import tempfile
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
REPO = HERE.parents[1]
sys.path.insert(0, str(REPO))

from aisci.placement.cli import _runtime_table
from aisci.placement.dag import workflow_jobs
from aisci.placement.estimates import Estimator, with_runtimes
from aisci.placement.ilp import plan
from aisci.placement.simcli import report_text
from aisci.placement.simplot import plot_utilisation
from aisci.slurm.site import Partition, Site, Transfer, load_site
from tests.workflows.grch38 import many_samples

SAMPLE_BYTES = 60 * 10**9


def make_inputs(tmp: Path, samples: int, chunks: int) -> dict:
    data = tmp / "data"
    subprocess.run([sys.executable, "-m", "aisci.cli", "simulate", "--out", str(data), "--genome-size", "200000", "--samples", "1",
                    "--depth", "2", "--seed", "3"], check=True, capture_output=True)
    subprocess.run([sys.executable, "-m", "aisci.cli", "models", "demo", "esm2-demo", "--model-store", str(data / "models")], check=True,
                   capture_output=True)
    (tmp / "config.yaml").write_text((REPO / "config.yaml").read_text())  # the Snakefile's configfile
    row = (data / "samples.tsv").read_text().splitlines()[1].split("\t")
    many_samples(data / "many.tsv", data / row[1], data / row[2], samples)
    return {
        "samples": str(data / "many.tsv"), "reference": str(data / "reference.fa.gz"),
        "genome": "custom", "calling": {"joint": False, "chunk_size": 200000 // chunks, "groups": chunks},
        "splice": {"annotation": str(data / "genes.gff3")},
        "protein": {"enabled": True, "annotation": str(data / "genes.gff3"), "model": "esm2-demo",
                    "model_store": str(data / "models")},
    }


def ilp_scale(n_jobs: int = 10_000) -> tuple[float, int, int]:
    """Solve time of a 10,000-job, 20-partition instance (five copies of a 4-partition centre)."""
    from aisci.placement.model import Job

    parts, transfers = [], {}
    for c in range(5):
        centre = f"c{c}"
        parts += [Partition(centre, "cpu", 16, 64, 256 * 1024, core_hour_cost=0.01 + c / 100, queue_wait_s=600 * c),
                  Partition(centre, "big", 4, 128, 1024 * 1024, core_hour_cost=0.02, queue_wait_s=300 * c),
                  Partition(centre, "gpu", 2, 32, 512 * 1024, gpus=4, gpu_hour_cost=0.5, queue_wait_s=900 * c),
                  Partition(centre, "short", 8, 64, 256 * 1024, max_walltime_s=4 * 3600)]
        if c:
            transfers[centre] = Transfer(cost_per_gb=0.01, gbit_s=10)
    sites = Site("c0", tuple(parts), transfers)
    per_sample = [("align", 2, 8000, 0, {"cpu": 20000}), ("call", 1, 2000, 0, {"cpu": 9000}),
                  ("call", 1, 2000, 0, {"cpu": 9000}), ("filter", 1, 1000, 0, {"cpu": 600}),
                  ("splice", 2, 6000, 1, {"cpu": 30000, "gpu": 2400}), ("missense", 2, 8000, 1, {"cpu": 20000, "gpu": 1200}),
                  ("context", 1, 4000, 1, {"cpu": 1800, "gpu": 300}), ("coding", 1, 2000, 0, {"cpu": 1200}),
                  ("stats", 1, 1000, 0, {"cpu": 1800}), ("check", 1, 500, 0, {"cpu": 1200})]
    deps = {0: (9,), 1: (0,), 2: (0,), 3: (1, 2), 4: (3,), 5: (7,), 6: (3,), 7: (3,), 8: (0,), 9: ()}
    jobs = []
    for s in range(n_jobs // len(per_sample)):
        base = s * len(per_sample)
        for k, (rule, threads, mem, gpus, rt) in enumerate(per_sample):
            jobs.append(Job(base + k, rule, f"s{s}_{k}", threads, mem, gpus, tuple(base + d for d in deps[k]),
                            SAMPLE_BYTES, rt))
    t0 = time.perf_counter()
    plan(jobs, sites, time_limit_s=8)
    return time.perf_counter() - t0, len(jobs), len(parts)


def main() -> int:
    import statistics

    from aisci.placement.baselines import best_plan, earliest_start, lower_bound, perturbed, simulate_heft, heft
    from aisci.placement.model import static_placement
    from aisci.placement.plan import table_text
    from aisci.placement.simulate import simulate

    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--samples", type=int, default=1000)
    parser.add_argument("--chunks", type=int, default=8)
    parser.add_argument("--seeds", type=int, default=20, help="perturbed repeats (default 20)")
    parser.add_argument("--sigma", type=float, default=0.3, help="log-normal sigma of the perturbation (default 0.3)")
    args = parser.parse_args()
    sites = load_site(HERE / "site.yaml")
    runtimes = _runtime_table(HERE / "runtimes.yaml")
    with tempfile.TemporaryDirectory() as tmp:
        config = make_inputs(Path(tmp), args.samples, args.chunks)
        t0 = time.perf_counter()
        wf = workflow_jobs(REPO / "Snakefile", config=config, workdir=Path(tmp))
        dag_s = time.perf_counter() - t0
    jobs = [dataclasses.replace(j, input_bytes=SAMPLE_BYTES if j.wildcards else 0) for j in wf.jobs]
    jobs = with_runtimes(jobs, Estimator((), defaults_by_rule=runtimes))
    ilp_plan = plan(jobs, sites, time_limit_s=8)
    p, chosen = best_plan(jobs, sites, ilp_plan)
    mapping = heft(jobs, sites)
    static = static_placement(jobs, sites)
    assignment = p.assignment(jobs)

    def scenarios(js, where=sites):
        return {
            "static": simulate(js, where, static),
            "earliest": earliest_start(js, where),
            "heft": simulate_heft(js, where, mapping),
            "plan": simulate(js, where, p.placement, assignment, p.nice),
        }

    # with perturbed runtimes a job may outrun its partition's wall time limit: every scenario lets it
    # run (a real run would time out and retry it, which no scenario here models)
    unlimited = dataclasses.replace(
        sites, partitions=tuple(dataclasses.replace(q, max_walltime_s=float("inf")) for q in sites.partitions))

    results = scenarios(jobs)
    bound = lower_bound(jobs, sites)
    solve_s, big_jobs, big_parts = ilp_scale()

    print(f"{args.samples} samples, {len(jobs)} jobs of {len({j.rule for j in jobs})} rules "
          f"(DAG from Snakemake in {dag_s:.0f} s); sites: {', '.join(q.id for q in sites.partitions)}")
    print(f"the plan: {'HEFT' if p.explicit is not None else 'the ILP'} (simulated ILP {chosen['ilp'].makespan_s / 3600:.2f} h, "
          f"HEFT {chosen['heft'].makespan_s / 3600:.2f} h)")
    print(table_text(p))
    print()
    print(report_text(results, sites))
    span = {k: r.makespan_s for k, r in results.items()}
    best_baseline = min(span["earliest"], span["heft"])
    util = results["plan"].mean_utilisation
    print(f"\nmakespan (h): (a) static {span['static'] / 3600:.2f}   (b) Slurm -M earliest start {span['earliest'] / 3600:.2f}   "
          f"(c) HEFT {span['heft'] / 3600:.2f}   (d) lower bound {bound.makespan_s / 3600:.2f} "
          f"(chain {bound.critical_path_s / 3600:.2f}, work {bound.work_s / 3600:.2f})   plan {span['plan'] / 3600:.2f}")
    print(f"plan / (b) = {span['plan'] / span['earliest']:.3f}   plan / (c) = {span['plan'] / span['heft']:.3f}   "
          f"plan / better of (b),(c) = {span['plan'] / best_baseline:.3f} (goal <= 0.85)   "
          f"plan / (d) = {span['plan'] / bound.makespan_s:.3f} (goal <= 1.15)   plan / (a) = {span['plan'] / span['static']:.3f}")
    print("mean utilisation (%): " + "   ".join(f"{k} {100 * r.mean_utilisation:.1f}" for k, r in results.items())
          + "   (goal for the plan >= 85 %)")

    seeds = []
    for seed in range(1, args.seeds + 1):
        actual = perturbed(jobs, args.sigma, seed)
        r = scenarios(actual, unlimited)
        lb = lower_bound(actual, unlimited).makespan_s
        seeds.append({"seed": seed, **{k: v.makespan_s for k, v in r.items()}, "bound": lb,
                      "plan_util": r["plan"].mean_utilisation})
    def ratio(key: str) -> list[float]:
        return [s["plan"] / s[key] for s in seeds]
    perturbed_ratios = {}
    for key in ("earliest", "heft", "bound", "static"):
        values = ratio(key)
        perturbed_ratios[key] = {"median": statistics.median(values), "worst": max(values)}
    best = [s["plan"] / min(s["earliest"], s["heft"]) for s in seeds]
    perturbed_ratios["better_of_b_c"] = {"median": statistics.median(best), "worst": max(best)}
    print(f"\nruntimes perturbed (log-normal sigma {args.sigma}, {args.seeds} seeds; plan and HEFT keep the mapping "
          "made from the estimates):")
    for key, label in (("earliest", "(b) earliest start"), ("heft", "(c) HEFT"), ("better_of_b_c", "better of (b),(c)"),
                       ("bound", "(d) lower bound"), ("static", "(a) static")):
        v = perturbed_ratios[key]
        print(f"  plan / {label}: median {v['median']:.3f}, worst {v['worst']:.3f}")
    print(f"ILP: {ilp_plan.solve_s:.2f} s for this run; {solve_s:.2f} s for {big_jobs} jobs x {big_parts} partitions (goal < 10 s)")
    plot_utilisation({"static": results["static"], "earliest": results["earliest"], "plan": results["plan"]},
                     sites, HERE / "utilisation.png")
    out = {
        "samples": args.samples, "jobs": len(jobs), "dag_s": dag_s, "plan_is": "heft" if p.explicit is not None else "ilp",
        **{k: r.as_dict() for k, r in results.items()},
        "lower_bound": dataclasses.asdict(bound),
        "ratios": {"earliest": span["plan"] / span["earliest"], "heft": span["plan"] / span["heft"],
                   "better_of_b_c": span["plan"] / best_baseline, "bound": span["plan"] / bound.makespan_s,
                   "static": span["plan"] / span["static"]},
        "plan_mean_utilisation": util,
        "perturbed": {"sigma": args.sigma, "seeds": seeds, "ratios": perturbed_ratios},
        "ilp_s": ilp_plan.solve_s, "ilp_scale": {"jobs": big_jobs, "partitions": big_parts, "solve_s": solve_s},
    }
    (HERE / "results.json").write_text(json.dumps(out, indent=1) + "\n")
    print(f"wrote {HERE / 'results.json'} and {HERE / 'utilisation.png'}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
