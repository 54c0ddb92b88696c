#!/usr/bin/env python3
"""Make the SpliceAI exactness fixtures with the official Keras package (run once, in a throwaway venv).

This is the only place the official implementation runs; aisci itself never imports TensorFlow.
What it wrote is committed beside it, and tests/unit/splice/test_*.py compare aisci against it.

Set-up used (Python 3.11, this repository's machine, 2026-11):

    python3 -m venv /opt/tfref
    /opt/tfref/bin/pip install "tensorflow-cpu==2.21.*" "tf-keras==2.21.*" "setuptools<81" \\
        pyfaidx pandas pysam spliceai==1.3.1
    /opt/tfref/bin/python tests/unit/data/splice/make_fixtures.py --shared ../shared/data

Two shims, neither touching the arithmetic: spliceai 1.3.1 imports `keras` (Keras 2 API), which
is `tf_keras` on current TensorFlow; and it calls `np.fromstring` in binary mode, removed in
NumPy 2, whose exact equivalent is `np.frombuffer` over the same bytes.

Outputs (all in this folder):
  windows.fa                 real chr20 sequence cut into two contigs: 'nrich' (N blocks) and 'edge' (7 kb)
  official_positions.tsv.gz  per-position acceptor/donor (5-model mean) for the cases in CASES
  variants.vcf               input: the NIST truth records of the 100 kb slice + designed variants
  official.grch37.D50.vcf    `spliceai -A grch37 -D 50 -M 0` on variants.vcf
  designed.vcf               the designed variants alone
  custom.txt / .gff3 / .gtf  four real genes plus a made-up antisense gene overlapping ANKEF1
  official.custom.D50.M1.vcf `spliceai -A custom.txt -D 50 -M 1` on designed.vcf
  distance.vcf               ten SNVs;  official.grch37.D500.vcf: `spliceai -A grch37 -D 500`
"""

from __future__ import annotations

import argparse
import gzip
import os
import random
import subprocess
import sys
import tempfile
import types
from pathlib import Path

HERE = Path(__file__).resolve().parent
FLANK = 5000

# (chrom, first pos, last pos) in 1-based coordinates, per case. 'real' reads the shared hg19
# FASTA directly; 'nrich' and 'edge' are contigs of windows.fa.
CASES = [("chr20", 10030001, 10031000), ("nrich", 5001, 7000), ("edge", 1, 1500), ("edge", 5501, 7000)]
# Genes of the packaged grch37 table that lie in the real part of the shared chr20 FASTA.
GENES = ("ANKEF1", "SNAP25", "MKKS", "JAG1")


def shim() -> None:
    """Let spliceai 1.3.1 import under TensorFlow 2.21 / NumPy 2 (see the module docstring)."""
    os.environ["TF_USE_LEGACY_KERAS"] = "1"
    import numpy as np
    import tf_keras

    sys.modules["keras"] = tf_keras
    sys.modules["keras.models"] = tf_keras.models
    import spliceai.utils as su

    ns = types.SimpleNamespace(**{k: getattr(np, k) for k in dir(np) if not k.startswith("__")})
    ns.fromstring = lambda s, dtype: np.frombuffer(s.encode("latin-1"), dtype)
    su.np = ns


def read_fasta(path: Path) -> dict[str, str]:
    seqs: dict[str, list[str]] = {}
    name = None
    opener = gzip.open if path.suffix == ".gz" else open
    with opener(path, "rt") as fh:
        for line in fh:
            if line.startswith(">"):
                name = line[1:].split()[0]
                seqs[name] = []
            else:
                seqs[name].append(line.strip())
    return {k: "".join(v) for k, v in seqs.items()}


def write_fasta(path: Path, seqs: dict[str, str]) -> None:
    with open(path, "w") as fh:
        for name, seq in seqs.items():
            fh.write(f">{name}\n")
            for i in range(0, len(seq), 60):
                fh.write(seq[i:i + 60] + "\n")


def make_windows(chr20: str) -> dict[str, str]:
    nrich = list(chr20[10600000:10614000])
    for i in range(0, len(nrich), 400):  # a 60 bp N block every 400 bp ...
        nrich[i + 100:i + 160] = "N" * 60
    nrich[6500:7500] = "N" * 1000  # ... and a 1 kb N run inside the predicted range
    return {"nrich": "".join(nrich), "edge": chr20[10385000:10392000]}


def positions(models, seqs: dict[str, str], out: Path) -> None:
    import numpy as np
    from spliceai.utils import one_hot_encode

    with gzip.open(out, "wt") as fh:
        fh.write("chrom\tpos\tacceptor\tdonor\n")
        for chrom, first, last in CASES:
            seq = seqs[chrom]
            lo, hi = first - 1 - FLANK, last + FLANK  # 0-based half-open input span
            padded = "N" * max(0, -lo) + seq[max(lo, 0):min(hi, len(seq))] + "N" * max(0, hi - len(seq))
            x = one_hot_encode(padded)[None, :]
            y = np.mean([m.predict(x, verbose=0) for m in models], axis=0)[0]
            assert y.shape[0] == last - first + 1
            for i, row in enumerate(y):
                fh.write(f"{chrom}\t{first + i}\t{row[1]:.9g}\t{row[2]:.9g}\n")


def gene_rows(table: Path) -> list[list[str]]:
    rows = []
    with open(table) as fh:
        for line in fh:
            f = line.rstrip("\n").split("\t")
            if f[0] in GENES and f[1] == "20":
                rows.append(f)
    return rows


def designed_variants(chr20: str, rows: list[list[str]]) -> list[tuple[int, str, str]]:
    """Variants around exon boundaries of real genes on both strands, plus the cases the scorer skips."""
    rng = random.Random(20261121)
    out: list[tuple[int, str, str]] = []
    base = lambda p: chr20[p - 1]  # noqa: E731 (1-based)
    other = lambda b: rng.choice([x for x in "ACGT" if x != b.upper()])  # noqa: E731
    for f in rows:
        starts = [int(x) + 1 for x in f[5].split(",")[:-1]]
        ends = [int(x) for x in f[6].split(",")[:-1]]
        for k in (1, len(starts) // 2):  # two internal exons per gene
            s, e = starts[k], ends[k]
            for p in (s - 1, s - 2, e + 1, e + 2, s + 5, e - 3, s - 30):
                out.append((p, base(p), other(base(p))))
            out.append((e - 2, chr20[e - 3:e + 2], base(e - 2)))  # 5 bp deletion over the donor/acceptor
            out.append((s - 1, chr20[s - 2:s], base(s - 1)))  # 1 bp deletion at the boundary
            out.append((s - 3, base(s - 3), base(s - 3) + "TTAGG"))  # insertion
            out.append((e + 4, base(e + 4), base(e + 4) + "GT"))  # insertion making a GT
            b = base(e + 3)
            alts = [x for x in "ACGT" if x != b.upper()][:2]
            out.append((e + 3, b, ",".join(alts)))  # multi-allelic
            out.append((s + 10, chr20[s + 9:s + 11], other(base(s + 10)) + other(base(s + 11))))  # MNV -> '.'
    s0 = int(rows[0][5].split(",")[2]) + 1  # third exon of the first gene
    out.append((s0 + 20, base(s0 + 20), "<DEL>"))  # symbolic: skipped
    out.append((s0 + 21, base(s0 + 21), f"{other(base(s0 + 21))},*"))  # '*' allele skipped, the other scored
    out.append((s0 + 40, chr20[s0 + 39:s0 + 140], base(s0 + 40)))  # 101 bp REF > 2*50: skipped
    out.append((s0 + 200, other(base(s0 + 200)), base(s0 + 200)))  # REF disagrees with the reference
    out.append((10170000, base(10170000), other(base(10170000))))  # between genes: skipped
    return sorted(set(out))


def write_vcf(path: Path, header: list[str], records: list[str]) -> None:
    with open(path, "w") as fh:
        fh.writelines(header)
        fh.writelines(records)


def custom_annotation(rows: list[list[str]]) -> list[list[str]]:
    """The four real genes plus 'ANKEF1-AS' (minus strand, made up) overlapping ANKEF1's exons 3-6."""
    anky = next(f for f in rows if f[0] == "ANKEF1")
    st = anky[5].split(",")[:-1]
    en = anky[6].split(",")[:-1]
    antisense = ["ANKEF1-AS", "20", "-", st[2], en[5], ",".join(st[2:6]) + ",", ",".join(en[2:6]) + ","]
    return rows + [antisense]


def write_gff3_gtf(rows: list[list[str]], gff3: Path, gtf: Path) -> None:
    with open(gff3, "w") as g3, open(gtf, "w") as gt:
        g3.write("##gff-version 3\n")
        for name, chrom, strand, tx_start, tx_end, exs, exe in rows:
            chrom = "chr" + chrom
            a, b = int(tx_start) + 1, int(tx_end)
            g3.write(f"{chrom}\tfixture\tgene\t{a}\t{b}\t.\t{strand}\t.\tID=gene-{name};Name={name};gene_name={name}\n")
            g3.write(f"{chrom}\tfixture\tmRNA\t{a}\t{b}\t.\t{strand}\t.\tID=tx-{name};Parent=gene-{name}\n")
            gt.write(f'{chrom}\tfixture\ttranscript\t{a}\t{b}\t.\t{strand}\t.\tgene_id "g-{name}"; transcript_id "tx-{name}"; gene_name "{name}";\n')
            for s, e in zip(exs.split(",")[:-1], exe.split(",")[:-1]):
                g3.write(f"{chrom}\tfixture\texon\t{int(s) + 1}\t{e}\t.\t{strand}\t.\tParent=tx-{name}\n")
                gt.write(f'{chrom}\tfixture\texon\t{int(s) + 1}\t{e}\t.\t{strand}\t.\tgene_id "g-{name}"; transcript_id "tx-{name}"; gene_name "{name}";\n')


def official_cli(vcf: Path, ref: Path, annotation: str, distance: int, mask: int, out: Path) -> None:
    code = (
        "import sys; sys.argv[0]='spliceai'; "
        f"sys.path.insert(0, {str(HERE)!r}); import make_fixtures; make_fixtures.shim(); "
        "from spliceai.__main__ import main; main()"
    )
    cmd = [sys.executable, "-c", code, "-I", str(vcf), "-O", str(out), "-R", str(ref), "-A", annotation,
           "-D", str(distance), "-M", str(mask)]
    print("running", " ".join(cmd[3:]), flush=True)
    subprocess.run(cmd, check=True, stdout=subprocess.DEVNULL, env={**os.environ, "TF_CPP_MIN_LOG_LEVEL": "3"})


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--shared", type=Path, default=HERE.parents[4] / "shared" / "data")
    ap.add_argument("--only", choices=["positions", "variants"], default=None)
    args = ap.parse_args()
    shim()
    from pkg_resources import resource_filename

    data = args.shared / "na12878_chr20"
    chr20 = read_fasta(data / "ucsc.hg19.chr20.unittest.fasta.gz")["chr20"]
    windows = make_windows(chr20)
    write_fasta(HERE / "windows.fa", windows)

    if args.only in (None, "positions"):
        from spliceai.utils import Annotator

        with tempfile.TemporaryDirectory() as tmp:
            ref = Path(tmp) / "chr20.fa"
            write_fasta(ref, {"chr20": chr20})
            models = Annotator(str(ref), "grch37").models
        positions(models, {"chr20": chr20, **windows}, HERE / "official_positions.tsv.gz")

    if args.only in (None, "variants"):
        rows = gene_rows(Path(resource_filename("spliceai", "annotations/grch37.txt")))
        header = [
            "##fileformat=VCFv4.2\n",
            f"##contig=<ID=chr20,length={len(chr20)}>\n",
            '##ALT=<ID=DEL,Description="Deletion">\n',
            '##INFO=<ID=END,Number=1,Type=Integer,Description="End position of the variant">\n',
            "#CHROM\tPOS\tID\tREF\tALT\tQUAL\tFILTER\tINFO\n",
        ]
        with gzip.open(data / "test_nist.b37_chr20_100kbp_at_10mb.vcf.gz", "rt") as fh:
            nist = [ln.split("\t")[:5] for ln in fh if not ln.startswith("#")]
        designed = designed_variants(chr20, rows)
        recs = [(int(p), f"{c}\t{p}\t{i}\t{r}\t{a}\t.\t.\t.\n") for c, p, i, r, a in nist]
        recs += [(p, f"chr20\t{p}\td{k}\t{r}\t{a}\t.\t.\t.\n") for k, (p, r, a) in enumerate(designed)]
        recs.sort(key=lambda t: t[0])
        write_vcf(HERE / "variants.vcf", header, [r for _, r in recs])
        design_lines = [f"chr20\t{p}\td{k}\t{r}\t{a}\t.\t.\t.\n" for k, (p, r, a) in enumerate(designed)]
        write_vcf(HERE / "designed.vcf", header, design_lines)
        snvs = [ln for ln in design_lines if len(ln.split("\t")[3]) == 1 and len(ln.split("\t")[4]) == 1][:10]
        write_vcf(HERE / "distance.vcf", header, snvs)

        custom = custom_annotation(rows)
        with open(HERE / "custom.txt", "w") as fh:
            fh.write("#NAME\tCHROM\tSTRAND\tTX_START\tTX_END\tEXON_START\tEXON_END\n")
            fh.writelines("\t".join(f) + "\n" for f in custom)
        write_gff3_gtf(custom, HERE / "custom.gff3", HERE / "custom.gtf")

        with tempfile.TemporaryDirectory() as tmp:
            ref = Path(tmp) / "chr20.fa"
            write_fasta(ref, {"chr20": chr20})
            official_cli(HERE / "variants.vcf", ref, "grch37", 50, 0, HERE / "official.grch37.D50.vcf")
            official_cli(HERE / "designed.vcf", ref, str(HERE / "custom.txt"), 50, 1, HERE / "official.custom.D50.M1.vcf")
            official_cli(HERE / "distance.vcf", ref, "grch37", 500, 0, HERE / "official.grch37.D500.vcf")


if __name__ == "__main__":
    main()
