"""The cohort store's pure parts: regions, chromosome order, call sorting, summary arithmetic, the scored-calls join.

Summary counts are additive (`aisci.cohort.schema.VARIANTS`), so a commit folds the previous summaries,
the new samples' counts and the replaced samples' negated counts with one group-by per chromosome.
"""

from __future__ import annotations

import re
import sys
from collections.abc import Iterable
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from aisci.cohort.schema import CALLS, SCORED_CALLS, SUMMARY_COUNTS, VARIANTS
from aisci.errors import InputError

CHROM = pa.field("chrom", pa.string(), nullable=False)
# what `CohortStore.summaries` returns: the summaries with their chromosome and the derived AN and AF
SUMMARIES = pa.schema([CHROM] + list(VARIANTS) + [pa.field("an", pa.int64()), pa.field("af", pa.float64())])
KEYS = ["pos", "ref", "alt"]  # a variant within a chromosome
CALL_COLUMNS = KEYS + ["alt_copies", "called_alleles"]  # what the counts of calls need
# per-variant counts before the fold: VARIANTS without variant_id (the fold adds it to its far fewer rows)
COUNT_SCHEMA = pa.schema([f for f in VARIANTS if f.name != "variant_id"])
# the score columns of SCORED_CALLS per stage, as `aisci.cohort.scores.ScoreCache.best` returns them
SCORE_COLUMNS = {"splice": [f.name for f in SCORED_CALLS if f.name.startswith(("splice_", "ds_"))],
                 "protein": [f.name for f in SCORED_CALLS if f.name.startswith("protein_") or f.name == "hgvs_p"]}
FOLD_ROWS = 1 << 21  # pending count rows folded by a group-by whenever there are more than this


def parse_region(text: str) -> tuple[str, int, int]:
    """Parse a samtools-style region: ``chr1``, ``chr1:1,000-2,000``, ``chr1:1000`` (to the end), ``{a:b}:1-9``.

    Args:
        text: the region; commas in numbers are ignored, positions are 1-based and inclusive.

    Returns:
        (chrom, start, end); a whole chromosome is (chrom, 1, sys.maxsize).

    Raises:
        InputError: empty text, a bad number, start < 1 or end < start.
    """
    text = text.strip()
    m = re.fullmatch(r"\{(.+)\}(?::(.*))?", text) or re.fullmatch(r"(.+?)(?::([0-9,]+(?:-[0-9,]*)?))?", text)
    if not text or m is None:
        raise InputError(f"region {text!r}: expected chrom, chrom:start-end or chrom:start")
    chrom, span = m.group(1), m.group(2)
    if span is None and ":" in chrom and not text.startswith("{"):
        raise InputError(f"region {text!r}: positions must be whole numbers (write {{name}} for a chromosome "
                         "whose name holds ':')")
    start, end = 1, sys.maxsize
    if span:
        lo, _, hi = span.replace(",", "").partition("-")
        if not lo.isdigit() or (hi and not hi.isdigit()):
            raise InputError(f"region {text!r}: positions must be whole numbers")
        start, end = int(lo), int(hi) if hi else sys.maxsize
        if start < 1 or end < start:
            raise InputError(f"region {text!r}: needs 1 <= start <= end")
    return chrom, start, end


def chrom_key(chrom: str) -> list[Any]:
    """Natural sort key of a chromosome name (chr2 before chr10)."""
    return [int(t) if t.isdigit() else t for t in re.split(r"(\d+)", chrom)]


def string_buffers(values: pa.Array) -> tuple[np.ndarray, np.ndarray]:
    """(offsets from 0, bytes) of a string array, no copy: value i is ``bytes[offsets[i]:offsets[i + 1]]``."""
    _, offsets, data = values.buffers()
    offsets = np.frombuffer(offsets, np.int32, len(values) + 1, values.offset * 4)
    data = np.frombuffer(data, np.uint8) if data is not None else np.zeros(0, np.uint8)
    return offsets - offsets[0], data[offsets[0]:offsets[-1]]


def variant_ids(calls: Any) -> pa.Array | pa.ChunkedArray:
    """The `aisci.cohort.schema.variant_id` of each row of a table with chrom, pos, ref and alt."""
    return pc.binary_join_element_wise(calls["chrom"], pc.cast(calls["pos"], pa.string()), calls["ref"],
                                       calls["alt"], ":")


def by_position(table: pa.Table, *more: str) -> pa.Table:
    """Sort by pos, ref, alt (then ``more``): a total order of one chromosome's variants."""
    return table.sort_by([(c, "ascending") for c in ("pos", "ref", "alt", *more)])


def sort_calls(tables: list[pa.Table], where: str) -> pa.Table:
    """One sample's calls of one chromosome (schema CALLS) in one table sorted by pos.

    The sort is stable (rows at one position, such as the ALTs of a multi-allelic record, keep their
    order) and skipped when the positions are already in order, as they are in a sorted VCF.

    Raises:
        InputError: naming ``where``, when a variant appears in two records.
    """
    table = pa.concat_tables(tables)
    if table.num_rows < 2:
        return table
    pos = table["pos"].to_numpy()
    step = np.diff(pos)
    if (step < 0).any():  # unsorted, or a chromosome that came back after another one
        order = np.argsort(pos, kind="stable")
        table, pos = table.take(pa.array(order)), pos[order]
        step = np.diff(pos)
    # a repeated variant shares its position: look for it only among the rows whose position repeats
    tie = step == 0
    if tie.any():
        in_run = np.zeros(len(pos), dtype=bool)
        in_run[:-1] |= tie
        in_run[1:] |= tie
        ids = variant_ids(table.select(["chrom", *KEYS]).take(pa.array(np.flatnonzero(in_run))))
        if pc.count_distinct(ids).as_py() < len(ids):
            counts = pc.value_counts(ids)
            repeated = counts.field("values")[pc.index(pc.greater(counts.field("counts"), 1), True).as_py()]
            raise InputError(f"{where}: variant {repeated} appears in more than one record")
    return table


def call_counts(calls: pa.Table, sign: int = 1) -> pa.Table:
    """Per-call summary counts (schema `COUNT_SCHEMA`) of a table with `CALL_COLUMNS`; sign -1 negates them.

    A call adds its ALT copies to ac, its non-missing alleles to called_alleles, 1 to n_records, 1 to
    carriers with at least one copy, 1 to hom_alt when every called allele (>= 2) is this ALT.
    """
    copies = pc.fill_null(calls["alt_copies"], 0).cast(pa.int64())
    called = pc.fill_null(calls["called_alleles"], 0).cast(pa.int64())
    hom = pc.and_(pc.greater_equal(called, 2), pc.equal(copies, called))
    counts = [copies, called, pa.repeat(pa.scalar(1, pa.int64()), calls.num_rows),
              pc.greater(copies, 0).cast(pa.int64()), hom.cast(pa.int64())]
    if sign < 0:
        counts = [pc.negate(c) for c in counts]
    return pa.Table.from_arrays([calls[k] for k in KEYS] + counts, schema=COUNT_SCHEMA)


def _sum(tables: list[pa.Table]) -> pa.Table:
    # one thread: a commit runs next to ingest workers, and the hash group-by is no faster with more on 1-2 cores
    grouped = pa.concat_tables(tables).group_by(KEYS, use_threads=False).aggregate(
        [(c, "sum") for c in SUMMARY_COUNTS])
    return pa.Table.from_arrays([grouped[f"{c}_sum" if c in SUMMARY_COUNTS else c] for c in COUNT_SCHEMA.names],
                                schema=COUNT_SCHEMA)


def fold(chrom: str, tables: Iterable[pa.Table], where: str) -> pa.Table:
    """Sum one chromosome's count tables per variant, in bounded memory; drop variants no sample has.

    Args:
        chrom: the chromosome (for the variant ids).
        tables: summaries (schema VARIANTS) and (possibly negated) `call_counts` (schema COUNT_SCHEMA), streamed.
        where: named in the error.

    Returns:
        The summed table (schema VARIANTS) sorted by position.

    Raises:
        RuntimeError: a negative count (a replaced sample's file no longer matches its counts).
    """
    pending: list[pa.Table] = []
    rows = 0
    for table in tables:
        pending.append(table.select(COUNT_SCHEMA.names) if "variant_id" in table.column_names else table)
        rows += table.num_rows
        if rows > FOLD_ROWS:
            pending = [_sum(pending)]
            rows = pending[0].num_rows
    if not pending:
        return VARIANTS.empty_table()
    table = _sum(pending)
    table = table.filter(pc.greater(table["n_records"], 0))
    if table.num_rows and min(pc.min(table[c]).as_py() for c in SUMMARY_COUNTS) < 0:
        raise RuntimeError(f"{where}: negative summary counts (a replaced sample's file changed)")
    table = by_position(table)
    ids = variant_ids({"chrom": pa.repeat(pa.scalar(chrom, pa.string()), table.num_rows), **{
        k: table[k] for k in KEYS}})
    return pa.Table.from_arrays([ids, *table.columns], schema=VARIANTS)


def with_an_af(chrom: str, variants: pa.Table, n_samples: int) -> pa.Table:
    """Add the chromosome and AN = 2 * (N - n_records) + called_alleles, AF = ac / AN (null where AN is 0).

    A sample without a record at a variant counts as homozygous reference and diploid.
    """
    an = pc.add(pc.multiply(pc.subtract(pa.scalar(n_samples, pa.int64()), variants["n_records"]), 2),
                variants["called_alleles"])
    af = pc.if_else(pc.greater(an, 0), pc.divide(variants["ac"].cast(pa.float64()), pc.max_element_wise(an, 1)),
                    pa.scalar(None, pa.float64()))
    chroms = pa.repeat(pa.scalar(chrom, pa.string()), variants.num_rows)
    return pa.Table.from_arrays([chroms, *variants.select(VARIANTS.names).columns, an, af], schema=SUMMARIES)


def check_scores(scores: dict[str, pa.Table]) -> None:
    """Raise ValueError for an unknown stage or a best-scores table that lacks one of its columns."""
    for stage, table in scores.items():
        if stage not in SCORE_COLUMNS:
            raise ValueError(f"unknown score stage {stage!r} (known: {', '.join(SCORE_COLUMNS)})")
        missing = [c for c in ["variant_id"] + SCORE_COLUMNS[stage] if c not in table.column_names]
        if missing:
            raise ValueError(f"{stage} scores: missing column {missing[0]!r}")


def scored_calls(calls: pa.Table, summaries: pa.Table, scores: dict[str, pa.Table]) -> pa.Table:
    """Join one chromosome's calls with their summaries and best scores (a lookup by variant_id, order kept).

    Args:
        calls: schema CALLS, one chromosome.
        summaries: `with_an_af` rows covering the calls' variants.
        scores: stage -> one row per variant_id (a repeated variant_id takes its first row); stages left out
            get null columns.

    Returns:
        A table of schema SCORED_CALLS, in the order of ``calls``.
    """
    ids = variant_ids(calls)
    cols = {f.name: calls[f.name] for f in CALLS}
    cols["variant_id"] = ids
    idx = pc.index_in(ids, value_set=summaries["variant_id"])
    cols.update((c, summaries[c].take(idx)) for c in ("ac", "an", "af", "carriers"))
    for stage, columns in SCORE_COLUMNS.items():
        table = scores.get(stage)
        idx = pc.index_in(ids, value_set=table["variant_id"]) if table is not None else None
        for c in columns:
            typ = SCORED_CALLS.field(c).type
            cols[c] = table[c].take(idx).cast(typ) if table is not None else pa.nulls(calls.num_rows, typ)
    return pa.Table.from_arrays([cols[f.name] for f in SCORED_CALLS], schema=SCORED_CALLS)
