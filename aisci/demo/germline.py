"""Simulate a reference genome with genes and repeats, diploid truth sets and paired reads (demo/test data)."""

from __future__ import annotations

import argparse
import logging
import os
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, Callable

from aisci.errors import InputError
from aisci.fileio import atomic_output

if TYPE_CHECKING:
    import numpy as np
    from numpy.typing import NDArray

log = logging.getLogger(__name__)

# numpy and pysam are imported inside functions: the `aisci` CLI imports every subcommand module
# to build its parser, and should start fast.

MIN_CONTIG = 10_000  # room for a few genes, repeats and a variant-free margin at each end
# Fraction of each contig covered by interspersed repeat copies, and by near-identical young pairs.
REPEAT_FRACTION = 0.10
YOUNG_FRACTION = 0.004
SEGDUP_FRACTION = 0.005  # near-identical segmental duplications, longer than a fragment
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
    from aisci.demo import reads as simreads  # numpy-heavy; imported only when simulating

    t0 = time.monotonic()
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    contigs = build_genome(genome_size, n_contigs, _rng(seed, 1))
    result = SimulationResult(out / "reference.fa.gz", out / "genes.gff3", out / "samples.tsv",
                              [f"S{i + 1}" for i in range(n_samples)])
    with simreads.bgzipped_output(result.reference, "fasta") as plain:
        simreads.write_fasta([(c.name, c.seq) for c in contigs], plain)
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
        with simreads.bgzipped_output(vcf, "vcf") as plain:
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
            raise InputError(message)


def _rng(seed: int, *keys: int) -> np.random.Generator:
    """A generator per stage (and sample) derived from the seed, so stages never shift each other's streams."""
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

    from aisci.demo import reads as simreads

    families = [simreads.random_bases(rng, int(n), 0.45) for n in rng.integers(300, 2001, size=6)]
    # SINE-like family: short with a poly-A tail, as Alu elements have.
    families[0] = np.concatenate([families[0][:300], np.zeros(int(rng.integers(10, 25)), np.uint8)])
    contigs = []
    gene_no = 0
    for i in range(n_contigs):
        length = genome_size // n_contigs + (1 if i < genome_size % n_contigs else 0)
        contig = Contig(f"chr{i + 1}", np.empty(0, np.uint8))
        gc = _isochores(rng, length)
        contig.seq = simreads.random_bases(rng, length, gc)
        protected = np.zeros(length, dtype=bool)  # exons (+ splice sites) and tandem tracts
        gene_no = _place_genes(rng, contig, gc, protected, gene_no)
        _place_repeats(rng, contig.seq, protected, families)
        contig.tracts = simreads.add_tandem_repeats(rng, contig.seq, protected)
        contigs.append(contig)
    return contigs


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


def _make_gene(rng: np.random.Generator, gc: float,
               ) -> tuple[NDArray[np.uint8], list[tuple[int, int]], list[tuple[int, int, int]]]:
    """Simulate one gene in transcript orientation: GC-rich exons, GT..AG introns, ATG..stop CDS.

    Returns:
        The gene sequence, exon intervals and CDS intervals (with phase), gene-local coordinates.
    """
    import numpy as np

    from aisci.demo import reads as simreads

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
    mrna = np.concatenate([simreads.random_bases(rng, utr5, exon_gc), cds,
                           simreads.random_bases(rng, total - utr5 - cds_len, exon_gc)])
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
            intron = simreads.random_bases(rng, int(intron_len[k]), intron_gc)
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


def _place_repeats(rng: np.random.Generator, seq: NDArray[np.uint8], protected: NDArray[np.bool_],
                   families: list[NDArray[np.uint8]]) -> None:
    """Insert interspersed repeats: old family copies 5-20% diverged, young near-identical pairs
    and segmental duplications, so that some reads map ambiguously, as in real genomes.
    """
    from aisci.demo import reads as simreads

    placed = 0
    while placed < REPEAT_FRACTION * len(seq):
        fam = families[int(rng.integers(len(families)))]
        if len(fam) > 400 and rng.random() < 0.5:
            fam = fam[int(rng.integers(0, len(fam) - 300)):]  # 5'-truncated, as most LINE copies are
        copy = simreads.mutate(rng, fam, rng.uniform(0.05, 0.20))
        if rng.random() < 0.5:
            copy = 3 - copy[::-1]
        simreads.place_block(rng, seq, protected, copy)
        placed += len(copy)
    mean_len = sum(len(f) for f in families) / len(families)
    for _ in range(max(1, round(YOUNG_FRACTION * len(seq) / (2 * mean_len)))):
        source = simreads.mutate(rng, families[int(rng.integers(len(families)))], rng.uniform(0.05, 0.15))
        for _copy in range(2):
            simreads.place_block(rng, seq, protected, simreads.mutate(rng, source, rng.uniform(0.0, 0.005)))
    # Segmental duplications longer than a fragment: read pairs inside cannot be placed uniquely,
    # which is what makes real genomes hard for short reads (and costs some recall/precision).
    for _ in range(max(1, round(SEGDUP_FRACTION * len(seq) / 5_000))):
        n = int(rng.integers(2_000, 8_000)) if len(seq) >= 500_000 else len(seq) // 50
        src = int(rng.integers(0, len(seq) - n))
        copy = simreads.mutate(rng, seq[src:src + n], rng.uniform(0.001, 0.01))
        simreads.place_block(rng, seq, protected, copy if rng.random() < 0.5 else 3 - copy[::-1])


# --- output -------------------------------------------------------------------------------


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
    options: list[tuple[str, Callable[[str], Any], str, Any, str]] = [
        ("--genome-size", _size, "BP", 5_000_000, "total genome length, e.g. 5000000, 5M or 200k"),
        ("--contigs", int, "N", 2, "number of contigs"),
        ("--samples", int, "N", 1, "number of diploid samples"),
        ("--depth", float, "X", 30.0, "mean read depth per sample"),
        ("--read-length", int, "BP", 150, "length of each read"),
        ("--fragment-mean", int, "BP", 350, "mean fragment length"),
        ("--fragment-sd", int, "BP", 50, "fragment length standard deviation"),
        ("--error-rate", float, "P", 0.002, "mean per-base substitution error rate"),
        ("--snv-rate", float, "P", 1e-3, "SNVs per bp per sample"),
        ("--indel-rate", float, "P", 1.5e-4, "indels per bp per sample"),
        ("--seed", int, "N", 1, "random seed; the same seed gives byte-identical files"),
    ]
    for flag, kind, metavar, default, text in options:
        parser.add_argument(flag, type=kind, metavar=metavar, default=default,
                            help=f"{text} (default: {default})")


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
