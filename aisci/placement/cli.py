"""`aisci plan`: place every rule of a workflow run on the sites' partitions and write a ready profile."""

from __future__ import annotations

import argparse
import logging
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

from aisci.errors import InputError

log = logging.getLogger(__name__)

DEFAULT_HISTORY = Path(".aisci/history.tsv")
_DURATION = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*([smhd])\s*$")
_UNIT_S = {"s": 1, "m": 60, "h": 3600, "d": 86400}


def duration_s(text: str) -> float:
    """``12h``, ``90m``, ``2d`` or ``3600s``, in seconds (a unit is required: no guessing)."""
    m = _DURATION.match(text)
    if not m or float(m.group(1)) <= 0:
        raise argparse.ArgumentTypeError(f"{text!r}: expected a positive duration with its unit, e.g. 12h, 90m, 2d")
    return float(m.group(1)) * _UNIT_S[m.group(2)]


def _config_pair(text: str) -> tuple[str, Any]:
    key, sep, value = text.partition("=")
    if not sep or not key:
        raise argparse.ArgumentTypeError(f"{text!r}: expected KEY=VALUE")
    try:
        return key, yaml.safe_load(value)
    except yaml.YAMLError as exc:
        raise argparse.ArgumentTypeError(f"{text!r}: the value is not valid YAML ({exc})") from None


def add_run_arguments(parser: argparse.ArgumentParser) -> None:
    """Options naming the workflow run, the sites and the runtime estimates (plan and simulate-cluster)."""
    parser.add_argument("--site", required=True, type=Path, help="site description (site.yaml): centres, partitions, transfers")
    parser.add_argument("--snakefile", type=Path, default=Path("Snakefile"), help="pipeline (default: Snakefile)")
    parser.add_argument("--configfile", type=Path, action="append", default=[], help="config file(s), as for snakemake")
    parser.add_argument("--config", type=_config_pair, nargs="+", action="extend", default=[], metavar="KEY=VALUE",
                        help="config overrides, as for snakemake")
    parser.add_argument("--directory", type=Path, help="working directory (default: the current one)")
    parser.add_argument("--needed", action="store_true",
                        help="plan only the jobs whose outputs are missing or stale (default: every job)")
    parser.add_argument("--history", type=Path,
                        help=f"run history from `aisci usage --record` (default: {DEFAULT_HISTORY} if present)")
    parser.add_argument("--runtimes", type=Path,
                        help="runtimes to assume where no run has been measured: YAML, rule: {cpu: s, gpu: s}")
    parser.add_argument("--default-runtime", type=duration_s, default=600.0, metavar="DURATION",
                        help="CPU runtime of a job with no history nor --runtimes entry (default: 10m)")
    parser.add_argument("--gpu-speedup", type=float, default=10.0,
                        help="GPU vs CPU speed of a GPU-class rule measured in one class only (default: 10)")


@dataclass(frozen=True)
class Run:
    """A run ready to place: the site (aisci.slurm.site.Site), the jobs with runtimes."""

    sites: Any
    jobs: list[Any]
    estimates: list[dict[str, Any]]


def _runtime_table(path: Path) -> dict[str, dict[str, float]]:
    try:
        data = yaml.safe_load(path.read_text())
    except FileNotFoundError:
        raise InputError(f"--runtimes {path}: file not found") from None
    except yaml.YAMLError as exc:
        raise InputError(f"{path}: not valid YAML ({exc})") from None
    if not isinstance(data, dict):
        raise InputError(f"{path}: expected rule: {{cpu: seconds, gpu: seconds}}")
    out = {}
    for rule, entry in data.items():
        if not isinstance(entry, dict) or not entry or set(entry) - {"cpu", "gpu"}:
            raise InputError(f"{path}: {rule}: expected {{cpu: seconds, gpu: seconds}}")
        for cls, value in entry.items():
            if not isinstance(value, (int, float)) or value <= 0:
                raise InputError(f"{path}: {rule}.{cls}: {value!r} is not a positive number of seconds")
        out[str(rule)] = {c: float(v) for c, v in entry.items()}
    return out


def load_run(args: argparse.Namespace) -> Run:
    """The site description, then the workflow's DAG, then runtime estimates from benchmarks and history.

    The site description is read first so that a bad one fails before the (slower) DAG is built.
    """
    from aisci.placement.dag import workflow_jobs
    from aisci.placement.estimates import (
        Defaults,
        Estimator,
        job_records,
        observations,
        with_runtimes,
    )
    from aisci.slurm.history import load_history
    from aisci.slurm.site import load_site

    sites = load_site(args.site)
    runtimes = _runtime_table(args.runtimes) if args.runtimes else {}
    if args.gpu_speedup <= 0:
        raise InputError("--gpu-speedup must be positive")
    workdir = (args.directory or Path.cwd()).absolute()
    history_path = args.history or (workdir / DEFAULT_HISTORY)
    if args.history and not args.history.is_file():
        raise InputError(f"--history {args.history}: file not found")
    wf = workflow_jobs(args.snakefile, configfiles=args.configfile, config=dict(args.config),
                       workdir=args.directory, forceall=not args.needed,
                       cores=max(p.cores for p in sites.partitions))
    history = load_history(history_path)
    obs = observations(job_records(wf.jobs, wf.benchmarks), history, workdir)
    estimator = Estimator(obs, Defaults(cpu_s=args.default_runtime, gpu_speedup=args.gpu_speedup), runtimes)
    jobs = with_runtimes(wf.jobs, estimator)
    table = estimator.table({j.rule: j.classes for j in jobs})
    log.info("%d jobs; runtime estimates from %d measured jobs (%s)", len(jobs), len(obs),
             ", ".join(f"{r['rule']}/{r['class']}: {r['how']}" for r in table))
    return Run(sites, jobs, table)


def configure_parser(parser: argparse.ArgumentParser) -> None:
    """Options of `aisci plan`."""
    add_run_arguments(parser)
    parser.add_argument("--objective", choices=("makespan", "cost"), default="makespan",
                        help="makespan: finish first, then cheapest; cost: cheapest within --deadline")
    parser.add_argument("--deadline", type=duration_s, metavar="DURATION", help="e.g. 12h (needed with --objective cost)")
    parser.add_argument("--time-limit", type=float, default=8.0, help="seconds the ILP solver may take (default: 8)")
    parser.add_argument("--out", required=True, type=Path,
                        help="profile directory to write (config.yaml, plan.tsv, plan.json)")


def run(args: argparse.Namespace) -> int:
    """Plan the run and write the profile."""
    from aisci.placement.ilp import plan
    from aisci.placement.plan import table_text, write_plan

    if args.objective == "cost" and args.deadline is None:
        raise InputError("--objective cost needs --deadline")
    r = load_run(args)
    result = plan(r.jobs, r.sites, objective=args.objective, deadline_s=args.deadline, time_limit_s=args.time_limit)
    if args.objective == "makespan":
        from aisci.placement.baselines import best_plan

        # the ILP places whole rules; HEFT places each job: keep whichever the simulator finishes first
        result, runs = best_plan(r.jobs, r.sites, result)
        print(f"simulated makespan: ILP {runs['ilp'].makespan_s / 3600:.2f} h, HEFT {runs['heft'].makespan_s / 3600:.2f} h; "
              f"the plan uses {'HEFT' if result.explicit is not None else 'the ILP'}")
    files = write_plan(result, r.jobs, r.sites, args.out, site_text=Path(args.site).read_text(encoding="utf-8"))
    print(table_text(result))
    print(f"profile written to {args.out} ({', '.join(f.name for f in files)}); run: snakemake --profile {args.out}")
    return 0
