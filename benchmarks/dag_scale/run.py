"""DAG build time of the germline pipeline at whole-genome scale: 1 and 100 samples on GRCh38 at 300 kb chunks.

The reference is GRCh38-shaped (the real 195 contigs and lengths from ../shared/data/grch38, every
base N: a dry run reads only the index); the reads are the small simulated ones (a dry run does not
read them). Each dry run is a fresh `snakemake -n` process, timed end to end (start-up included).

    python benchmarks/dag_scale/run.py [--samples 1 100] [--chunk-size 300000]

Goals (issue "Run it on your own genome"): < 10 s for 1 sample, < 60 s for 100 samples.
"""

from __future__ import annotations

import argparse
import re
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(REPO))

from aisci.germline.reference import read_contigs  # noqa: E402
from aisci.germline.regions import plan_chunks, plan_groups  # noqa: E402
from tests.workflows.grch38 import many_samples, write_grch38_shaped  # noqa: E402

GOALS = {1: 10.0, 100: 60.0}


def dry_run(work: Path, samples: int, chunk_size: int, reads: tuple[Path, Path], reference: Path) -> tuple[float, int]:
    sheet = many_samples(work / f"s{samples}.tsv", reads[0], reads[1], samples)
    cfg = work / f"c{samples}.yaml"
    cfg.write_text(f"samples: {sheet}\nreference: {reference}\ncalling: {{chunk_size: {chunk_size}}}\n")
    start = time.perf_counter()
    res = subprocess.run([sys.executable, "-m", "snakemake", "-n", "--cores", "2", "--snakefile",
                          str(REPO / "workflows" / "germline" / "Snakefile"), "--configfile", str(cfg),
                          "--directory", str(work / f"run{samples}")], capture_output=True, text=True)
    seconds = time.perf_counter() - start
    if res.returncode != 0:
        raise SystemExit(res.stderr[-3000:])
    jobs = int(re.search(r"^total\s+(\d+)", res.stdout, re.M).group(1))
    return seconds, jobs


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--samples", type=int, nargs="+", default=[1, 100])
    parser.add_argument("--chunk-size", type=int, default=300_000)
    parser.add_argument("--groups", type=int, default=24, help="calling.groups (the config default)")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        work = Path(tmp)
        reference = write_grch38_shaped(work)
        subprocess.run([sys.executable, "-m", "aisci.cli", "simulate", "--out", str(work / "sim"), "--genome-size",
                        "100000", "--samples", "1", "--depth", "1", "--seed", "1"], check=True, capture_output=True)
        reads = (work / "sim" / "reads" / "S1_R1.fastq.gz", work / "sim" / "reads" / "S1_R2.fastq.gz")
        chunks = plan_chunks(read_contigs(reference), args.chunk_size)
        groups = plan_groups(chunks, args.groups)
        print(f"GRCh38 shape: 195 contigs, 3.10 Gb; {len(chunks):,} chunks of <= {args.chunk_size:,} bp "
              f"in {len(groups)} groups per callset")
        print(f"{'samples':>8} {'jobs':>7} {'jobs/sample':>11} {'dry run':>9} {'goal':>7}  per-chunk jobs before (chunks x callsets)")
        for n in args.samples:
            seconds, jobs = dry_run(work, n, args.chunk_size, reads, reference)
            callsets = n + (1 if n >= 2 else 0)
            goal = GOALS.get(n)
            print(f"{n:>8} {jobs:>7,} {jobs / n:>11.1f} {seconds:>8.1f}s {f'< {goal:.0f}s' if goal else '':>7}  "
                  f"{len(chunks) * callsets:,} calling jobs")
    return 0


if __name__ == "__main__":
    sys.exit(main())
