"""`aisci simulate-cluster`: replay a workflow run on the sites under the static mapping and under the plan."""

from __future__ import annotations

import argparse
import json
import logging
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from aisci.errors import InputError
from aisci.fileio import atomic_output
from aisci.placement.cli import add_run_arguments, duration_s, load_run

log = logging.getLogger(__name__)


def compare(jobs: Sequence[Any], sites: Any, plan: Any) -> dict[str, Any]:
    """Simulate the static mapping, Slurm's multi-cluster routing (with partner centres) and the plan.

    Args:
        jobs: jobs with runtimes (aisci.placement.model.Job).
        sites: the sites.
        plan: an aisci.placement.ilp.Plan.

    Returns:
        "static", "earliest" (only with several centres: each job to the partition that starts it
        first, as ``sbatch --clusters`` does) and "plan" results.
    """
    from aisci.placement.model import static_placement

    results = {"static": _simulate("the static mapping", jobs, sites, static_placement(jobs, sites))}
    if len(sites.centres) > 1:
        results["earliest"] = _earliest(jobs, sites)
    results["plan"] = _simulate("the plan", jobs, sites, plan.placement, plan.assignment(jobs), plan.nice)
    return results


def _earliest(jobs: Sequence[Any], sites: Any) -> Any:
    """aisci.placement.baselines.earliest_start, its ValueError turned into an InputError."""
    from aisci.placement.baselines import earliest_start

    try:
        return earliest_start(jobs, sites)
    except ValueError as exc:
        raise InputError(f"cannot simulate Slurm's multi-cluster routing: {exc}") from None


def _simulate(what: str, jobs: Sequence[Any], sites: Any, *args: Any) -> Any:
    """aisci.placement.simulate.simulate, its ValueError (a job that fits none of its partitions, ...)
    turned into an InputError naming the scenario."""
    from aisci.placement.simulate import simulate

    try:
        return simulate(jobs, sites, *args)
    except ValueError as exc:
        raise InputError(f"cannot simulate {what}: {exc}") from None


def report_text(results: Mapping[str, Any], sites: Any) -> str:
    """Makespan, utilisation per partition, waits and cost per scenario, and plan/static ratios."""
    ids = [p.id for p in sites.partitions]
    head = ["scenario", "makespan_h", "mean_util_%", *[f"{pid}_%" for pid in ids], "mean_wait_h", "max_wait_h", "cost"]
    rows = [head]
    for name, r in results.items():
        rows.append([name, f"{r.makespan_s / 3600:.2f}", f"{100 * r.mean_utilisation:.1f}",
                     *[f"{100 * r.stats(pid).utilisation:.1f}" for pid in ids],
                     f"{r.mean_wait_s / 3600:.2f}", f"{r.max_wait_s / 3600:.2f}", f"{r.cost:.2f}"])
    widths = [max(len(row[i]) for row in rows) for i in range(len(head))]
    lines = ["  ".join(c.rjust(w) if i else c.ljust(w) for i, (c, w) in enumerate(zip(row, widths))) for row in rows]
    if "static" in results and "plan" in results and results["static"].makespan_s:
        s, p = results["static"], results["plan"]
        lines.append(f"plan / static: makespan {p.makespan_s / s.makespan_s:.3f}x, "
                     f"mean utilisation {100 * p.mean_utilisation:.1f} % vs {100 * s.mean_utilisation:.1f} %, "
                     f"cost {p.cost / s.cost if s.cost else float('nan'):.3f}x")
    if "earliest" in results and "plan" in results and results["earliest"].makespan_s:
        e, p = results["earliest"], results["plan"]
        lines.append(f"plan / Slurm's multi-cluster routing (earliest): makespan {p.makespan_s / e.makespan_s:.3f}x, "
                     f"mean utilisation {100 * p.mean_utilisation:.1f} % vs {100 * e.mean_utilisation:.1f} %")
    return "\n".join(lines)


def configure_parser(parser: argparse.ArgumentParser) -> None:
    """Options of `aisci simulate-cluster`."""
    add_run_arguments(parser)
    parser.add_argument("--plan", type=Path, help="plan.json from `aisci plan` (default: plan now)")
    parser.add_argument("--objective", choices=("makespan", "cost"), default="makespan",
                        help="objective when planning now (default: makespan)")
    parser.add_argument("--deadline", type=duration_s, metavar="DURATION", help="deadline when planning now")
    parser.add_argument("--time-limit", type=float, default=8.0, help="ILP time limit in seconds (default: 8)")
    parser.add_argument("--png", type=Path, help="utilisation of every partition over time, static vs plan")
    parser.add_argument("--json", type=Path, help="write the figures as JSON")


def run(args: argparse.Namespace) -> int:
    """Simulate the run under the static mapping and under the plan, print the comparison."""
    from aisci.placement.ilp import deal, plan
    from aisci.placement.model import static_placement
    from aisci.placement.plan import job_key, ordered, read_plan

    r = load_run(args)
    if args.plan:
        counts, nice, explicit = read_plan(args.plan)
        missing = sorted({j.rule for j in r.jobs} - set(counts))
        if missing:
            raise InputError(f"plan {args.plan}: no placement for rule(s) {', '.join(missing)} (plan again)")
        unknown = sorted({pid for c in counts.values() for pid in c} - {p.id for p in r.sites.partitions})
        if unknown:
            raise InputError(f"plan {args.plan}: partition(s) {', '.join(unknown)} are not in {args.site}")
        if explicit is None:
            assignment = deal(counts, r.jobs)
        else:
            unplaced = [job_key(j) for j in r.jobs if job_key(j) not in explicit]
            if unplaced:
                raise InputError(f"plan {args.plan}: no partition for job {unplaced[0]} (plan again)")
            assignment = {j.id: explicit[job_key(j)] for j in r.jobs}
        results = {"static": _simulate("the static mapping", r.jobs, r.sites, static_placement(r.jobs, r.sites))}
        if len(r.sites.centres) > 1:
            results["earliest"] = _earliest(r.jobs, r.sites)
        results["plan"] = _simulate(f"plan {args.plan}", r.jobs, r.sites, ordered(counts), assignment, nice)
    else:
        p = plan(r.jobs, r.sites, objective=args.objective, deadline_s=args.deadline, time_limit_s=args.time_limit)
        if args.objective == "makespan":
            from aisci.placement.baselines import best_plan

            p, _ = best_plan(r.jobs, r.sites, p)  # as `aisci plan` does
        results = compare(r.jobs, r.sites, p)
    print(report_text(results, r.sites))
    if args.png:
        from aisci.placement.simplot import plot_utilisation

        plot_utilisation(results, r.sites, args.png)
        print(f"utilisation plot written to {args.png}")
    if args.json:
        with atomic_output(args.json) as tmp:
            tmp.write_text(json.dumps({k: v.as_dict() for k, v in results.items()}, indent=1) + "\n")
    return 0
