"""The cohort store's tables, in one place: calls (per sample), variant summaries, scored calls (score caches: `aisci.scorecache`).

Every Parquet file the store writes has exactly one of these schemas; readers check them with
`aisci.scorecache.check_schema`. A variant is identified by its content, ``variant_id =
"chrom:pos:ref:alt"`` (one ALT allele per row: multi-allelic records are split, each row keeping the
record's genotype and allele depths plus its ``alt_index``), so the same variant in two samples or
two stores has the same key, and a score cached for (variant_id, model_id) is valid wherever that
pair recurs. The per-sample calls files do not store it (it is their chrom, pos, ref and alt: a
third of the cost of writing them); the summaries, the score caches and `SCORED_CALLS` carry it.

AI scores are properties of a variant, not of a sample: they live once per variant in the score
caches, never copied into the per-sample calls files, so re-scoring with a new model rewrites no
sample's file. `SCORED_CALLS` is the joined view (calls + cohort summaries + best scores) that
`aisci cohort query` returns and that the DuckDB queries of docs/reanalysis.md build.
"""

from __future__ import annotations

from typing import Any

import pyarrow as pa

# Version of the on-disk layout (store.json "format_version"); bump when a schema below changes.
FORMAT_VERSION = 3  # 2: one calls file per sample, chrom inside it, no variant_id in it; 3: int32 allele counts
# Versions this code reads: a version-2 calls file's int8 counts are widened as they are read (every reader
# casts to CALLS), and the next commit marks the store version 3.
READABLE_VERSIONS = (2, 3)

# --- calls: one file per sample, calls/<sample>.<tag>.parquet ----------------------------------------------
# Chromosomes in the VCF's order, each sorted by pos; each row group holds one chromosome, so the row groups'
# chrom/pos statistics prune a region read (and a 25-chromosome genome is one file, not 25 small ones).
CALLS = pa.schema([
    pa.field("chrom", pa.string(), nullable=False),
    pa.field("sample", pa.string(), nullable=False),
    pa.field("pos", pa.int64(), nullable=False),          # 1-based, as in the VCF
    pa.field("ref", pa.string(), nullable=False),
    pa.field("alt", pa.string(), nullable=False),          # one ALT allele per row
    pa.field("alt_index", pa.int8(), nullable=False),      # 1-based index of `alt` in the record's ALT list
    pa.field("qual", pa.float32()),                        # null for '.'
    pa.field("filter", pa.string()),                       # "PASS", "LowQual;LowDepth", null for '.'
    pa.field("genotype", pa.string()),                     # GT as written ("0/1", "1|2", "./."); null without GT
    # int32, not int8: ploidy is unbounded in the VCF spec (pooled samples), and a GT of 128 alleles wrapped
    # int8 (a string array's 2 GiB limit keeps any GT far below 2**31 alleles)
    pa.field("alt_copies", pa.int32()),                    # copies of this ALT in GT; null when GT is missing
    pa.field("called_alleles", pa.int32()),                # non-missing alleles in GT (2 for "0/1", 0 for "./.")
    pa.field("phased", pa.bool_()),
    pa.field("depth", pa.int32()),                         # FORMAT/DP
    pa.field("gq", pa.int32()),                            # FORMAT/GQ
    pa.field("allele_depths", pa.list_(pa.int32())),       # FORMAT/AD of the record (REF first), nulls for '.'
])

# --- per-variant cohort summaries: variants/v<generation>/chrom=<chrom>/part.parquet -------------------
# Additive counts over the committed samples, so adding or replacing a sample is a delta.
# AN and AF depend on the number of samples N in the store (store.json) and are derived at read time:
# a sample without a record at a site is taken as homozygous reference (per-sample VCFs are not gVCFs):
#     AN = 2 * (N - n_records) + called_alleles,   AF = AC / AN.
VARIANTS = pa.schema([
    pa.field("variant_id", pa.string(), nullable=False),
    pa.field("pos", pa.int64(), nullable=False),
    pa.field("ref", pa.string(), nullable=False),
    pa.field("alt", pa.string(), nullable=False),
    pa.field("ac", pa.int64(), nullable=False),              # ALT allele count
    pa.field("called_alleles", pa.int64(), nullable=False),  # called alleles in the samples with a record
    pa.field("n_records", pa.int64(), nullable=False),       # samples with a record at this variant
    pa.field("carriers", pa.int64(), nullable=False),        # samples with >= 1 copy
    pa.field("hom_alt", pa.int64(), nullable=False),         # samples with every called allele = this ALT (>= 2)
])
SUMMARY_COUNTS = ("ac", "called_alleles", "n_records", "carriers", "hom_alt")

# --- the joined view: what `aisci cohort query` returns, one row per sample x variant -----------------
VARIANT_ID = pa.field("variant_id", pa.string(), nullable=False)  # "chrom:pos:ref:alt"
SCORED_CALLS = pa.schema(
    list(CALLS)[:6] + [VARIANT_ID] + list(CALLS)[6:]
    + [
        pa.field("ac", pa.int64()), pa.field("an", pa.int64()), pa.field("af", pa.float64()),
        pa.field("carriers", pa.int64()),
        # splice: the gene entry with the largest delta score
        pa.field("splice_gene", pa.string()),
        pa.field("ds_ag", pa.float32()), pa.field("ds_al", pa.float32()),
        pa.field("ds_dg", pa.float32()), pa.field("ds_dl", pa.float32()),
        pa.field("ds_max", pa.float32()),
        pa.field("splice_model", pa.string()), pa.field("splice_model_version", pa.string()),
        # protein: the transcript with the lowest (most damaging) score
        pa.field("protein_gene", pa.string()), pa.field("protein_transcript", pa.string()),
        pa.field("hgvs_p", pa.string()), pa.field("protein_score", pa.float32()),
        pa.field("protein_model", pa.string()), pa.field("protein_model_version", pa.string()),
    ]
)


def empty(schema: pa.Schema) -> Any:
    """A zero-row table of ``schema``."""
    return schema.empty_table()
