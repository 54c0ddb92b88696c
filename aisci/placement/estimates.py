"""Runtime estimates per rule and resource class, fitted against input size from earlier runs.

Two sources of measured runtimes:

* the run history (aisci.slurm.history), recorded from Slurm accounting: exact, and it
  knows whether the job had GPUs, so it counts for the class the job ran in;
* Snakemake benchmark files (``benchmarks/<rule>/<wildcards>.tsv``): they do not record where
  the job ran, so they count for the rule's own class ("gpu" for a rule that declares GPUs).

For one job the history takes precedence over its benchmark file. Per (rule, class), runtime is
fitted as ``seconds = a + b * GB of input`` or taken as the mean; a class without measurements
is derived from the other class through a GPU speed-up, and a rule without any falls back to a
per-rule default and then to a global one.
"""

from __future__ import annotations

import json
import logging
import math
import statistics
from collections import defaultdict
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path

from aisci.errors import InputError
from aisci.placement.model import CPU, GPU, Job
from aisci.slurm.history import HistoryRow, latest

log = logging.getLogger(__name__)

#: No job is expected to take less than this (a fitted line may have a negative intercept).
MIN_RUNTIME_S = 1.0
GB = 1e9  # decimal, as aisci.placement.model.Transfer counts bytes
_CLASSES = (CPU, GPU)


# --------------------------------------------------------------------------- benchmark files


def _seconds(text: str, where: str) -> float:
    try:
        value = float(text)
    except (TypeError, ValueError):
        raise InputError(f"{where}: s {text!r} is not a number") from None
    if not math.isfinite(value) or value < 0:
        raise InputError(f"{where}: s {text!r} must be a finite number >= 0")
    return value


def _jsonl_seconds(path: Path, lines: list[tuple[int, str]]) -> list[float]:
    out = []
    for line_no, line in lines:
        try:
            record = json.loads(line)
        except json.JSONDecodeError as exc:
            raise InputError(f"{path} line {line_no}: not JSON: {exc.msg}") from None
        if not isinstance(record, dict) or "s" not in record:
            raise InputError(f"{path} line {line_no}: no 's' field")
        out.append(_seconds(str(record["s"]), f"{path} line {line_no}"))
    return out


def read_benchmark(path: Path) -> float:
    """Mean wall-clock seconds of a Snakemake benchmark file (column ``s``).

    Reads the TSV format, plain or extended (more columns; "NA" may stand in them), with one data
    row per repeat (``benchmark: repeat(..., n)``); a ``.jsonl`` benchmark is read by its ``s``
    field.

    Args:
        path: the benchmark file.

    Returns:
        The mean of ``s`` over the data rows.

    Raises:
        InputError: naming the file (and line) when it has no ``s`` column, no data rows, a row
            shorter than the header or an ``s`` value that is not a non-negative number.
    """
    try:
        text = path.read_text()
    except OSError as exc:
        raise InputError(f"{path}: cannot read benchmark file: {exc.strerror}") from None
    lines = [(n, line) for n, line in enumerate(text.splitlines(), 1) if line.strip()]
    if not lines:
        raise InputError(f"{path}: empty benchmark file")
    if path.suffix == ".jsonl":
        values = _jsonl_seconds(path, lines)
    else:
        header_no, header_line = lines[0]
        header = header_line.rstrip("\r").split("\t")
        if "s" not in header:
            raise InputError(f"{path} line {header_no}: no 's' column in the header {header_line!r}")
        at = header.index("s")
        values = []
        for line_no, line in lines[1:]:
            fields = line.rstrip("\r").split("\t")
            if len(fields) <= at:
                raise InputError(f"{path} line {line_no}: {len(fields)} fields, no value for 's'")
            values.append(_seconds(fields[at], f"{path} line {line_no}"))
        if not values:
            raise InputError(f"{path}: no data rows below the header")
    return statistics.fmean(values)


# --------------------------------------------------------------------------- observations


@dataclass(frozen=True)
class Observation:
    """One measured runtime of a rule in one resource class, with the job's input size."""

    rule: str
    resource_class: str
    input_bytes: int
    seconds: float
    source: str  # the benchmark file, or "sacct job <id>"


@dataclass(frozen=True)
class JobRecord:
    """What the estimates need to know about one job of this run."""

    rule: str
    wildcards: str  # the Slurm plugin's form, as in HistoryRow
    gpus: int  # declared GPUs (0: a CPU-class rule)
    input_bytes: int
    benchmark: str | None = None  # the rule's benchmark file, relative to the working directory


def job_records(jobs: Iterable[Job], benchmarks: Mapping[int, str | None]) -> list[JobRecord]:
    """JobRecords of a run's jobs, given each job's benchmark file by job id (a missing id: none)."""
    return [JobRecord(j.rule, j.wildcards, j.gpus, j.input_bytes, benchmarks.get(j.id)) for j in jobs]


def observations(jobs: Iterable[JobRecord], history: Sequence[HistoryRow], workdir: Path) -> list[Observation]:
    """Measured runtimes for the rules of a run.

    For each job: its history rows (same rule and wildcards) give one observation per class they
    ran in, the latest row of a class winning; a job without history gives its benchmark file's
    mean, if the file exists, in the rule's own class (benchmark files do not record where the
    job ran; sacct history is exact and takes precedence). History rows of jobs that are not part
    of this run still count, at the median input size of their rule's jobs in this run (0 when
    the rule has none), since their own input size is unknown.

    Args:
        jobs: the jobs of this run.
        history: rows from load_history (file order: a later row wins a tie in ``recorded``).
        workdir: the working directory the benchmark paths are relative to.

    Returns:
        The observations: this run's jobs in order, then the other history rows.

    Raises:
        InputError: a benchmark file that exists but cannot be read (see read_benchmark).
    """
    jobs = list(jobs)
    by_job: dict[tuple[str, str], list[HistoryRow]] = defaultdict(list)
    for (rule, wildcards, _cls), row in latest(history).items():
        by_job[rule, wildcards].append(row)
    sizes: dict[str, list[int]] = defaultdict(list)
    for job in jobs:
        sizes[job.rule].append(job.input_bytes)
    out: list[Observation] = []
    used: set[tuple[str, str]] = set()
    n_history = n_bench = 0
    for job in jobs:
        key = (job.rule, job.wildcards)
        rows = by_job.get(key, [])
        if key not in used:
            for row in rows:
                out.append(Observation(job.rule, row.resource_class, job.input_bytes, row.seconds,
                                       f"sacct job {row.job_id}"))
                n_history += 1
        used.add(key)
        if rows or not job.benchmark:
            continue
        path = workdir / job.benchmark
        if path.is_file():
            out.append(Observation(job.rule, GPU if job.gpus else CPU, job.input_bytes, read_benchmark(path),
                                   job.benchmark))
            n_bench += 1
    n_other = 0
    for key, rows in by_job.items():
        if key in used:
            continue
        size = round(statistics.median(sizes[key[0]])) if sizes.get(key[0]) else 0
        for row in rows:
            out.append(Observation(row.rule, row.resource_class, size, row.seconds, f"sacct job {row.job_id}"))
            n_other += 1
    log.info("runtime observations: %d from the history, %d from benchmark files, %d from earlier jobs "
             "not in this run", n_history, n_bench, n_other)
    return out


# --------------------------------------------------------------------------- models


@dataclass(frozen=True)
class RuntimeModel:
    """Expected runtime of a rule in one class: ``intercept_s + per_gb_s * GB`` of input.

    ``how``: "fit" (least-squares line), "mean" (constant), "derived" (from the other class's
    model through the GPU speed-up) or "default" (no measurement).
    """

    rule: str
    resource_class: str
    intercept_s: float
    per_gb_s: float
    observations: int
    how: str

    def predict(self, input_bytes: float) -> float:
        """Seconds for a job of this size; never below MIN_RUNTIME_S."""
        return max(MIN_RUNTIME_S, self.intercept_s + self.per_gb_s * input_bytes / GB)


def fit(obs: Sequence[Observation]) -> RuntimeModel:
    """Fit the runtime of one rule in one class to its observations.

    A least-squares line ``seconds = a + b * GB`` when there are at least 3 observations of at
    least 2 distinct sizes and the slope is not negative (a rule does not get faster with more
    input: a negative slope is noise); otherwise the mean. A negative intercept is kept, and
    RuntimeModel.predict clamps the prediction.

    Args:
        obs: observations, all of the same rule and class.

    Returns:
        The model, how="fit" or "mean".

    Raises:
        ValueError: no observations, or observations of several rules or classes.
    """
    if not obs:
        raise ValueError("fit needs at least one observation")
    keys = {(o.rule, o.resource_class) for o in obs}
    if len(keys) > 1:
        raise ValueError(f"fit needs observations of one rule and class, got {sorted(keys)}")
    rule, cls = keys.pop()
    xs = [o.input_bytes / GB for o in obs]
    ys = [o.seconds for o in obs]
    mean_y = statistics.fmean(ys)
    if len(obs) >= 3 and len(set(xs)) >= 2:
        mean_x = statistics.fmean(xs)
        sxx = sum((x - mean_x) ** 2 for x in xs)
        sxy = sum((x - mean_x) * (y - mean_y) for x, y in zip(xs, ys))
        slope = sxy / sxx
        if slope >= 0:
            return RuntimeModel(rule, cls, mean_y - slope * mean_x, slope, len(obs), "fit")
        log.debug("%s/%s: negative slope %.3g s/GB, using the mean", rule, cls, slope)
    return RuntimeModel(rule, cls, mean_y, 0.0, len(obs), "mean")


@dataclass(frozen=True)
class Defaults:
    """Runtimes without measurements: ``cpu_s`` in class cpu; a GPU is ``gpu_speedup`` times faster."""

    cpu_s: float = 600.0
    gpu_speedup: float = 10.0

    def __post_init__(self) -> None:
        if not self.cpu_s > 0 or not self.gpu_speedup > 0:
            raise ValueError(f"defaults must be positive: cpu_s={self.cpu_s}, gpu_speedup={self.gpu_speedup}")


def _scaled(model: RuntimeModel, cls: str, factor: float, how: str) -> RuntimeModel:
    return RuntimeModel(model.rule, cls, model.intercept_s * factor, model.per_gb_s * factor, model.observations, how)


@dataclass(frozen=True)
class Estimator:
    """Runtime models per (rule, class), fitted from observations, with derived and default fallbacks.

    Order for ``model(rule, cls)``: the fit of the class's own observations; else derived from the
    other class's fit (gpu = cpu / gpu_speedup, cpu = gpu * gpu_speedup); else the rule's entry in
    ``defaults_by_rule`` for the class, or for the other class scaled the same way; else
    ``defaults.cpu_s`` (cpu) or ``defaults.cpu_s / gpu_speedup`` (gpu).
    """

    observations: Sequence[Observation] = ()
    defaults: Defaults = Defaults()
    defaults_by_rule: Mapping[str, Mapping[str, float]] = field(default_factory=dict)
    _fits: Mapping[tuple[str, str], RuntimeModel] = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        for rule, table in self.defaults_by_rule.items():
            for cls, seconds in table.items():
                if cls not in _CLASSES:
                    raise ValueError(f"default runtime of rule {rule}: class {cls!r} must be {CPU!r} or {GPU!r}")
                if not seconds > 0:
                    raise ValueError(f"default runtime of rule {rule} ({cls}): {seconds} must be positive")
        groups: dict[tuple[str, str], list[Observation]] = defaultdict(list)
        for o in self.observations:
            groups[o.rule, o.resource_class].append(o)
        object.__setattr__(self, "_fits", {key: fit(obs) for key, obs in groups.items()})

    def _factor(self, to_cls: str) -> float:
        """Multiplier turning a runtime of the other class into one of ``to_cls``."""
        return 1 / self.defaults.gpu_speedup if to_cls == GPU else self.defaults.gpu_speedup

    def model(self, rule: str, resource_class: str) -> RuntimeModel:
        """The runtime model of ``rule`` in ``resource_class`` ("cpu" or "gpu").

        Raises:
            ValueError: an unknown class.
        """
        if resource_class not in _CLASSES:
            raise ValueError(f"resource class {resource_class!r} must be {CPU!r} or {GPU!r}")
        other = GPU if resource_class == CPU else CPU
        if (own := self._fits.get((rule, resource_class))) is not None:
            return own
        factor = self._factor(resource_class)
        if (theirs := self._fits.get((rule, other))) is not None:
            return _scaled(theirs, resource_class, factor, "derived")
        table = self.defaults_by_rule.get(rule, {})
        if resource_class in table:
            return RuntimeModel(rule, resource_class, float(table[resource_class]), 0.0, 0, "default")
        if other in table:
            return RuntimeModel(rule, resource_class, float(table[other]) * factor, 0.0, 0, "default")
        seconds = self.defaults.cpu_s if resource_class == CPU else self.defaults.cpu_s / self.defaults.gpu_speedup
        return RuntimeModel(rule, resource_class, seconds, 0.0, 0, "default")

    def runtime(self, rule: str, resource_class: str, input_bytes: float) -> float:
        """Expected seconds of a job of ``rule`` in ``resource_class`` with ``input_bytes`` of input."""
        return self.model(rule, resource_class).predict(input_bytes)

    def table(self, rules: Mapping[str, Iterable[str]] | None = None) -> list[dict[str, object]]:
        """Rows for the decision table: rule, class, how, n, intercept_s, per_gb_s.

        Args:
            rules: rule -> its classes (e.g. ``{j.rule: j.classes for j in jobs}``); by default
                every (rule, class) with observations or a per-rule default.

        Returns:
            One row per (rule, class), sorted by rule then class.
        """
        if rules is None:
            pairs = set(self._fits) | {(r, c) for r, t in self.defaults_by_rule.items() for c in t}
        else:
            pairs = {(r, c) for r, classes in rules.items() for c in classes}
        rows: list[dict[str, object]] = []
        for rule, cls in sorted(pairs):
            m = self.model(rule, cls)
            rows.append({"rule": rule, "class": cls, "how": m.how, "n": m.observations,
                         "intercept_s": m.intercept_s, "per_gb_s": m.per_gb_s})
        return rows


def with_runtimes(jobs: Sequence[Job], estimator: Estimator) -> list[Job]:
    """Copies of ``jobs`` with ``runtime_s`` filled: "cpu" for every job, also "gpu" for a GPU-class rule.

    Args:
        jobs: the jobs of a run (their input_bytes set).
        estimator: the runtime models.

    Returns:
        New Job objects, in the same order.
    """
    return [
        replace(job, runtime_s={cls: estimator.runtime(job.rule, cls, job.input_bytes) for cls in (CPU, GPU)
                                if cls == CPU or job.gpus > 0})
        for job in jobs
    ]
