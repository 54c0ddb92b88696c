"""Simulate a reference genome with genes and repeats, diploid truth sets and paired reads (demo/test data)."""

from __future__ import annotations

import argparse
import contextlib
import logging
import os
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, Iterator

from aisci.errors import InputError
from aisci.fileio import atomic_output

if TYPE_CHECKING:
    import numpy as np
    from numpy.typing import NDArray

log = logging.getLogger(__name__)

# numpy and pysam are imported inside functions: the `aisci` CLI imports every subcommand module
# to build its parser, and should start fast.

MIN_CONTIG = 10_000  # room for a few genes, repeats and a variant-free margin at each end
LINE_WIDTH = 60
# Fraction of each contig covered by interspersed repeat copies, and by near-identical young pairs.
REPEAT_FRACTION = 0.10
YOUNG_FRACTION = 0.004
SEGDUP_FRACTION = 0.003  # near-identical segmental duplications, longer than a fragment
STOP_CODONS = ("TAA", "TAG", "TGA")


@dataclass
class SimulationResult:
    """Paths and counts of everything `simulate` wrote."""

    reference: Path
    annotation: Path
    sample_sheet: Path
    samples: list[str]
    truth_vcfs: dict[str, Path] = field(default_factory=dict)
    reads: dict[str, tuple[Path, Path]] = field(default_factory=dict)
    n_pairs: dict[str, int] = field(default_factory=dict)


@dataclass
class Gene:
    """One simulated protein-coding gene; intervals are 0-based half-open, in transcript order."""

    gene_id: str
    start: int
    end: int
    strand: str
    exons: list[tuple[int, int]]
    cds: list[tuple[int, int, int]]  # (start, end, GFF3 phase)


@dataclass
class Contig:
    """A simulated contig: base codes 0..3 = ACGT, its genes and its tandem-repeat tracts."""

    name: str
    seq: NDArray[np.uint8]
    genes: list[Gene] = field(default_factory=list)
    tracts: list[tuple[int, int, int]] = field(default_factory=list)  # (start, end, unit length)


def simulate(
    out_dir: str | os.PathLike,
    *,
    genome_size: int = 5_000_000,
    n_contigs: int = 2,
    n_samples: int = 1,
    depth: float = 30.0,
    read_length: int = 150,
    fragment_mean: int = 350,
    fragment_sd: int = 50,
    error_rate: float = 0.002,
    snv_rate: float = 1e-3,
    indel_rate: float = 1.5e-4,
    seed: int = 1,
) -> SimulationResult:
    """Write a reference, gene annotation, per-sample truth VCFs, paired FASTQs and a sample sheet.

    The same arguments always give byte-identical files. `samples.tsv` is written last, so its
    presence marks a complete simulation.

    Args:
        out_dir: output directory (created if needed).
        genome_size: total reference length in bp, split evenly over the contigs.
        n_contigs: number of contigs (chr1, chr2, ...).
        n_samples: number of diploid samples (S1, S2, ...), drawn from one variant pool.
        depth: mean read depth per sample.
        read_length: length of each read of a pair.
        fragment_mean: mean fragment (insert) length.
        fragment_sd: standard deviation of the fragment length.
        error_rate: mean per-base substitution error rate of the reads.
        snv_rate: SNVs per bp per sample.
        indel_rate: indels per bp per sample.
        seed: random seed.

    Returns:
        The paths written and the number of read pairs per sample.

    Raises:
        InputError: an argument is out of range (the message names the option).
    """
    _validate(genome_size, n_contigs, n_samples, depth, read_length, fragment_mean, fragment_sd,
              error_rate, snv_rate, indel_rate, seed)
    from aisci import simreads  # numpy-heavy; imported only when simulating

    t0 = time.monotonic()
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    contigs = build_genome(genome_size, n_contigs, _rng(seed, 1))
    result = SimulationResult(out / "reference.fa.gz", out / "genes.gff3", out / "samples.tsv",
                              [f"S{i + 1}" for i in range(n_samples)])
    with _bgzipped(result.reference, "fasta") as plain:
        write_fasta(contigs, plain)
    write_gff3(contigs, result.annotation)
    log.info("reference: %d contigs, %d bp, %d genes", len(contigs), genome_size,
             sum(len(c.genes) for c in contigs))

    seqs = [c.seq for c in contigs]
    # Variants stay clear of contig ends, where fragments cannot give full coverage.
    margin = fragment_mean + 3 * fragment_sd + 10
    variants, genotypes = simreads.draw_variants(
        seqs, [c.tracts for c in contigs], snv_rate=snv_rate, indel_rate=indel_rate,
        n_samples=n_samples, margin=margin, rng=_rng(seed, 2))
    pairs = int(round(depth * genome_size / (2 * read_length)))
    for i, sample in enumerate(result.samples):
        vcf = out / "truth" / f"{sample}.vcf.gz"
        with _bgzipped(vcf, "vcf") as plain:
            simreads.write_truth_vcf(plain, sample, [(c.name, len(c.seq)) for c in contigs],
                                     variants, genotypes[i], source=f"aisci simulate seed={seed}")
        haps = simreads.build_haplotypes(seqs, variants, genotypes[i], _rng(seed, 3, i))
        fq = (out / "reads" / f"{sample}_R1.fastq.gz", out / "reads" / f"{sample}_R2.fastq.gz")
        with atomic_output(fq[0]) as tmp1, atomic_output(fq[1]) as tmp2:
            simreads.simulate_reads(
                sample, [c.name for c in contigs], haps, pairs, tmp1, tmp2,
                read_length=read_length, fragment_mean=fragment_mean, fragment_sd=fragment_sd,
                error_rate=error_rate, rng=_rng(seed, 4, i))
        result.truth_vcfs[sample], result.reads[sample], result.n_pairs[sample] = vcf, fq, pairs
        log.info("%s: %d variants, %d read pairs", sample, int((genotypes[i] > 0).sum()), pairs)

    rows = ["sample\tfq1\tfq2\ttruth"] + [
        "\t".join([s, *(p.relative_to(out).as_posix() for p in (*result.reads[s], result.truth_vcfs[s]))])
        for s in result.samples]
    with atomic_output(result.sample_sheet) as tmp:
        tmp.write_text("\n".join(rows) + "\n")
    log.info("simulation finished in %.1f s", time.monotonic() - t0)
    return result


def _validate(genome_size: int, n_contigs: int, n_samples: int, depth: float, read_length: int,
              fragment_mean: int, fragment_sd: int, error_rate: float, snv_rate: float,
              indel_rate: float, seed: int) -> None:
    """Raise InputError naming the first out-of-range option."""
    checks: list[tuple[bool, str]] = [
        (n_contigs >= 1, f"--contigs must be >= 1, got {n_contigs}"),
        (genome_size >= MIN_CONTIG * max(n_contigs, 1),
         f"--genome-size must be at least {MIN_CONTIG} bp per contig "
         f"({MIN_CONTIG * max(n_contigs, 1)} for --contigs {n_contigs}), got {genome_size}"),
        (n_samples >= 1, f"--samples must be >= 1, got {n_samples}"),
        (depth > 0, f"--depth must be > 0, got {depth}"),
        (read_length >= 30, f"--read-length must be >= 30, got {read_length}"),
        (fragment_sd >= 0, f"--fragment-sd must be >= 0, got {fragment_sd}"),
        (fragment_mean >= read_length,
         f"--read-length ({read_length}) must not exceed --fragment-mean ({fragment_mean})"),
        (fragment_mean + 3 * fragment_sd <= genome_size // max(n_contigs, 1) // 4,
         "--fragment-mean + 3 x --fragment-sd must be at most a quarter of the contig length "
         f"(--genome-size / --contigs = {genome_size // max(n_contigs, 1)})"),
        (0 <= error_rate <= 0.1, f"--error-rate must be in [0, 0.1], got {error_rate}"),
        (0 <= snv_rate <= 0.01, f"--snv-rate must be in [0, 0.01], got {snv_rate}"),
        (0 <= indel_rate <= 0.005, f"--indel-rate must be in [0, 0.005], got {indel_rate}"),
        (seed >= 0, f"--seed must be >= 0, got {seed}"),
    ]
    for ok, message in checks:
        if not ok:
            raise InputError(f"simulate: {message}")


def _rng(seed: int, *keys: int) -> np.random.Generator:
    """An independent generator per stage/sample, so adding a sample never changes another's data."""
    import numpy as np

    return np.random.default_rng(np.random.SeedSequence([seed, *keys]))


# --- genome -------------------------------------------------------------------------------


def build_genome(genome_size: int, n_contigs: int, rng: np.random.Generator) -> list[Contig]:
    """Build contigs of isochore-like GC background with genes, interspersed and tandem repeats.

    Args:
        genome_size: total length; contigs differ in length by at most 1 bp.
        n_contigs: number of contigs.
        rng: random generator.

    Returns:
        The contigs, named chr1, chr2, ...
    """
    import numpy as np

    families = [_random_seq(rng, int(n), 0.45) for n in rng.integers(300, 2001, size=6)]
    # SINE-like family: short with a poly-A tail, as Alu elements have.
    families[0] = np.concatenate([families[0][:300], np.zeros(int(rng.integers(10, 25)), np.uint8)])
    contigs = []
    gene_no = 0
    for i in range(n_contigs):
        length = genome_size // n_contigs + (1 if i < genome_size % n_contigs else 0)
        contig = Contig(f"chr{i + 1}", np.empty(0, np.uint8))
        gc = _isochores(rng, length)
        contig.seq = _random_seq(rng, length, gc)
        protected = np.zeros(length, dtype=bool)  # exons (+ splice sites) and tandem tracts
        gene_no = _place_genes(rng, contig, gc, protected, gene_no)
        _place_repeats(rng, contig.seq, protected, families)
        _place_tandem_repeats(rng, contig, protected)
        contigs.append(contig)
    return contigs


def _random_seq(rng: np.random.Generator, n: int, gc: Any) -> NDArray[np.uint8]:
    """Random base codes with GC fraction `gc` (scalar or per-position array)."""
    import numpy as np

    u = rng.random(n)
    # C=1, G=2 share gc; A=0, T=3 share 1-gc.
    return np.where(u < gc, np.where(u < gc / 2, 1, 2),
                    np.where(u < gc + (1 - gc) / 2, 0, 3)).astype(np.uint8)


def _isochores(rng: np.random.Generator, length: int) -> NDArray[np.float64]:
    """Per-position GC target: segments of tens to hundreds of kb with GC between 35% and 60%."""
    import numpy as np

    gc = np.empty(length)
    pos = 0
    while pos < length:
        seg = 10_000 + int(rng.exponential(80_000))
        gc[pos:pos + seg] = rng.uniform(0.35, 0.60)
        pos += seg
    return gc


def _codon_table(rng: np.random.Generator, n: int, gc: float) -> NDArray[np.uint8]:
    """`n` random sense codons (no stops) with GC-biased usage, as a flat array of base codes."""
    import numpy as np

    codons = np.array([(a, b, c) for a in range(4) for b in range(4) for c in range(4)], np.uint8)
    sense = np.array(["".join("ACGT"[x] for x in cod) not in STOP_CODONS for cod in codons])
    n_gc = ((codons == 1) | (codons == 2)).sum(axis=1)
    weight = np.where(sense, gc ** n_gc * (1 - gc) ** (3 - n_gc), 0.0)
    return codons[rng.choice(64, size=n, p=weight / weight.sum())].ravel()


def _make_gene(rng: np.random.Generator, gc: float) -> tuple[NDArray[np.uint8], list[tuple[int, int]], list[tuple[int, int, int]]]:
    """Simulate one gene in transcript orientation: GC-rich exons, GT..AG introns, ATG..stop CDS.

    Returns:
        The gene sequence, exon intervals and CDS intervals (with phase), gene-local coordinates.
    """
    import numpy as np

    n_exons = int(rng.integers(2, 8))
    exon_len = rng.integers(90, 450, size=n_exons)
    intron_len = rng.integers(150, 1800, size=n_exons - 1)
    exon_gc, intron_gc = min(gc + 0.12, 0.72), max(gc - 0.05, 0.30)
    total = int(exon_len.sum())
    utr5 = int(rng.integers(15, exon_len[0] // 2))
    cds_len = total - utr5 - int(rng.integers(15, exon_len[-1] // 2))
    cds_len -= cds_len % 3
    stop = ["ACGT".index(b) for b in STOP_CODONS[int(rng.integers(3))]]
    cds = np.concatenate([[0, 3, 2], _codon_table(rng, cds_len // 3 - 2, exon_gc), stop]).astype(np.uint8)
    mrna = np.concatenate([_random_seq(rng, utr5, exon_gc), cds,
                           _random_seq(rng, total - utr5 - cds_len, exon_gc)])
    pieces, exons, cds_parts = [], [], []
    local = m0 = done = 0
    for k, n in enumerate(exon_len.tolist()):
        pieces.append(mrna[m0:m0 + n])
        exons.append((local, local + n))
        a, b = max(m0, utr5), min(m0 + n, utr5 + cds_len)
        if a < b:
            # GFF3 phase: bases to skip at this segment's start to reach the next codon.
            cds_parts.append((local + a - m0, local + b - m0, (3 - done % 3) % 3))
            done += b - a
        local, m0 = local + n, m0 + n
        if k < n_exons - 1:
            intron = _random_seq(rng, int(intron_len[k]), intron_gc)
            intron[:2], intron[-2:] = (2, 3), (0, 2)  # GT ... AG splice sites
            pieces.append(intron)
            local += len(intron)
    return np.concatenate(pieces), exons, cds_parts


def _place_genes(rng: np.random.Generator, contig: Contig, gc: NDArray[np.float64],
                 protected: NDArray[np.bool_], gene_no: int) -> int:
    """Write genes on both strands every ~5-40 kb; return the updated running gene number."""
    length = len(contig.seq)
    pos = int(rng.integers(2_000, 15_000))
    while True:
        seq, exons, cds = _make_gene(rng, float(gc[min(pos, length - 1)]))
        glen = len(seq)
        if pos + glen > length - 2_000:
            return gene_no
        strand = "+" if rng.random() < 0.5 else "-"
        if strand == "-":
            seq = 3 - seq[::-1]  # reverse complement of codes 0..3
            exons = [(glen - e, glen - s) for s, e in exons]
            cds = [(glen - e, glen - s, p) for s, e, p in cds]
        contig.seq[pos:pos + glen] = seq
        gene_no += 1
        contig.genes.append(Gene(f"G{gene_no:05d}", pos, pos + glen, strand,
                                 [(pos + s, pos + e) for s, e in exons],
                                 [(pos + s, pos + e, p) for s, e, p in cds]))
        for s, e in exons:
            protected[max(pos + s - 20, 0):pos + e + 20] = True
        pos += glen + int(rng.integers(5_000, 40_000))


def _try_place(rng: np.random.Generator, seq: NDArray[np.uint8], protected: NDArray[np.bool_],
               block: NDArray[np.uint8], protect: bool = False) -> int | None:
    """Overwrite a random unprotected stretch with `block`; return its start or None."""
    n = len(block)
    for _ in range(20):
        start = int(rng.integers(200, len(seq) - n - 200))
        if not protected[start:start + n].any():
            seq[start:start + n] = block
            if protect:
                protected[max(start - 5, 0):start + n + 5] = True
            return start
    return None


def _diverge(rng: np.random.Generator, seq: NDArray[np.uint8], div: float) -> NDArray[np.uint8]:
    """A copy of `seq` with substitutions and single-base indels at total rate `div`."""
    import numpy as np

    out = seq.copy()
    sub = rng.random(len(out)) < div * 0.85
    out[sub] = (out[sub] + rng.integers(1, 4, size=int(sub.sum()))) % 4
    n_indel = int(rng.binomial(len(out), div * 0.15))
    dels = rng.integers(0, len(out), size=n_indel // 2)
    out = np.delete(out, dels)
    ins = rng.integers(0, len(out), size=n_indel - n_indel // 2)
    return np.insert(out, ins, rng.integers(0, 4, size=len(ins))).astype(np.uint8)


def _place_repeats(rng: np.random.Generator, seq: NDArray[np.uint8], protected: NDArray[np.bool_],
                   families: list[NDArray[np.uint8]]) -> None:
    """Insert copies of the repeat families: old copies 5-20% diverged, plus near-identical pairs.

    The near-identical pairs (<0.5% from each other's source) make some reads map ambiguously,
    as recent segmental duplications and young transposons do in real genomes.
    """
    placed = 0
    while placed < REPEAT_FRACTION * len(seq):
        fam = families[int(rng.integers(len(families)))]
        if len(fam) > 400 and rng.random() < 0.5:
            fam = fam[int(rng.integers(0, len(fam) - 300)):]  # 5'-truncated, as most LINE copies are
        copy = _diverge(rng, fam, rng.uniform(0.05, 0.20))
        if rng.random() < 0.5:
            copy = 3 - copy[::-1]
        _try_place(rng, seq, protected, copy)
        placed += len(copy)
    mean_len = sum(len(f) for f in families) / len(families)
    for _ in range(max(1, round(YOUNG_FRACTION * len(seq) / (2 * mean_len)))):
        source = _diverge(rng, families[int(rng.integers(len(families)))], rng.uniform(0.05, 0.15))
        for _copy in range(2):
            _try_place(rng, seq, protected, _diverge(rng, source, rng.uniform(0.0, 0.005)))
    # Segmental duplications longer than a fragment: read pairs inside cannot be placed uniquely,
    # which is what makes real genomes hard for short reads (and costs some recall/precision).
    for _ in range(max(1, round(SEGDUP_FRACTION * len(seq) / 5_000))):
        n = int(rng.integers(2_000, 8_000)) if len(seq) >= 500_000 else len(seq) // 50
        src = int(rng.integers(0, len(seq) - n))
        copy = _diverge(rng, seq[src:src + n], rng.uniform(0.001, 0.01))
        _try_place(rng, seq, protected, copy if rng.random() < 0.5 else 3 - copy[::-1])


def _place_tandem_repeats(rng: np.random.Generator, contig: Contig,
                          protected: NDArray[np.bool_]) -> None:
    """Add homopolymers, microsatellites (unit 2-6) and a few minisatellites; record each tract."""
    import numpy as np

    length = len(contig.seq)
    specs: list[tuple[int, int]] = []  # (unit length, tract length)
    for _ in range(length // 1500):
        specs.append((1, 6 + min(int(rng.geometric(0.2)), 20)))
    for _ in range(length // 2500):
        unit = int(rng.choice([2, 3, 4, 5, 6], p=[0.45, 0.2, 0.2, 0.1, 0.05]))
        specs.append((unit, int(rng.integers(max(12, 3 * unit), 50))))
    for _ in range(length // 40_000):
        unit = int(rng.integers(10, 41))
        specs.append((unit, unit * int(rng.integers(3, 11))))
    for unit, n in specs:
        if unit == 1:
            # Real homopolymers are mostly poly-A/T.
            motif = np.array([int(rng.choice(4, p=[0.4, 0.1, 0.1, 0.4]))], np.uint8)
        else:
            motif = _random_seq(rng, unit, 0.4)
        block = np.resize(motif, n)
        if unit > 1 and rng.random() < 0.3:  # an impure repeat
            j = int(rng.integers(n))
            block[j] = (block[j] + 1) % 4
        start = _try_place(rng, contig.seq, protected, block, protect=True)
        if start is not None:
            contig.tracts.append((start, start + n, unit))
    contig.tracts.sort()


# --- output -------------------------------------------------------------------------------


@contextlib.contextmanager
def _bgzipped(final: Path, kind: str) -> Iterator[Path]:
    """Yield a temporary plain-text path; then bgzip it, index it and move it into place.

    Index files are moved first and the data file last, so a final name never shows a
    half-written file (`kind` is "fasta" for .fai/.gzi or "vcf" for .tbi).
    """
    import pysam

    suffixes = (".fai", ".gzi") if kind == "fasta" else (".tbi",)
    with atomic_output(final) as tmp:
        plain = tmp.with_name(tmp.name[: -len(".gz")])
        try:
            yield plain
            pysam.tabix_compress(str(plain), str(tmp), force=True)
            if kind == "fasta":
                pysam.faidx(str(tmp))
            else:
                pysam.tabix_index(str(tmp), preset="vcf", force=True)
            for suffix in suffixes:
                os.replace(f"{tmp}{suffix}", f"{final}{suffix}")
        finally:
            for path in (plain, *(Path(f"{tmp}{s}") for s in suffixes)):
                path.unlink(missing_ok=True)


def write_fasta(contigs: list[Contig], path: Path) -> None:
    """Write the contigs as plain FASTA with 60-base lines.

    Args:
        contigs: the simulated contigs.
        path: output path (plain text).
    """
    import numpy as np

    letters = np.frombuffer(b"ACGT", np.uint8)
    with open(path, "wb") as fh:
        for contig in contigs:
            seq = letters[contig.seq]
            full = len(seq) // LINE_WIDTH
            lines = np.full((full, LINE_WIDTH + 1), ord("\n"), np.uint8)
            lines[:, :LINE_WIDTH] = seq[: full * LINE_WIDTH].reshape(full, LINE_WIDTH)
            fh.write(f">{contig.name}\n".encode() + lines.tobytes())
            if len(seq) % LINE_WIDTH:
                fh.write(seq[full * LINE_WIDTH:].tobytes() + b"\n")


def write_gff3(contigs: list[Contig], path: Path) -> None:
    """Write the genes as GFF3 (gene > mRNA > exon/CDS, 1-based closed coordinates).

    Args:
        contigs: the simulated contigs.
        path: final output path (written atomically).
    """
    lines = ["##gff-version 3"] + [f"##sequence-region {c.name} 1 {len(c.seq)}" for c in contigs]
    for contig in contigs:
        for g in contig.genes:
            tx = f"{g.gene_id}.t1"
            col = f"{contig.name}\taisci\t{{}}\t{{}}\t{{}}\t.\t{g.strand}\t{{}}\t{{}}"
            lines.append(col.format("gene", g.start + 1, g.end, ".",
                                    f"ID={g.gene_id};Name={g.gene_id};biotype=protein_coding"))
            lines.append(col.format("mRNA", g.start + 1, g.end, ".", f"ID={tx};Parent={g.gene_id}"))
            feats = [(s, e, "exon", ".", f"ID={tx}.exon{k + 1};Parent={tx}")
                     for k, (s, e) in enumerate(g.exons)]
            feats += [(s, e, "CDS", str(p), f"ID={tx}.cds;Parent={tx}") for s, e, p in g.cds]
            for s, e, kind, phase, attrs in sorted(feats):
                lines.append(col.format(kind, s + 1, e, phase, attrs))
    with atomic_output(path) as tmp:
        tmp.write_text("\n".join(lines) + "\n")


# --- command line -------------------------------------------------------------------------


def _size(text: str) -> int:
    """Parse a size such as 5000000, 5M or 200k."""
    scale = {"k": 1_000, "m": 1_000_000, "g": 1_000_000_000}.get(text[-1:].lower(), 1)
    try:
        return int(float(text[:-1] if scale > 1 else text) * scale)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a size: {text!r} (use e.g. 5000000, 5M or 200k)")


def configure_parser(parser: argparse.ArgumentParser) -> None:
    """Add the `aisci simulate` options to `parser`.

    Args:
        parser: the subcommand's parser.
    """
    parser.add_argument("--out", required=True, type=Path, metavar="DIR", help="output directory")
    parser.add_argument("--genome-size", type=_size, default=5_000_000, help="total bp (e.g. 5M)")
    parser.add_argument("--contigs", type=int, default=2, help="number of contigs")
    parser.add_argument("--samples", type=int, default=1, help="number of diploid samples")
    parser.add_argument("--depth", type=float, default=30.0, help="mean read depth per sample")
    parser.add_argument("--read-length", type=int, default=150, help="bp per read")
    parser.add_argument("--fragment-mean", type=int, default=350, help="mean fragment length")
    parser.add_argument("--fragment-sd", type=int, default=50, help="fragment length s.d.")
    parser.add_argument("--error-rate", type=float, default=0.002, help="mean substitution error rate")
    parser.add_argument("--snv-rate", type=float, default=1e-3, help="SNVs per bp per sample")
    parser.add_argument("--indel-rate", type=float, default=1.5e-4, help="indels per bp per sample")
    parser.add_argument("--seed", type=int, default=1, help="random seed (same seed, same bytes)")


def run(args: argparse.Namespace) -> int:
    """Run `aisci simulate` and print what it wrote.

    Args:
        args: parsed options from `configure_parser`.

    Returns:
        The exit status (0).

    Raises:
        InputError: an option is out of range.
    """
    result = simulate(
        args.out, genome_size=args.genome_size, n_contigs=args.contigs, n_samples=args.samples,
        depth=args.depth, read_length=args.read_length, fragment_mean=args.fragment_mean,
        fragment_sd=args.fragment_sd, error_rate=args.error_rate, snv_rate=args.snv_rate,
        indel_rate=args.indel_rate, seed=args.seed)
    print(f"reference     {result.reference} (+ .fai, .gzi)")
    print(f"annotation    {result.annotation}")
    for sample in result.samples:
        r1, r2 = result.reads[sample]
        print(f"{sample:<13} {r1} {r2} ({result.n_pairs[sample]} pairs)")
        print(f"{'':<13} {result.truth_vcfs[sample]} (+ .tbi)")
    print(f"sample sheet  {result.sample_sheet}")
    return 0
