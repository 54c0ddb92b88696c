"""Score once: SpliceAI scores of VCF records taken from, and added to, the content-addressed score cache.

The germline pipeline scores every callset (each sample, the cohort): the same allele is found in
many of them. With a cache (`aisci.scorecache.ScoreCache`, one Parquet store per model version:
weights, reference, annotation, distance and mask), `fill` scores only the alleles no earlier job or
run has scored, once each, and `CachedScores` writes any callset's INFO/SpliceAI from the cache. What
comes out is byte for byte what `aisci splice score` writes without a cache (a test keeps it so):

- a record is split into its ALT alleles (``chrom:pos:ref:alt``, as written); SpliceAI scores each
  ALT on its own, so the cache's rows of the alleles, in ALT order, are the record's entries;
- the cache keeps a value as the INFO field prints it (two decimals; `Scorer` does the same), and
  an allele the official tool skips keeps the reason, so it is not tried again;
- a REF that disagrees with the reference is kept as "ref mismatch" and is an error here unless
  ``skip_mismatch``, as in `Scorer`.

Only fp32 scores are cached (bf16/fp16 scores differ in the last digit now and then).

The cache is the base's (`aisci.scorecache`, shared with the cohort store); this package gives it the
model and the runner that fill it (`aisci.splice.runner`).
"""

from __future__ import annotations

import logging
import time
from collections import Counter
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from aisci.errors import InputError
from aisci.progress import Progress
from aisci.splice.scoring import info_text

log = logging.getLogger(__name__)

PART_VARIANTS = 20000  # alleles per cache part: a killed job loses at most this much scoring
_BATCH = 50000  # alleles per table read from a VCF


@dataclass
class FillCounts:
    """What `fill` did: alleles read (all VCFs, with repeats), distinct alleles scored now, seconds."""

    vcfs: int = 0
    records: int = 0
    alleles: int = 0
    scored: int = 0
    seconds: float = 0.0


def allele_tables(vcf: str, regions: Any = None, contigs: Sequence[str] | None = None) -> Iterator[Any]:
    """(chrom, variant_id, pos, ref, alt) tables of a VCF's ALT alleles (of the records in ``regions``), file order."""
    import pyarrow as pa

    from aisci.vcfcheck import iter_records, open_vcf

    cols: dict[str, list[Any]] = {k: [] for k in ("chrom", "variant_id", "pos", "ref", "alt")}

    def table() -> Any:
        t = pa.table({k: pa.array(v, pa.int64() if k == "pos" else pa.string()) for k, v in cols.items()})
        for v in cols.values():
            v.clear()
        return t

    with open_vcf(vcf) as handle:
        records = regions.records(handle, vcf, contigs) if regions else iter_records(handle, vcf)
        for rec in records:
            if rec.alts is None or rec.ref is None:
                continue
            for alt in rec.alts:
                cols["chrom"].append(rec.chrom)
                cols["variant_id"].append(_key(rec.chrom, rec.pos, rec.ref, alt))
                cols["pos"].append(rec.pos)
                cols["ref"].append(rec.ref)
                cols["alt"].append(alt)
            if len(cols["pos"]) >= _BATCH:
                yield table()
    if cols["pos"]:
        yield table()


def fill(model: Any, cache_root: str | Path, vcfs: Iterable[str], regions: Any = None) -> FillCounts:
    """Score every allele of ``vcfs`` (in ``regions``) that the cache lacks, once, and add it to the cache.

    The VCFs are taken one after another, so an allele of several is scored for the first only, and
    memory holds one VCF's missing alleles of one chromosome. The model loads only if something is missing.
    """
    from aisci.scorecache import ScoreCache, score_chunk
    from aisci.splice.runner import SpliceRunner
    from aisci.vcfcheck import check_vcf

    cache, counts, t0 = ScoreCache(cache_root), FillCounts(), time.perf_counter()
    # how many alleles the cache lacks is known one chromosome at a time: lines by time
    progress = Progress(f"{model.model_id} cache fill", None, "alleles")
    for vcf in vcfs:
        scan = check_vcf(vcf, require_sorted=True)
        counts.vcfs += 1
        counts.records += scan.records

        def read(vcf: str = vcf, contigs: Sequence[str] = scan.contigs) -> Iterator[Any]:
            for t in allele_tables(vcf, regions, contigs):
                counts.alleles += t.num_rows
                yield t

        for missing in cache.missing(model, read()):
            chrom = missing.column("chrom")[0].as_py()
            for lo in range(0, missing.num_rows, PART_VARIANTS):
                scored = score_chunk(model, chrom, missing.slice(lo, PART_VARIANTS), cache_root, SpliceRunner)
                counts.scored += scored
                progress.update(scored)
    progress.finish()
    counts.seconds = round(time.perf_counter() - t0, 3)
    log.info("%s: %d VCFs, %d alleles, %d not in the cache before, scored in %.1f s", model.model_id, counts.vcfs,
             counts.alleles, counts.scored, counts.seconds)
    return counts


def write_summary(path: str | Path, model: Any, counts: FillCounts) -> None:
    """The JSON record of one `fill`: the model and its counts."""
    from aisci.fileio import write_json

    write_json(path, {"model": model.name, "version": model.version, **asdict(counts)})


class CachedScores:
    """A record's SpliceAI entries from the cache, one chromosome's cached rows in memory at a time.

    Args:
        model: the cache's model (`aisci.splice.runner.splice_model`).
        cache_root: the cache.
        skip_mismatch: a REF that disagrees with the reference is skipped (else an InputError, as `Scorer`).
        source: the VCF's name, for messages.
    """

    def __init__(self, model: Any, cache_root: str | Path, skip_mismatch: bool, source: str) -> None:
        self.model, self.cache_root, self.skip_mismatch, self.source = model, Path(cache_root), skip_mismatch, source
        self.counts: Counter[str] = Counter()
        self._chrom: str | None = None
        self._rows: dict[str, list[tuple[Any, ...]]] = {}

    def entries(self, record: Any) -> list[tuple[str, str, str, str, tuple[Any, ...]]]:
        """The record's entries (ALT, gene, strand, INFO text, the eight values) in INFO order: ALT outer, gene inner."""
        self.counts["records"] += 1
        if record.alts is None or record.ref is None:
            self.counts["bad input"] += 1
            return []
        if record.chrom != self._chrom:
            self._load(record.chrom)
        out: list[tuple[str, str, str, str, tuple[Any, ...]]] = []
        reasons = set()
        for alt in record.alts:
            rows = self._rows.get(_key(record.chrom, record.pos, record.ref, alt))
            if rows is None:
                raise InputError(f"{self.source}: {record.chrom}:{record.pos} {record.ref}>{alt}: not in the score "
                                 f"cache {self.cache_root} (was it removed while this job ran?); run again")
            for status, gene, strand, *values in rows:
                if status != "scored":
                    reasons.add(status)
                    continue
                if values[0] is None:  # REF and ALT both longer than one base: the official prints dots
                    out.append((alt, gene, strand, f"{alt}|{gene}|.|.|.|.|.|.|.|.", (None,) * 8))
                else:
                    self.counts["scored"] += 1
                    out.append((alt, gene, strand, info_text(alt, gene, values[:4], values[4:]), tuple(values)))
        self._check(record, reasons)
        return out

    def _check(self, record: Any, reasons: set[str]) -> None:
        for reason in sorted(reasons):
            if reason == "ref mismatch" and not self.skip_mismatch:
                raise InputError(
                    f"{self.source}: {record.chrom}:{record.pos} {record.ref}>{','.join(record.alts)}: REF disagrees "
                    "with the reference; fix the VCF or the --ref, or pass --skip-mismatch")
            if reason == "contig not in reference":
                raise InputError(f"{self.source}: {record.chrom}:{record.pos}: contig {record.chrom!r} is not in the "
                                 "reference")
            self.counts[reason] += 1

    def _load(self, chrom: str) -> None:
        from aisci.scorecache import ScoreCache

        table = ScoreCache(self.cache_root).read(self.model, chrom)
        names = ["variant_id", "status", "gene", "strand", "ds_ag", "ds_al", "ds_dg", "ds_dl",
                 "dp_ag", "dp_al", "dp_dg", "dp_dl"]
        self._chrom, self._rows = chrom, {}
        for vid, *row in zip(*(table.column(c).to_pylist() for c in names)):
            self._rows.setdefault(vid, []).append(tuple(row))


def _key(chrom: str, pos: int, ref: str, alt: str) -> str:
    from aisci.scorecache import variant_id

    return variant_id(chrom, pos, ref, alt)
