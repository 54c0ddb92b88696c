"""The plan: an integer linear program (pulp + CBC) placing a run's rule-jobs on partitions.

Jobs are aggregated by rule, so the model has (rules × partitions) variables however many jobs
there are. For each rule r and partition p: ``x[r,p]`` jobs of r run on p, ``u[r,p]`` says whether
any does. A GPU-class rule may run some jobs on GPUs and the others on CPUs (without GPUs): the
profile names each job's partition and GPUs (aisci.placement.plan). Each rule is a stage with a
start ``S[r]`` and end ``E[r]``:

* every job is placed: sum_p x[r,p] = n_r;
* p's share of the stage: E[r] >= S[r] + x[r,p]·t[r,p]/slots[r,p] (its jobs run slots[r,p] at a
  time) and E[r] >= wait_p + t[r,p] while p is used (nothing starts before p's backlog clears);
* one job of r lasts tau[r] >= t[r,p] on any partition it uses;
* dependencies: if every job of r needs every job of q (a gather, an index), S[r] >= E[q];
  otherwise the stages pipeline sample by sample: S[r] >= S[q] + tau[q] and E[r] >= E[q] + tau[r];
* capacity: the jobs on p fill it for at most M − wait_p: sum_r x[r,p]·t[r,p]/slots[r,p] <= M − wait_p;
* M >= E[r] for every rule.

``--objective makespan`` minimises M, then the cost at that makespan (within 1 %);
``--objective cost`` minimises the cost with M <= the deadline. t[r,p] is the rule's mean runtime
on p in the class it takes there, plus moving its inputs to p's centre; a job longer than p's wall
time limit, or larger than p's nodes, never goes there.
"""

from __future__ import annotations

import logging
import math
import time
from collections import defaultdict
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field

from aisci.errors import InputError
from aisci.placement.model import CPU, GPU, Job, static_placement
from aisci.slurm.site import Partition, Site

log = logging.getLogger(__name__)

OBJECTIVES = ("makespan", "cost")


@dataclass(frozen=True)
class Stage:
    """A rule's jobs, aggregated: what the ILP sees of them."""

    rule: str
    jobs: int
    threads: int
    mem_mb: int
    gpus: int
    input_bytes: float  # mean per job
    seconds: dict[str, float]  # partition id -> mean seconds per job there
    longest: dict[str, float]  # partition id -> longest job there
    slots: dict[str, int]  # partition id -> jobs at once (0: does not fit)
    cost: dict[str, float]  # partition id -> mean price per job

    def fits(self, pid: str, walltime_s: float) -> bool:
        return self.slots[pid] > 0 and self.longest[pid] <= walltime_s


@dataclass(frozen=True)
class Decision:
    """Jobs of one rule on one partition, with when the plan expects them and why."""

    rule: str
    resource_class: str
    partition: str
    jobs: int
    seconds_per_job: float  # mean
    longest_s: float
    at_once: int
    start_s: float
    end_s: float
    cost: float
    why: str


@dataclass(frozen=True)
class Plan:
    """Where every rule runs, as the ILP decided it."""

    objective: str
    deadline_s: float | None
    status: str
    makespan_s: float
    cost: float
    solve_s: float
    decisions: tuple[Decision, ...]
    #: rule -> Slurm nice (0 = first): later stages go first, so that samples flow through the
    #: pipeline and reach the GPU stages early instead of every sample waiting at each stage
    nice: Mapping[str, int] = field(default_factory=dict)
    #: job id -> partition id, when the plan places jobs one by one (HEFT) rather than dealing out
    #: each rule's counts
    explicit: Mapping[int, str] | None = None

    @property
    def placement(self) -> dict[str, tuple[str, ...]]:
        """rule -> partition ids, the one with most jobs first (the order a job tries them)."""
        by_rule: dict[str, list[Decision]] = defaultdict(list)
        for d in self.decisions:
            by_rule[d.rule].append(d)
        return {r: tuple(d.partition for d in sorted(ds, key=lambda d: (-d.jobs, d.partition))) for r, ds in by_rule.items()}

    @property
    def classes(self) -> dict[str, tuple[str, ...]]:
        """rule -> the classes ("gpu", "cpu") its jobs run in."""
        out: dict[str, set[str]] = defaultdict(set)
        for d in self.decisions:
            out[d.rule].add(d.resource_class)
        return {r: tuple(sorted(c, reverse=True)) for r, c in out.items()}

    def assignment(self, jobs: Sequence[Job]) -> dict[int, str]:
        """Job id -> partition id (the explicit one, else see deal)."""
        if self.explicit is not None:
            return {j.id: self.explicit[j.id] for j in jobs}
        counts: dict[str, dict[str, int]] = defaultdict(dict)
        for d in self.decisions:
            counts[d.rule][d.partition] = d.jobs
        return deal(counts, jobs)


def deal(counts: Mapping[str, Mapping[str, int]], jobs: Sequence[Job]) -> dict[int, str]:
    """Job id -> partition id: each rule's jobs dealt out in job order (the order samples move
    through the pipeline) to its partitions in the planned proportions, interleaved: after any
    number of jobs, each partition has had its share so far (rounded).

    Raises:
        InputError: a rule of ``jobs`` that ``counts`` does not place.
    """
    by_rule: dict[str, list[Job]] = defaultdict(list)
    for job in jobs:
        by_rule[job.rule].append(job)
    out = {}
    for rule, rjobs in by_rule.items():
        want = {p: n for p, n in counts.get(rule, {}).items() if n > 0}
        if not want:
            raise InputError(f"rule {rule} is not in the plan (plan again for this workflow)")
        total = sum(want.values())
        given = dict.fromkeys(want, 0)
        for i, job in enumerate(sorted(rjobs, key=lambda j: j.id)):
            # the partition furthest behind its share of the first i+1 jobs
            pid = max(want, key=lambda p: (want[p] * (i + 1) / total - given[p], want[p], p))
            given[pid] += 1
            out[job.id] = pid
    return out


NICE_STEP = 10


def priorities(jobs: Sequence[Job]) -> dict[str, int]:
    """rule -> Slurm nice: NICE_STEP × (deepest level − the rule's level in the rule graph).

    Depth-first: a job of a later stage goes before a waiting job of an earlier one, so each
    sample moves on (and feeds the GPU stages) while others are still aligning.
    """
    barriers, pipelined = rule_edges(jobs)
    edges = barriers | pipelined
    level: dict[str, int] = {}
    rules = list(dict.fromkeys(j.rule for j in jobs))
    parents: dict[str, set[str]] = {r: set() for r in rules}
    for q, r in edges:
        parents[r].add(q)

    def depth(rule: str, seen: frozenset[str] = frozenset()) -> int:
        if rule not in level:
            level[rule] = 1 + max((depth(q, seen | {rule}) for q in parents[rule] if q not in seen), default=-1)
        return level[rule]

    deepest = max(depth(r) for r in rules)
    return {r: NICE_STEP * (deepest - level[r]) for r in rules}


def stages(jobs: Sequence[Job], sites: Site) -> dict[str, Stage]:
    """Aggregate jobs by rule: per partition the mean and longest runtime, slots and price."""
    by_rule: dict[str, list[Job]] = defaultdict(list)
    for job in jobs:
        by_rule[job.rule].append(job)
    out = {}
    for rule, rjobs in by_rule.items():
        threads = max(j.threads for j in rjobs)
        mem = max(j.mem_mb for j in rjobs)
        gpus = max(j.gpus for j in rjobs)
        seconds, longest, slots, cost = {}, {}, {}, {}
        for p in sites.partitions:
            times = [j.seconds_on(p, sites) for j in rjobs]
            seconds[p.id] = sum(times) / len(times)
            longest[p.id] = max(times)
            slots[p.id] = p.slots(threads, mem, gpus if p.gpus else 0)
            cost[p.id] = sum(j.cost_on(p, sites) for j in rjobs) / len(rjobs)
        out[rule] = Stage(rule, len(rjobs), threads, mem, gpus, sum(j.input_bytes for j in rjobs) / len(rjobs),
                          seconds, longest, slots, cost)
    return out


def rule_edges(jobs: Sequence[Job]) -> tuple[set[tuple[str, str]], set[tuple[str, str]]]:
    """Rule-level dependencies (q, r): (barriers, pipelined).

    A barrier: every job of r needs every job of q (r cannot start before q ends).
    """
    rule_of = {j.id: j.rule for j in jobs}
    count: dict[str, int] = defaultdict(int)
    for j in jobs:
        count[j.rule] += 1
    edges: set[tuple[str, str]] = set()
    partial: set[tuple[str, str]] = set()
    for j in jobs:
        per_rule: dict[str, int] = defaultdict(int)
        for d in j.deps:
            per_rule[rule_of[d]] += 1
        for q, n in per_rule.items():
            if q == j.rule:
                continue
            edges.add((q, j.rule))
            if n < count[q]:
                partial.add((q, j.rule))
    # a rule whose every job lacks a dependency on q is not a dependant of q in every job either
    missing: set[tuple[str, str]] = set()
    for r in count:
        deps_of_all = [{rule_of[d] for d in j.deps} for j in jobs if j.rule == r]
        for q, rr in edges:
            if rr == r and any(q not in s for s in deps_of_all):
                missing.add((q, r))
    barriers = {e for e in edges if e not in partial and e not in missing}
    return barriers, edges - barriers


def _check_fits(stage_map: dict[str, Stage], sites: Site) -> None:
    for st in stage_map.values():
        if not any(st.fits(p.id, p.max_walltime_s) for p in sites.partitions):
            biggest = max(sites.partitions, key=lambda p: (p.cores, p.mem_mb, p.gpus))
            shortest = min(st.longest.values())
            raise InputError(
                f"rule {st.rule} fits nowhere: its jobs need {st.threads} threads, {st.mem_mb} MB"
                + (f", {st.gpus} GPU(s)" if st.gpus else "")
                + f" and up to {shortest / 3600:.1f} h; the largest nodes ({biggest.id}) have {biggest.cores} cores, "
                f"{biggest.mem_mb} MB, {biggest.gpus} GPUs; wall time limits: "
                + ", ".join(f"{p.id} {'none' if math.isinf(p.max_walltime_s) else f'{p.max_walltime_s / 3600:g} h'}"
                            for p in sites.partitions)
            )


def plan(
    jobs: Sequence[Job],
    sites: Site,
    *,
    objective: str = "makespan",
    deadline_s: float | None = None,
    time_limit_s: float = 8.0,
) -> Plan:
    """Place a run's jobs on the sites' partitions.

    Args:
        jobs: the run's jobs, every one with runtime_s filled (a "gpu" entry for GPU-class rules).
        sites: centres and partitions.
        objective: "makespan" (fastest, then cheapest) or "cost" (cheapest within deadline_s).
        deadline_s: required for objective "cost"; with "makespan" it is checked.
        time_limit_s: CBC's time limit for the whole plan (half per solve); the best plan found by
            then is used and the status says so.

    Raises:
        InputError: an unknown objective, a rule that fits no partition, no deadline for
            "cost", or no plan within the deadline (the message gives the fastest makespan).
    """
    import pulp

    if objective not in OBJECTIVES:
        raise InputError(f"objective {objective!r} is not one of {', '.join(OBJECTIVES)}")
    if objective == "cost" and deadline_s is None:
        raise InputError("--objective cost needs --deadline")
    if not jobs:
        raise InputError("nothing to plan: the workflow has no jobs to run")
    started = time.perf_counter()
    st = stages(jobs, sites)
    _check_fits(st, sites)
    barriers, pipelined = rule_edges(jobs)
    parts = {p.id: p for p in sites.partitions}
    allowed = set()
    for r, s in st.items():
        fits = [pid for pid, p in parts.items() if s.fits(pid, p.max_walltime_s)]
        # GPU nodes' cores are kept for GPU jobs (a CPU job holding them leaves their GPUs idle),
        # unless a CPU-class rule fits nowhere else
        off_gpu = [pid for pid in fits if s.gpus or not parts[pid].gpus]
        allowed.update((r, pid) for pid in (off_gpu or fits))

    prob = pulp.LpProblem("placement", pulp.LpMinimize)
    # job counts are continuous (rounded afterwards, largest remainder): only the u's are branched on
    x = {k: pulp.LpVariable(f"x_{i}", lowBound=0, upBound=st[k[0]].jobs) for i, k in enumerate(sorted(allowed))}
    u = {k: pulp.LpVariable(f"u_{i}", cat="Binary") for i, k in enumerate(sorted(allowed))}
    v = {pid: pulp.LpVariable(f"v_{i}", cat="Binary") for i, pid in enumerate(parts)}
    S = {r: pulp.LpVariable(f"S_{i}", lowBound=0) for i, r in enumerate(sorted(st))}
    E = {r: pulp.LpVariable(f"E_{i}", lowBound=0) for i, r in enumerate(sorted(st))}
    tau = {r: pulp.LpVariable(f"tau_{i}", lowBound=0) for i, r in enumerate(sorted(st))}
    M = pulp.LpVariable("makespan", lowBound=0)
    cost = pulp.lpSum(x[k] * st[k[0]].cost[k[1]] for k in allowed)

    for r, s in st.items():
        mine = [k for k in allowed if k[0] == r]
        prob += pulp.lpSum(x[k] for k in mine) == s.jobs, f"all_{r}"
        for k in mine:
            pid = k[1]
            t, slots, wait = s.seconds[pid], s.slots[pid], parts[pid].queue_wait_s
            prob += x[k] <= s.jobs * u[k]
            prob += u[k] <= v[pid]
            prob += E[r] >= S[r] + (t / slots) * x[k]
            prob += E[r] >= wait * u[k] + (t / slots) * x[k]  # nothing starts before p's backlog clears
            prob += E[r] >= (wait + t) * u[k]
            prob += tau[r] >= t * u[k]
        prob += E[r] >= S[r] + tau[r]  # a stage lasts at least one of its jobs
        prob += M >= E[r]
    for q, r in barriers:
        prob += S[r] >= E[q]
    for q, r in pipelined:
        prob += S[r] >= S[q] + tau[q]
        prob += E[r] >= E[q] + tau[r]
    for pid, p in parts.items():
        load = [x[k] * (st[k[0]].seconds[pid] / st[k[0]].slots[pid]) for k in allowed if k[1] == pid]
        if load:
            prob += pulp.lpSum(load) <= M - p.queue_wait_s * v[pid], f"capacity_{pid.replace('/', '__')}"

    solver = pulp.PULP_CBC_CMD(msg=False, timeLimit=max(1.0, time_limit_s / 2), gapRel=0.005)
    # tiny weights keep stage starts and ends as early as the plan allows (they are reported)
    early = 1e-6 * (M + pulp.lpSum(S.values()) + pulp.lpSum(E.values())) / max(1, len(st))
    if objective == "makespan":
        prob.setObjective(M + 1e-9 * cost + 1e-3 * early)
        status = _solve(prob, solver)
        fastest = M.value()
        if deadline_s is not None and fastest > deadline_s * (1 + 1e-9):
            raise InputError(f"no plan meets the deadline of {deadline_s / 3600:.2f} h: the fastest takes {fastest / 3600:.2f} h")
        prob += M <= fastest * 1.01 + 1, "keep_makespan"
        prob.setObjective(cost + early)
        second = _solve(prob, solver)
        status = status if status != "optimal" else second  # the worse of the two solves
    else:
        prob += M <= deadline_s, "deadline"
        prob.setObjective(cost + early)
        status = _solve(prob, solver, deadline_s=deadline_s, fastest=lambda: _fastest(jobs, sites, time_limit_s))
    solve_s = time.perf_counter() - started

    decisions = []
    static = static_placement(list(jobs), sites)
    whole = _round_counts({k: x[k].value() or 0.0 for k in allowed}, {r: s.jobs for r, s in st.items()})
    for (r, pid) in sorted(allowed):
        n = whole[(r, pid)]
        if n <= 0:
            continue
        s, p = st[r], parts[pid]
        cls = GPU if s.gpus and p.gpus else CPU
        start = max(S[r].value(), p.queue_wait_s)
        end = start + math.ceil(n / s.slots[pid]) * s.seconds[pid]
        decisions.append(Decision(
            rule=r, resource_class=cls, partition=pid, jobs=n, seconds_per_job=s.seconds[pid], longest_s=s.longest[pid],
            at_once=min(n, s.slots[pid]), start_s=start, end_s=end, cost=n * s.cost[pid],
            why=_why(s, p, n, static.get(r, ()), parts, sites),
        ))
    result = Plan(objective, deadline_s, status, M.value(), sum(d.cost for d in decisions), solve_s, tuple(decisions),
                  priorities(jobs))
    log.info("plan (%s): %d rules, %d partitions, makespan %.2f h, cost %.2f, solved in %.2f s (%s)",
             objective, len(st), len(parts), result.makespan_s / 3600, result.cost, solve_s, status)
    return result


def _round_counts(values: dict[tuple[str, str], float], totals: dict[str, int]) -> dict[tuple[str, str], int]:
    """Whole job counts summing to each rule's total (largest remainder)."""
    out = {k: math.floor(v + 1e-6) for k, v in values.items()}
    for r, total in totals.items():
        keys = sorted((k for k in values if k[0] == r), key=lambda k: -(values[k] - out[k]))
        for k in keys[: max(0, total - sum(out[k] for k in keys))]:
            out[k] += 1
    return out


def _solve(prob, solver, deadline_s: float | None = None, fastest=None) -> str:
    import pulp

    prob.solve(solver)
    status = pulp.LpStatus[prob.status]
    if status == "Optimal" and prob.sol_status == pulp.LpSolutionOptimal:
        return "optimal"
    if prob.sol_status == pulp.LpSolutionIntegerFeasible:
        return "time limit: best plan found"
    if deadline_s is not None and status == "Infeasible":
        raise InputError(f"no plan meets the deadline of {deadline_s / 3600:.2f} h: the fastest takes {fastest() / 3600:.2f} h")
    if status == "Infeasible":
        raise InputError("the placement ILP has no solution (Infeasible)")
    raise InputError(f"no plan found within the solver's time limit ({status}): raise --time-limit")


def _fastest(jobs: Sequence[Job], sites: Site, time_limit_s: float) -> float:
    return plan(jobs, sites, objective="makespan", time_limit_s=time_limit_s).makespan_s


def _why(s: Stage, p: Partition, n: int, static: tuple[str, ...], parts: dict[str, Partition], sites: Site) -> str:
    """One line on why these jobs went to p."""
    waves = math.ceil(n / s.slots[p.id])
    reasons = [f"{n} × {s.seconds[p.id] / 60:.1f} min, {min(n, s.slots[p.id])} at once ({waves} wave{'s' * (waves > 1)})"]
    if p.id in static:
        reasons.append("its usual partition")
    elif s.gpus and not p.gpus:
        gpu_times = [s.seconds[q] for q in s.seconds if parts[q].gpus and s.slots[q]]
        if gpu_times:
            reasons.append(f"GPU rule on CPU: {s.seconds[p.id] / min(gpu_times):.1f}× slower per job, "
                           "but the GPU partitions are the bottleneck")
        else:
            reasons.append("GPU rule on CPU: no GPU partition fits it")
    elif p.centre != sites.home:
        t = sites.transfer(p.centre)
        reasons.append(f"overflow to {p.centre}: moving {s.input_bytes / 1e9:.1f} GB/job adds "
                       f"{t.seconds(s.input_bytes) / 60:.1f} min and {t.cost(s.input_bytes):.2f} per job")
    else:
        reasons.append("spare capacity off its usual partition")
    if p.queue_wait_s:
        reasons.append(f"backlog {p.queue_wait_s / 60:.0f} min")
    return "; ".join(reasons)
