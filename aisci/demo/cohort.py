"""Simulate a cohort of bcftools-call-style single-sample VCFs drawn from one shared variant pool."""

from __future__ import annotations

import os
from pathlib import Path
from typing import TYPE_CHECKING

from aisci.errors import InputError
from aisci.fileio import atomic_output

if TYPE_CHECKING:
    import numpy as np
    from numpy.typing import NDArray

# numpy, pyarrow and pysam are imported inside functions: the `aisci` CLI imports every subcommand
# module to build its parser, and should start fast.

N_CONTIGS = 3            # contigs chr1..chr3 when no reference is given
MIN_CONTIG = 1_000_000   # their minimum length; longer when the pool is dense
MARGIN = 10              # room at each contig end for a deletion's REF
SNV, DEL, INS = 0, 1, 2
GT_TEXT = ("0/1", "1/1", "0/2", "1/2", "./.")    # genotype classes of a record
GT_PL_INDEX = (1, 2, 3, 4, -1)                   # the PL entry set to 0 (diploid order 00,01,11,02,12,22)
GT_AD_FRACTIONS = ((0.5, 0.5, 0.0), (0.02, 0.98, 0.0), (0.5, 0.0, 0.5), (0.02, 0.49, 0.49), (0, 0, 0))
BASES = b"ACGT"


def simulate_cohort(out: Path, n_samples: int, n_variants: int, *, seed: int = 0,
                    reference: Path | None = None, annotation: Path | None = None,
                    pool_factor: float = 5.0, bgzip: bool = True, sample_prefix: str = "S") -> Path:
    """Write a cohort of single-sample VCFs and its manifest ``samples.tsv``.

    Each sample's VCF looks like ``bcftools call -m`` output (FORMAT ``GT:PL:DP:AD:GQ``, INFO ``DP``,
    QUAL, FILTER ``PASS``/``LowQual``) and holds about ``n_variants`` records drawn from a shared pool
    of ``pool_factor * n_variants`` sites (SNVs, short indels and a few multi-allelic SNVs). Sites get an
    allele frequency from a log-uniform spectrum (many rare, some common); a sample carries a site with
    the Hardy-Weinberg carrier probability, scaled so the expected record count is ``n_variants``.
    A few calls are missing (``./.`` with ``.`` DP, AD and GQ). The same arguments give identical files.

    Args:
        out: output folder; VCFs go to ``out/vcf/<sample>.vcf.gz`` (+ ``.tbi``).
        n_samples: number of samples, named ``<sample_prefix>0001``, ... (zero-padded).
        n_variants: expected number of records per sample.
        seed: random seed.
        reference: FASTA (plain or bgzipped, e.g. the one ``aisci simulate`` writes); REF alleles are taken
            from it so the variants can be scored. Without it: contigs chr1..chr3 of random sequence.
        annotation: GFF3 of the reference; about half of the pool is then placed inside exons.
        pool_factor: pool size as a multiple of ``n_variants`` (>= 1).
        bgzip: bgzip and tabix-index the VCFs (else plain ``.vcf``).
        sample_prefix: prefix of the sample names.

    Returns:
        The manifest path ``out/samples.tsv`` (header ``sample<TAB>vcf``, VCF paths relative to ``out``),
        written last so its presence marks a complete cohort.

    Raises:
        InputError: a bad count or factor, an unreadable reference or annotation.
    """
    import numpy as np

    if n_samples < 1 or n_variants < 1:
        raise InputError(f"simulate_cohort: n_samples ({n_samples}) and n_variants ({n_variants}) must be >= 1")
    if pool_factor < 1:
        raise InputError(f"simulate_cohort: pool_factor {pool_factor} must be >= 1")
    out = Path(out)
    rng = np.random.default_rng(seed)
    contigs = _contigs(reference, rng, int(pool_factor * n_variants))
    exons = _exons(annotation, contigs) if annotation is not None else None
    pool = _pool(contigs, exons, round(pool_factor * n_variants), n_variants, rng)
    header = _header(contigs, reference)

    width = len(str(n_samples))
    names = [f"{sample_prefix}{i + 1:0{width}d}" for i in range(n_samples)]
    rows = []
    for i, name in enumerate(names):
        body = _sample_body(pool, np.random.default_rng([seed, i + 1]))
        text = header.encode() + b"\t" + name.encode() + b"\n" + body
        rel = Path("vcf") / (f"{name}.vcf.gz" if bgzip else f"{name}.vcf")
        _write_vcf(out / rel, text, bgzip)
        rows.append(f"{name}\t{rel.as_posix()}\n")
    manifest = out / "samples.tsv"
    with atomic_output(manifest, suffix=".part") as tmp:
        tmp.write_text("sample\tvcf\n" + "".join(rows))
    return manifest


# --- the shared pool ---------------------------------------------------------------------------


def _contigs(reference: Path | None, rng: np.random.Generator, n_pool: int) -> list[tuple[str, NDArray]]:
    """(name, upper-case sequence as uint8 ASCII) of each contig, from the reference or random."""
    import numpy as np

    if reference is None:
        length = max(MIN_CONTIG, 40 * n_pool // N_CONTIGS)
        return [(f"chr{k + 1}", np.frombuffer(BASES, np.uint8)[rng.integers(0, 4, length)])
                for k in range(N_CONTIGS)]
    import pysam

    try:
        with pysam.FastaFile(os.fspath(reference)) as fasta:
            return [(name, np.frombuffer(fasta.fetch(name).upper().encode(), np.uint8))
                    for name in fasta.references]
    except (OSError, ValueError) as exc:
        raise InputError(f"{reference}: cannot read the reference FASTA ({exc})") from exc


def _exons(annotation: Path, contigs: list[tuple[str, NDArray]]) -> dict[int, list[tuple[int, int]]]:
    """1-based closed exon intervals per contig index, from a GFF3."""
    index = {name: k for k, (name, _) in enumerate(contigs)}
    exons: dict[int, list[tuple[int, int]]] = {}
    try:
        with open(annotation) as fh:
            for n, line in enumerate(fh, 1):
                f = line.split("\t")
                if line.startswith("#") or len(f) < 5 or f[2] != "exon" or f[0] not in index:
                    continue
                try:
                    exons.setdefault(index[f[0]], []).append((int(f[3]), int(f[4])))
                except ValueError:
                    raise InputError(f"{annotation} line {n}: exon start/end {f[3]!r}/{f[4]!r} "
                                     "are not integers") from None
    except OSError as exc:
        raise InputError(f"{annotation}: cannot read the annotation ({exc})") from exc
    return exons


def _draw_sites(contigs, exons, n: int, rng) -> tuple[NDArray, NDArray]:
    """n random (contig index, 1-based pos) sites, half inside exons when given, away from contig ends."""
    import numpy as np

    lengths = np.array([len(seq) for _, seq in contigs])
    n_exonic = n // 2 if exons else 0
    k = rng.choice(len(contigs), n - n_exonic, p=lengths / lengths.sum())
    pos = (rng.random(n - n_exonic) * (lengths[k] - 2 * MARGIN)).astype(np.int64) + MARGIN + 1
    if n_exonic:
        iv = np.array([(c, s, e) for c, ivs in exons.items() for s, e in ivs], dtype=np.int64)
        sizes = iv[:, 2] - iv[:, 1] + 1
        pick = rng.choice(len(iv), n_exonic, p=sizes / sizes.sum())
        epos = iv[pick, 1] + (rng.random(n_exonic) * sizes[pick]).astype(np.int64)
        ek = iv[pick, 0]
        ok = (epos > MARGIN) & (epos <= lengths[ek] - MARGIN)
        k, pos = np.concatenate([k, ek[ok]]), np.concatenate([pos, epos[ok]])
    return k, pos


def _pool(contigs, exons, n_pool: int, n_variants: int, rng) -> dict:
    """The shared, sorted pool of sites: text prefix per site, ALT counts and carrier probabilities."""
    import numpy as np
    import pyarrow as pa

    k, pos = _draw_sites(contigs, exons, int(n_pool * 1.2) + 10, rng)
    key = np.unique(k.astype(np.int64) << 40 | pos)              # sorted, unique sites
    key = np.sort(rng.choice(key, min(n_pool, len(key)), replace=False))
    k, pos = (key >> 40).astype(np.intp), key & ((1 << 40) - 1)
    n = len(key)
    u = rng.random(n)
    kind = np.where(u < 0.85, SNV, np.where(u < 0.925, DEL, INS))
    size = rng.integers(1, 7, n)
    multi = (kind == SNV) & (rng.random(n) < 0.03)
    shifts = rng.integers(1, 4, n)
    ins_seq = np.frombuffer(BASES, np.uint8)[rng.integers(0, 4, (n, 6))].tobytes()
    prefixes, keep = [], np.ones(n, bool)
    names = [name for name, _ in contigs]
    for i in range(n):
        seq, p = contigs[k[i]][1], int(pos[i])
        if kind[i] == DEL:
            ref = seq[p - 1:p + size[i]].tobytes().decode()
            alt = ref[0]
        else:
            ref = chr(seq[p - 1])
            if kind[i] == INS:
                alt = ref + ins_seq[6 * i:6 * i + size[i]].decode()
            else:
                b = BASES.find(ref.encode())
                alt = chr(BASES[(b + shifts[i]) % 4])
                if multi[i]:
                    alt += "," + chr(BASES[(b + shifts[i] % 3 + 1) % 4])   # a third base
        if not set(ref) <= set("ACGT"):                      # N or another IUPAC code in the reference
            keep[i] = False
        prefixes.append(f"{names[k[i]]}\t{p}\t.\t{ref}\t{alt}\t")
    # a log-uniform allele-frequency spectrum, scaled so a sample has ~n_variants records
    af = 10 ** rng.uniform(-3.5, np.log10(0.95), n)
    carrier = np.where(keep, 1 - (1 - af) ** 2, 0.0)
    lo, hi = 0.0, 1e6
    for _ in range(60):
        mid = (lo + hi) / 2
        lo, hi = (mid, hi) if np.minimum(1, mid * carrier).sum() < n_variants else (lo, mid)
    carrier = np.minimum(1, hi * carrier)
    af = 1 - np.sqrt(1 - carrier)
    return {"prefix": pa.array([s for s, ok in zip(prefixes, keep) if ok]), "multi": multi[keep],
            "carrier": carrier[keep], "hom": (af / (2 - af))[keep]}


# --- one sample ---------------------------------------------------------------------------------


def _sample_body(pool: dict, rng) -> bytes:
    """The data lines of one sample's VCF, built column-wise with Arrow string kernels."""
    import numpy as np
    import pyarrow as pa
    import pyarrow.compute as pc

    idx = np.flatnonzero(rng.random(len(pool["carrier"])) < pool["carrier"])
    n = len(idx)
    if n == 0:
        return b""
    multi = pool["multi"][idx]
    hom = rng.random(n) < pool["hom"][idx]
    gt = np.where(hom, 1, 0)
    gt = np.where(multi, rng.choice([0, 2, 3], n, p=[0.4, 0.3, 0.3]), gt)
    gt[rng.random(n) < 0.002] = 4                                    # a few missing calls
    missing = gt == 4
    dp = np.maximum(1, rng.poisson(30, n))
    frac = np.array(GT_AD_FRACTIONS)[gt]
    r = rng.binomial(dp, frac[:, 0])
    a1 = rng.binomial(dp - r, np.divide(frac[:, 1], 1 - frac[:, 0], out=np.zeros(n), where=frac[:, 0] < 1))
    a2 = dp - r - a1
    qual = np.round(np.minimum(999, 3.2 * dp * rng.uniform(0.3, 2.5, n)) + rng.random(n), 3)
    qual[missing] = np.round(rng.uniform(3, 15, missing.sum()), 3)
    gq = np.minimum(99, (qual / 3).astype(np.int64))
    pl = rng.integers(10, 256, (n, 6))
    pl[np.arange(n), np.array(GT_PL_INDEX)[gt]] = 0
    pl[missing] = 0

    def s(x):
        return pc.cast(pa.array(x), pa.string())

    pls = [s(pl[:, j]) for j in range(6)]
    pl_text = pc.if_else(pa.array(multi), pc.binary_join_element_wise(*pls, ","),
                         pc.binary_join_element_wise(*pls[:3], ","))
    ad = pc.binary_join_element_wise(s(r), s(a1), ",")
    ad = pc.if_else(pa.array(multi), pc.binary_join_element_wise(ad, s(a2), ","), ad)
    miss = pa.array(missing)
    dp_s = s(dp)
    lines = pc.binary_join_element_wise(
        pool["prefix"].take(pa.array(idx)), s(qual), "\t",
        pc.if_else(pa.array(qual < 20), "LowQual", "PASS"), "\tDP=", dp_s, "\tGT:PL:DP:AD:GQ\t",
        pa.array(np.array(GT_TEXT, dtype=object)[gt], pa.string()), ":", pl_text, ":",
        pc.if_else(miss, ".", dp_s), ":", pc.if_else(miss, ".", ad), ":", pc.if_else(miss, ".", s(gq)),
        "\n", "")
    offsets = np.frombuffer(lines.buffers()[1], np.int32, n + 1, lines.offset * 4)
    return lines.buffers()[2].to_pybytes()[offsets[0]:offsets[-1]]


def _header(contigs, reference: Path | None) -> str:
    """The VCF header up to and including '#CHROM ... FORMAT' (the sample name is appended)."""
    lines = [
        "##fileformat=VCFv4.2",
        '##FILTER=<ID=PASS,Description="All filters passed">',
        '##FILTER=<ID=LowQual,Description="QUAL < 20">',
        *(f"##contig=<ID={name},length={len(seq)}>" for name, seq in contigs),
        '##INFO=<ID=DP,Number=1,Type=Integer,Description="Raw read depth">',
        '##FORMAT=<ID=GT,Number=1,Type=String,Description="Genotype">',
        '##FORMAT=<ID=PL,Number=G,Type=Integer,Description="Phred-scaled genotype likelihoods">',
        '##FORMAT=<ID=DP,Number=1,Type=Integer,Description="Number of high-quality bases">',
        '##FORMAT=<ID=AD,Number=R,Type=Integer,Description="Allelic depths">',
        '##FORMAT=<ID=GQ,Number=1,Type=Integer,Description="Phred-scaled genotype quality">',
        "##source=aisci.demo.cohort",
    ]
    if reference is not None:
        lines.append(f"##reference=file://{Path(reference).resolve()}")
    lines.append("#CHROM\tPOS\tID\tREF\tALT\tQUAL\tFILTER\tINFO\tFORMAT")
    return "\n".join(lines)


def _write_vcf(path: Path, text: bytes, bgzip: bool) -> None:
    """Write one VCF atomically; bgzipped and tabix-indexed (index moved into place first)."""
    if not bgzip:
        with atomic_output(path, suffix=".part") as tmp:
            tmp.write_bytes(text)
        return
    import pysam

    with atomic_output(path, suffix=".part.gz") as tmp:
        with pysam.BGZFile(os.fspath(tmp), "wb") as fh:
            fh.write(text)
        pysam.tabix_index(os.fspath(tmp), preset="vcf", force=True)
        os.replace(f"{tmp}.tbi", f"{path}.tbi")
