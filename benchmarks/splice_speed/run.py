"""Benchmark: `aisci splice score` vs the official spliceai 1.3.1 CLI (TensorFlow) on the same CPU and variants.

Run with `make bench-splice` (or `python benchmarks/splice_speed/run.py`). Not part of the tests.

Variants: real ones, the NIST/GIAB truth records of the shared NA12878 chr20 slice plus designed
indels and splice-site variants in five real hg19 genes (tests/unit/data/splice/variants.vcf),
scored against the packaged grch37 gene table. The official CLI runs from the throwaway
TensorFlow environment that made the test fixtures (see tests/unit/data/splice/make_fixtures.py;
`--official-python`). Each tool runs on the VCF and on a header-only VCF: the difference is the
scoring time without start-up (model loading). Prints both ratios (goal: >= 5x on CPU), scored
allele x gene per second, checks the two outputs are identical, and, with `--device cuda`, the
fp32/bf16/fp16 speeds and their largest difference from fp32.
"""

from __future__ import annotations

import argparse
import gzip
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
REPO = HERE.parents[1]
DATA = REPO / "tests" / "unit" / "data" / "splice"
SHARED = REPO.parent / "shared" / "data" / "na12878_chr20"
FIXTURES = REPO / "tests" / "unit" / "data" / "splice" / "make_fixtures.py"


def timed(cmd: list[str], env: dict[str, str] | None = None) -> float:
    t0 = time.perf_counter()
    res = subprocess.run(cmd, capture_output=True, text=True, env=env)
    if res.returncode != 0:
        sys.exit(f"failed: {' '.join(cmd)}\n{res.stderr[-3000:]}")
    return time.perf_counter() - t0


def header_only(vcf: Path, out: Path) -> Path:
    out.write_text("".join(ln for ln in vcf.read_text().splitlines(keepends=True) if ln.startswith("#")))
    return out


def scored(vcf_gz: Path) -> int:
    with gzip.open(vcf_gz, "rt") as fh:
        return sum(ln.split("\t")[7].count("|") // 9 for ln in fh if not ln.startswith("#") and "SpliceAI=" in ln)


def ours(vcf: Path, ref: Path, out: Path, *extra: str) -> float:
    return timed([sys.executable, "-m", "aisci.cli", "splice", "score", "--vcf", str(vcf), "--ref", str(ref),
                  "--annotation", "grch37", "--skip-mismatch", "--threads", str(os.cpu_count() or 1), "--out", str(out),
                  *extra])


def official(python: str, vcf: Path, ref: Path, out: Path) -> float:
    code = (f"import sys; sys.argv[0]='spliceai'; sys.path.insert(0, {str(FIXTURES.parent)!r}); "
            "import make_fixtures; make_fixtures.shim(); from spliceai.__main__ import main; main()")
    env = {**os.environ, "TF_CPP_MIN_LOG_LEVEL": "3"}
    return timed([python, "-c", code, "-I", str(vcf), "-O", str(out), "-R", str(ref), "-A", "grch37"], env=env)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--official-python", default="/opt/tfref/bin/python",
                    help="python of a venv with tensorflow-cpu, tf-keras and spliceai==1.3.1")
    ap.add_argument("--vcf", type=Path, default=DATA / "variants.vcf")
    ap.add_argument("--device", default="cpu", help="cpu, or cuda to time fp32/bf16/fp16 on a GPU")
    args = ap.parse_args()
    work = Path(tempfile.mkdtemp(prefix="splice_bench."))
    fasta_gz = SHARED / "ucsc.hg19.chr20.unittest.fasta.gz"
    empty = header_only(args.vcf, work / "empty.vcf")
    print(f"machine: {os.cpu_count()} CPUs; variants: {args.vcf}")

    if args.device != "cpu":
        base = None
        for precision in ("fp32", "bf16", "fp16"):
            out = work / f"gpu.{precision}.vcf.gz"
            t = ours(args.vcf, fasta_gz, out, "--device", args.device, "--precision", precision, "--batch-size", "256")
            t0 = ours(empty, fasta_gz, work / "e.vcf.gz", "--device", args.device, "--precision", precision)
            n = scored(out)
            print(f"{args.device} {precision}: {n} allele x gene in {t - t0:.2f} s scoring ({n / (t - t0):.1f}/s), {t:.2f} s total")
            base = base or out
            if out != base:
                a = {ln.split("\t")[1]: ln for ln in gzip.open(base, "rt") if not ln.startswith("#")}
                diff = sum(a[ln.split("\t")[1]] != ln for ln in gzip.open(out, "rt") if not ln.startswith("#"))
                print(f"  records whose INFO text differs from fp32: {diff}")
        return

    t_ours = ours(args.vcf, fasta_gz, work / "ours.vcf.gz", "--device", "cpu")
    t_ours0 = ours(empty, fasta_gz, work / "ours0.vcf.gz", "--device", "cpu")
    n = scored(work / "ours.vcf.gz")
    print(f"aisci splice score (torch, CPU): {t_ours:.1f} s total, {t_ours - t_ours0:.1f} s scoring, "
          f"{n} allele x gene, {n / (t_ours - t_ours0):.2f}/s")
    if not Path(args.official_python).exists():
        print(f"official CLI not timed: {args.official_python} missing (set it up as make_fixtures.py says)")
        return
    plain = work / "chr20.fa"  # pyfaidx needs an uncompressed FASTA
    with gzip.open(fasta_gz, "rb") as src, open(plain, "wb") as dst:
        shutil.copyfileobj(src, dst)
    t_off = official(args.official_python, args.vcf, plain, work / "official.vcf")
    t_off0 = official(args.official_python, empty, plain, work / "official0.vcf")
    print(f"official spliceai 1.3.1 (TensorFlow {tf_version(args.official_python)}, CPU): {t_off:.1f} s total, "
          f"{t_off - t_off0:.1f} s scoring, {n / (t_off - t_off0):.2f}/s")
    same = gzip.open(work / "ours.vcf.gz", "rt").read() == (work / "official.vcf").read_text()
    print(f"outputs identical: {same}")
    print(f"speed-up, scoring only: {(t_off - t_off0) / (t_ours - t_ours0):.1f}x   "
          f"end to end: {t_off / t_ours:.1f}x   (goal >= 5x on CPU)")
    shutil.rmtree(work, ignore_errors=True)


def tf_version(python: str) -> str:
    res = subprocess.run([python, "-c", "import importlib.metadata as m; print(m.version('tensorflow-cpu'))"],
                         capture_output=True, text=True)
    return res.stdout.strip() or "?"


if __name__ == "__main__":
    main()
