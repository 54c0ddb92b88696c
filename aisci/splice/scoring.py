"""SpliceAI delta scores for VCF records, with the official spliceai 1.3.1 CLI's semantics and INFO format.

What is scored, skipped and written follows `spliceai/utils.py:get_delta_scores` line by line:
every ALT allele x every annotated gene whose transcript span holds the variant; reference windows
masked to N outside the gene; minus-strand genes scored on the reverse complement; deletions padded
with zeros and insertions max-pooled before taking the deltas; positions of the maxima reported
relative to the variant; `--mask` zeroing gains at annotated and losses at unannotated boundaries.
Only the batching differs (see `aisci.splice.engine`), and two deliberate changes: a REF allele
that disagrees with the reference is an error here (the official tool skips it silently) unless
``skip_mismatch`` is set; and REF is compared with the reference case-insensitively, as VCF defines
it (spec 4.3, section 1.6.1: bases "case insensitive") and as `aisci annotate` does, where the
official compares the upper-cased reference with REF as written and so skips a lower-case REF as a
mismatch. Records are written as read (a lower-case allele stays lower-case in the output).
"""

from __future__ import annotations

import logging
from collections import Counter
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Iterator

import numpy as np

from aisci.errors import InputError
from aisci.gff import normalise_chrom
from aisci.splice.annotation import Annotation, Gene
from aisci.splice.encode import codes, mask_outside, reverse_complement

if TYPE_CHECKING:  # the engine imports torch: a Scorer loads it, writing cached scores does not
    from aisci.splice import engine as eng

log = logging.getLogger(__name__)

# The official header line, verbatim (spliceai 1.3.1 __main__.py), so downstream parsers
# (VEP plugin, CADD, bcftools +split-vep) read our output as theirs.
INFO_HEADER = (
    '##INFO=<ID=SpliceAI,Number=.,Type=String,Description="SpliceAIv1.3.1 variant '
    "annotation. These include delta scores (DS) and delta positions (DP) for "
    "acceptor gain (AG), acceptor loss (AL), donor gain (DG), and donor loss (DL). "
    'Format: ALLELE|SYMBOL|DS_AG|DS_AL|DS_DG|DS_DL|DP_AG|DP_AL|DP_DG|DP_DL">'
)
SKIPS = ("bad input", "not in a gene", "ref mismatch", "near chromosome end", "ref too long", "unscorable allele")
CHUNK = 4096  # records read, scored and written at a time
TILE_GAP = 5000  # variants of one gene closer than this share a reference tile ...
TILE_SPAN = 50000  # ... as long as the tile's span of variant positions stays below this (streams: ~130 MB)


@dataclass
class Entry:
    """One ALT allele x gene of a record: its INFO text once scored."""

    alt: str
    gene: Gene
    job: eng.AltJob | None = None
    ref_lo: int = 0  # first of its reference outputs, as an index into its tile's input
    ref_scores: np.ndarray | None = None
    text: str = ""
    values: tuple[Any, ...] = ()


@dataclass
class Planned:
    """A VCF record and its entries, in INFO order (ALT alleles outer, genes inner, as the official)."""

    record: Any
    entries: list[Entry] = field(default_factory=list)


def check_distance(distance: int) -> None:
    """The official CLI's range for -D."""
    if not 0 <= distance < 5000:
        raise InputError(f"--distance must be in [0, 5000), got {distance}")


def delta_scores(y_ref: np.ndarray, y_alt: np.ndarray, ref_len: int, alt_len: int, distance: int,
                 mask: bool, boundary: int) -> tuple[tuple[Any, ...], tuple[int, ...]]:
    """DS_AG, DS_AL, DS_DG, DS_DL and DP_* from forward-strand (cov, 3) / (cov - ref_len + alt_len, 3) outputs.

    The arithmetic (dtypes included: a deletion's zero padding promotes to float64 as in the
    original) is the official code's, so the rounded values come out the same.
    """
    cov = 2 * distance + 1
    y_ref, y_alt = y_ref[None], y_alt[None]
    del_len = max(ref_len - alt_len, 0)
    if ref_len > 1 and alt_len == 1:
        y_alt = np.concatenate([y_alt[:, :cov // 2 + alt_len], np.zeros((1, del_len, 3)), y_alt[:, cov // 2 + alt_len:]], axis=1)
    elif ref_len == 1 and alt_len > 1:
        y_alt = np.concatenate([
            y_alt[:, :cov // 2],
            np.max(y_alt[:, cov // 2:cov // 2 + alt_len], axis=1)[:, None, :],
            y_alt[:, cov // 2 + alt_len:]], axis=1)
    y = np.concatenate([y_ref, y_alt])
    idx_pa = (y[1, :, 1] - y[0, :, 1]).argmax()
    idx_na = (y[0, :, 1] - y[1, :, 1]).argmax()
    idx_pd = (y[1, :, 2] - y[0, :, 2]).argmax()
    idx_nd = (y[0, :, 2] - y[1, :, 2]).argmax()
    m = int(mask)
    mask_pa = np.logical_and((idx_pa - cov // 2 == boundary), m)
    mask_na = np.logical_and((idx_na - cov // 2 != boundary), m)
    mask_pd = np.logical_and((idx_pd - cov // 2 == boundary), m)
    mask_nd = np.logical_and((idx_nd - cov // 2 != boundary), m)
    ds = ((y[1, idx_pa, 1] - y[0, idx_pa, 1]) * (1 - mask_pa),
          (y[0, idx_na, 1] - y[1, idx_na, 1]) * (1 - mask_na),
          (y[1, idx_pd, 2] - y[0, idx_pd, 2]) * (1 - mask_pd),
          (y[0, idx_nd, 2] - y[1, idx_nd, 2]) * (1 - mask_nd))
    dp = tuple(int(i) - cov // 2 for i in (idx_pa, idx_na, idx_pd, idx_nd))
    return ds, dp


def info_text(alt: str, gene: str, ds: tuple[Any, ...], dp: tuple[int, ...]) -> str:
    """The INFO entry ``ALLELE|SYMBOL|DS_AG|DS_AL|DS_DG|DS_DL|DP_AG|DP_AL|DP_DG|DP_DL``."""
    return "{}|{}|{:.2f}|{:.2f}|{:.2f}|{:.2f}|{}|{}|{}|{}".format(alt, gene, *ds, *dp)


class Scorer:
    """Scores records against one reference and annotation with one engine."""

    def __init__(self, fasta: Any, annotation: Annotation, engine: eng.Engine, distance: int = 50,
                 mask: bool = False, skip_mismatch: bool = False, source: str = "input") -> None:
        check_distance(distance)
        self.fasta, self.annotation, self.engine = fasta, annotation, engine
        self.distance, self.mask, self.skip_mismatch, self.source = distance, mask, skip_mismatch, source
        from aisci.splice.model import FLANK

        self.half = FLANK + distance  # wid // 2 of the official code
        self.first_contig = fasta.references[0]
        self.counts: Counter[str] = Counter()

    def plan(self, record: Any) -> Planned:
        """Check one record and list what it needs scored (the official order of checks)."""
        planned = Planned(record)
        self.counts["records"] += 1
        if record.alts is None or record.ref is None:
            self.counts["bad input"] += 1
            return planned
        genes = self.annotation.genes_at(record.chrom, record.pos)
        if not genes:
            self.counts["not in a gene"] += 1
            return planned
        chrom = normalise_chrom(record.chrom, self.first_contig)
        if chrom not in self.fasta.references:
            raise InputError(f"{self.source}: {record.chrom}:{record.pos}: contig {chrom!r} is not in the reference")
        length = self.fasta.get_reference_length(chrom)
        ref = record.ref
        bases = self.fasta.fetch(chrom, record.pos - 1, min(record.pos - 1 + len(ref), length)).upper()
        if bases != ref.upper():
            if not self.skip_mismatch:
                raise InputError(
                    f"{self.source}: {record.chrom}:{record.pos} {ref}>{','.join(record.alts)}: REF disagrees with the "
                    f"reference ({bases or 'past the contig end'}); fix the VCF or the --ref, or pass --skip-mismatch"
                )
            self.counts["ref mismatch"] += 1
            return planned
        if record.pos - self.half - 1 < 0 or record.pos + self.half > length:
            self.counts["near chromosome end"] += 1
            return planned
        if len(ref) > 2 * self.distance:
            self.counts["ref too long"] += 1
            return planned
        for alt in record.alts:
            for gene in genes:
                if any(c in alt for c in ".-*<>"):
                    self.counts["unscorable allele"] += 1
                    continue
                entry = Entry(alt, gene)
                if len(ref) > 1 and len(alt) > 1:
                    entry.text = f"{alt}|{gene.name}|.|.|.|.|.|.|.|."
                    entry.values = (None,) * 8
                planned.entries.append(entry)
        return planned

    def run(self, batch: list[Planned]) -> None:
        """Score every pending entry of ``batch``: one reference tile per gene and cluster of nearby variants."""
        by_gene: dict[tuple[str, int, int, str], list[tuple[Planned, Entry]]] = {}
        for p in batch:
            for e in p.entries:
                if not e.text:
                    chrom = normalise_chrom(p.record.chrom, self.first_contig)
                    by_gene.setdefault((chrom, e.gene.tx_start, e.gene.tx_end, e.gene.strand), []).append((p, e))
        for key, items in by_gene.items():
            items.sort(key=lambda t: t[0].record.pos)
            for tile_items in _clusters(items):
                self._tile(key, tile_items)
        for p in batch:
            for e in p.entries:
                if not e.text:
                    self._finish(p.record, e)

    def _tile(self, key: tuple[str, int, int, str], items: list[tuple[Planned, Entry]]) -> None:
        from aisci.splice.engine import AltJob
        from aisci.splice.model import FLANK

        chrom, tx_start, tx_end, strand = key
        d, h = self.distance, self.half
        lo = items[0][0].record.pos - 1 - h  # 0-based tile start
        hi = items[-1][0].record.pos + h
        seq = mask_outside(self.fasta.fetch(chrom, lo, hi), lo, tx_start - 1, tx_end)
        tile = codes(seq)
        length = len(tile)
        if strand == "-":
            tile = reverse_complement(tile)
        jobs = []
        for p, e in items:
            c = p.record.pos - 1 - lo
            rl, al = len(p.record.ref), len(e.alt)
            alt = codes(e.alt)
            if strand == "-":
                start, alt = length - c - rl, reverse_complement(alt)
                out_lo, ref_lo = start + rl - 1 - d, length - c - 1 - d
            else:
                start, out_lo, ref_lo = c, c - d, c - d
            e.job = AltJob(start=start, ref_len=rl, alt=alt, out_lo=out_lo, n_out=2 * d + 1 - rl + al)
            e.ref_lo = ref_lo
            jobs.append(e.job)
        ref, _ = self.engine.run_tile(tile, jobs)  # ref[i] is the output at tile input position i + FLANK
        for _, e in items:
            r = ref[e.ref_lo - FLANK: e.ref_lo - FLANK + 2 * d + 1]
            if strand == "-":
                r, e.job.result = r[::-1], e.job.result[::-1]
            e.ref_scores = r

    def _finish(self, record: Any, e: Entry) -> None:
        ds, dp = delta_scores(e.ref_scores, e.job.result, len(record.ref), len(e.alt), self.distance, self.mask,
                              e.gene.nearest_boundary(record.pos))
        e.text = info_text(e.alt, e.gene.name, ds, dp)
        e.values = tuple(float(x) for x in e.text.split("|")[2:6]) + dp
        e.job = None
        self.counts["scored"] += 1


def _clusters(items: list[tuple[Planned, Entry]]) -> Iterator[list[tuple[Planned, Entry]]]:
    group = [items[0]]
    for item in items[1:]:
        pos, first, last = item[0].record.pos, group[0][0].record.pos, group[-1][0].record.pos
        if pos - last > TILE_GAP or pos - first > TILE_SPAN:
            yield group
            group = []
        group.append(item)
    yield group


def chunks(records: Iterator[Any], size: int = CHUNK) -> Iterator[list[Any]]:
    """Lists of up to ``size`` records."""
    chunk: list[Any] = []
    for rec in records:
        chunk.append(rec)
        if len(chunk) == size:
            yield chunk
            chunk = []
    if chunk:
        yield chunk


def describe(counts: Counter[str]) -> str:
    """One log line of what was scored and skipped."""
    parts = [f"{counts['records']} records", f"{counts['scored']} allele x gene scored"]
    parts += [f"{counts[k]} {k}" for k in SKIPS if counts[k]]
    return ", ".join(parts)

