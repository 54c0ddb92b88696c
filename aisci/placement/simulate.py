"""Discrete-event simulation of a workflow's jobs running on the sites' partitions under a placement.

Semantics (a deliberately simple, Slurm-like model; deterministic, no randomness):

* A job is *ready* when every job in its ``deps`` has finished; jobs without deps are ready at
  t = 0. Its ready time is its submit time, and ``wait_s = start_s - ready_s``.
* A partition admits none of our jobs before ``queue_wait_s`` (other users' backlog holds it).
* A partition has ``nodes`` nodes, each with ``cores`` cores, ``mem_mb`` memory and ``gpus`` GPUs.
  A job takes ``max(threads, 1)`` cores, ``mem_mb`` and ``job.gpus_in(p)`` GPUs on one node, the
  first node (in index order) with room for all three. It holds them for ``job.seconds_on(p,
  sites)``, which includes moving its inputs to a partner centre; a GPU-class job on a CPU
  partition runs its "cpu" runtime and takes no GPU.
* Dispatch happens at every event time (a job ends, a partition opens). At an event, finished jobs
  release their resources and make their dependants ready first; then the ready jobs are walked in
  priority order (the rule's Slurm ``nice``, then ready time, then job id) and each starts on the
  first partition of its own partition (``assignment``, a plan's per-job split) or else of
  ``placement[job.rule]`` (in the given order) that is open and has a node with room *now*.
  Partitions where the job could never fit (too big, or over ``max_walltime_s``) are skipped.
  A job that cannot start does not block later ones: this is backfill *without reservations*
  (Slurm's backfill also keeps the top job's expected start; we do not model that).
* Jobs of one shape (rule, cores, memory, GPUs, usable partitions) are interchangeable for
  dispatch, so they sit in one FIFO queue; once the head of a queue cannot start at an event,
  the rest of that queue is skipped for the event. Each node scan is also cached per shape and
  partition (only nodes released since the last failed scan are looked at again), so an event
  costs about O(shapes × partitions), not O(ready jobs × nodes).
* Utilisation is measured over [0, makespan]: core-seconds / (total cores × makespan), GPUs
  likewise (0 without GPUs); a partition's ``utilisation`` is its GPU one if it has GPUs, else its
  core one. Costs are ``job.cost_on(p, sites)``. With no jobs, the makespan and all figures are 0.
"""

from __future__ import annotations

import heapq
import math
from collections import deque
from collections.abc import Mapping, Sequence
from typing import Any

from aisci.placement.model import Job, Placement
from aisci.slurm.site import Partition, Site
from aisci.placement.simresult import JobRun, SimResult, summarise


class _Pool:
    """Free resources of one partition's nodes, and the nodes released so far (in order)."""

    __slots__ = ("cores", "gpus", "mem", "opens_s", "part", "released")

    def __init__(self, part: Partition) -> None:
        self.part = part
        self.opens_s = part.queue_wait_s
        self.cores = [part.cores] * part.nodes
        self.mem = [part.mem_mb] * part.nodes
        self.gpus = [part.gpus] * part.nodes
        self.released: list[int] = []


class _Shape:
    """Jobs that are interchangeable for dispatch, their FIFO queue and cached node scans.

    For each usable partition, every node >= ``lo[i]`` or in ``extra[i]`` may have room; all other
    nodes had none at the last scan, and only nodes released since (``released[seen[i]:]``) can
    have gained some.
    """

    __slots__ = ("cores", "extra", "gpus", "lo", "mem", "parts", "queue", "seen")

    def __init__(self, cores: int, mem: int, parts: tuple[int, ...], gpus: tuple[int, ...]) -> None:
        self.cores, self.mem, self.parts, self.gpus = cores, mem, parts, gpus
        self.queue: deque[int] = deque()
        self.lo = [0] * len(parts)
        self.extra: list[list[int]] = [[] for _ in parts]
        self.seen = [0] * len(parts)

    def first_fit(self, i: int, pool: _Pool) -> int:
        """Index of the first node of ``pool`` (the shape's ``i``-th partition) with room, else -1."""
        lo, extra, need_g = self.lo[i], self.extra[i], self.gpus[i]
        new = pool.released[self.seen[i]:]
        self.seen[i] = len(pool.released)
        if new:
            extra = sorted(set(extra).union(k for k in new if k < lo))
        cores, mem, gpus, need_c, need_m = pool.cores, pool.mem, pool.gpus, self.cores, self.mem
        for pos, k in enumerate(extra):
            if cores[k] >= need_c and mem[k] >= need_m and gpus[k] >= need_g:
                self.extra[i] = extra[pos:]
                return k
        self.extra[i] = []
        for k in range(lo, len(cores)):
            if cores[k] >= need_c and mem[k] >= need_m and gpus[k] >= need_g:
                self.lo[i] = k
                return k
        self.lo[i] = len(cores)
        return -1


def _describe(job: Job) -> str:
    return f"rule {job.rule!r}" + (f" (wildcards {job.wildcards!r})" if job.wildcards else "")


def _usable(
    jobs: Sequence[Job], sites: Site, placement: Placement, assignment: Mapping[int, str] | None = None
) -> list[tuple[int, ...]]:
    """For each job, the indices (in sites order) of its partitions it fits, in placement order
    (its own partition when ``assignment`` names one, else its rule's)."""
    index = {p.id: i for i, p in enumerate(sites.partitions)}
    known: dict[tuple[str, ...], tuple[int, ...]] = {}
    fit_cache: dict[tuple[Any, ...], tuple[int, ...]] = {}
    usable = []
    for job in jobs:
        if assignment is not None and job.id in assignment:
            pids: tuple[str, ...] = (assignment[job.id],)
        elif job.rule in placement:
            pids = tuple(placement[job.rule])
        else:
            raise ValueError(f"{_describe(job)} has no entry in the placement")
        if pids not in known:
            unknown = [pid for pid in pids if pid not in index]
            if unknown:
                raise ValueError(f"placement of rule {job.rule!r} names unknown partition {unknown[0]!r}")
            known[pids] = tuple(index[pid] for pid in pids)
        # jobs of one rule mostly share a shape and runtimes: decide fits once per distinct key
        key = (pids, job.threads, job.mem_mb, job.gpus, job.input_bytes, tuple(sorted(job.runtime_s.items())))
        if key not in fit_cache:
            try:
                fit_cache[key] = tuple(i for i in known[pids] if job.fits(sites.partitions[i], sites))
            except KeyError as err:
                raise ValueError(f"{_describe(job)} has no runtime estimate for class {err.args[0]!r}") from None
        if not fit_cache[key]:
            where = ", ".join(pids) or "no partition"
            raise ValueError(
                f"{_describe(job)} (threads={job.threads}, mem_mb={job.mem_mb}, gpus={job.gpus}) "
                f"fits none of its partitions: {where}"
            )
        usable.append(fit_cache[key])
    return usable


def dependants(jobs: Sequence[Job]) -> tuple[list[list[int]], list[int]]:
    """Dependants of each job (by index) and each job's count of unfinished deps; checks the DAG."""
    index: dict[int, int] = {}
    for i, job in enumerate(jobs):
        if job.id in index:
            raise ValueError(f"duplicate job id {job.id} ({_describe(job)})")
        index[job.id] = i
    children: list[list[int]] = [[] for _ in jobs]
    indegree = [0] * len(jobs)
    for i, job in enumerate(jobs):
        for dep in set(job.deps):
            if dep not in index:
                raise ValueError(f"job {job.id} ({_describe(job)}) depends on unknown job id {dep}")
            children[index[dep]].append(i)
            indegree[i] += 1
    order = topological(children, indegree)
    if len(order) != len(jobs):
        reached = set(order)
        cyclic = sorted(jobs[i].id for i in range(len(jobs)) if i not in reached)
        raise ValueError(f"dependency cycle among jobs {cyclic[:10]}")
    return children, indegree


def topological(children: list[list[int]], indegree: list[int]) -> list[int]:
    """Job indices, each after all of its deps (Kahn's algorithm); jobs on a cycle are never reached."""
    left = list(indegree)
    stack = [i for i, d in enumerate(left) if d == 0]
    order = []
    while stack:
        i = stack.pop()
        order.append(i)
        for c in children[i]:
            left[c] -= 1
            if left[c] == 0:
                stack.append(c)
    return order


def simulate(
    jobs: Sequence[Job],
    sites: Site,
    placement: Placement,
    assignment: Mapping[int, str] | None = None,
    nice: Mapping[str, int] | None = None,
    dispatch_s: float = 0.0,
    backfill_s: float = 0.0,
) -> SimResult:
    """Run ``jobs`` on ``sites`` under ``placement`` (see the module docstring for the rules).

    Args:
        jobs: the workflow's jobs; ``deps`` name other jobs' ids.
        sites: partitions, home centre and transfers.
        placement: rule -> partition ids in order of preference.
        assignment: job id -> the one partition id that job goes to (a plan's per-job split,
            aisci.placement.ilp.Plan.assignment); it overrides the job's rule's placement.
        nice: rule -> Slurm nice: ready jobs go in order of (nice, ready time, id); none: 0.
        dispatch_s: a job whose last dependency ends at t is ready at t + dispatch_s (the driver
            noticing the end, submitting, Slurm scheduling; benchmarks/placement/reality.py fits it
            to real runs). Jobs without dependencies are ready at 0.
        backfill_s: > 0: Slurm's two schedulers. At an event (a job ends or becomes ready) the main
            scheduler walks the ready jobs in priority order and, on a partition where one could not
            start, starts no lower one; only the backfill pass, every ``backfill_s`` seconds from 0
            (slurm.conf bf_interval, 30 by default), starts jobs past a blocked one. 0: every event
            backfills (the default model above).

    Returns:
        Every job's run (in the order of ``jobs``) and per-partition and overall figures.

    Raises:
        ValueError: a rule without a placement entry, a partition id not in ``sites``, a job that
            fits none of its rule's partitions or lacks a runtime estimate, a duplicate job id,
            a dep on an unknown job id, or a dependency cycle. All checked before simulating.
    """
    usable = _usable(jobs, sites, placement, assignment)
    children, indegree = dependants(jobs)
    parts = sites.partitions
    pools = [_Pool(p) for p in parts]

    shapes: list[_Shape] = []
    shape_of: list[int] = []
    shape_nice: list[int] = []  # shapes are per rule, so one nice each
    shape_index: dict[tuple[Any, ...], int] = {}
    for job, use in zip(jobs, usable):
        gpus = tuple(job.gpus_in(parts[i]) for i in use)
        key = (job.rule, max(job.threads, 1), job.mem_mb, use, gpus)
        if key not in shape_index:
            shape_index[key] = len(shapes)
            shapes.append(_Shape(max(job.threads, 1), job.mem_mb, use, gpus))
            shape_nice.append((nice or {}).get(job.rule, 0))
        shape_of.append(shape_index[key])

    n = len(jobs)
    ids = [job.id for job in jobs]
    ready = [0.0] * n
    start = [0.0] * n
    end = [0.0] * n
    where = [-1] * n  # partition index
    node = [-1] * n
    held_g = [0] * n
    ends: list[tuple[float, int]] = []
    opens = sorted({p.queue_wait_s for p in parts if p.queue_wait_s > 0}, reverse=True)

    def try_start(shape: _Shape, i: int, t: float) -> bool:
        for pos, pi in enumerate(shape.parts):
            pool = pools[pi]
            if t < pool.opens_s:
                continue
            k = shape.first_fit(pos, pool)
            if k < 0:
                continue
            g = shape.gpus[pos]
            pool.cores[k] -= shape.cores
            pool.mem[k] -= shape.mem
            pool.gpus[k] -= g
            where[i], node[i], held_g[i], start[i] = pi, k, g, t
            end[i] = t + jobs[i].seconds_on(pool.part, sites)
            heapq.heappush(ends, (end[i], i))
            return True
        return False

    newly = sorted((i for i in range(n) if indegree[i] == 0), key=ids.__getitem__)
    pending: list[tuple[float, int]] = []  # (ready time, job) of jobs whose dependencies ended
    t = 0.0
    while True:
        while pending and pending[0][0] <= t:
            newly.append(heapq.heappop(pending)[1])
        while ends and ends[0][0] <= t:
            _, i = heapq.heappop(ends)
            shape, pool = shapes[shape_of[i]], pools[where[i]]
            pool.cores[node[i]] += shape.cores
            pool.mem[node[i]] += shape.mem
            pool.gpus[node[i]] += held_g[i]
            pool.released.append(node[i])
            for c in children[i]:
                indegree[c] -= 1
                if indegree[c] == 0:
                    if dispatch_s > 0:
                        heapq.heappush(pending, (t + dispatch_s, c))
                    else:
                        newly.append(c)
        newly.sort(key=ids.__getitem__)
        for i in newly:
            ready[i] = t
            shapes[shape_of[i]].queue.append(i)
        newly = []
        # walk the queue heads in priority order; a head that cannot start closes its queue for now
        heads = [(shape_nice[si], ready[s.queue[0]], ids[s.queue[0]], si) for si, s in enumerate(shapes) if s.queue]
        heapq.heapify(heads)
        strict = backfill_s > 0 and abs(t / backfill_s - round(t / backfill_s)) > 1e-9  # not a backfill pass
        blocked: set[int] = set()  # partitions where a higher job could not start (main scheduler)
        while heads:
            _, _, _, si = heapq.heappop(heads)
            shape = shapes[si]
            if strict and all(pi in blocked for pi in shape.parts):
                continue
            if try_start(shape, shape.queue[0], t):
                shape.queue.popleft()
                if shape.queue:
                    heapq.heappush(heads, (shape_nice[si], ready[shape.queue[0]], ids[shape.queue[0]], si))
            elif strict:
                blocked.update(shape.parts)
        while opens and opens[-1] <= t:
            opens.pop()
        upcoming = [x for x in (ends[0][0] if ends else None, opens[-1] if opens else None,
                                pending[0][0] if pending else None) if x is not None]
        if backfill_s > 0 and upcoming and any(s.queue for s in shapes):  # the next backfill pass
            upcoming.append((math.floor(t / backfill_s + 1e-9) + 1) * backfill_s)
        if not upcoming:
            break
        t = min(upcoming)
    if any(p < 0 for p in where):  # unreachable after the up-front checks; guards the invariant
        raise RuntimeError("simulation ended with jobs that never started")
    runs = tuple(
        JobRun(job.id, job.rule, job.wildcards, parts[where[i]].id, job.resource_class(parts[where[i]]),
               ready[i], start[i], end[i], node[i], shapes[shape_of[i]].cores, shapes[shape_of[i]].mem, held_g[i])
        for i, job in enumerate(jobs)
    )
    return summarise(jobs, sites, runs, where)
