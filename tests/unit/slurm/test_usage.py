"""Tests for aisci.slurm.usage: sacct parsing, per-rule/partition metrics, report formats, Gantt charts, CLI."""

from __future__ import annotations

import argparse
import csv
import io
import json
import stat
import subprocess
import sys
from datetime import datetime
from pathlib import Path
from xml.etree import ElementTree

import pytest

from aisci.slurm import sacct, usage
from aisci.errors import InputError, ToolError
from aisci.slurm.sacct import SACCT_FIELDS, Job, load_jobs, parse_sacct
from aisci.slurm.usage import summarise, write_report

# `sacct --parsable2` output of one run in the layout Slurm 22.05 prints: allocation lines carry
# Partition/Comment/ReqMem/AllocTRES and the summed TotalCPU, step lines carry MaxRSS.
#   101-103 align_reads: 102 FAILED (allocation TotalCPU 00:00:00 -> sum of its steps), retried as 103
#   104 embed_variants on the gpu partition (gres/gpu=1); 105 a grouped job with an srun step 105.0
#   106 call_variants TIMEOUT after 1-03:46:40; 107 PENDING (Start/End Unknown, no steps)
#   108 an interactive job without the plugin's comment, "CANCELLED by 1000"
FIXTURE = Path(__file__).parents[1] / "data" / "usage" / "run.sacct"
RUN_ID = "6c1f4a8e-3b2d-4e5f-9a10-2b3c4d5e6f70"
MIB, GIB = 1024**2, 1024**3


@pytest.fixture
def jobs() -> list[Job]:
    return parse_sacct(FIXTURE.read_text())


def by_id(jobs: list[Job]) -> dict[str, Job]:
    return {j.job_id: j for j in jobs}


# --------------------------------------------------------------------------- field parsers


@pytest.mark.parametrize(
    ("text", "seconds"),
    [("00:01.234", 1.234), ("29:59.870", 1799.87), ("00:30:00", 1800), ("01:02:03", 3723),
     ("1-02:03:04", 93784), ("12-00:00:00", 12 * 86400), ("", None)],
)
def test_cpu_time_formats(text, seconds):
    assert sacct.parse_cpu_time(text) == (None if seconds is None else pytest.approx(seconds))


@pytest.mark.parametrize("text", ["1-02:03", "abc", "12", "1:2:3:4"])
def test_cpu_time_rejects_what_sacct_never_prints(text):
    with pytest.raises(ValueError):
        sacct.parse_cpu_time(text)


@pytest.mark.parametrize(
    ("text", "bare", "expected"),
    [("123456K", "", (123456 * 1024, "")), ("12M", "", (12 * MIB, "")), ("1.5G", "", (3 * GIB // 2, "")),
     ("1.50G", "", (3 * GIB // 2, "")), ("0", "", (0, "")), ("1048576", "", (1048576, "")), ("", "", None),
     ("2000M", "M", (2000 * MIB, "")), ("4G", "M", (4 * GIB, "")), ("2000Mc", "M", (2000 * MIB, "c")),
     ("16000Mn", "M", (16000 * MIB, "n")), ("2000", "M", (2000 * MIB, ""))],
)
def test_size_formats(text, bare, expected):
    assert sacct.parse_size(text, bare_unit=bare) == expected


def test_tres_and_gpus():
    tres = sacct.parse_tres("billing=2,cpu=2,gres/gpu=1,mem=2000M,node=1")
    assert tres == {"billing": "2", "cpu": "2", "gres/gpu": "1", "mem": "2000M", "node": "1"}
    assert sacct.gpu_count(tres) == 1
    # typed and untyped entries both appear: the untyped one is the total
    assert sacct.gpu_count(sacct.parse_tres("cpu=8,gres/gpu:a100=2,gres/gpu=2,node=1")) == 2
    assert sacct.gpu_count(sacct.parse_tres("cpu=8,gres/gpu:a100=2,gres/gpu:v100=1")) == 3
    assert sacct.gpu_count(sacct.parse_tres("")) == 0


@pytest.mark.parametrize(
    ("comment", "rule"),
    [("rule_align_reads_wildcards_S1", "align_reads"), ("rule_multiqc", "multiqc"),
     ("rule_call_wildcards_S1_chr20_1000", "call"), ("group_postproc", "group:postproc"),
     ("group_postproc_wildcards_S1", "group:postproc"), ("", "jobname"), ("my comment", "jobname"),
     ("rule_", "jobname"),
     ("rule_align_align_reads_check_reads_samtools_flagstat_samtools_stats", "group:align"),
     ("rule_calls_call_group_evaluate_calls_filter_calls_gather_calls", "group:calls"),
     ("rule_align_reads", "align_reads"), ("rule_calls_unknown_rule", "calls_unknown_rule"),
     ("rule_splice_gather_splicing_score_splicing", "group:splice"),
     # Snakemake names the first five rules of a group job, then "..."
     ("rule_calls_annotate_coding_call_group_evaluate_calls_filter_calls_gather_calls_...", "group:calls"),
     ("rule_calls_unknown_rule_...", "calls_unknown_rule_..."),
     # a grouped rule that aisci plan put in a group of its own (its group's rules went to different partitions)
     ("rule_align_reads_align_reads", "align_reads"), ("rule_multiqc_multiqc", "multiqc_multiqc")],
)
def test_rule_from_comment(comment, rule):
    assert sacct.rule_of(comment, "jobname") == rule


# --------------------------------------------------------------------------- parse_sacct


def test_one_job_per_allocation_with_step_figures_folded_in(jobs):
    j = by_id(jobs)
    assert list(j) == ["101", "102", "103", "104", "105", "106", "107", "108"]
    assert [j[i].rule for i in j] == ["align_reads"] * 3 + ["embed_variants", "group:postproc"] + [
        "call_variants"] * 2 + ["bash"]
    # MaxRSS is only on steps: the max over batch/extern/srun steps
    assert j["101"].max_rss == 1843212 * 1024
    assert j["102"].max_rss == 3 * GIB // 2
    assert j["105"].max_rss == 2 * GIB  # from step 105.0, not batch (600M)
    assert j["107"].max_rss is None
    # TotalCPU: the allocation's own sum, or the steps' sum when it is zero
    assert j["101"].total_cpu_s == 1800
    assert j["102"].total_cpu_s == pytest.approx(110.502)
    assert j["105"].total_cpu_s == pytest.approx(270.25)
    assert j["106"].total_cpu_s == 93784
    assert j["107"].total_cpu_s == 0
    assert j["101"].req_mem == 8000 * MIB and j["104"].req_mem == 32 * GIB
    assert [j[i].gpus for i in j] == [0, 0, 0, 1, 0, 0, 0, 0]
    assert j["104"].partition == "gpu" and j["101"].partition == "cpu"
    assert j["108"].state == "CANCELLED" and j["106"].state == "TIMEOUT" and j["102"].exit_code == "1:0"
    assert j["107"].state == "PENDING" and j["107"].start is None and j["107"].end is None
    assert j["107"].submit == datetime(2026, 11, 21, 7, 43)
    assert j["101"].queue_wait_s == 10 and j["104"].queue_wait_s == 240 and j["107"].queue_wait_s is None
    assert j["106"].end == datetime(2026, 11, 22, 11, 30, 10) and j["106"].elapsed_s == 100000


def test_requeued_runs_under_one_job_id_are_separate_jobs():
    text = (
        "JobID|State|ElapsedRaw|AllocCPUS|TotalCPU|MaxRSS|Comment\n"
        "200|REQUEUED|60|2|00:30.000||rule_a\n"
        "200.batch|CANCELLED|60|2|00:30.000|100K|\n"
        "200|COMPLETED|120|2|02:00.000||rule_a\n"
        "200.batch|COMPLETED|120|2|02:00.000|300K|\n"
    )
    first, second = parse_sacct(text)
    assert (first.state, first.max_rss, second.state, second.max_rss) == ("REQUEUED", 100 * 1024, "COMPLETED", 300 * 1024)
    row = summarise([first, second]).rules[0]
    assert (row.jobs, row.states, row.wall_s, row.cpu_eff) == (2, "COMPLETED:1,REQUEUED:1", 180, 150 / 360)


def test_two_clusters_one_report_per_centre_and_partition():
    """sacct --clusters all: the same job id on two clusters is two jobs; partitions are named by cluster."""
    text = (
        "JobID|Cluster|Partition|State|ElapsedRaw|AllocCPUS|TotalCPU|MaxRSS|AllocTRES|Comment\n"
        "7|home|cpu|COMPLETED|100|2|03:20.000||cpu=2,mem=1G,node=1|rule_align_reads_wildcards_S1\n"
        "7.batch|home|cpu|COMPLETED|100|2|03:20.000|200K||\n"
        "7|partner|gpu|COMPLETED|50|2|01:40.000||cpu=2,gres/gpu=1,mem=1G,node=1|rule_annotate_context_wildcards_S1\n"
        "7.batch|partner|gpu|COMPLETED|50|2|01:40.000|900K||\n"
        "8|partner|cpu|CANCELLED by 0|10|2|00:20.000||cpu=2,mem=1G,node=1|rule_align_reads_wildcards_S2\n"
    )
    jobs = parse_sacct(text)
    assert [(j.job_id, j.cluster, j.where, j.max_rss) for j in jobs] == [
        ("7", "home", "home/cpu", 200 * 1024), ("7", "partner", "partner/gpu", 900 * 1024), ("8", "partner", "partner/cpu", None)]
    report = summarise(jobs)
    assert [r.name for r in report.partitions] == ["home/cpu", "partner/cpu", "partner/gpu"]
    assert [(r.name, r.jobs, r.wall_s, r.gpu_h) for r in report.centres] == [
        ("home", 1, 100, 0), ("partner", 2, 60, pytest.approx(50 / 3600))]
    align = next(r for r in report.rules if r.name == "align_reads")
    assert align.partitions == "home/cpu,partner/cpu" and align.states == "CANCELLED:1,COMPLETED:1"
    table = render(report, "table")
    assert "centre" in table and "partner/gpu" in table
    # one cluster: partitions keep their plain names
    home = summarise([jobs[0]])
    assert [r.name for r in home.partitions] == ["cpu"] and [r.name for r in home.centres] == ["home"]


def test_old_slurm_per_cpu_and_per_node_reqmem_trailing_pipe_and_arrays():
    # Slurm < 21.08 suffixed ReqMem with c (per CPU) / n (per node); --parsable ends lines with '|'
    text = (
        "JobID|JobName|AllocCPUS|ReqMem|MaxRSS|AllocTRES|Comment|\n"
        "300_1|x|4|2000Mc||cpu=4,mem=8000M,node=1|rule_a|\n"
        "300_1.batch|batch|4||4000M|cpu=4,node=1||\n"
        "301|x|8|16000Mn||cpu=8,mem=32000M,node=2|rule_b|\n"
        "302|x|0|2000Mc||||\n"
        "303+0|x|1|0|||rule_c|\n"
    )
    j = by_id(parse_sacct(text))
    assert j["300_1"].req_mem == 4 * 2000 * MIB and j["300_1"].mem_ratio == 0.5
    assert j["301"].req_mem == 2 * 16000 * MIB
    assert j["302"].req_mem is None  # per-CPU request with no CPU count: unknown
    assert j["303+0"].req_mem is None and j["303+0"].rule == "c"


def test_job_cancelled_while_pending_never_started():
    # slurmctld stamps Start=End=cancel time on a job cancelled before allocation (no AllocTRES)
    text = (
        "JobID|State|Submit|Start|End|ElapsedRaw|AllocCPUS|AllocTRES|Comment\n"
        "400|CANCELLED by 1000|2026-11-21T07:00:00|2026-11-21T09:00:00|2026-11-21T09:00:00|0|2||rule_a\n"
        "401|FAILED|2026-11-21T07:00:00|2026-11-21T07:00:05|2026-11-21T07:00:05|0|2|cpu=2,node=1|rule_a\n"
    )
    cancelled, failed = parse_sacct(text)
    assert cancelled.start is None and cancelled.queue_wait_s is None and cancelled.state == "CANCELLED"
    assert failed.start is not None and failed.queue_wait_s == 5  # allocated, failed at once
    assert summarise([cancelled, failed]).rules[0].mean_queue_s == 5


def test_comment_containing_the_delimiter():
    text = "JobID|JobName|Comment|ExitCode\n1|x|rule_a_wildcards_p|q|0:0\n"
    (job,) = parse_sacct(text)
    assert (job.comment, job.rule, job.exit_code) == ("rule_a_wildcards_p|q", "a", "0:0")


@pytest.mark.parametrize(
    ("text", "message"),
    [("1|x\n", "no header with a JobID column"), ("JobID|State\n1|A|B|C\n", "line 2: 4 fields, the header has 2"),
     ("JobID|TotalCPU\n1|12:xx\n", "line 2: TotalCPU '12:xx'"), ("JobID|MaxRSS\n1|5\n1.batch|5Q\n", "line 3: MaxRSS '5Q'"),
     ("JobID|Start\n1|yesterday\n", "line 2: Start 'yesterday'")],
)
def test_malformed_output_names_line_and_field(text, message):
    with pytest.raises(InputError, match=message):
        parse_sacct(text)


def test_empty_output_is_no_jobs():
    assert parse_sacct("") == [] and parse_sacct(FIXTURE.read_text().splitlines()[0]) == []


# --------------------------------------------------------------------------- metrics


def test_rule_metrics_exact(jobs):
    rows = {r.name: r for r in summarise(jobs).rules}
    assert list(rows) == ["align_reads", "bash", "call_variants", "embed_variants", "group:postproc"]
    a = rows["align_reads"]
    assert (a.scope, a.jobs, a.partitions, a.states, a.wall_s) == ("rule", 3, "cpu", "COMPLETED:2,FAILED:1", 1320)
    assert a.wall_h == pytest.approx(1320 / 3600) and a.core_h == pytest.approx(5280 / 3600)
    assert a.mean_queue_s == pytest.approx((10 + 40 + 5) / 3)
    assert a.cpu_eff == pytest.approx((1800 + 110.502 + 1200) / (4 * 600 + 4 * 120 + 4 * 600))
    assert a.mem_eff == pytest.approx((1843212 * 1024 / (8000 * MIB) + 1536 / 8000 + 3000 / 12000) / 3)
    assert a.gpu_h == 0
    c = rows["call_variants"]  # the pending job counts, but has no wait, CPU or memory figures
    assert (c.jobs, c.states, c.wall_s, c.mean_queue_s) == (2, "PENDING:1,TIMEOUT:1", 100000, 30)
    assert c.cpu_eff == pytest.approx(93784 / 200000) and c.mem_eff == pytest.approx(0.875)
    e = rows["embed_variants"]
    assert (e.partitions, e.wall_s, e.mean_queue_s, e.mem_eff, e.gpu_h) == ("gpu", 1800, 240, 0.5, 0.5)
    assert e.cpu_eff == pytest.approx(3723 / 14400) and e.core_h == 4
    g = rows["group:postproc"]
    assert (g.jobs, g.mean_queue_s, g.mem_eff) == (1, 0, 0.5) and g.cpu_eff == pytest.approx(270.25 / 600)
    b = rows["bash"]
    assert (b.states, b.wall_s) == ("CANCELLED:1", 600)
    assert b.cpu_eff == pytest.approx(4.5 / 600) and b.mem_eff == pytest.approx(5000 / 1024000)


def test_partition_totals_exact(jobs):
    report = summarise(jobs)
    cpu, gpu = report.partitions
    assert (cpu.scope, cpu.name, cpu.jobs, gpu.name, gpu.jobs) == ("partition", "cpu", 7, "gpu", 1)
    assert cpu.states == "CANCELLED:1,COMPLETED:3,FAILED:1,PENDING:1,TIMEOUT:1"
    assert cpu.core_h == pytest.approx(206480 / 3600) and gpu.core_h == 4
    assert cpu.cpu_eff == pytest.approx(97169.252 / 206480) and gpu.cpu_eff == pytest.approx(3723 / 14400)
    assert cpu.gpu_h == 0 and gpu.gpu_h == 0.5
    assert cpu.wall_s == 102220 and cpu.mean_queue_s == pytest.approx(85 / 6)
    assert report.jobs == 8
    assert report.window == {"first_submit": "2026-11-21T07:30:00", "first_start": "2026-11-21T07:30:10",
                             "last_end": "2026-11-22T11:30:10"}


def test_divisions_by_zero_are_unknown(jobs):
    row = summarise([by_id(jobs)["107"]]).rules[0]
    assert (row.cpu_eff, row.mem_eff, row.mean_queue_s, row.core_h, row.gpu_h) == (None, None, None, 0, 0)
    assert summarise([]) == usage.Report([], [], 0, {"first_submit": None, "first_start": None, "last_end": None})


# --------------------------------------------------------------------------- formats


def render(report: usage.Report, fmt: str) -> str:
    out = io.StringIO()
    write_report(report, fmt, out)
    return out.getvalue()


def test_tsv_round_trip(jobs):
    rows = list(csv.DictReader(io.StringIO(render(summarise(jobs), "tsv")), delimiter="\t"))
    assert [(r["scope"], r["name"]) for r in rows] == [
        ("rule", "align_reads"), ("rule", "bash"), ("rule", "call_variants"), ("rule", "embed_variants"),
        ("rule", "group:postproc"), ("partition", "cpu"), ("partition", "gpu")]
    a = rows[0]
    assert (a["jobs"], a["partitions"], a["states"], a["wall_s"]) == ("3", "cpu", "COMPLETED:2,FAILED:1", "1320")
    assert float(a["cpu_eff"]) == pytest.approx(3110.502 / 5280, abs=1e-6)
    assert float(rows[3]["gpu_h"]) == 0.5 and float(rows[6]["gpu_h"]) == 0.5
    pending_only = list(csv.DictReader(io.StringIO(render(summarise([by_id(jobs)["107"]]), "tsv")), delimiter="\t"))
    assert pending_only[0]["cpu_eff"] == pending_only[0]["mem_eff"] == pending_only[0]["mean_queue_s"] == "NA"


def test_json_round_trip(jobs):
    doc = json.loads(render(summarise(jobs), "json"))
    assert set(doc) == {"rules", "partitions", "centres", "jobs", "window"} and doc["jobs"] == 8
    embed = next(r for r in doc["rules"] if r["rule"] == "embed_variants")
    assert embed == {"rule": "embed_variants", "jobs": 1, "partitions": "gpu", "states": "COMPLETED:1",
                     "wall_s": 1800, "wall_h": 0.5, "core_h": 4.0, "mean_queue_s": 240.0,
                     "cpu_eff": round(3723 / 14400, 6), "mem_eff": 0.5, "gpu_h": 0.5}
    assert [p["partition"] for p in doc["partitions"]] == ["cpu", "gpu"]
    assert doc["window"]["last_end"] == "2026-11-22T11:30:10"
    pending_only = json.loads(render(summarise([by_id(jobs)["107"]]), "json"))
    assert pending_only["rules"][0]["cpu_eff"] is None and pending_only["rules"][0]["mem_eff"] is None


def test_table_is_aligned_text(jobs):
    text = render(summarise(jobs), "table")
    lines = text.splitlines()
    assert lines[0] == "8 Slurm jobs (given jobs), ran 2026-11-21T07:30:10 .. 2026-11-22T11:30:10"
    header = lines[2]
    assert header.split() == ["rule", "jobs", "partitions", "states", "wall_s", "wall_h", "core_h",
                              "mean_queue_s", "cpu_eff", "mem_eff", "gpu_h"]
    align = next(line for line in lines if line.startswith("align_reads"))
    assert align.split()[1:5] == ["3", "cpu", "COMPLETED:2,FAILED:1", "1320"]
    assert f"{100 * 3110.502 / 5280:.1f}%" in align
    # the last column (gpu_h) is right-aligned: every line of the rule table ends at the same place
    assert len({len(line) for line in lines[2:8]}) == 1
    assert "partition" in lines[9] and lines[10].startswith("cpu ") and lines[11].startswith("gpu ")
    assert "NA" in render(summarise([by_id(jobs)["107"]]), "table")


def test_unknown_format(jobs):
    with pytest.raises(InputError, match="expected one of table, tsv, json"):
        render(summarise(jobs), "csv")


# --------------------------------------------------------------------------- Gantt


def test_png_is_a_real_png(jobs, tmp_path):
    out = tmp_path / "gantt.png"
    usage.plot_gantt(jobs, out)
    data = out.read_bytes()
    assert data[:8] == b"\x89PNG\r\n\x1a\n" and len(data) > 10_000
    assert not list(tmp_path.glob(".*tmp*"))


def test_html_has_one_rect_per_started_job_with_tooltips(jobs, tmp_path):
    out = tmp_path / "gantt.html"
    usage.plot_gantt(jobs, out)
    page = out.read_text()
    assert page.startswith("<!DOCTYPE html>") and "<script" not in page and "http://" not in page.replace(
        'xmlns="http://www.w3.org/2000/svg"', "")
    assert page.count("<rect") == 7  # 8 jobs, 107 never started
    assert page.count("<title>") == 8  # the page title + one tooltip per bar
    assert "<title>rule: align_reads\njob: 101\npartition: cpu\nwall: 0:10:00 (600 s)\nstate: COMPLETED</title>" in page
    assert "<title>rule: call_variants\njob: 106\npartition: cpu\nwall: 1-03:46:40 (100000 s)\nstate: TIMEOUT</title>" in page
    assert "<title>rule: embed_variants\njob: 104\npartition: gpu\nwall: 0:30:00 (1800 s)\nstate: COMPLETED</title>" in page
    assert "rule: group:postproc" in page and "minutes since the first job start" in page
    assert "1 job(s) had not started" in page
    svg = page[page.index("<svg") : page.index("</svg>") + len("</svg>")]
    root = ElementTree.fromstring(svg)  # well-formed, everything escaped
    assert len(root.findall("{http://www.w3.org/2000/svg}rect")) == 7


def test_gantt_layout_groups_rows_by_partition(jobs):
    from aisci.slurm.usage_plot import layout

    lay = layout(jobs)
    assert [g[0] for g in lay.groups] == ["cpu", "gpu"] and lay.groups[1] == ("gpu", 6, 1)
    assert [b.job.job_id for b in lay.bars] == ["101", "102", "103", "105", "106", "108", "104"]
    bar = lay.bars[0]
    assert (bar.start_min, bar.end_min) == (0, 10)
    assert lay.span_min == pytest.approx((800 + 100000) / 60)  # 106 starts 13:20 after 101
    assert len(set(lay.colours.values())) == 5


def test_gantt_rejects_other_suffixes(jobs, tmp_path):
    with pytest.raises(InputError, match=r"\.png or \.html"):
        usage.plot_gantt(jobs, tmp_path / "gantt.pdf")


def test_gantt_of_pending_jobs_only(jobs, tmp_path):
    usage.plot_gantt([by_id(jobs)["107"]], tmp_path / "g.html")
    assert "<rect" not in (tmp_path / "g.html").read_text()
    usage.plot_gantt([by_id(jobs)["107"]], tmp_path / "g.png")
    assert (tmp_path / "g.png").read_bytes()[:4] == b"\x89PNG"


# --------------------------------------------------------------------------- sacct + CLI


def fake_sacct(tmp_path: Path, stdout: Path | None, rc: int = 0, stderr: str = "") -> Path:
    """An executable that records its arguments and environment, then prints canned output."""
    script = tmp_path / "sacct"
    body = [
        "#!/bin/sh",
        f'printf "%s\\n" "$@" > "{tmp_path}/args"',
        f'echo "$SLURM_TIME_FORMAT" > "{tmp_path}/time_format"',
    ]
    if stdout is not None:
        body.append(f'cat "{stdout}"')
    if stderr:
        body.append(f"echo '{stderr}' >&2")
    body.append(f"exit {rc}")
    script.write_text("\n".join(body) + "\n")
    script.chmod(script.stat().st_mode | stat.S_IXUSR)
    return script


def parse_args(argv: list[str]) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="aisci usage")
    usage.configure_parser(parser)
    return parser.parse_args(argv)


def test_run_end_to_end_with_fake_sacct(tmp_path, capsys):
    sacct = fake_sacct(tmp_path, FIXTURE)
    out, plot = tmp_path / "out" / "usage.json", tmp_path / "out" / "gantt.html"
    args = parse_args(["--run-id", RUN_ID, "--format", "json", "--out", str(out), "--plot", str(plot),
                       "--sacct", str(sacct)])
    assert usage.run(args) == 0
    argv = (tmp_path / "args").read_text().splitlines()
    assert argv == ["--parsable2", "--allusers", "--duplicates", "--clusters", "all", "--format", SACCT_FIELDS,
                    "--name", RUN_ID, "--starttime", "2000-01-01T00:00:00"]
    assert (tmp_path / "time_format").read_text().strip() == "standard"
    doc = json.loads(out.read_text())
    assert doc["jobs"] == 8 and len(doc["rules"]) == 5
    assert doc["window"]["run_id"] == RUN_ID and doc["window"]["since"] is None
    assert plot.read_text().count("<rect") == 7
    assert "8 jobs, 5 rules: report written to" in capsys.readouterr().out


def test_run_window_to_stdout(tmp_path, capsys):
    sacct = fake_sacct(tmp_path, FIXTURE)
    args = parse_args(["--since", "2026-11-21T07:00", "--until", "now", "--format", "tsv", "--sacct", str(sacct)])
    assert usage.run(args) == 0
    argv = (tmp_path / "args").read_text().splitlines()
    assert "--name" not in argv and argv[-4:] == ["--starttime", "2026-11-21T07:00", "--endtime", "now"]
    lines = capsys.readouterr().out.splitlines()
    assert lines[0].startswith("scope\tname\tjobs") and len(lines) == 1 + 5 + 2


def test_run_id_with_window(tmp_path):
    sacct = fake_sacct(tmp_path, FIXTURE)
    load_jobs(run_id=RUN_ID, since="now-7days", sacct=str(sacct))
    argv = (tmp_path / "args").read_text().splitlines()
    assert argv[-4:] == ["--name", RUN_ID, "--starttime", "now-7days"]


@pytest.mark.parametrize(
    ("argv", "message"),
    [([], "give --run-id UUID or --since TIME"), (["--until", "now"], "give --run-id UUID or --since TIME"),
     (["--run-id", "a b"], "without spaces"), (["--run-id", RUN_ID, "--plot", "g.svg"], r"expected a \.png or \.html")],
)
def test_cli_argument_errors(argv, message, tmp_path):
    args = parse_args(argv + ["--sacct", str(tmp_path / "never-called")])
    with pytest.raises(InputError, match=message):
        usage.run(args)


def test_cli_rejects_unknown_format():
    with pytest.raises(SystemExit):
        parse_args(["--run-id", RUN_ID, "--format", "xml"])


def test_failing_sacct_is_a_tool_error_with_its_stderr(tmp_path):
    msg = "sacct: error: Problem talking to the database: Connection refused"
    sacct = fake_sacct(tmp_path, None, rc=1, stderr=msg)
    with pytest.raises(ToolError, match=f"exit 1.*{msg}"):
        load_jobs(run_id=RUN_ID, sacct=str(sacct))


def test_missing_sacct_is_a_tool_error(tmp_path):
    with pytest.raises(ToolError, match="sacct not found"):
        load_jobs(run_id=RUN_ID, sacct=str(tmp_path / "nope"))


def test_no_jobs_names_the_search_and_hints_at_accounting(tmp_path):
    header_only = tmp_path / "header.txt"
    header_only.write_text(FIXTURE.read_text().splitlines()[0] + "\n")
    sacct = fake_sacct(tmp_path, header_only)
    with pytest.raises(InputError) as err:
        load_jobs(run_id=RUN_ID, sacct=str(sacct))
    assert f"no jobs for run id {RUN_ID} between 2000-01-01T00:00:00 and now" in str(err.value)
    assert "AccountingStoreFlags=job_comment" in str(err.value) and "slurmdbd" in str(err.value)
    with pytest.raises(InputError, match="no jobs for the window between 2026-11-01 and 2026-11-02"):
        load_jobs(since="2026-11-01", until="2026-11-02", sacct=str(sacct))


def test_missing_comments_warn(tmp_path, caplog):
    text = tmp_path / "nocomment.txt"
    text.write_text("JobID|JobName|Comment\n1|uuid|\n")
    load_jobs(run_id="uuid", sacct=str(fake_sacct(tmp_path, text)))
    assert "AccountingStoreFlags=job_comment" in caplog.text


def test_usage_module_imports_without_matplotlib():
    # the CLI imports every subcommand module at start-up; matplotlib must stay a lazy import
    code = "import sys, aisci.slurm.usage; assert 'matplotlib' not in sys.modules"
    assert subprocess.run([sys.executable, "-c", code], check=False).returncode == 0
