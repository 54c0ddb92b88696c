"""Sequence engine of `aisci simulate`: repeats, truth variants, haplotypes, paired reads and their files."""

from __future__ import annotations

import contextlib
import gzip
import os
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Iterator, Sequence

import numpy as np
import pysam
from numpy.typing import NDArray

from aisci.fileio import atomic_output

LETTERS = np.frombuffer(b"ACGT", dtype=np.uint8)
CODES = np.zeros(256, dtype=np.uint8)
CODES[LETTERS] = np.arange(4, dtype=np.uint8)
MIN_GAP = 10  # bp between the ambiguity regions of neighbouring variants
MAX_INDEL = 15
MEAN_AF = 0.55  # mean of the Uniform(0.1, 1.0) allele frequencies of the variant pool
HOM_FRACTION = 0.4
TRACT_SHARE = 0.4  # share of indels drawn inside homopolymers / microsatellites
MIN_Q, MAX_Q = 2, 41
ERROR_PROB = (10.0 ** (-np.arange(MAX_Q + 1) / 10)).astype(np.float32)  # Phred -> P(error)
LINE_WIDTH = 60  # FASTA line length
CHUNK = 50_000  # read pairs per batch: bounds memory to ~150 MB whatever the depth


@dataclass(frozen=True)
class Variant:
    """A biallelic pool variant in VCF form: indels carry the preceding (padding) base."""

    contig: int
    pos: int  # 0-based position of the first REF base
    ref: str
    alt: str
    af: float  # population allele frequency the sample genotypes were drawn from

    @property
    def kind(self) -> str:
        """SNV, INS or DEL."""
        if len(self.ref) == len(self.alt):
            return "SNV"
        return "INS" if len(self.alt) > len(self.ref) else "DEL"


def random_bases(rng: np.random.Generator, n: int, gc: float | NDArray[np.float64]) -> NDArray[np.uint8]:
    """Random base codes (0..3 = ACGT) with GC fraction `gc`.

    Args:
        rng: random generator.
        n: number of bases.
        gc: GC fraction, a scalar or one value per position.

    Returns:
        The base codes.
    """
    u = rng.random(n)
    # C=1, G=2 share gc; A=0, T=3 share 1-gc.
    return np.where(u < gc, np.where(u < gc / 2, 1, 2),
                    np.where(u < gc + (1 - gc) / 2, 0, 3)).astype(np.uint8)


def mutate(rng: np.random.Generator, seq: NDArray[np.uint8], div: float) -> NDArray[np.uint8]:
    """A copy of `seq` with substitutions and single-base indels at total rate `div`.

    Args:
        rng: random generator.
        seq: base codes.
        div: divergence (85% substitutions, 15% indels).

    Returns:
        The mutated copy.
    """
    out = seq.copy()
    sub = rng.random(len(out)) < div * 0.85
    out[sub] = (out[sub] + rng.integers(1, 4, size=int(sub.sum()))) % 4
    n_indel = int(rng.binomial(len(out), div * 0.15))
    dels = rng.integers(0, len(out), size=n_indel // 2)
    out = np.delete(out, dels)
    ins = rng.integers(0, len(out), size=n_indel - n_indel // 2)
    return np.insert(out, ins, rng.integers(0, 4, size=len(ins))).astype(np.uint8)


def place_block(rng: np.random.Generator, seq: NDArray[np.uint8], protected: NDArray[np.bool_],
               block: NDArray[np.uint8], protect: bool = False) -> int | None:
    """Overwrite a random unprotected stretch of `seq` with `block` (20 tries).

    Args:
        rng: random generator.
        seq: contig base codes, modified in place.
        protected: positions not to overwrite.
        block: the bases to write.
        protect: also protect the block (and 5 bp either side) from later blocks.

    Returns:
        The block's start, or None when no free stretch was found.
    """
    n = len(block)
    for _ in range(20):
        start = int(rng.integers(200, len(seq) - n - 200))
        if not protected[start:start + n].any():
            seq[start:start + n] = block
            if protect:
                protected[max(start - 5, 0):start + n + 5] = True
            return start
    return None


def add_tandem_repeats(rng: np.random.Generator, seq: NDArray[np.uint8],
                       protected: NDArray[np.bool_]) -> list[tuple[int, int, int]]:
    """Write homopolymers, microsatellites (unit 2-6) and a few minisatellites into `seq`.

    Args:
        rng: random generator.
        seq: contig base codes, modified in place.
        protected: positions not to overwrite (exons); the tracts are added to it.

    Returns:
        The tracts as sorted (start, end, unit length), the hot spots for indels.
    """
    length = len(seq)
    tracts = []
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
            motif = random_bases(rng, unit, 0.4)
        block = np.resize(motif, n)
        if unit > 1 and rng.random() < 0.3:  # an impure repeat
            j = int(rng.integers(n))
            block[j] = (block[j] + 1) % 4
        start = place_block(rng, seq, protected, block, protect=True)
        if start is not None:
            tracts.append((start, start + n, unit))
    return sorted(tracts)


def draw_variants(seqs: Sequence[NDArray[np.uint8]], tracts: Sequence[Sequence[tuple[int, int, int]]],
                  *, snv_rate: float, indel_rate: float, n_samples: int, margin: int,
                  rng: np.random.Generator) -> tuple[list[Variant], NDArray[np.int8]]:
    """Draw a population pool of normalised SNVs and indels, and each sample's genotypes.

    Every pool site gets an allele frequency f ~ U(0.1, 1); a sample carries it with
    probability f, homozygous with probability 0.4, so per-sample densities match the rates
    and samples share many but not all variants. Indels are left-aligned and padded exactly
    as `bcftools norm -f` writes them, and no two variants come within MIN_GAP bp of each
    other's ambiguity region, so every variant has a single unambiguous representation.

    Args:
        seqs: contig base codes (0..3 = ACGT).
        tracts: per contig, (start, end, unit length) of tandem repeats, to place indels in.
        snv_rate: SNVs per bp per sample.
        indel_rate: indels per bp per sample.
        n_samples: number of samples to genotype.
        margin: bp at each contig end kept free of variants.
        rng: random generator.

    Returns:
        Variants sorted by contig and position (sites no sample carries are dropped), and
        genotypes of shape (n_samples, n_variants): 0 = 0/0, 1 = 0/1, 2 = 1/1.
    """
    variants: list[Variant] = []
    for ci, (seq, contig_tracts) in enumerate(zip(seqs, tracts)):
        text = LETTERS[seq].tobytes().decode()
        lo, hi = margin, len(seq) - margin
        if hi <= lo:
            continue
        # Oversample for the margins and for the candidates the spacing rule below rejects,
        # so that each sample ends up with about rate x contig length variants.
        density = (snv_rate + indel_rate) / MEAN_AF
        scale = len(seq) / (hi - lo) * np.exp(2 * (MIN_GAP + 1) * density) / MEAN_AF
        n_snv = int(rng.poisson(snv_rate * scale * (hi - lo)))
        n_indel = int(rng.poisson(indel_rate * scale * (hi - lo)))
        candidates = _snvs(rng, seq, n_snv, lo, hi) + _indels(rng, text, contig_tracts, n_indel, lo, hi)
        candidates.sort()
        last = -MIN_GAP - 1
        for start, stop, ref, alt in candidates:
            if start - last > MIN_GAP and start >= lo and stop < hi:
                variants.append(Variant(ci, start, ref, alt, round(float(rng.uniform(0.1, 1.0)), 3)))
                last = stop
    af = np.array([v.af for v in variants])
    carrier = rng.random((n_samples, len(variants))) < af
    hom = rng.random((n_samples, len(variants))) < HOM_FRACTION
    genotypes = (carrier * (1 + hom)).astype(np.int8)
    keep = genotypes.any(axis=0)
    return [v for v, k in zip(variants, keep) if k], genotypes[:, keep]


def _snvs(rng: np.random.Generator, seq: NDArray[np.uint8], n: int, lo: int,
          hi: int) -> list[tuple[int, int, str, str]]:
    """SNV candidates (start, stop, ref, alt) with transitions twice as likely as transversions."""
    pos = np.sort(rng.integers(lo, hi, size=n))
    ref = seq[pos]
    # With codes A0 C1 G2 T3, xor 2 gives the transition partner, xor 1 / xor 3 the transversions.
    alt = np.where(rng.random(n) < 2 / 3, ref ^ 2, ref ^ np.where(rng.random(n) < 0.5, 1, 3))
    return [(p, p, "ACGT"[r], "ACGT"[a]) for p, r, a in zip(pos.tolist(), ref.tolist(), alt.tolist())]


def _indels(rng: np.random.Generator, text: str, tracts: Sequence[tuple[int, int, int]], n: int,
            lo: int, hi: int) -> list[tuple[int, int, str, str]]:
    """Normalised indel candidates (start, stop, ref, alt); [start, stop] spans every equivalent placement."""
    usable = [t for t in tracts if t[2] <= MAX_INDEL and t[1] - t[0] >= 2 * t[2]]
    out = []
    for _ in range(n):
        insertion = bool(rng.random() < 0.5)
        duplicate = True
        if usable and rng.random() < TRACT_SHARE:
            # Expansion or contraction by whole repeat units, as replication slippage does.
            start, end, unit = usable[int(rng.integers(len(usable)))]
            copies = (end - start) // unit
            k = min(int(rng.geometric(0.6)), MAX_INDEL // unit, copies - 1)
            length = k * unit
            p = start + unit * int(rng.integers(0, copies - k + 1))
        else:
            length = min(int(rng.geometric(0.45)), MAX_INDEL)
            p = int(rng.integers(lo, hi - length))
            duplicate = bool(rng.random() < 0.5)
        if insertion:
            ins = text[p:p + length] if duplicate else "".join("ACGT"[b] for b in rng.integers(0, 4, length))
            left, seq_left, right = _shift_insertion(text, p, ins)
            out.append((left - 1, right, text[left - 1], text[left - 1] + seq_left))
        else:
            left, right = _shift_deletion(text, p, length)
            out.append((left - 1, right + length, text[left - 1:left + length], text[left - 1]))
    return [c for c in out if c[0] >= lo]


def _shift_deletion(text: str, p: int, n: int) -> tuple[int, int]:
    """Leftmost and rightmost start of a deletion of text[p:p+n] giving the same haplotype."""
    left = p
    while left > 0 and text[left - 1] == text[left + n - 1]:
        left -= 1
    right = p
    while right + n < len(text) and text[right] == text[right + n]:
        right += 1
    return left, right


def _shift_insertion(text: str, p: int, ins: str) -> tuple[int, str, int]:
    """Leftmost and rightmost position of an insertion before text[p], with the bases inserted leftmost."""
    left, seq_left = p, ins
    while left > 0 and text[left - 1] == seq_left[-1]:
        seq_left = text[left - 1] + seq_left[:-1]
        left -= 1
    right, seq_right = p, ins
    while right < len(text) and text[right] == seq_right[0]:
        seq_right = seq_right[1:] + text[right]
        right += 1
    return left, seq_left, right


def write_truth_vcf(path: Path, sample: str, contigs: Sequence[tuple[str, int]],
                    variants: Sequence[Variant], genotypes: NDArray[np.int8], source: str) -> None:
    """Write one sample's non-reference genotypes as an uncompressed, sorted VCFv4.2.

    Args:
        path: output path (plain text; the caller bgzips and indexes it).
        sample: sample name (the genotype column).
        contigs: (name, length) of every contig, for the ##contig lines.
        variants: the pool, sorted by contig and position.
        genotypes: this sample's genotype per pool variant (0, 1 or 2).
        source: text for the ##source line.
    """
    lines = ["##fileformat=VCFv4.2", f"##source={source}", "##reference=reference.fa.gz"]
    lines += [f"##contig=<ID={name},length={length}>" for name, length in contigs]
    lines += [
        '##INFO=<ID=VT,Number=1,Type=String,Description="Variant type: SNV, INS or DEL">',
        '##INFO=<ID=AF,Number=A,Type=Float,Description="Allele frequency in the simulated population">',
        '##FORMAT=<ID=GT,Number=1,Type=String,Description="Genotype">',
        "\t".join(["#CHROM", "POS", "ID", "REF", "ALT", "QUAL", "FILTER", "INFO", "FORMAT", sample]),
    ]
    for v, gt in zip(variants, genotypes.tolist()):
        if gt:
            lines.append(f"{contigs[v.contig][0]}\t{v.pos + 1}\t.\t{v.ref}\t{v.alt}\t.\tPASS\t"
                         f"VT={v.kind};AF={v.af:g}\tGT\t{'0/1' if gt == 1 else '1/1'}")
    path.write_text("\n".join(lines) + "\n")


def build_haplotypes(seqs: Sequence[NDArray[np.uint8]], variants: Sequence[Variant],
                     genotypes: NDArray[np.int8], rng: np.random.Generator,
                     ) -> list[tuple[NDArray[np.uint8], NDArray[np.uint8]]]:
    """Apply one sample's genotypes to the reference: two haplotype sequences per contig.

    Args:
        seqs: contig base codes.
        variants: the pool, sorted by contig and position, non-overlapping.
        genotypes: this sample's genotype per pool variant (0, 1 or 2).
        rng: random generator (chooses the haplotype of each heterozygous variant).

    Returns:
        Per contig, the (haplotype 1, haplotype 2) base codes.
    """
    first = rng.random(len(variants)) < 0.5
    on = [(genotypes == 2) | ((genotypes == 1) & first), (genotypes == 2) | ((genotypes == 1) & ~first)]
    out = []
    for ci, seq in enumerate(seqs):
        pair = []
        for hap in on:
            pieces, cur = [], 0
            for v, carried in zip(variants, hap.tolist()):
                if carried and v.contig == ci:
                    pieces += [seq[cur:v.pos], CODES[np.frombuffer(v.alt.encode(), np.uint8)]]
                    cur = v.pos + len(v.ref)
            pieces.append(seq[cur:])
            pair.append(np.concatenate(pieces))
        out.append((pair[0], pair[1]))
    return out


def simulate_reads(sample: str, contig_names: Sequence[str],
                   haplotypes: Sequence[tuple[NDArray[np.uint8], NDArray[np.uint8]]], n_pairs: int,
                   r1_path: Path, r2_path: Path, *, read_length: int, fragment_mean: int,
                   fragment_sd: int, error_rate: float, rng: np.random.Generator) -> None:
    """Write gzipped FR paired-end FASTQs sampled uniformly from both haplotypes of every contig.

    Fragments are Normal(fragment_mean, fragment_sd) long (at least one read long) and come
    from either strand; read 1 reads the fragment start forward, read 2 its end reverse-
    complemented. Substitution errors rise along the read and are drawn from the Phred
    qualities written with them, so qualities are calibrated. Reads are in random genome order.

    Args:
        sample: sample name, the read-name prefix.
        contig_names: contig names, for the read names.
        haplotypes: per contig, the two haplotype sequences (base codes).
        n_pairs: number of read pairs.
        r1_path: read 1 output (gzip, written here directly; the caller makes it atomic).
        r2_path: read 2 output.
        read_length: bp per read.
        fragment_mean: mean fragment length.
        fragment_sd: fragment length standard deviation.
        error_rate: mean substitution error rate over both reads.
        rng: random generator.
    """
    seqs = [h for pair in haplotypes for h in pair]
    contig_of = [ci for ci, pair in enumerate(haplotypes) for _ in pair]
    lengths = np.array([len(s) for s in seqs], dtype=np.int64)
    offsets = np.concatenate([[0], np.cumsum(lengths)[:-1]])
    genome = np.concatenate(seqs)
    profile = _error_profile(read_length, error_rate)
    cols = np.arange(read_length)
    prefixes = [f"@{sample}:{name}:".encode() for name in contig_names]
    # mtime=0 and no file name in the gzip header: same seed, byte-identical files.
    with open(r1_path, "wb") as f1, open(r2_path, "wb") as f2, \
            gzip.GzipFile(fileobj=f1, mode="wb", compresslevel=2, mtime=0, filename="") as g1, \
            gzip.GzipFile(fileobj=f2, mode="wb", compresslevel=2, mtime=0, filename="") as g2, \
            ThreadPoolExecutor(max_workers=2) as pool:
        # zlib releases the GIL: both mates compress in threads while the next batch is built.
        pending: list[Future[int]] = []
        for first in range(0, n_pairs, CHUNK):
            n = min(CHUNK, n_pairs - first)
            src = rng.choice(len(seqs), size=n, p=lengths / lengths.sum())
            flen = np.clip(np.rint(rng.normal(fragment_mean, fragment_sd, n)), read_length,
                           lengths[src]).astype(np.int64)
            start = offsets[src] + (rng.random(n) * (lengths[src] - flen + 1)).astype(np.int64)
            fwd = genome[start[:, None] + cols]
            rev = 3 - genome[(start + flen - 1)[:, None] - cols]  # complement of codes 0..3
            minus = (rng.random(n) < 0.5)[:, None]
            reads = [np.where(minus, rev, fwd), np.where(minus, fwd, rev)]
            quals = [_add_errors(rng, reads[m], profile[m], error_rate > 0) for m in (0, 1)]
            names = [prefixes[contig_of[s]] + b"%d" % (first + i + 1) for i, s in enumerate(src.tolist())]
            chunks = [_fastq(names, b"/%d\n" % (m + 1), reads[m], quals[m]) for m in (0, 1)]
            for fut in pending:
                fut.result()
            pending = [pool.submit(g1.write, chunks[0]), pool.submit(g2.write, chunks[1])]
        for fut in pending:
            fut.result()


def _error_profile(read_length: int, error_rate: float) -> NDArray[np.float32]:
    """Per-cycle error probability of read 1 and read 2: rising along the read, mean error_rate."""
    x = np.linspace(0.0, 1.0, read_length)
    w = 0.4 + 1.8 * x**2
    # Read 2 is worse than read 1 on Illumina instruments; the two average to error_rate.
    return (np.stack([0.8 * w, 1.2 * w]) / w.mean() * error_rate).astype(np.float32)


def _add_errors(rng: np.random.Generator, reads: NDArray[np.uint8], profile: NDArray[np.float32],
                errors: bool) -> NDArray[np.uint8]:
    """Draw Phred qualities around the profile, substitute bases in place at those error rates."""
    n, rl = reads.shape
    if not errors:
        return np.full((n, rl), MAX_Q, dtype=np.uint8)
    # Log-normal jitter per read (some reads are worse) and per base, each with mean 1.
    sd_read, sd_base = 0.5, 0.35
    log_jitter = (rng.standard_normal((n, 1), dtype=np.float32) * sd_read
                  + rng.standard_normal((n, rl), dtype=np.float32) * sd_base
                  - (sd_read**2 + sd_base**2) / 2)
    phred = np.rint(-10 * (np.log10(profile) + log_jitter / np.log(10)))
    q = np.clip(phred, MIN_Q, MAX_Q).astype(np.uint8)
    err = rng.random((n, rl), dtype=np.float32) < ERROR_PROB[q]
    reads[err] = (reads[err] + rng.integers(1, 4, size=int(err.sum()), dtype=np.uint8)) % 4
    return q


def _fastq(names: list[bytes], mate: bytes, codes: NDArray[np.uint8], quals: NDArray[np.uint8]) -> bytes:
    """FASTQ text of a batch: fixed-width sequence/quality blocks built in numpy, names joined in."""
    n, rl = codes.shape
    body = np.empty((n, 2 * rl + 4), dtype=np.uint8)
    body[:, :rl] = LETTERS[codes]
    body[:, rl:rl + 3] = np.frombuffer(b"\n+\n", dtype=np.uint8)
    body[:, rl + 3:2 * rl + 3] = quals + 33
    body[:, -1] = ord("\n")
    width, raw = body.shape[1], memoryview(body.tobytes())
    return b"".join(x for i, name in enumerate(names) for x in (name, mate, raw[i * width:(i + 1) * width]))


# --- files -----------------------------------------------------------------------------


@contextlib.contextmanager
def bgzipped_output(final: Path, kind: str) -> Iterator[Path]:
    """Yield a temporary plain-text path; then bgzip it, index it and move it into place.

    Index files are moved first and the data file last, so a final name never shows a
    half-written file (`kind` is "fasta" for .fai/.gzi or "vcf" for .tbi).
    """
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


def write_fasta(contigs: Sequence[tuple[str, NDArray[np.uint8]]], path: Path) -> None:
    """Write contigs as plain FASTA with 60-base lines.

    Args:
        contigs: (name, base codes) of each contig.
        path: output path (plain text).
    """
    with open(path, "wb") as fh:
        for name, codes in contigs:
            seq = LETTERS[codes]
            full = len(seq) // LINE_WIDTH
            lines = np.full((full, LINE_WIDTH + 1), ord("\n"), np.uint8)
            lines[:, :LINE_WIDTH] = seq[: full * LINE_WIDTH].reshape(full, LINE_WIDTH)
            fh.write(f">{name}\n".encode() + lines.tobytes())
            if len(seq) % LINE_WIDTH:
                fh.write(seq[full * LINE_WIDTH:].tobytes() + b"\n")
