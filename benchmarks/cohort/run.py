"""Benchmark: a 1,000-sample cohort store — ingest vs bcftools query, one-sample append, memory, 10,000-sample dry-run.

Run with `python benchmarks/cohort/run.py` (1,000 samples x 20,000 variants: about 10 minutes on 2 cores, plus 3 to
generate the cohort the first time) or `python benchmarks/cohort/run.py --quick` (100 x 2,000, a smoke run of about
half a minute). Not part of the tests.

1. Simulates N+1 single-sample bcftools-style VCFs with `aisci.demo.cohort.simulate_cohort` (the last sample is
   held back for step 3). The cohort is kept under --work and reused by later runs with the same
   (samples, variants, seed); its generation time is then the one recorded when it was made.
2. VCF -> Parquet throughput against
   `bcftools query -f '%CHROM\\t%POS\\t%REF\\t%ALT\\t%QUAL\\t%FILTER[\\t%GT\\t%DP\\t%GQ\\t%AD]\\n' VCF > /dev/null`
   on the same N files and the same CPUs (each command pinned with sched_setaffinity): (a) one CPU: `aisci cohort
   ingest --shard-size 50` into a fresh store vs a serial loop of bcftools processes; (b) two CPUs: `aisci
   reanalyze --stage none --workers 2` (Dask LocalCluster, its start included) into a fresh store vs two bcftools
   processes at a time (xargs -P 2). Our time is the whole product path: parsing, sorting, Parquet writing, the
   commits and the incremental per-variant summaries. Each pair runs --repeats times (default 3), ours and
   bcftools interleaved, and the medians are compared: on a shared host the same command's time varies by 20 %.
   Goal: records/s ours / bcftools >= 1.
3. Adds the held-back sample to the N-sample store of 2(a): `aisci cohort ingest` of the manifest of all N+1
   samples (the N committed ones are recognised as unchanged by size and mtime), --repeats times into
   hard-linked copies of the store; the median. Goal: < 2 % of the 1-CPU build (median).
4. Peak memory (max RSS of the one ingest process, from getrusage in the process itself) of a fresh store of
   the first 100 samples vs all N (the N-sample figure is the run of 2(a)). Goal: flat (ratio ~1).
5. `snakemake -n` of workflows/reanalysis for 10,000 samples (empty placeholder VCFs, reference and annotation:
   a dry run opens none of them; both scoring stages on, with a demo protein model in a model store).
   Goal: < 60 s. Snakemake imports the Slurm executor plugin at start-up, which waits for `scontrol` when no
   Slurm controller answers, so whether slurmctld was up is recorded.

Prints every figure and a table of the ratios against their goals, and writes results.json next to this file.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import re
import resource
import shutil
import statistics
import subprocess
import sys
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
REPO = HERE.parents[1]
sys.path.insert(0, str(REPO))

BCFTOOLS_FORMAT = r"%CHROM\t%POS\t%REF\t%ALT\t%QUAL\t%FILTER[\t%GT\t%DP\t%GQ\t%AD]\n"
# A fresh interpreter that runs the aisci CLI, then prints its own peak RSS (KiB) on the last stdout line.
MAXRSS = ("import resource, sys; from aisci.cli import main; rc = main(sys.argv[1:]); "
          "print('maxrss_kib', resource.getrusage(resource.RUSAGE_SELF).ru_maxrss, flush=True); sys.exit(rc)")
ENV = dict(os.environ, PATH=f"{Path(sys.executable).parent}{os.pathsep}{os.environ['PATH']}", PYTHONPATH=str(REPO))


# ---------------------------------------------------------------------------------------------- helpers
def child_cpu() -> float:
    """CPU seconds (user + system) used so far by finished child processes."""
    r = resource.getrusage(resource.RUSAGE_CHILDREN)
    return r.ru_utime + r.ru_stime


def timed(cmd: list[str], cpus: set[int], stdin: bytes | None = None, cwd: Path | None = None) -> dict:
    """Run ``cmd`` pinned to ``cpus``; wall and CPU seconds, stdout. Raises with its output when it fails."""
    t0, c0 = time.perf_counter(), child_cpu()
    res = subprocess.run(cmd, input=stdin, capture_output=True, env=ENV, cwd=cwd, check=False,
                         preexec_fn=lambda: os.sched_setaffinity(0, cpus))
    wall, cpu = time.perf_counter() - t0, child_cpu() - c0
    load = os.getloadavg()[0]  # of the last minute: how busy the machine was (other users included)
    if res.returncode != 0:
        raise RuntimeError(f"{' '.join(cmd[:6])} ... exit {res.returncode}\n{res.stdout.decode()[-3000:]}"
                           f"\n{res.stderr.decode()[-3000:]}")
    return {"wall_s": wall, "cpu_s": cpu, "load": load, "stdout": res.stdout.decode(), "stderr": res.stderr.decode()}


def aisci(args: list[str], cpus: set[int]) -> dict:
    """`aisci ARGS` in a fresh interpreter; adds its peak RSS (MiB)."""
    run = timed([sys.executable, "-c", MAXRSS, *args], cpus)
    run["maxrss_mib"] = int(re.findall(r"^maxrss_kib (\d+)$", run["stdout"], re.MULTILINE)[-1]) / 1024
    return run


def bcftools_query(vcfs: list[Path], parallel: int, cpus: set[int]) -> dict:
    """`bcftools query` of every VCF to /dev/null, one process per file, ``parallel`` at a time (xargs -P)."""
    cmd = ["xargs", "-0", "-P", str(parallel), "-I{}", "bcftools", "query", "-f", BCFTOOLS_FORMAT, "-o", "/dev/null",
           "{}"]
    return timed(cmd, cpus, stdin=b"\0".join(str(v).encode() for v in vcfs))


def write_manifest(path: Path, rows: list[str]) -> Path:
    path.write_text("sample\tvcf\n" + "".join(f"{r}\n" for r in rows))
    return path


def fresh(path: Path) -> Path:
    shutil.rmtree(path, ignore_errors=True)
    return path


# ---------------------------------------------------------------------------------------------- steps
def make_cohort(work: Path, n: int, variants: int, seed: int) -> tuple[Path, dict]:
    """The N+1-sample cohort under ``work`` (made once per size and seed); its folder and generation record."""
    from aisci.demo.cohort import simulate_cohort

    folder = work / f"cohort-{n + 1}x{variants}-seed{seed}"
    record = folder / "generation.json"
    if (folder / "samples.tsv").exists() and record.exists():
        return folder, dict(json.loads(record.read_text()), reused=True)
    fresh(folder)
    t0 = time.perf_counter()
    simulate_cohort(folder, n + 1, variants, seed=seed)
    gen = {"samples": n + 1, "variants": variants, "seed": seed, "seconds": time.perf_counter() - t0,
           "bytes": sum(f.stat().st_size for f in (folder / "vcf").glob("*.vcf.gz"))}
    record.write_text(json.dumps(gen) + "\n")
    return folder, dict(gen, reused=False)


def dry_run(work: Path, n: int) -> dict:
    """`snakemake -n` of workflows/reanalysis for ``n`` samples with both scoring stages on."""
    import yaml

    folder = work / f"dryrun-{n}"
    manifest = folder / "samples.tsv"
    if not manifest.exists():
        (folder / "vcfs").mkdir(parents=True, exist_ok=True)
        for i in range(n):
            (folder / "vcfs" / f"S{i:05d}.vcf.gz").touch()
        for name in ("reference.fa", "genes.gff3"):
            (folder / name).touch()
        subprocess.run([sys.executable, "-m", "aisci.cli", "models", "demo", "esm2-demo", "--force", "--model-store",
                        str(folder / "models")], check=True, capture_output=True, env=ENV)
        write_manifest(folder / "samples.tmp", [f"S{i:05d}\tvcfs/S{i:05d}.vcf.gz" for i in range(n)]).rename(manifest)
    config = yaml.safe_load((REPO / "workflows/reanalysis/config.yaml").read_text())
    gff = str(folder / "genes.gff3")
    config.update(manifest=str(manifest), store=str(folder / "store"), stages=["splice", "protein"],
                  reference=str(folder / "reference.fa"))
    config["splice"]["annotation"] = gff
    config["protein"].update(annotation=gff, model="esm2-demo", model_store=str(folder / "models"))
    (folder / "config.yaml").write_text(yaml.safe_dump(config))
    ping = subprocess.run(["scontrol", "ping"], capture_output=True, text=True, timeout=60, check=False) \
        if shutil.which("scontrol") else None
    slurmctld_up = bool(ping and ping.returncode == 0 and "UP" in ping.stdout)
    shutil.rmtree(folder / ".snakemake", ignore_errors=True)
    run = timed([sys.executable, "-m", "snakemake", "--snakefile", str(REPO / "workflows/reanalysis/Snakefile"),
                 "--directory", str(folder), "--configfile", str(folder / "config.yaml"), "--dry-run", "--cores", "2"],
                set(os.sched_getaffinity(0)))
    jobs = {rule: int(count) for rule, count in re.findall(r"^(\w+)\s+(\d+)$", run["stdout"], re.MULTILINE)
            if rule != "total"}
    return {"samples": n, "wall_s": run["wall_s"], "jobs": jobs, "slurmctld_up": slurmctld_up,
            "scontrol_ping": ping.stdout.strip() if ping else "scontrol not installed"}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--samples", type=int, default=1000, help="samples of the store (default 1,000)")
    parser.add_argument("--variants", type=int, default=20000, help="records per sample (default 20,000)")
    parser.add_argument("--memory-samples", type=int, default=100, help="the small store of step 4 (default 100)")
    parser.add_argument("--dry-run-samples", type=int, default=10000, help="manifest rows of step 5 (default 10,000)")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--repeats", type=int, default=3, help="interleaved runs of each throughput pair (median)")
    parser.add_argument("--quick", action="store_true",
                        help="smoke run: 100 samples x 2,000 variants, memory 10 vs 100, dry run of 1,000")
    parser.add_argument("--work", type=Path, default=Path("/tmp/aisci-bench-cohort"),
                        help="scratch folder, kept: the synthetic cohort is reused (default /tmp/aisci-bench-cohort)")
    parser.add_argument("--out", type=Path, help="results file (default: results.json next to run.py; with --quick, "
                        "results-quick.json in --work)")
    args = parser.parse_args()
    if args.quick:
        args.samples, args.variants, args.memory_samples, args.dry_run_samples = 100, 2000, 10, 1000
    n, work = args.samples, args.work.absolute()
    args.out = args.out or (work / "results-quick.json" if args.quick else HERE / "results.json")
    work.mkdir(parents=True, exist_ok=True)
    allowed = sorted(os.sched_getaffinity(0))
    one, two = {allowed[0]}, set(allowed[:2])
    print(f"{platform.node()}: {os.cpu_count()} CPUs, load average {os.getloadavg()[0]:.2f}; "
          f"one CPU = {sorted(one)}, two = {sorted(two)}", flush=True)

    # 1. the cohort
    folder, gen = make_cohort(work, n, args.variants, args.seed)
    rows = (folder / "samples.tsv").read_text().splitlines()[1:]
    first = write_manifest(folder / f"first-{n}.tsv", rows[:n])
    small = write_manifest(folder / f"first-{args.memory_samples}.tsv", rows[:args.memory_samples])
    everyone = folder / "samples.tsv"
    vcfs = [folder / r.split("\t")[1] for r in rows[:n]]
    size = sum(v.stat().st_size for v in vcfs)
    print(f"\n1. cohort: {n}+1 samples x ~{args.variants} records, {size / 2**20:.0f} MiB of bgzipped VCF for the "
          f"{n}: generated in {gen['seconds']:.1f} s{' (earlier; reused)' if gen['reused'] else ''} -> {folder}",
          flush=True)

    # 2. throughput: each pair measured --repeats times, interleaved (this host's speed drifts with other load)
    store1, store2 = work / "store-1cpu", work / "store-dask"
    runs: dict[str, list[tuple[dict, dict]]] = {"1cpu": [], "2cpu": []}
    for _ in range(args.repeats):
        bcf1 = bcftools_query(vcfs, 1, one)
        ours1 = aisci(["cohort", "ingest", "--manifest", str(first), "--store", str(fresh(store1)),
                       "--shard-size", "50"], one)
        runs["1cpu"].append((ours1, bcf1))
        bcf2 = bcftools_query(vcfs, 2, two)
        ours2 = timed([sys.executable, "-m", "aisci.cli", "reanalyze", "--manifest", str(first), "--store",
                       str(fresh(store2)), "--stage", "none", "--workers", "2", "--no-progress"], two)
        runs["2cpu"].append((ours2, bcf2))
    from aisci.cohort.store import CohortStore

    committed = CohortStore(store1).samples()
    records = sum(e["records"] for e in committed.values())
    rows_total = sum(e["rows"] for e in committed.values())
    check = subprocess.run(f"bcftools view -H {vcfs[0]} | wc -l", shell=True, capture_output=True, text=True,
                           check=True)
    assert len(committed) == n and int(check.stdout) == committed[rows[0].split("\t")[0]]["records"], check
    assert CohortStore(store2).n_samples() == n
    thr = {}
    print(f"\n2. VCF -> Parquet, {records} VCF records ({rows_total} rows after splitting multi-allelics) in {n} "
          f"files, median of {args.repeats} interleaved runs; ours includes commits and per-variant summaries:")
    for label, pairs in runs.items():
        ours = {k: statistics.median(o[k] for o, _ in pairs) for k in ("wall_s", "cpu_s")}
        bcf = {k: statistics.median(b[k] for _, b in pairs) for k in ("wall_s", "cpu_s")}
        r = {"ours_s": ours["wall_s"], "ours_cpu_s": ours["cpu_s"], "bcftools_s": bcf["wall_s"],
             "bcftools_cpu_s": bcf["cpu_s"], "ours_records_per_s": records / ours["wall_s"],
             "bcftools_records_per_s": records / bcf["wall_s"], "ratio": bcf["wall_s"] / ours["wall_s"],
             "cpu_ratio": bcf["cpu_s"] / ours["cpu_s"],
             "runs": [{"ours_s": o["wall_s"], "ours_cpu_s": o["cpu_s"], "bcftools_s": b["wall_s"],
                       "bcftools_cpu_s": b["cpu_s"], "load_ours": o["load"], "load_bcftools": b["load"]}
                      for o, b in pairs]}
        thr[label] = r
        each = ", ".join(f"{x['ours_s']:.1f}/{x['bcftools_s']:.1f}" for x in r["runs"])
        what = ("aisci cohort ingest (1 process)   vs bcftools query, serial" if label == "1cpu" else
                "aisci reanalyze (Dask, 2 workers) vs bcftools query, 2 at a time")
        print(f"  {label[0]} CPU {what}: {r['ours_s']:.1f} s vs {r['bcftools_s']:.1f} s wall = "
              f"{r['ours_records_per_s']:,.0f} vs {r['bcftools_records_per_s']:,.0f} records/s, "
              f"ratio {r['ratio']:.2f}; "
              f"CPU {r['ours_cpu_s']:.1f} s vs {r['bcftools_cpu_s']:.1f} s (ratio {r['cpu_ratio']:.2f}); runs (ours/"
              f"bcftools s): {each}", flush=True)
    ours1 = max(runs["1cpu"], key=lambda p: p[0]["maxrss_mib"])[0]  # the memory figure of step 4: the worst run
    build_s = thr["1cpu"]["ours_s"]

    # 3. one more sample, --repeats times: each into a hard-linked copy of the N-sample store (a commit only
    # ever adds files and renames store.json into place, so the copies share the calls files safely)
    appends = []
    for i in range(args.repeats):
        copy = fresh(work / f"store-append-{i}")
        subprocess.run(["cp", "-al", str(store1), str(copy)], check=True)
        appends.append(aisci(["cohort", "ingest", "--manifest", str(everyone), "--store", str(copy)], one))
        after = CohortStore(copy).n_samples()
        assert after == n + 1, f"the store holds {after} samples, expected {n + 1}"
        shutil.rmtree(copy)
    append = sorted(appends, key=lambda a: a["wall_s"])[len(appends) // 2]  # the median run
    inside = re.findall(r"time: ingest ([\d.]+) s", append["stdout"])
    pct = 100 * append["wall_s"] / build_s
    times = ", ".join(f"{a['wall_s']:.2f}" for a in appends)
    print(f"\n3. adding sample {rows[n].split(chr(9))[0]} to the {n}-sample store: {append['wall_s']:.2f} s, median of "
          f"{args.repeats} ({times}; in-process ingest "
          f"{inside[-1] if inside else '?'} s, the rest is interpreter start-up and imports) = {pct:.2f} % of "
          f"the 1-CPU build ({build_s:.1f} s, median); the store then holds {after} samples", flush=True)
    assert after == n + 1, f"the store holds {after} samples, expected {n + 1}"

    # 4. peak memory
    small_run = aisci(["cohort", "ingest", "--manifest", str(small), "--store", str(fresh(work / "store-small")),
                       "--shard-size", "50"], one)
    mem_ratio = ours1["maxrss_mib"] / small_run["maxrss_mib"]
    print(f"\n4. peak RSS of one ingest process: {small_run['maxrss_mib']:.0f} MiB for {args.memory_samples} samples, "
          f"{ours1['maxrss_mib']:.0f} MiB for {n}: ratio {mem_ratio:.2f}", flush=True)

    # 5. dry run
    dry = dry_run(work, args.dry_run_samples)
    print(f"\n5. snakemake -n of workflows/reanalysis, {dry['samples']} samples: {dry['wall_s']:.1f} s, jobs "
          f"{dry['jobs']}; slurmctld {'up' if dry['slurmctld_up'] else 'NOT up'} ({dry['scontrol_ping']})", flush=True)

    goals = [
        ("VCF->Parquet vs bcftools query, 1 CPU (records/s ratio)", thr["1cpu"]["ratio"], ">= 1",
         thr["1cpu"]["ratio"] >= 1),
        ("  the same in CPU seconds (robust to other load)", thr["1cpu"]["cpu_ratio"], ">= 1",
         thr["1cpu"]["cpu_ratio"] >= 1),
        ("VCF->Parquet vs bcftools query, 2 CPUs, Dask (ratio)", thr["2cpu"]["ratio"], ">= 1",
         thr["2cpu"]["ratio"] >= 1),
        ("  the same in CPU seconds (robust to other load)", thr["2cpu"]["cpu_ratio"], ">= 1",
         thr["2cpu"]["cpu_ratio"] >= 1),
        (f"add 1 sample to {n} (% of the full 1-CPU build)", pct, "< 2 %", pct < 2),
        (f"peak RSS {n} / {args.memory_samples} samples", mem_ratio, "flat (<= 1.25)", mem_ratio <= 1.25),
        (f"snakemake -n, {dry['samples']} samples (s)", dry["wall_s"], "< 60 s", dry["wall_s"] < 60),
    ]
    print("\n" + f"{'measure':<58}{'value':>10}  {'goal':<16}met")
    for name, value, goal, met in goals:
        print(f"{name:<58}{value:>10.2f}  {goal:<16}{'yes' if met else 'NO'}")
    results = {
        "samples": n, "variants_per_sample": args.variants, "seed": args.seed, "quick": args.quick,
        "host": {"cpus": os.cpu_count(), "one_cpu": sorted(one), "two_cpus": sorted(two)},
        "generation": gen, "vcf_bytes": size, "records": records, "rows": rows_total,
        "bcftools_format": BCFTOOLS_FORMAT, "throughput": thr,
        "append": {"wall_s": append["wall_s"], "runs_s": [a["wall_s"] for a in appends],
                   "in_process_s": float(inside[-1]) if inside else None,
                   "percent_of_build": pct, "samples_after": after},
        "memory": {"small_samples": args.memory_samples, "small_maxrss_mib": small_run["maxrss_mib"],
                   "full_maxrss_mib": ours1["maxrss_mib"], "ratio": mem_ratio},
        "dry_run": dry,
        "goals": [{"measure": g[0], "value": g[1], "goal": g[2], "met": g[3]} for g in goals],
    }
    args.out.write_text(json.dumps(results, indent=1) + "\n")
    print(f"\nwrote {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
