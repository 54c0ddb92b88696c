"""Benchmark: the germline run report (`aisci report germline`) for 100 samples, against the pipeline's wall-clock.

Run with `make bench-report` (runs the demo pipeline into a scratch folder first: about 5 min on 2 cores) or
`python benchmarks/report_speed/run.py --run DIR` on the folder a finished demo run wrote (`make demo` runs in the
repository root). Not part of the tests. Goals: the 100-sample report takes < 10 % of the pipeline's own
wall-clock on the demo data, and the page stays under 5 MB.

1. The pipeline's wall-clock. Without --run: the time of the germline `snakemake` run measured here. With --run:
   the "Elapsed time" of the Snakemake log of the run that recorded results/pipeline_info/run.json (the last log
   in .snakemake/log started before its time_utc); later Snakemake runs in the same folder (the protein workflow,
   a rerun of the report) are listed but not added. --pipeline-wall overrides both.
2. 100 samples from the demo's 2: every per-sample input of the report (samtools stats, bcftools stats, the calls
   VCF and its index, the evaluation JSON, the SpliceAI and protein Parquet tables) copied to S001..S100, each
   from S1 or S2 in turn, with the sample's name rewritten where a file holds it (the VCF's sample column, the
   evaluation JSON's sample and calls, the command lines that samtools and bcftools record). The joint callset
   (cohort) is kept once, as a 100-sample run with joint calling would have one. No number is made up.
3. `aisci report germline --slurm-run none` through the installed CLI, as the pipeline's report rule runs it: the
   100-sample page and the demo's own 2-sample page, --repeats times each, interleaved; the medians. Wall, CPU
   and peak RSS of each process (os.wait4).
4. The 100-sample page: its size, every section present, every sample and callset on it; in headless chromium
   (tests/browser.py, when chromium is installed): the sections it sees, its charts, its console messages.
5. Where the time goes: the 100-sample report under cProfile in a fresh interpreter (the calls that the CLI's
   build and write make, and the imports); where the bytes go: each section of the page and its charts.

Prints the figures and PASS/FAIL against the goals, and writes results.json next to this file.
"""

from __future__ import annotations

import argparse
import datetime
import gzip
import json
import os
import platform
import re
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
REPO = HERE.parents[1]
sys.path.insert(0, str(REPO))

BIN = Path(sys.executable).parent
# PYTHONPATH: the aisci of this tree, also when the installed one is another checkout's
ENV = dict(os.environ, PATH=f"{BIN}{os.pathsep}{os.environ['PATH']}", PYTHONPATH=str(REPO))
SECTIONS = ("run", "qc", "calls", "accuracy", "splice", "protein")  # the germline report's, in page order
GOAL_FRACTION = 0.10  # of the pipeline's wall-clock
GOAL_BYTES = 5_000_000  # 5 MB (decimal: the stricter reading)


# ---------------------------------------------------------------------------------------------- the run
def demo_run(work: Path) -> tuple[Path, float]:
    """The germline demo pipeline in ``work``, set up the way `make demo` does; the folder and its wall seconds.

    The demo data and model come from the Makefile's own targets (its DEMO_ARGS), with DEMO_DIR in ``work``;
    `-o install`: `make bench-report` has just made that prerequisite.
    """
    demo = work / "demo"
    subprocess.run(["make", "-s", "-o", "install", "-C", str(REPO), f"DEMO_DIR={demo}", f"{demo}/samples.tsv",
                    f"{demo}/models/manifest.json"], check=True, env=ENV)
    # demo.yaml's paths (demo/...) are relative to the folder Snakemake runs in, like config.yaml's
    shutil.copy(REPO / "config.yaml", work / "config.yaml")
    cmd = [sys.executable, "-m", "snakemake", "--snakefile", str(REPO / "workflows/germline/Snakefile"),
           "--profile", str(REPO / "profiles/local"), "--configfile", str(REPO / "workflows/germline/demo.yaml"),
           "--directory", str(work), "--quiet"]
    print(f"running the germline demo pipeline in {work} (about 5 min on 2 cores) ...", flush=True)
    t0 = time.perf_counter()
    res = subprocess.run(cmd, env=ENV, capture_output=True, text=True, check=False)
    wall = time.perf_counter() - t0
    if res.returncode != 0:
        raise RuntimeError(f"the demo pipeline failed (exit {res.returncode}):\n{res.stderr[-4000:]}")
    return work, wall


def _elapsed(log: Path) -> float | None:
    found = re.findall(r"^Elapsed time: (\d+):(\d\d):(\d\d(?:\.\d+)?)$", log.read_text(errors="replace"), re.M)
    if not found:
        return None
    h, m, s = found[-1]
    return int(h) * 3600 + int(m) * 60 + float(s)


def pipeline_wall(run: Path) -> dict:
    """The wall seconds of the Snakemake run that recorded ``run``'s pipeline_info (see the module's step 1).

    Raises:
        RuntimeError: when no such log is there (give --pipeline-wall).
    """
    recorded = json.loads((run / "results/pipeline_info/run.json").read_text())
    started = datetime.datetime.fromisoformat(recorded["time_utc"])
    logs = []
    for log in sorted((run / ".snakemake" / "log").glob("*.snakemake.log")):
        stamp = datetime.datetime.strptime(log.name.split(".")[0], "%Y-%m-%dT%H%M%S").astimezone()  # local time
        logs.append((stamp, log))
    before = [(s, log) for s, log in logs if s <= started]
    if not before:
        raise RuntimeError(f"{run}/.snakemake/log: no Snakemake log from before {started}; give --pipeline-wall")
    # Snakemake locks its folder: the run going when pipeline_info was recorded is the last one started before
    stamp, log = before[-1]
    wall = _elapsed(log)
    if wall is None or stamp + datetime.timedelta(seconds=wall) < started:
        raise RuntimeError(f"{log}: the run that recorded {started} did not finish; give --pipeline-wall")
    snakefile = re.findall(r"^\s*Snakefile: (.+)$", log.read_text(errors="replace"), re.M)
    later = [{"log": str(x), "elapsed_s": _elapsed(x)} for s, x in logs if s > stamp]
    return {"seconds": wall, "source": f"{log} (Elapsed time)", "snakefile": snakefile[0] if snakefile else None,
            "started_utc": started.isoformat(), "later_snakemake_runs": later}


# ---------------------------------------------------------------------------------------------- inputs
def demo_inputs(results: Path) -> dict[str, list[Path]]:
    """The files the pipeline's report rule gives `aisci report germline`, by option (the demo run's own)."""
    return {
        "--pipeline-info": [results / "pipeline_info"],
        "--stats": sorted((results / "qc").glob("*.stats.txt")),
        "--bcftools-stats": sorted((results / "qc").glob("*.bcftools_stats.txt")),
        "--calls": sorted((results / "calls").glob("*.vcf.gz")),
        "--eval": sorted((results / "eval").glob("*.json")),
        "--splice": sorted((results / "splice").glob("*.parquet")),
        "--protein": sorted(p for p in (results / "protein").glob("*.parquet")
                            if not p.name.endswith(".consequences.parquet")),
    }


def _rewrite_text(src: Path, dst: Path, old: str, new: str) -> None:
    """Copy a tool's text output, renaming the sample in the paths of its recorded command line."""
    text = src.read_text()
    text = re.sub(rf"(?<=[/\s]){re.escape(old)}(?=\.(?:bam|vcf\.gz)\b)", new, text)
    dst.write_text(text)


def fan_out(results: Path, out: Path, n: int) -> tuple[dict[str, list[Path]], list[str], list[str]]:
    """``n`` samples made from the run's samples in turn, under ``out``/results; the inputs, samples, callsets."""
    src = demo_inputs(results)
    samples = [p.name.removesuffix(".stats.txt") for p in src["--stats"]]
    joint = [p.name.removesuffix(".bcftools_stats.txt") for p in src["--bcftools-stats"]]
    joint = [c for c in joint if c not in samples]
    shutil.rmtree(out, ignore_errors=True)
    res = out / "results"
    for folder in ("qc", "calls", "eval", "splice", "protein"):
        (res / folder).mkdir(parents=True)
    shutil.copytree(results / "pipeline_info", res / "pipeline_info")
    width = len(str(n))
    names = [f"S{i:0{width if width > 2 else 3}d}" for i in range(1, n + 1)]
    sheet = (results / "pipeline_info" / "samples.tsv").read_text().splitlines()
    rows = {line.split("\t")[0]: line for line in sheet[1:]}
    new_sheet = [sheet[0]]
    for i, name in enumerate(names):
        old = samples[i % len(samples)]
        new_sheet.append(name + rows[old][len(old):])
        _rewrite_text(results / "qc" / f"{old}.stats.txt", res / "qc" / f"{name}.stats.txt", old, name)
        _rewrite_text(results / "qc" / f"{old}.bcftools_stats.txt", res / "qc" / f"{name}.bcftools_stats.txt", old,
                      name)
        vcf = res / "calls" / f"{name}.vcf.gz"
        subprocess.run(f"bcftools reheader -s <(echo {name}) {results}/calls/{old}.vcf.gz -o {vcf} "
                       f"&& tabix -f -p vcf {vcf}", shell=True, executable="/bin/bash", check=True)
        evaluation = json.loads((results / "eval" / f"{old}.json").read_text())
        evaluation.update(sample=name, calls=f"results/calls/{name}.vcf.gz")
        (res / "eval" / f"{name}.json").write_text(json.dumps(evaluation, indent=2) + "\n")
        for folder in ("splice", "protein"):
            shutil.copy(results / folder / f"{old}.parquet", res / folder / f"{name}.parquet")
    (res / "pipeline_info" / "samples.tsv").write_text("\n".join(new_sheet) + "\n")
    for callset in joint:
        shutil.copy(results / "qc" / f"{callset}.bcftools_stats.txt", res / "qc")
        for suffix in (".vcf.gz", ".vcf.gz.tbi"):
            shutil.copy(results / "calls" / f"{callset}{suffix}", res / "calls")
        for folder in ("splice", "protein"):
            shutil.copy(results / folder / f"{callset}.parquet", res / folder)
    with gzip.open(res / "calls" / f"{names[0]}.vcf.gz", "rt") as fh:
        header = next(line for line in fh if line.startswith("#CHROM")).split()
    assert header[9:] == [names[0]], header
    return demo_inputs(res), names, names + joint


# ---------------------------------------------------------------------------------------------- timing
def report(inputs: dict[str, list[Path]], html: Path) -> dict:
    """`aisci report germline` in a fresh process, as the report rule runs it; wall, CPU, peak RSS (MiB)."""
    cmd = [str(BIN / "aisci") if (BIN / "aisci").exists() else "aisci", "report", "germline", "--slurm-run", "none",
           "--out", str(html)]
    for option, paths in inputs.items():
        cmd += [option, *map(str, paths)]
    with tempfile.TemporaryFile() as log:
        t0 = time.perf_counter()
        proc = subprocess.Popen(cmd, stdout=log, stderr=subprocess.STDOUT, env=ENV, cwd=REPO)
        _, status, usage = os.wait4(proc.pid, 0)
        wall = time.perf_counter() - t0
        proc.returncode = os.waitstatus_to_exitcode(status)
        if proc.returncode != 0:
            log.seek(0)
            raise RuntimeError(f"aisci report germline: exit {proc.returncode}\n{log.read().decode()[-4000:]}")
    return {"wall_s": wall, "cpu_s": usage.ru_utime + usage.ru_stime, "maxrss_mib": usage.ru_maxrss / 1024,
            "load": os.getloadavg()[0]}


def median_run(runs: list[dict]) -> dict:
    return {k: statistics.median(r[k] for r in runs) for k in ("wall_s", "cpu_s", "maxrss_mib")}


# The CLI under cProfile in a fresh interpreter: the time of each call that the report's build and write make
# (the CLI's public interface only, so that this survives changes inside aisci.report), and the imports.
PROFILE = """
import cProfile, json, pstats, sys, time
t0 = time.perf_counter()
prof = cProfile.Profile()
prof.enable()
from aisci.cli import main
rc = main(sys.argv[1:])
prof.disable()
total = time.perf_counter() - t0
parts, lazy = {}, 0.0
for (file, line, func), (cc, nc, tt, ct, callers) in pstats.Stats(prof).stats.items():
    for (cfile, cline, cfunc), c in callers.items():
        if cfile.endswith("report/cli.py") and cfunc in ("build_germline", "run") and func != "build_germline":
            key = func + " (" + file.rsplit("/", 1)[-1].strip("~<>") + ")"
            parts[key] = parts.get(key, 0.0) + c[3]
        if cfile.endswith("report/germline.py") and cfunc.endswith("_section") and "/aisci/" in file:
            key = "  " + cfunc + " > " + func
            parts[key] = parts.get(key, 0.0) + c[3]
        if func == "_find_and_load" and "/aisci/report/" in cfile:
            lazy += c[3]
run = [v[3] for (f, l, fn), v in pstats.Stats(prof).stats.items() if fn == "run" and f.endswith("report/cli.py")]
print(json.dumps({"rc": rc, "total_s": total, "report_run_s": run[0] if run else None, "parts": parts,
                  "lazy_imports_s": lazy}))
"""


def profile(inputs: dict[str, list[Path]], html: Path) -> dict:
    """Seconds (under cProfile: inflated, read them as shares) of the build's steps; see PROFILE."""
    cmd = [sys.executable, "-c", PROFILE, "report", "germline", "--slurm-run", "none", "--out", str(html)]
    for option, paths in inputs.items():
        cmd += [option, *map(str, paths)]
    res = subprocess.run(cmd, capture_output=True, text=True, env=ENV, cwd=REPO, check=True)  # cwd: `-c` puts it first
    out = json.loads(res.stdout.strip().splitlines()[-1])
    # each step, then the aisci calls inside it ("  step > call"), slowest first
    top = sorted((k for k in out["parts"] if not k.startswith(" ")), key=lambda k: -out["parts"][k])
    order = []
    for key in top:
        order.append(key)
        step = key.split(" (")[0]
        order += sorted((k for k in out["parts"] if k.startswith(f"  {step} > ")), key=lambda k: -out["parts"][k])
    out["parts"] = {k: out["parts"][k] for k in order}
    return out


def page_bytes(html: Path) -> dict:
    """Bytes of each section of the page, of its SVG charts, and of the charts by title (after the callset)."""
    text = html.read_text()
    sections, charts = {}, {}
    for sid, body in re.findall(r'<section id="([^"]+)">(.*?)</section>', text, re.S):
        svgs = re.findall(r"<svg.*?</svg>", body, re.S)
        sections[sid] = {"bytes": len(body.encode()), "svgs": len(svgs),
                         "svg_bytes": sum(len(x.encode()) for x in svgs)}
        for x in svgs:
            title = re.search(r'class="title"[^>]*>([^<]*)<', x)
            kind = f"{sid}: " + (title.group(1).split(": ")[-1] if title else "?")
            charts[kind] = charts.get(kind, 0) + len(x.encode())
    return {"total": len(text.encode()), "sections": sections,
            "charts": dict(sorted(charts.items(), key=lambda kv: -kv[1]))}


# ---------------------------------------------------------------------------------------------- the page
def check_page(html: Path, samples: list[str], callsets: list[str], browser: bool) -> dict:
    """Sections, samples and callsets on the page; what headless chromium sees of it (when installed)."""
    text = html.read_text()
    found = re.findall(r'<section id="([^"]+)">', text)
    body = dict(re.findall(r'<section id="([^"]+)">(.*?)</section>', text, re.S))
    result = {
        "sections": found,
        "missing_sections": [s for s in SECTIONS if s not in found],
        "samples_missing_in_qc": [s for s in samples if f"<td>{s}</td>" not in body.get("qc", "")],
        "samples_missing_in_accuracy": [s for s in samples if f"<td>{s}</td>" not in body.get("accuracy", "")],
        "callsets_missing_in_calls": [c for c in callsets if f"<td>{c}</td>" not in body.get("calls", "")],
        "svgs": text.count("<svg"),
        "external_references": re.findall(r'(?:src|href)="(?:https?:)?//[^"]+"', text),
    }
    if browser and (shutil.which("chromium") or shutil.which("chromium-browser")):
        from tests.browser import check_page as browse

        with tempfile.TemporaryDirectory() as tmp:
            t0 = time.perf_counter()
            try:
                seen, console = browse(html, Path(tmp))
                result["browser"] = {"sections": seen["sections"], "svgs": seen["svgs"],
                                     "broken_images": seen["broken_images"], "sorted_tables": sorted(seen["sorted"]),
                                     "console": console, "seconds": time.perf_counter() - t0}
            except AssertionError as exc:
                result["browser"] = {"error": str(exc)[:2000]}
    else:
        result["browser"] = None
    return result


def machine() -> dict:
    """This machine: name, CPUs and their model, OS, Python."""
    model = next((line.split(":", 1)[1].strip() for line in Path("/proc/cpuinfo").read_text().splitlines()
                  if line.startswith("model name")), platform.processor() or "?")
    return {"node": platform.node(), "cpus": os.cpu_count(), "cpu_model": model, "platform": platform.platform(),
            "python": platform.python_version()}


def code_version() -> dict:
    """The last commit that changed aisci/ in this tree, and whether aisci/ has changes not committed."""
    def git(*cmd: str) -> str | None:
        res = subprocess.run(["git", "-C", str(REPO), *cmd], capture_output=True, text=True, check=False)
        return res.stdout.strip() if res.returncode == 0 else None

    return {"aisci_commit": git("log", "-1", "--format=%H %s", "--", "aisci"),
            "aisci_uncommitted_changes": bool(git("status", "--porcelain", "--", "aisci"))}


# ---------------------------------------------------------------------------------------------- main
def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--run", type=Path, help="a finished germline demo run (the folder holding results/ and "
                        ".snakemake/); default: run the demo pipeline into --work first")
    parser.add_argument("--samples", type=int, default=100, help="samples of the big report (default 100)")
    parser.add_argument("--repeats", type=int, default=5, help="runs of each report, interleaved (median; default 5)")
    parser.add_argument("--pipeline-wall", type=float, help="the pipeline's wall seconds, when the run's Snakemake "
                        "log cannot tell")
    parser.add_argument("--work", type=Path, default=Path("/tmp/aisci-bench-report"),
                        help="scratch folder (default /tmp/aisci-bench-report)")
    parser.add_argument("--no-browser", action="store_true", help="skip the headless chromium check")
    parser.add_argument("--out", type=Path, default=HERE / "results.json", help="results file")
    args = parser.parse_args()
    work = args.work.absolute()
    work.mkdir(parents=True, exist_ok=True)
    host, code = machine(), code_version()
    print(f"{host['node']}: {host['cpus']} CPUs ({host['cpu_model']}), load average {os.getloadavg()[0]:.2f}; "
          f"aisci of {REPO}: {(code['aisci_commit'] or '?')[:12]}"
          f"{' + changes not committed' if code['aisci_uncommitted_changes'] else ''}", flush=True)

    # 1. the run and its wall-clock
    if args.run:
        run = args.run.absolute()
        wall = ({"seconds": args.pipeline_wall, "source": "--pipeline-wall"} if args.pipeline_wall
                else pipeline_wall(run))
    else:
        run, seconds = demo_run(work / "demo-run")
        wall = {"seconds": args.pipeline_wall or seconds, "source": "measured here (snakemake, germline demo)"}
    pipe_s = wall["seconds"]
    print(f"\n1. the pipeline: {run}: {pipe_s:.1f} s wall ({wall['source']})")
    for later in wall.get("later_snakemake_runs", []):
        print(f"   later Snakemake run in that folder, not added: {Path(later['log']).name} "
              f"({later['elapsed_s'] if later['elapsed_s'] is not None else 'no'} s)")

    # 2. the inputs
    small = demo_inputs(run / "results")
    t0 = time.perf_counter()
    big, samples, callsets = fan_out(run / "results", work / f"samples{args.samples}", args.samples)
    input_bytes = sum(p.stat().st_size for paths in big.values() for p in paths if p.is_file())
    print(f"\n2. {args.samples} samples ({samples[0]}..{samples[-1]}) from {len(small['--stats'])} "
          f"({', '.join(p.name.removesuffix('.stats.txt') for p in small['--stats'])}) in "
          f"{time.perf_counter() - t0:.1f} s: {len(callsets)} callsets, "
          f"{sum(len(v) for k, v in big.items() if k != '--pipeline-info')} input files, {input_bytes / 1e6:.1f} MB")

    # 3. the report, interleaved
    html_big, html_small = work / f"report-{args.samples}.html", work / "report-demo.html"
    report(big, html_big)  # one unmeasured run of each: the page cache and Python's bytecode cache warm
    report(small, html_small)
    runs_big, runs_small = [], []
    for _ in range(args.repeats):
        runs_big.append(report(big, html_big))
        runs_small.append(report(small, html_small))
    big_m, small_m = median_run(runs_big), median_run(runs_small)
    size, size_small = html_big.stat().st_size, html_small.stat().st_size
    fraction = big_m["wall_s"] / pipe_s
    print(f"\n3. aisci report germline, median of {args.repeats} (interleaved):")
    for label, m, runs, nbytes in ((f"{args.samples} samples", big_m, runs_big, size),
                                   (f"{len(small['--stats'])} samples (demo)", small_m, runs_small, size_small)):
        print(f"   {label:<20} {m['wall_s']:6.2f} s wall, {m['cpu_s']:6.2f} s CPU, "
              f"peak RSS {m['maxrss_mib']:5.0f} MiB, "
              f"page {nbytes / 1e6:.2f} MB; runs: {', '.join(format(r['wall_s'], '.2f') for r in runs)}")

    # 4. the page
    check = check_page(html_big, samples, callsets, browser=not args.no_browser)
    valid = not any(check[k] for k in ("missing_sections", "samples_missing_in_qc", "samples_missing_in_accuracy",
                                       "callsets_missing_in_calls", "external_references"))
    print(f"\n4. the {args.samples}-sample page {html_big}: sections {check['sections']}, {check['svgs']} SVG charts; "
          f"every section, sample and callset on it: {'yes' if valid else 'NO'}")
    for k in ("missing_sections", "samples_missing_in_qc", "samples_missing_in_accuracy", "callsets_missing_in_calls",
              "external_references"):
        if check[k]:
            print(f"   {k}: {check[k][:10]}")
    b = check["browser"]
    if b is None:
        print("   chromium: not installed or skipped (`make test` installs it)")
    elif "error" in b:
        print(f"   chromium: {b['error'][:500]}")
    else:
        print(f"   chromium ({b['seconds']:.1f} s): sections {b['sections']}, {b['svgs']} SVGs, "
              f"{b['broken_images']} broken images, tables sorted in {b['sorted_tables']}; "
              f"{len(b['console'])} console message(s){': ' + ' | '.join(b['console'][:5]) if b['console'] else ''}")

    # 5. where the time goes, and the bytes
    prof = profile(big, work / "report-profiled.html")
    print(f"\n5. where the time goes, {args.samples} samples (cProfile in a fresh interpreter: "
          f"{prof['total_s']:.2f} s from the first import, against {big_m['wall_s']:.2f} s unprofiled with "
          "the interpreter's start; read the shares):")
    if prof["report_run_s"]:
        before_run = prof["total_s"] - prof["report_run_s"]
        print(f"   {'imports of aisci.cli, the report CLI, argparse':<56} {before_run:6.2f} s")
    for name, seconds in prof["parts"].items():
        if seconds >= 0.005:
            print(f"   {name:<56} {seconds:6.2f} s")
    print(f"   {'(of these: imports inside aisci.report: pyarrow, pysam, yaml)':<56} {prof['lazy_imports_s']:6.2f} s")
    sizes = page_bytes(html_big)
    print(f"   page: {sizes['total'] / 1e6:.2f} MB; by section: " + ", ".join(
        f"{k} {v['bytes'] / 1e6:.2f} MB ({v['svgs']} charts, {v['svg_bytes'] / 1e6:.2f} MB)"
        for k, v in sizes["sections"].items()))
    print("   the largest charts, all callsets or samples together: " + ", ".join(
        f"{k} {v / 1e6:.2f} MB" for k, v in list(sizes["charts"].items())[:4]))

    # both grow with the callsets: per sample from the two pages, and where the size limit falls
    n_small = len(small["--stats"])
    per_sample = {"seconds": (big_m["wall_s"] - small_m["wall_s"]) / (args.samples - n_small),
                  "bytes": (size - size_small) / (args.samples - n_small)}
    per_sample["samples_at_size_limit"] = n_small + (GOAL_BYTES - size_small) / per_sample["bytes"]
    print(f"   each sample more: +{1000 * per_sample['seconds']:.0f} ms, +{per_sample['bytes'] / 1e3:.0f} kB; "
          f"the page reaches {GOAL_BYTES / 1e6:.0f} MB at about {per_sample['samples_at_size_limit']:.0f} samples")

    goals = [
        (f"report of {args.samples} samples / pipeline wall", 100 * fraction, "%", f"< {100 * GOAL_FRACTION:.0f} %",
         fraction < GOAL_FRACTION),
        (f"page of {args.samples} samples", size / 1e6, "MB", f"< {GOAL_BYTES / 1e6:.0f} MB", size < GOAL_BYTES),
        (f"page of {args.samples} samples valid (sections, samples, callsets)", None, "", "all there", valid),
    ]
    print(f"\n{'measure':<58}{'value':>10}  {'goal':<10}")
    for name, value, unit, goal, met in goals:
        shown = f"{value:.2f} {unit}" if value is not None else ""
        print(f"{name:<58}{shown:>10}  {goal:<10}{'PASS' if met else 'FAIL'}")
    print(f"(the pipeline wall is that of {len(small['--stats'])} samples: {args.samples} samples would take far "
          "longer, so the ratio is an upper bound)")

    results = {
        "host": host, "code": code, "run": str(run), "pipeline_wall": wall, "samples": args.samples,
        "repeats": args.repeats,
        "callsets": len(callsets), "input_bytes": input_bytes,
        "report": {"samples": args.samples, **big_m, "page_bytes": size, "runs": runs_big},
        "report_demo": {"samples": len(small["--stats"]), **small_m, "page_bytes": size_small, "runs": runs_small},
        "per_sample": per_sample, "fraction_of_pipeline": fraction, "page_check": check, "profile": prof,
        "page_bytes": sizes,
        "goals": [{"measure": g[0], "value": g[1], "unit": g[2], "goal": g[3], "met": g[4]} for g in goals],
    }
    args.out.write_text(json.dumps(results, indent=1) + "\n")
    print(f"\nwrote {args.out}")
    return 0  # like the other benchmarks: the PASS/FAIL lines above and results.json carry the verdict


if __name__ == "__main__":
    sys.exit(main())
