"""The cohort store's tables, in one place: calls (per sample), variant summaries, score caches, scored calls.

Every Parquet file the store writes has exactly one of these schemas; readers check them with
`check_schema`. A variant is identified by its content, ``variant_id = "chrom:pos:ref:alt"`` (one
ALT allele per row: multi-allelic records are split, each row keeping the record's genotype and
allele depths plus its ``alt_index``), so the same variant in two samples or two stores has the
same key, and a score cached for (variant_id, model_id) is valid wherever that pair recurs. The
per-sample calls files do not store it (it is their chrom, pos, ref and alt: a third of the cost of
writing them); the summaries, the score caches and `SCORED_CALLS` carry it.

AI scores are properties of a variant, not of a sample: they live once per variant in the score
caches, never copied into the per-sample calls files, so re-scoring with a new model rewrites no
sample's file. `SCORED_CALLS` is the joined view (calls + cohort summaries + best scores) that
`aisci cohort query` returns and that the README's DuckDB queries build.
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

# --- score caches: scores/<stage>/<model_id>/chrom=<chrom>/part-<uuid>.parquet -----------------------
# Append-only and content-addressed by (variant_id, model_id). A variant scored with nothing to
# report (outside every gene, not a protein change, skipped) still gets one row with a `status`,
# so it is never scored again.  Several rows per variant: one per gene (splice) or transcript (protein).
SPLICE_SCORES = pa.schema([
    pa.field("variant_id", pa.string(), nullable=False),
    pa.field("pos", pa.int64(), nullable=False),
    pa.field("ref", pa.string(), nullable=False),
    pa.field("alt", pa.string(), nullable=False),
    pa.field("status", pa.string(), nullable=False),  # "scored" or the official tool's skip reason
    pa.field("gene", pa.string()),
    pa.field("strand", pa.string()),
    pa.field("ds_ag", pa.float32()), pa.field("ds_al", pa.float32()),
    pa.field("ds_dg", pa.float32()), pa.field("ds_dl", pa.float32()),
    pa.field("dp_ag", pa.int32()), pa.field("dp_al", pa.int32()),
    pa.field("dp_dg", pa.int32()), pa.field("dp_dl", pa.int32()),
])
PROTEIN_SCORES = pa.schema([
    pa.field("variant_id", pa.string(), nullable=False),
    pa.field("pos", pa.int64(), nullable=False),
    pa.field("ref", pa.string(), nullable=False),
    pa.field("alt", pa.string(), nullable=False),
    pa.field("status", pa.string(), nullable=False),  # "scored", "not scored" (no in-frame protein change), "intergenic"
    pa.field("gene", pa.string()),
    pa.field("transcript", pa.string()),
    pa.field("consequence", pa.string()),
    pa.field("hgvs_p", pa.string()),
    pa.field("strategy", pa.string()),
    pa.field("score", pa.float32()),                  # log p(mut) - log p(wt); lower = more damaging
])
SCORE_SCHEMAS = {"splice": SPLICE_SCORES, "protein": PROTEIN_SCORES}
STAGES = tuple(SCORE_SCHEMAS)

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


def variant_id(chrom: str, pos: int, ref: str, alt: str) -> str:
    """The content key of one ALT allele: ``chrom:pos:ref:alt``."""
    return f"{chrom}:{pos}:{ref}:{alt}"


def parse_variant_id(key: str) -> tuple[str, int, str, str]:
    """Inverse of `variant_id` (chromosome names may themselves hold ':' only before the last three fields)."""
    chrom, pos, ref, alt = key.rsplit(":", 3)
    return chrom, int(pos), ref, alt


def model_id(name: str, version: str) -> str:
    """The directory name of one model's score cache: ``name@version`` (version: a content hash)."""
    return f"{name}@{version}"


def check_schema(actual: pa.Schema, expected: pa.Schema, where: str) -> None:
    """Raise ValueError naming ``where`` and the first difference when ``actual`` lacks or mistypes a field."""
    for field in expected:
        idx = actual.get_field_index(field.name)
        if idx < 0:
            raise ValueError(f"{where}: missing column {field.name!r}")
        if not actual.field(idx).type.equals(field.type):
            raise ValueError(f"{where}: column {field.name!r} is {actual.field(idx).type}, expected {field.type}")


def empty(schema: pa.Schema) -> Any:
    """A zero-row table of ``schema``."""
    return schema.empty_table()
