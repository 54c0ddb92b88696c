"""Benchmark: germline pipeline wall time vs the raw tool chain on the same simulated data, and accuracy.

Run with `make bench` (or `python benchmarks/germline_overhead/run.py`). Not part of the test suite.
Prints the pipeline/raw wall-time ratio (goal <= 1.10) and SNV/indel precision/recall/F1 against the
simulator's truth (goals: SNV F1 >= 0.995, indel F1 >= 0.97).
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import shutil
import subprocess
import sys
import time
from pathlib import Path

import yaml

HERE = Path(__file__).resolve().parent
REPO = HERE.parents[1]


def child_cpu() -> float:
    """CPU seconds (user + system) used so far by finished child processes."""
    r = resource.getrusage(resource.RUSAGE_CHILDREN)
    return r.ru_utime + r.ru_stime


def sh(cmd: str, cwd: Path) -> None:
    subprocess.run(["bash", "-o", "pipefail", "-c", cmd], cwd=cwd, check=True,
                   stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)


def raw_chain(data: Path, work: Path, threads: int) -> tuple[float, float, Path]:
    """The bare commands a bioinformatician would type, timed end to end."""
    shutil.rmtree(work, ignore_errors=True)
    work.mkdir(parents=True)
    ref = data / "reference.fa.gz"
    r1, r2 = data / "reads" / "S1_R1.fastq.gz", data / "reads" / "S1_R2.fastq.gz"
    t0, c0 = time.perf_counter(), child_cpu()
    sh(f"minimap2 -ax sr -t{threads} {ref} {r1} {r2} | samtools sort -@{threads} -o raw.bam -", work)
    sh("samtools index raw.bam", work)
    sh(f"bcftools mpileup -f {ref} raw.bam -Ou | bcftools call -mv -Ob -o raw.bcf", work)
    sh(f"bcftools norm -m -any -f {ref} raw.bcf -Oz -o raw.vcf.gz && tabix -p vcf raw.vcf.gz", work)
    return time.perf_counter() - t0, child_cpu() - c0, work / "raw.vcf.gz"


def pipeline(data: Path, work: Path, threads: int) -> tuple[float, float, Path]:
    """The germline pipeline with the repository's default settings, from scratch."""
    shutil.rmtree(work, ignore_errors=True)
    work.mkdir(parents=True)
    cfg = work / "config.yaml"
    cfg.write_text(yaml.safe_dump({"samples": str(data / "samples.tsv"), "reference": str(data / "reference.fa.gz")}))
    env = dict(os.environ, PATH=f"{Path(sys.executable).parent}{os.pathsep}{os.environ['PATH']}")
    t0, c0 = time.perf_counter(), child_cpu()
    subprocess.run(
        [sys.executable, "-m", "snakemake", "--snakefile", str(REPO / "workflows/germline/Snakefile"),
         "--directory", str(work), "--configfile", str(cfg), "--cores", str(threads), "--quiet", "all"],
        check=True, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
    )
    return time.perf_counter() - t0, child_cpu() - c0, work / "results" / "calls" / "S1.vcf.gz"


def accuracy(vcf: Path, data: Path, ref: Path) -> dict:
    from aisci.germline.evaluate import evaluate

    return evaluate(vcf, data / "truth" / "S1.vcf.gz", ref)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--genome-size", type=int, default=5_000_000)
    parser.add_argument("--depth", type=float, default=30.0)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--repeats", type=int, default=2, help="alternating runs of each; the fastest counts")
    parser.add_argument("--work", type=Path, default=HERE / "work")
    args = parser.parse_args()

    from aisci.demo.germline import simulate

    data = args.work / f"data_{args.genome_size}_{args.depth:g}x"
    if not (data / "samples.tsv").exists():
        t0 = time.perf_counter()
        simulate(data, genome_size=args.genome_size, depth=args.depth, n_samples=1, seed=11)
        print(f"simulated {args.genome_size:,} bp at {args.depth:g}x in {time.perf_counter() - t0:.1f} s")
    raw_runs, pipe_runs = [], []
    for i in range(args.repeats):
        *raw_run, raw_vcf = raw_chain(data, args.work / "raw", args.threads)
        *pipe_run, pipe_vcf = pipeline(data, args.work / "pipeline", args.threads)
        raw_runs.append(raw_run)
        pipe_runs.append(pipe_run)
        print(f"repeat {i + 1}: raw chain {raw_run[0]:.1f} s (CPU {raw_run[1]:.1f} s), "
              f"pipeline {pipe_run[0]:.1f} s (CPU {pipe_run[1]:.1f} s)")
    (raw, raw_cpu), (pipe, pipe_cpu) = min(raw_runs), min(pipe_runs)
    ref = args.work / "pipeline" / "resources" / "reference" / "genome.fa"
    results = {"raw": accuracy(raw_vcf, data, ref), "pipeline": accuracy(pipe_vcf, data, ref)}

    print()
    print(f"germline_overhead: {args.genome_size:,} bp, {args.depth:g}x, {args.threads} threads, best of {args.repeats}")
    print(f"  raw chain (minimap2|sort, index, mpileup|call, norm): {raw:8.1f} s")
    print(f"  aisci germline pipeline (snakemake, defaults):        {pipe:8.1f} s")
    print(f"  wall-time ratio pipeline/raw: {pipe / raw:.3f}  (goal <= 1.10)")
    print(f"  CPU-time ratio pipeline/raw:  {pipe_cpu / raw_cpu:.3f}  (the pipeline also checks reads, marks "
          "duplicates and runs samtools stats/flagstat; its calling is scattered over the cores)")
    print()
    print(f"  {'callset':9} {'type':6} {'precision':>9} {'recall':>8} {'F1':>8}   goal")
    for name, m in results.items():
        for kind, goal in (("snv", 0.995), ("indel", 0.97)):
            x = m[kind]
            flag = "" if name == "raw" else f"F1 >= {goal}: {'met' if (x['f1'] or 0) >= goal else 'NOT met'}"
            print(f"  {name:9} {kind:6} {x['precision']:9.4f} {x['recall']:8.4f} {x['f1']:8.4f}   {flag}")
    report = {"raw_s": raw, "pipeline_s": pipe, "ratio": pipe / raw, "raw_cpu_s": raw_cpu,
              "pipeline_cpu_s": pipe_cpu, "cpu_ratio": pipe_cpu / raw_cpu, "accuracy": results}
    (args.work / "report.json").write_text(json.dumps(report, indent=2))
    print(f"\nreport: {args.work / 'report.json'}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
