"""Protein language model scores of annotated variants, joined into the VCF (INFO/AISCI_CSQ) and a Parquet table."""

from __future__ import annotations

import logging
import os
import time
from collections import Counter, defaultdict
from pathlib import Path
from typing import Any

from aisci.errors import InputError
from aisci.fileio import atomic_output
from aisci.gather import Regions
from aisci.protein.consequence import read_consequences, scorable

log = logging.getLogger(__name__)

# One row per VCF record x ALT allele x overlapping transcript, as in results/protein/{callset}.parquet.
COLUMNS = ("chrom", "pos", "ref", "alt", "variant", "gene", "gene_id", "transcript", "consequence", "impact",
           "hgvs_c", "hgvs_p", "protein_pos", "model", "strategy", "score")

# VEP-style pipe-separated INFO field (bcftools +split-vep -a AISCI_CSQ reads it).
CSQ_FIELDS = ("Allele", "Consequence", "IMPACT", "SYMBOL", "Gene", "Feature", "HGVSc", "HGVSp",
              "Protein_position", "Amino_acids", "PLM_score", "PLM_strategy")
CSQ_HEADER = ('##INFO=<ID=AISCI_CSQ,Number=.,Type=String,Description="Coding consequences and protein language '
              'model scores from aisci. Format: ' + "|".join(CSQ_FIELDS) + '">')
SCORE_HEADER = ('##INFO=<ID=PLM_SCORE,Number=A,Type=Float,Description="Lowest protein language model score '
                '(log p(mut) - log p(wt), natural log; lower = more damaging) over the transcripts of each ALT">')
_ESCAPE = str.maketrans({"|": "&", ",": "&", ";": "%3B", "=": "%3D", " ": "_"})


def score_rows(rows: list[dict[str, Any]], bundle: Any, strategy: str, batch_size: int,
               cache: Any = None) -> list[dict[str, Any]]:
    """Add ``model``, ``strategy`` and ``score`` to consequence rows; unscored rows get nulls.

    Args:
        rows: consequence rows (dicts with the columns of `aisci annotate`).
        bundle: the loaded ESM model (`aisci.protein.esm.EsmBundle`); with ``cache``, a function that
            loads it, called only when a protein change is not in the cache.
        strategy: substitution strategy (indels always use pseudo-ppl).
        batch_size: sequences per forward pass.
        cache: a `aisci.protein.cached.PairCache`: scores come from it, the missing ones are scored and added.

    Returns:
        The same rows, each with the three new keys.
    """
    from aisci.protein.plm import score_variants

    todo = [r for r in rows if scorable(r)]
    pairs = [(r["wt_protein"], r["mut_protein"]) for r in todo]
    t0 = time.perf_counter()
    if cache is None:
        name, new = bundle.name, len(todo)
        scores = [(s.strategy, float(s.score))
                  for s in (score_variants(bundle, pairs, strategy, batch_size=batch_size) if pairs else [])]
    else:
        from aisci.protein.cached import cached_scores

        name = cache.model
        scores, new = cached_scores(pairs, cache, bundle, strategy, batch_size)
    for row in rows:
        row.update(model=None, strategy=None, score=None)
    for row, (used, score) in zip(todo, scores):
        row.update(model=name, strategy=used, score=score)
    seconds = time.perf_counter() - t0
    log.info("scored %d protein changes on %d distinct proteins with %s (%s) in %.1f s; %d not in the cache before",
             len(todo), len({r["wt_protein"] for r in todo}), name, strategy, seconds, new)
    return rows


def csq_entry(row: dict[str, Any]) -> str:
    """One AISCI_CSQ entry (the fields of CSQ_FIELDS, '|'-separated, VCF-escaped)."""
    amino = f"{row['ref_aa']}/{row['alt_aa']}" if row["ref_aa"] is not None and row["alt_aa"] is not None \
        and row["ref_aa"] != row["alt_aa"] else (row["ref_aa"] or "")
    score = "" if row["score"] is None else f"{row['score']:.4f}"
    values = (row["alt"], row["consequence"], row["impact"], row["gene"], row["gene_id"], row["transcript"],
              row["hgvs_c"], row["hgvs_p"], row["protein_pos"], amino, score, row["strategy"])
    return "|".join("" if v is None else str(v).translate(_ESCAPE) for v in values)


def write_vcf(vcf_in: str, rows: list[dict[str, Any]], out: str, regions: Regions | None = None,
              contigs: tuple[str, ...] | None = None) -> Counter:
    """Copy ``vcf_in`` (its records of ``regions``; ``contigs`` in the order of its records) to bgzipped, indexed
    ``out`` with INFO/AISCI_CSQ and INFO/PLM_SCORE from ``rows``.

    Raises:
        InputError: when a row names a record that is not in the VCF (the table belongs to another VCF),
            or a record cannot be read.
    """
    import pysam

    from aisci.vcfcheck import iter_records, open_vcf

    if not str(out).endswith(".vcf.gz"):
        raise InputError(f"--out {out}: must end in .vcf.gz (the output is bgzipped and indexed)")
    by_key: dict[tuple[str, int, str, str], list[dict[str, Any]]] = defaultdict(list)
    for row in rows:
        by_key[(row["chrom"], row["pos"], row["ref"], row["alt"])].append(row)
    vcf = open_vcf(vcf_in)
    header = vcf.header
    for tag, line in (("AISCI_CSQ", CSQ_HEADER), ("PLM_SCORE", SCORE_HEADER)):
        if tag not in header.info:
            header.add_line(line)
    counts: Counter = Counter()
    seen: set[tuple[str, int, str, str]] = set()
    with atomic_output(out) as tmp:
        with pysam.VariantFile(str(tmp), "wz", header=header) as dst:
            for rec in regions.records(vcf, vcf_in, contigs) if regions else iter_records(vcf, vcf_in):
                for tag in ("AISCI_CSQ", "PLM_SCORE"):
                    if tag in rec.info:
                        del rec.info[tag]
                # `aisci annotate` writes alleles upper-cased (VCF bases are case-insensitive)
                keys = [(rec.chrom, rec.pos, rec.ref.upper(), alt.upper()) for alt in rec.alts or ()]
                seen.update(keys)
                entries = [row for key in keys for row in by_key.get(key, ())]
                if entries:
                    rec.info["AISCI_CSQ"] = [csq_entry(r) for r in entries]
                    best = [min((r["score"] for r in entries if r["alt"] == alt.upper() and r["score"] is not None),
                                default=None) for alt in rec.alts or ()]
                    if any(b is not None for b in best):
                        rec.info["PLM_SCORE"] = best
                        counts["scored records"] += 1
                    counts["annotated records"] += 1
                counts["records"] += 1
                dst.write(rec)
        vcf.close()
        stray = sorted(set(by_key) - seen)
        if stray:  # raised inside atomic_output: nothing is left at `out`
            chrom, pos, ref, alt = stray[0]
            raise InputError(f"{vcf_in}: has no record {chrom}:{pos} {ref}>{alt} that the consequence table "
                             f"names ({len(stray)} such alleles): the table was made from another VCF")
        pysam.tabix_index(str(tmp), preset="vcf", force=True)
        os.replace(f"{tmp}.tbi", f"{out}.tbi")
    return counts


def write_parquet(rows: list[dict[str, Any]], path: str) -> None:
    """The per-callset table: one row per record x ALT x transcript (schema: COLUMNS)."""
    import pyarrow as pa

    from aisci.gather import write_parquet as write_tables

    types = {"pos": pa.int64(), "protein_pos": pa.int32(), "score": pa.float64()}
    schema = pa.schema([pa.field(c, types.get(c, pa.string())) for c in COLUMNS])
    for row in rows:
        row["variant"] = f"{row['chrom']}:{row['pos']}:{row['ref']}:{row['alt']}"
    table = pa.Table.from_pylist([{c: r[c] for c in COLUMNS} for r in rows], schema=schema)
    write_tables(path, schema, [table])


def score_vcf(vcf: str, consequences: str, bundle: Any, strategy: str, out_vcf: str, out_parquet: str | None,
              *, batch_size: int = 16, regions: Regions | None = None, cache: Any = None) -> Counter:
    """Score every in-frame protein change of ``consequences`` and write the VCF (and Parquet) results.

    With ``regions`` (one group of a scatter, `aisci.gather`) only the VCF records and table rows whose POS
    lies in its intervals are read, scored and written: the table may be the whole callset's or the group's.
    A protein change scores the same in any group (`aisci.protein.plm`), so the groups' outputs gathered in
    order are the unscattered outputs.

    Args:
        vcf: the VCF `aisci annotate` read (or the same calls with more INFO, e.g. SpliceAI).
        consequences: its Parquet table of consequences.
        bundle: the loaded ESM model.
        strategy: masked-marginals, wt-marginals or pseudo-ppl.
        out_vcf: bgzipped, indexed output VCF.
        out_parquet: the per-callset table (optional).
        batch_size: sequences per forward pass.
        regions: only the records of these intervals.
        cache: a `aisci.protein.cached.PairCache` (``bundle`` then loads the model when a change is missing).

    Returns:
        Counts of records, annotated records and scored records.

    Raises:
        InputError: a VCF that `aisci.vcfcheck.check_vcf` refuses, unsorted included (the
            output is tabix-indexed), checked before any protein is scored; a table of another VCF.
    """
    from aisci.vcfcheck import check_vcf

    scan = check_vcf(vcf, require_sorted=True)
    table = read_consequences(consequences)
    if regions:
        import pyarrow as pa

        table = table.filter(pa.array(regions.mask(table["chrom"].to_pylist(), table["pos"].to_numpy())))
    rows = table.to_pylist()
    score_rows(rows, bundle, strategy, batch_size, cache)
    counts = write_vcf(vcf, rows, out_vcf, regions, scan.contigs)
    if out_parquet:
        write_parquet(rows, out_parquet)
    counts["scored rows"] = sum(r["score"] is not None for r in rows)
    counts["rows"] = len(rows)
    return counts


def summary(paths: list[str], top: int) -> None:
    """Print, per table of `aisci plm score`, the consequence counts and the ``top`` lowest scores."""
    import pyarrow.parquet as pq

    for path in paths:
        try:
            rows = pq.read_table(path).to_pylist()
        except (OSError, ValueError) as exc:
            raise InputError(f"{path}: cannot read as Parquet ({exc})") from None
        if rows and not {"score", "variant", "strategy"} <= set(rows[0]):
            raise InputError(f"{path}: not a table of `aisci plm score` (no score column)")
        counts = Counter(r["consequence"].split("&")[0] for r in rows)
        scored = sorted((r for r in rows if r["score"] is not None), key=lambda r: r["score"])
        print(f"{Path(path).name}: {len(rows)} allele x transcript rows, {len(scored)} scored; "
              + ", ".join(f"{k} {v}" for k, v in counts.most_common()))
        for r in scored[:top]:
            print(f"  {r['variant']:<24} {r['gene']:<10} {r['hgvs_p'] or '':<22} {r['consequence']:<28} "
                  f"{r['score']:8.3f} ({r['strategy']})")
