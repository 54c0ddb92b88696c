"""Sequence-context annotation of variant calls, computed in torch on the GPU when one is visible (else the CPU)."""

from __future__ import annotations

import argparse
import logging
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from aisci import options
from aisci.errors import InputError
from aisci.fileio import atomic_output

log = logging.getLogger(__name__)

BASES = "ACGT"
# Columns of the Parquet output, in order (the schema is part of the stage's contract).
COLUMNS = ("chrom", "pos", "ref", "alt", "gc", "cpg", "homopolymer", "entropy", "n_fraction")


@dataclass(frozen=True)
class Site:
    """One variant record to annotate."""

    chrom: str
    pos: int  # 1-based
    ref: str
    alt: str


def encode_windows(sites: list[Site], fasta: Any, flank: int) -> Any:
    """Reference windows of 2*flank+1 bases centred on each site, as int8 codes (A,C,G,T=0..3, N=4).

    Positions past a contig end are N, so windows at contig edges keep their length.
    """
    import numpy as np

    lut = np.full(256, 4, dtype=np.int8)
    for i, b in enumerate(BASES):
        lut[ord(b)] = lut[ord(b.lower())] = i
    width = 2 * flank + 1
    codes = np.full((len(sites), width), 4, dtype=np.int8)
    lengths = dict(zip(fasta.references, fasta.lengths))
    for row, s in enumerate(sites):
        start = s.pos - 1 - flank  # 0-based start of the window
        lo, hi = max(start, 0), min(start + width, lengths[s.chrom])
        seq = fasta.fetch(s.chrom, lo, hi).encode()
        codes[row, lo - start: lo - start + len(seq)] = lut[np.frombuffer(seq, dtype=np.uint8)]
    return codes


def context_features(codes: Any, device: Any, k: int = 3) -> dict[str, Any]:
    """Per-window sequence-context features, batched on ``device``.

    Args:
        codes: (n, width) int8 array of base codes (0..3 = ACGT, 4 = N), width odd.
        device: torch device.
        k: k-mer size for the entropy.

    Returns:
        numpy arrays keyed by feature: ``gc`` (G+C fraction of called bases), ``cpg`` (CpG
        dinucleotides), ``homopolymer`` (length of the run of identical bases through the
        centre base), ``entropy`` (Shannon entropy of k-mers, bits) and ``n_fraction``.
    """
    import torch

    x = torch.as_tensor(codes, dtype=torch.long, device=device)
    n, width = x.shape
    centre = width // 2
    called = (x < 4).float()
    n_called = called.sum(1).clamp(min=1)
    gc = ((x == 1) | (x == 2)).float().sum(1) / n_called
    cpg = ((x[:, :-1] == 1) & (x[:, 1:] == 2)).sum(1).float()
    # run through the centre: walk outwards while bases equal the centre base (N never extends)
    same = (x == x[:, centre: centre + 1]) & (x < 4)
    left = torch.cumprod(same[:, :centre].flip(1).long(), 1).sum(1)
    right = torch.cumprod(same[:, centre + 1:].long(), 1).sum(1)
    homopolymer = (left + right + same[:, centre].long()).float()
    # k-mer entropy: encode k-mers without N as base-4 integers and count them per window
    kmers = x.unfold(1, k, 1)  # (n, width-k+1, k)
    valid = (kmers < 4).all(2)
    powers = 4 ** torch.arange(k - 1, -1, -1, device=device)
    index = (kmers.clamp(max=3) * powers).sum(2)
    counts = torch.zeros(n, 4 ** k, device=device)
    counts.scatter_add_(1, index, valid.float())
    p = counts / counts.sum(1, keepdim=True).clamp(min=1)
    entropy = -(p * torch.log2(p.clamp(min=1e-12))).sum(1)
    return {
        "gc": gc.cpu().numpy(), "cpg": cpg.cpu().numpy(), "homopolymer": homopolymer.cpu().numpy(),
        "entropy": entropy.cpu().numpy(), "n_fraction": (1 - called.mean(1)).cpu().numpy(),
    }


def read_sites(vcf: Path) -> list[Site]:
    """Every (record, ALT) of a VCF, in file order.

    Raises:
        InputError: the VCF fails `aisci.vcfcheck.check_vcf` (message naming the file, line and field).
    """
    from aisci.vcfcheck import check_vcf, iter_records, open_vcf

    check_vcf(vcf)
    with open_vcf(vcf) as fh:
        return [Site(r.contig, r.pos, r.ref, alt) for r in iter_records(fh, vcf) for alt in (r.alts or ())]


def annotate(vcf: Path, reference: Path, out: Path, *, flank: int = 50, batch: int = 65536,
             device: str = "auto") -> int:
    """Write the sequence-context features of every variant in ``vcf`` to a Parquet file.

    Args:
        vcf: variant calls (VCF/BCF).
        reference: indexed reference FASTA.
        out: output Parquet file (written atomically).
        flank: bases each side of the variant in the window.
        batch: variants per device batch.
        device: ``auto``, ``cpu`` or ``cuda``.

    Returns:
        The number of annotated (record, ALT) rows.

    Raises:
        InputError: an unreadable or malformed VCF (before torch is imported), an unreadable
            reference, contigs missing from it, or a device that cannot be used.
    """
    import pyarrow as pa
    import pyarrow.parquet as pq
    import pysam

    sites = read_sites(vcf)  # a bad VCF fails before torch loads
    from aisci.device import pick_device  # looked up at call time: tests replace it to prove nothing loads early

    dev = pick_device(device)
    try:
        fasta = pysam.FastaFile(str(reference))
    except (OSError, ValueError) as exc:
        raise InputError(f"{reference}: cannot open as an indexed FASTA ({exc})") from None
    with fasta:
        missing = {s.chrom for s in sites} - set(fasta.references)
        if missing:
            raise InputError(f"{vcf}: contigs not in the reference {reference}: {', '.join(sorted(missing))}")
        parts: dict[str, list] = {c: [] for c in COLUMNS[4:]}
        for i in range(0, len(sites), batch):
            feats = context_features(encode_windows(sites[i: i + batch], fasta, flank), dev)
            for key, values in feats.items():
                parts[key].extend(values.tolist())
    table = pa.table(
        {"chrom": [s.chrom for s in sites], "pos": pa.array([s.pos for s in sites], pa.int64()),
         "ref": [s.ref for s in sites], "alt": [s.alt for s in sites],
         **{k: pa.array(v, pa.float32()) for k, v in parts.items()}}
    )
    with atomic_output(out) as tmp:
        pq.write_table(table, tmp)
    log.info("annotated %d variants of %s on %s", len(sites), vcf, dev)
    return len(sites)


def configure_parser(parser: argparse.ArgumentParser) -> None:
    """Options of `aisci context`."""
    parser.add_argument("--vcf", required=True, type=Path, help="variant calls (VCF/BCF)")
    parser.add_argument("--ref", required=True, type=Path, help="indexed reference FASTA")
    parser.add_argument("--out", required=True, type=Path, help="output Parquet")
    parser.add_argument("--flank", type=int, default=50, help="bases each side of the variant (default 50)")
    options.add_batch_size(parser, 65536, "variants per device batch")
    options.add_device(parser)


def run(args: argparse.Namespace) -> int:
    """Annotate a VCF's variants with their sequence context."""
    if args.flank < 1:
        raise InputError(f"--flank must be >= 1, got {args.flank}")
    n = annotate(args.vcf, args.ref, args.out, flank=args.flank, batch=args.batch_size, device=args.device)
    print(f"{n} variants annotated -> {args.out}")
    return 0
