"""Tests for aisci.placement.estimates and .history: benchmark files, fits, fallbacks, run history."""

from datetime import datetime
from pathlib import Path

import pytest

from aisci.errors import InputError
from aisci.placement.estimates import (
    Defaults,
    Estimator,
    JobRecord,
    Observation,
    RuntimeModel,
    fit,
    job_records,
    observations,
    read_benchmark,
    with_runtimes,
)
from aisci.slurm.history import (
    COLUMNS,
    HistoryRow,
    load_history,
    record,
    rows_from_sacct,
)
from aisci.placement.model import Job
from aisci.slurm.sacct import Job as SacctJob
from aisci.slurm.sacct import parse_sacct

GB = 10**9
SACCT_FIXTURE = Path(__file__).parents[1] / "data" / "usage" / "run.sacct"
PLAIN_HEADER = "s\th:m:s\tmax_rss\tmax_vms\tmax_uss\tmax_pss\tio_in\tio_out\tmean_load\tcpu_time"


def write(path: Path, text: str) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text)
    return path


def obs(rule: str, cls: str, gb: float, seconds: float) -> Observation:
    return Observation(rule, cls, int(gb * GB), seconds, "test")


def sacct_job(job_id: str, comment: str, *, state: str = "COMPLETED", gpus: int = 0, elapsed: int = 100,
              partition: str = "cpu", end: str = "2026-11-21T08:00:00") -> SacctJob:
    return SacctJob(job_id=job_id, name="run-uuid", rule="", partition=partition, state=state, submit=None,
                    start=None, end=datetime.fromisoformat(end), elapsed_s=elapsed, alloc_cpus=2,
                    total_cpu_s=0.0, req_mem=None, max_rss=None, gpus=gpus, comment=comment)


def row(rule: str, wildcards: str, cls: str, seconds: float, job_id: str, recorded: str = "2026-11-21T08:00:00",
        partition: str = "cpu") -> HistoryRow:
    return HistoryRow(rule, wildcards, cls, partition, seconds, recorded, job_id)


# --------------------------------------------------------------------------- read_benchmark


def test_benchmark_plain(tmp_path):
    path = write(tmp_path / "b.tsv", f"{PLAIN_HEADER}\n12.50\t0:00:12\t100.1\t200.2\t1\t1\t0.5\t0.1\t95.0\t11.9\n")
    assert read_benchmark(path) == 12.5


def test_benchmark_extended_with_na_and_repeats_is_the_mean(tmp_path):
    header = PLAIN_HEADER + "\tjobid\trule_name\twildcards\tparams\tthreads\tcpu_usage\tresources\tinput_size_mb"
    rows = [f"{s}\t0:00:0{i}\tNA\tNA\tNA\tNA\tNA\tNA\tNA\tNA\t3\tcall\t{{'s': 'S1'}}\t{{}}\t2\tNA\t{{}}\t{{}}"
            for i, s in enumerate(("10.00", "20.00", "36.00"))]
    path = write(tmp_path / "b.tsv", "\n".join([header, *rows]) + "\n")
    assert read_benchmark(path) == 22.0


def test_benchmark_jsonl(tmp_path):
    path = write(tmp_path / "b.jsonl", '{"s": 4.0, "max_rss": "NA"}\n{"s": 6.0, "max_rss": "NA"}\n')
    assert read_benchmark(path) == 5.0


@pytest.mark.parametrize(
    ("text", "message"),
    [("h:m:s\tmax_rss\n0:00:01\t1\n", r"b\.tsv line 1: no 's' column"),
     (f"{PLAIN_HEADER}\n", r"b\.tsv: no data rows"),
     ("", r"b\.tsv: empty benchmark file"),
     ("s\th:m:s\n1.0\t0:00:01\nNA\t0:00:02\n", r"b\.tsv line 3: s 'NA' is not a number"),
     ("s\th:m:s\n-5\t0:00:01\n", r"b\.tsv line 2: s '-5' must be a finite number >= 0"),
     ("max_rss\ts\n7\n", r"b\.tsv line 2: 1 fields, no value for 's'")],
)
def test_benchmark_errors_name_the_file_and_line(tmp_path, text, message):
    path = write(tmp_path / "b.tsv", text)
    with pytest.raises(InputError, match=message):
        read_benchmark(path)


def test_benchmark_missing_file_is_an_input_error(tmp_path):
    with pytest.raises(InputError, match=r"nope\.tsv: cannot read"):
        read_benchmark(tmp_path / "nope.tsv")


# --------------------------------------------------------------------------- fit


def test_fit_recovers_a_known_line_exactly():
    # seconds = 30 + 12 * GB, at 0, 1, 2 and 4 GB (exact in binary floating point)
    m = fit([obs("call", "cpu", gb, 30 + 12 * gb) for gb in (0, 1, 2, 4)])
    assert m == RuntimeModel("call", "cpu", 30.0, 12.0, 4, "fit")
    assert m.predict(3 * GB) == 66.0


@pytest.mark.parametrize(
    "points",
    [[(1, 10.0), (2, 20.0)],  # only 2 observations
     [(2, 10.0), (2, 20.0), (2, 30.0)],  # one size
     [(1, 30.0), (2, 20.0), (3, 10.0)]],  # negative slope
)
def test_fit_falls_back_to_the_mean(points):
    m = fit([obs("call", "cpu", gb, s) for gb, s in points])
    assert (m.how, m.intercept_s, m.per_gb_s, m.observations) == ("mean", 20.0 if len(points) == 3 else 15.0,
                                                                    0.0, len(points))
    assert m.predict(100 * GB) == m.intercept_s


def test_fit_negative_intercept_is_clamped_to_one_second():
    m = fit([obs("a", "gpu", gb, s) for gb, s in ((1, 0.0), (2, 10.0), (3, 20.0))])
    assert (m.how, m.intercept_s, m.per_gb_s) == ("fit", -10.0, 10.0)
    assert (m.predict(0), m.predict(1 * GB), m.predict(4 * GB)) == (1.0, 1.0, 30.0)


def test_fit_rejects_mixed_or_empty_observations():
    with pytest.raises(ValueError, match="one rule and class"):
        fit([obs("a", "cpu", 1, 1.0), obs("a", "gpu", 1, 1.0)])
    with pytest.raises(ValueError, match="at least one"):
        fit([])


# --------------------------------------------------------------------------- Estimator


def test_estimator_derives_the_missing_class_through_the_speedup():
    est = Estimator([obs("call", "cpu", gb, 30 + 12 * gb) for gb in (0, 1, 2, 4)]
                    + [obs("embed", "gpu", 1, 50.0), obs("embed", "gpu", 1, 70.0)],
                    Defaults(gpu_speedup=4.0))
    assert est.model("call", "gpu") == RuntimeModel("call", "gpu", 7.5, 3.0, 4, "derived")
    assert est.runtime("call", "gpu", 2 * GB) == 13.5
    assert est.model("embed", "cpu") == RuntimeModel("embed", "cpu", 240.0, 0.0, 2, "derived")
    assert est.runtime("embed", "gpu", 9 * GB) == 60.0


def test_estimator_defaults_global_and_per_rule():
    est = Estimator([], Defaults(cpu_s=900.0, gpu_speedup=3.0),
                    defaults_by_rule={"embed": {"gpu": 40.0}, "call": {"cpu": 300.0, "gpu": 20.0}})
    assert est.model("other", "cpu") == RuntimeModel("other", "cpu", 900.0, 0.0, 0, "default")
    assert est.runtime("other", "gpu", 5 * GB) == 300.0
    assert est.runtime("call", "cpu", 0) == 300.0 and est.runtime("call", "gpu", 0) == 20.0
    assert est.model("embed", "gpu").how == "default" and est.runtime("embed", "gpu", 0) == 40.0
    assert est.runtime("embed", "cpu", 0) == 120.0  # the rule's gpu default times the speed-up
    assert Estimator().runtime("x", "cpu", 0) == 600.0 and Estimator().runtime("x", "gpu", 0) == 60.0


def test_estimator_measurements_beat_per_rule_defaults():
    est = Estimator([obs("call", "cpu", 1, 100.0)], defaults_by_rule={"call": {"cpu": 5.0, "gpu": 1.0}})
    assert est.model("call", "cpu").how == "mean" and est.runtime("call", "cpu", 0) == 100.0
    assert est.model("call", "gpu").how == "derived" and est.runtime("call", "gpu", 0) == 10.0


def test_estimator_rejects_bad_settings():
    with pytest.raises(ValueError, match="class 'tpu'"):
        Estimator(defaults_by_rule={"a": {"tpu": 1.0}})
    with pytest.raises(ValueError, match="must be positive"):
        Defaults(gpu_speedup=0)
    with pytest.raises(ValueError, match="resource class"):
        Estimator().model("a", "fpga")


def test_estimator_table():
    est = Estimator([obs("call", "cpu", gb, 30 + 12 * gb) for gb in (0, 1, 2, 4)],
                    defaults_by_rule={"embed": {"gpu": 40.0}})
    assert est.table() == [
        {"rule": "call", "class": "cpu", "how": "fit", "n": 4, "intercept_s": 30.0, "per_gb_s": 12.0},
        {"rule": "embed", "class": "gpu", "how": "default", "n": 0, "intercept_s": 40.0, "per_gb_s": 0.0},
    ]
    assert [(r["rule"], r["class"], r["how"]) for r in est.table({"call": ("gpu", "cpu"), "x": ("cpu",)})] == [
        ("call", "cpu", "fit"), ("call", "gpu", "derived"), ("x", "cpu", "default")]


def test_with_runtimes_fills_cpu_and_gpu_for_gpu_rules():
    est = Estimator([obs("call", "cpu", gb, 30 + 12 * gb) for gb in (0, 1, 2, 4)] + [obs("embed", "gpu", 0, 50.0)])
    jobs = [Job(0, "call", "S1", 2, 1000, 0, input_bytes=2 * GB), Job(1, "embed", "S1", 8, 1000, 1, deps=(0,))]
    out = with_runtimes(jobs, est)
    assert [j.runtime_s for j in out] == [{"cpu": 54.0}, {"cpu": 500.0, "gpu": 50.0}]
    assert out[1].deps == (0,) and jobs[0].runtime_s == {}  # copies, the originals untouched


# --------------------------------------------------------------------------- history


def test_rows_from_sacct_completed_single_rule_jobs_only():
    jobs = [
        sacct_job("1", "rule_call_group_wildcards_S1_0003", elapsed=300, end="2026-11-21T09:30:00"),
        sacct_job("2", "rule_call_group_wildcards_S1_0004", state="FAILED"),
        sacct_job("3", "rule_embed_variants_wildcards_S1", gpus=2, partition="gpu", elapsed=60),
        sacct_job("4", "rule_multiqc", elapsed=30),
        sacct_job("5", "group_postproc"),
        sacct_job("6", "rule_calls_call_group_filter_calls"),  # a job of the profile group "calls"
        sacct_job("7", ""),
        sacct_job("8_2", "rule_call_group_wildcards_S1_0001"),  # array task: wildcards unknown
    ]
    assert rows_from_sacct(jobs) == [
        HistoryRow("call_group", "S1_0003", "cpu", "cpu", 300.0, "2026-11-21T09:30:00", "1"),
        HistoryRow("embed_variants", "S1", "gpu", "gpu", 60.0, "2026-11-21T08:00:00", "3"),
        HistoryRow("multiqc", "", "cpu", "cpu", 30.0, "2026-11-21T08:00:00", "4"),
        HistoryRow("call_group", "", "cpu", "cpu", 100.0, "2026-11-21T08:00:00", "8_2"),
    ]


def test_rows_of_two_clusters_keep_their_cluster():
    """Clusters number their jobs independently: job 7 at home and job 7 at the partner are two rows."""
    from dataclasses import replace

    home = replace(sacct_job("7", "rule_align_reads_wildcards_S1", elapsed=50), cluster="home")
    partner = replace(sacct_job("7", "rule_align_reads_wildcards_S2", elapsed=70), cluster="partner")
    rows = rows_from_sacct([home, partner])
    assert [(r.job_id, r.partition, r.seconds) for r in rows] == [("home:7", "home/cpu", 50.0),
                                                                 ("partner:7", "partner/cpu", 70.0)]


def test_rows_from_real_sacct_output():
    rows = rows_from_sacct(parse_sacct(SACCT_FIXTURE.read_text()))
    assert [(r.job_id, r.rule, r.wildcards, r.resource_class, r.partition, r.seconds) for r in rows] == [
        ("101", "align_reads", "S1", "cpu", "cpu", 600.0),
        ("103", "align_reads", "S2", "cpu", "cpu", 600.0),  # 102 FAILED, retried as 103
        ("104", "embed_variants", "S1", "gpu", "gpu", 1800.0),
    ]  # 105 group, 106 TIMEOUT, 107 PENDING, 108 without a comment
    assert rows[2].recorded == "2026-11-21T08:05:00"


def test_history_round_trip_and_dedup_by_job_id(tmp_path):
    path = tmp_path / "sub" / "history.tsv"
    rows = [row("call_group", "S1_0003", "cpu", 300.0, "1"), row("multiqc", "", "gpu", 12.5, "2", partition="gpu")]
    assert load_history(path) == []
    assert record(path, rows) == 2
    assert path.read_text().splitlines()[0] == "\t".join(COLUMNS)
    assert load_history(path) == rows
    assert record(path, rows) == 0  # recording the same run twice adds nothing
    assert record(path, [rows[0], row("multiqc", "", "cpu", 20.0, "3"), row("x", "", "cpu", 1.0, "3")]) == 1
    assert [r.job_id for r in load_history(path)] == ["1", "2", "3"]
    assert [p.name for p in path.parent.iterdir()] == ["history.tsv"]  # no temporary file left


H = "\t".join(COLUMNS)


@pytest.mark.parametrize(
    ("text", "message"),
    [("rule\twildcards\tclass\n", r"line 1: header lacks column\(s\) partition, seconds, job_id, recorded"),
     (f"{H}\nb\t\tcpu\tp\t2\t8\t\na\t\tcpu\tp\t1.0\t7\n", r"line 3: 6 fields, the header has 7"),
     (f"{H}\na\t\tcpu\tp\tlong\t7\t\n", r"line 2: seconds 'long' is not a number"),
     (f"{H}\na\t\ttpu\tp\t1\t7\t\n", r"line 2: class 'tpu' must be"),
     (f"{H}\n\t\tcpu\tp\t1\t7\t\n", r"line 2: empty rule")],
)
def test_history_malformed_names_file_and_line(tmp_path, text, message):
    path = write(tmp_path / "history.tsv", text)
    with pytest.raises(InputError, match=rf"history\.tsv {message}"):
        load_history(path)
    with pytest.raises(InputError, match=rf"history\.tsv {message}"):
        record(path, [row("a", "", "cpu", 1.0, "99")])  # never overwrites a file it cannot read
    assert path.read_text() == text


# --------------------------------------------------------------------------- observations


def test_history_beats_benchmark_and_benchmark_fills_in(tmp_path):
    write(tmp_path / "benchmarks/call/S1.tsv", "s\th:m:s\n40.0\t0:00:40\n")
    write(tmp_path / "benchmarks/call/S2.tsv", "s\th:m:s\n50.0\t0:00:50\n60.0\t0:01:00\n")
    write(tmp_path / "benchmarks/embed/S1.tsv", "s\th:m:s\n7.0\t0:00:07\n")
    jobs = [JobRecord("call", "S1", 0, 1 * GB, "benchmarks/call/S1.tsv"),
            JobRecord("call", "S2", 0, 3 * GB, "benchmarks/call/S2.tsv"),
            JobRecord("call", "S3", 0, 5 * GB, "benchmarks/call/S3.tsv"),  # never ran: no file
            JobRecord("embed", "S1", 1, 2 * GB, "benchmarks/embed/S1.tsv"),
            JobRecord("embed", "S2", 1, 4 * GB, None)]
    history = [row("call", "S1", "cpu", 99.0, "10", recorded="2026-11-01T00:00:00"),
               row("call", "S1", "cpu", 44.0, "11", recorded="2026-11-02T00:00:00"),  # latest wins
               row("call", "S1", "gpu", 4.0, "12"),  # the same job once on a GPU partition
               row("call", "S9", "cpu", 80.0, "13"),  # not in this run: at the median size, 3 GB
               row("gone", "", "cpu", 8.0, "14")]  # a rule not in this run: size 0
    got = observations(jobs, history, tmp_path)
    assert got == [
        Observation("call", "cpu", 1 * GB, 44.0, "sacct job 11"),
        Observation("call", "gpu", 1 * GB, 4.0, "sacct job 12"),
        Observation("call", "cpu", 3 * GB, 55.0, "benchmarks/call/S2.tsv"),
        Observation("embed", "gpu", 2 * GB, 7.0, "benchmarks/embed/S1.tsv"),  # a GPU rule's own class
        Observation("call", "cpu", 3 * GB, 80.0, "sacct job 13"),
        Observation("gone", "cpu", 0, 8.0, "sacct job 14"),
    ]
    # call/cpu: (1 GB, 44 s), (3 GB, 55 s), (3 GB, 80 s) -> 32.25 s + 11.75 s/GB
    m = Estimator(got).model("call", "cpu")
    assert (m.how, m.observations) == ("fit", 3)
    assert (m.intercept_s, m.per_gb_s) == (pytest.approx(32.25, abs=1e-9), pytest.approx(11.75, abs=1e-9))


def test_job_records_from_model_jobs():
    jobs = [Job(0, "call", "S1", 2, 1000, 0, input_bytes=5), Job(1, "embed", "", 8, 1000, 1)]
    assert job_records(jobs, {0: "benchmarks/call/S1.tsv"}) == [
        JobRecord("call", "S1", 0, 5, "benchmarks/call/S1.tsv"), JobRecord("embed", "", 1, 0, None)]
