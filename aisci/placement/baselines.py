"""What the plan is measured against: Slurm's own multi-cluster routing, HEFT list scheduling and a
lower bound on the makespan, and runtimes perturbed to see whether a plan survives wrong estimates.

* :func:`earliest_start` — what ``sbatch --clusters home,partner`` does with no plan: each job, when
  it becomes ready, goes to the partition (of its class, on any centre) that can start it first, and
  stays there (no lookahead, no moving once queued). Slurm estimates the start from the jobs
  running and queued ahead (its ``will_run`` test); here with perfect knowledge of their runtimes:
  now when a node has room and nobody queues ahead, else when the running jobs free a node and the
  queue ahead drains at the partition's capacity (its cores' and GPUs', whichever takes longer). Moving the inputs to a partner costs its time but
  does not enter the choice (Slurm does not know of it). Ties go to the site's order (home first).
  Once queued, jobs run as in :func:`aisci.placement.simulate.simulate` (first fit, FIFO by ready
  time, backfill without reservations).
* :func:`heft` — Heterogeneous Earliest Finish Time (Topcuoglu et al. 2002) over the partitions a
  job fits (a GPU-class rule may take a CPU partition): jobs by decreasing upward rank (mean runtime
  over those partitions plus the largest rank of a dependant), each to the partition where it would
  finish first, a partition modelled as its pool of cores and GPUs (non-insertion variant; nodes and
  memory not modelled). It yields a mapping, run by the simulator with rules prioritised by rank.
* :func:`lower_bound` — no schedule can finish before the longest chain of jobs (each on the
  partition where it ends first, after that partition opens, moving inputs included), nor before
  the work fits the capacity: a linear program spreads every rule's jobs fractionally over the
  partitions they fit and minimises the time the busiest resource (a partition's cores, its memory
  or its GPUs, each on its own) needs for the work put there (nodes and backlogs ignored, jobs of
  a group given proportional times no longer than their own: each only lowers the bound).
"""

from __future__ import annotations

import bisect
import heapq
import math
import random
from collections import defaultdict, deque
from collections.abc import Sequence
from dataclasses import dataclass, replace
from typing import Any

from aisci.placement.model import Job
from aisci.placement.simresult import JobRun, SimResult, summarise
from aisci.placement.simulate import dependants, topological
from aisci.slurm.site import Site


def _class_partitions(job: Job, sites: Site) -> list[int]:
    """Partitions ``-M`` routing may send a job to: those of its class on every centre that it fits
    (GPU partitions for a GPU-class rule, the others for the rest; any it fits when its class has none)."""
    parts = sites.partitions
    fits = [i for i, p in enumerate(parts) if job.fits(p, sites)]
    own = [i for i in fits if bool(parts[i].gpus) == bool(job.gpus)]
    if not (own or fits):
        raise ValueError(f"rule {job.rule!r} (wildcards {job.wildcards!r}) fits no partition of the site")
    return own or fits


def earliest_start(jobs: Sequence[Job], sites: Site) -> SimResult:
    """Simulate Slurm's multi-cluster routing (see the module docstring)."""
    parts = sites.partitions
    children, indegree = dependants(jobs)
    candidates = [_class_partitions(j, sites) for j in jobs]
    n = len(jobs)
    free_c = [[p.cores] * p.nodes for p in parts]
    free_m = [[p.mem_mb] * p.nodes for p in parts]
    free_g = [[p.gpus] * p.nodes for p in parts]
    # per partition: queued jobs by shape (cores, mem, gpus) in FIFO order, and the queued work
    queues: list[dict[tuple[int, int, int], deque[int]]] = [defaultdict(deque) for _ in parts]
    queued_cores = [0.0] * len(parts)  # core-seconds queued, not started
    queued_gpus = [0.0] * len(parts)  # GPU-seconds likewise
    running: list[list[tuple[float, int]]] = [[] for _ in parts]  # heap of (end, job) per partition
    ready = [0.0] * n
    start = [0.0] * n
    end = [0.0] * n
    where = [-1] * n
    node = [-1] * n
    held_g = [0] * n
    ends: list[tuple[float, int]] = []
    ids = [j.id for j in jobs]

    def shape(i: int, pi: int) -> tuple[int, int, int]:
        return max(jobs[i].threads, 1), jobs[i].mem_mb, jobs[i].gpus_in(parts[pi])

    def queue(i: int, pi: int, sign: int) -> None:
        p = parts[pi]
        secs = jobs[i].seconds_on(p, sites)
        queued_cores[pi] += sign * max(jobs[i].threads, 1) * secs
        queued_gpus[pi] += sign * jobs[i].gpus_in(p) * secs

    def drain_s(pi: int) -> float:
        """Seconds the queue ahead takes at the partition's capacity (cores and GPUs, whichever is slower)."""
        p = parts[pi]
        return max(queued_cores[pi] / p.total_cores, queued_gpus[pi] / p.total_gpus if p.total_gpus else 0.0)

    def has_room(pi: int, s: tuple[int, int, int]) -> bool:
        c, m, g = s
        return any(free_c[pi][k] >= c and free_m[pi][k] >= m and free_g[pi][k] >= g for k in range(parts[pi].nodes))

    def expected_start(i: int, pi: int, t: float) -> float:
        p = parts[pi]
        t0 = max(t, p.queue_wait_s)
        queued = any(queues[pi].values())
        if not queued and has_room(pi, shape(i, pi)):
            return t0
        soonest = running[pi][0][0] - t if running[pi] else 0.0
        return t0 + max(soonest, 0.0) + drain_s(pi)

    def start_job(i: int, pi: int, k: int, t: float) -> None:
        c, m, g = shape(i, pi)
        free_c[pi][k] -= c
        free_m[pi][k] -= m
        free_g[pi][k] -= g
        where[i], node[i], held_g[i], start[i] = pi, k, g, t
        end[i] = t + jobs[i].seconds_on(parts[pi], sites)
        heapq.heappush(ends, (end[i], i))
        heapq.heappush(running[pi], (end[i], i))
        queue(i, pi, -1)

    def first_fit(pi: int, s: tuple[int, int, int]) -> int:
        c, m, g = s
        for k in range(parts[pi].nodes):
            if free_c[pi][k] >= c and free_m[pi][k] >= m and free_g[pi][k] >= g:
                return k
        return -1

    def dispatch(pi: int, t: float) -> None:
        """Start what fits now on partition ``pi``: FIFO by ready time per shape, backfill without reservations."""
        if t < parts[pi].queue_wait_s:
            return
        heads = [(ready[q[0]], ids[q[0]], key) for key, q in queues[pi].items() if q]
        heapq.heapify(heads)
        while heads:
            _, _, key = heapq.heappop(heads)
            k = first_fit(pi, key)
            if k < 0:
                continue
            q = queues[pi][key]
            start_job(q.popleft(), pi, k, t)
            if q:
                heapq.heappush(heads, (ready[q[0]], ids[q[0]], key))

    opens = sorted({p.queue_wait_s for p in parts if p.queue_wait_s > 0}, reverse=True)
    newly = sorted((i for i in range(n) if indegree[i] == 0), key=ids.__getitem__)
    t = 0.0
    while True:
        while ends and ends[0][0] <= t:
            _, i = heapq.heappop(ends)
            pi = where[i]
            c, m, g = shape(i, pi)
            free_c[pi][node[i]] += c
            free_m[pi][node[i]] += m
            free_g[pi][node[i]] += g
            while running[pi] and running[pi][0][0] <= t:
                heapq.heappop(running[pi])
            for ch in children[i]:
                indegree[ch] -= 1
                if indegree[ch] == 0:
                    newly.append(ch)
        # each job is routed, then its partition dispatched, before the next is routed: Slurm
        # answers each submission with the state the earlier ones left
        newly.sort(key=ids.__getitem__)
        for i in newly:
            ready[i] = t
            best = min(candidates[i], key=lambda pi: (expected_start(i, pi, t), pi))
            queues[best][shape(i, best)].append(i)
            queue(i, best, +1)
            where[i] = best
            dispatch(best, t)
        newly = []
        for pi in range(len(parts)):
            dispatch(pi, t)
        while opens and opens[-1] <= t:
            opens.pop()
        upcoming = [x for x in (ends[0][0] if ends else None, opens[-1] if opens else None) if x is not None]
        if not upcoming:
            break
        t = min(upcoming)
    if any(start[i] < ready[i] or node[i] < 0 for i in range(n)):
        raise RuntimeError("earliest-start simulation ended with jobs that never started")
    runs = tuple(
        JobRun(job.id, job.rule, job.wildcards, parts[where[i]].id, job.resource_class(parts[where[i]]),
               ready[i], start[i], end[i], node[i], max(job.threads, 1), job.mem_mb, held_g[i])
        for i, job in enumerate(jobs)
    )
    return summarise(jobs, sites, runs, where)


@dataclass(frozen=True)
class Heft:
    """HEFT's mapping (job id -> partition id), its rule priorities as Slurm nice, and its own estimate."""

    assignment: dict[int, str]
    nice: dict[str, int]
    makespan_s: float


def _fitting(job: Job, sites: Site) -> list[int]:
    out = [i for i, p in enumerate(sites.partitions) if job.fits(p, sites)]
    if not out:
        raise ValueError(f"rule {job.rule!r} (wildcards {job.wildcards!r}) fits no partition of the site")
    return out


def heft(jobs: Sequence[Job], sites: Site) -> Heft:
    """HEFT list scheduling (see the module docstring)."""
    parts = sites.partitions
    children, indegree = dependants(jobs)
    index = {j.id: i for i, j in enumerate(jobs)}
    fitting = [_fitting(j, sites) for j in jobs]
    secs = [{pi: j.seconds_on(parts[pi], sites) for pi in f} for j, f in zip(jobs, fitting)]
    mean = [sum(s.values()) / len(s) for s in secs]
    # upward ranks, children first (reverse of a topological order)
    order = topological(children, indegree)
    rank = [0.0] * len(jobs)
    for i in reversed(order):
        rank[i] = mean[i] + max((rank[c] for c in children[i]), default=0.0)
    topo_pos = {i: k for k, i in enumerate(order)}
    core_free = [[p.queue_wait_s] * p.total_cores for p in parts]
    gpu_free = [[p.queue_wait_s] * p.total_gpus for p in parts]
    finish = [0.0] * len(jobs)
    assignment: dict[int, str] = {}
    for i in sorted(range(len(jobs)), key=lambda i: (-rank[i], topo_pos[i])):
        job = jobs[i]
        dep_done = max((finish[index[d]] for d in job.deps), default=0.0)
        best = None
        for pi in fitting[i]:
            c, g = max(job.threads, 1), job.gpus_in(parts[pi])
            est = max(dep_done, core_free[pi][min(c, len(core_free[pi])) - 1])
            if g:
                est = max(est, gpu_free[pi][min(g, len(gpu_free[pi])) - 1])
            eft = est + secs[i][pi]
            if best is None or eft < best[0]:
                best = (eft, est, pi, c, g)
        eft, est, pi, c, g = best  # type: ignore[misc]
        finish[i] = eft
        assignment[job.id] = parts[pi].id
        for pool, k in ((core_free[pi], c), (gpu_free[pi], g)):
            if k:
                del pool[:k]
                for _ in range(k):
                    bisect.insort(pool, eft)
    by_rule: dict[str, list[float]] = defaultdict(list)
    for j, r in zip(jobs, rank):
        by_rule[j.rule].append(r)
    ordered = sorted(by_rule, key=lambda r: -sum(by_rule[r]) / len(by_rule[r]))
    return Heft(assignment, {r: 10 * k for k, r in enumerate(ordered)}, max(finish, default=0.0))


@dataclass(frozen=True)
class Bound:
    """A lower bound on the makespan: the larger of the longest chain and the work over capacity."""

    makespan_s: float
    critical_path_s: float
    work_s: float


def lower_bound(jobs: Sequence[Job], sites: Site) -> Bound:
    """The lower bound of the module docstring."""
    import pulp

    parts = sites.partitions
    children, indegree = dependants(jobs)
    index = {j.id: i for i, j in enumerate(jobs)}
    fitting = [_fitting(j, sites) for j in jobs]
    done = [0.0] * len(jobs)
    for i in topological(children, indegree):
        job = jobs[i]
        ready = max((done[index[d]] for d in job.deps), default=0.0)
        done[i] = min(max(ready, parts[pi].queue_wait_s) + job.seconds_on(parts[pi], sites) for pi in fitting[i])
    critical = max(done, default=0.0)

    # The work LP. Jobs of one rule and shape form a group whose jobs' fractions are shared; that is
    # exact only when their times are proportional across partitions, so each job's time on p is
    # lowered to c_j * a_gp (c_j: its fastest time; a_gp: the smallest t_jp / c_j of the group), which
    # can only lower the bound. Each partition's cores, memory and GPUs are separate capacities.
    members: dict[tuple[Any, ...], list[tuple[Job, dict[int, float]]]] = defaultdict(list)
    for job, fit in zip(jobs, fitting):
        times = {pi: job.seconds_on(parts[pi], sites) for pi in fit}
        members[(job.rule, max(job.threads, 1), job.mem_mb, job.gpus, tuple(fit))].append((job, times))
    prob = pulp.LpProblem("makespan_bound", pulp.LpMinimize)
    t_var = pulp.LpVariable("T", lowBound=0)
    prob += t_var
    load: dict[tuple[int, str], list[Any]] = defaultdict(list)
    for g, ((_, threads, mem, _, fit), group) in enumerate(members.items()):
        scale = [min(times.values()) for _, times in group]
        mass = sum(scale)
        fracs = {pi: pulp.LpVariable(f"f_{g}_{pi}", lowBound=0, upBound=1) for pi in fit}
        prob += pulp.lpSum(fracs.values()) == 1
        for pi, f in fracs.items():
            p = parts[pi]
            a = min(times[pi] / c if c > 0 else 0.0 for (_, times), c in zip(group, scale))
            seconds = mass * a  # the group's (lowered) time on p
            load[(pi, "cores")].append(threads * seconds / p.total_cores * f)
            load[(pi, "mem")].append(mem * seconds / (p.mem_mb * p.nodes) * f)
            gpus = group[0][0].gpus_in(p)
            if gpus:
                load[(pi, "gpus")].append(gpus * seconds / p.total_gpus * f)
    for terms in load.values():
        prob += pulp.lpSum(terms) <= t_var
    prob.solve(pulp.PULP_CBC_CMD(msg=False))
    work = float(pulp.value(t_var) or 0.0) if members else 0.0
    return Bound(max(critical, work), critical, work)


def perturbed(jobs: Sequence[Job], sigma: float, seed: int) -> list[Job]:
    """Copies of ``jobs`` whose runtimes are each multiplied by exp(N(0, sigma²)) (both classes alike)."""
    rng = random.Random(seed)
    out = []
    for job in jobs:
        f = math.exp(rng.gauss(0.0, sigma))
        out.append(replace(job, runtime_s={k: v * f for k, v in job.runtime_s.items()}))
    return out


def simulate_heft(jobs: Sequence[Job], sites: Site, mapping: Heft) -> SimResult:
    """HEFT's mapping run by the simulator (rules in HEFT's rank order)."""
    from aisci.placement.simulate import simulate

    placement = {j.rule: (mapping.assignment[j.id],) for j in jobs}
    return simulate(jobs, sites, placement, mapping.assignment, mapping.nice)


def heft_plan(jobs: Sequence[Job], sites: Site, mapping: Heft, run: SimResult, why: str, solve_s: float = 0.0) -> Any:
    """HEFT's mapping as a Plan (decisions per rule and partition, timed by the simulated run)."""
    from aisci.placement.ilp import Decision, Plan
    from aisci.resources import CPU, GPU

    parts = {p.id: p for p in sites.partitions}
    grouped: dict[tuple[str, str], list[tuple[Job, JobRun]]] = defaultdict(list)
    for job, r in zip(jobs, run.runs):
        grouped[(job.rule, mapping.assignment[job.id])].append((job, r))
    decisions = []
    for (rule, pid), pairs in sorted(grouped.items()):
        p = parts[pid]
        secs = [job.seconds_on(p, sites) for job, _ in pairs]
        job0 = pairs[0][0]
        decisions.append(Decision(
            rule=rule, resource_class=GPU if job0.gpus_in(p) else CPU, partition=pid, jobs=len(pairs),
            seconds_per_job=sum(secs) / len(secs), longest_s=max(secs),
            at_once=min(len(pairs), p.slots(job0.threads, job0.mem_mb, job0.gpus_in(p))),
            start_s=min(r.start_s for _, r in pairs), end_s=max(r.end_s for _, r in pairs),
            cost=sum(job.cost_on(p, sites) for job, _ in pairs), why=why,
        ))
    return Plan("makespan", None, "heft", run.makespan_s, sum(d.cost for d in decisions), solve_s, tuple(decisions),
                dict(mapping.nice), dict(mapping.assignment))


def best_plan(jobs: Sequence[Job], sites: Site, ilp: Any) -> tuple[Any, dict[str, SimResult]]:
    """The ILP's plan or HEFT's mapping, whichever the simulator finishes first (ties: the ILP's).

    Returns:
        The chosen plan and both simulated runs ("ilp", "heft").

    Raises:
        InputError: the jobs cannot be simulated on the sites (the simulator's reason).
    """
    from aisci.errors import InputError
    from aisci.placement.simulate import simulate

    try:
        ilp_run = simulate(jobs, sites, ilp.placement, ilp.assignment(jobs), ilp.nice)
        mapping = heft(jobs, sites)
        heft_run = simulate_heft(jobs, sites, mapping)
    except ValueError as exc:  # a job that fits no partition, a dependency cycle: the input's fault
        raise InputError(f"cannot simulate the plans: {exc}") from None
    runs = {"ilp": ilp_run, "heft": heft_run}
    if heft_run.makespan_s < ilp_run.makespan_s * (1 - 1e-9):
        why = (f"HEFT: each job where it finishes first (simulated {heft_run.makespan_s / 3600:.2f} h; "
               f"the ILP's rule-level plan {ilp_run.makespan_s / 3600:.2f} h)")
        return heft_plan(jobs, sites, mapping, heft_run, why, ilp.solve_s), runs
    return ilp, runs
