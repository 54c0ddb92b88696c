"""The cohort store's schemas (and the score caches' they share): the joined view carries every column the issue names; keys round-trip."""

from __future__ import annotations

import pyarrow as pa
import pytest

from aisci import scorecache
from aisci.cohort import schema


def test_scored_calls_has_the_genotype_and_score_columns():
    names = set(schema.SCORED_CALLS.names)
    assert {"sample", "chrom", "pos", "ref", "alt", "qual", "filter", "genotype", "depth", "gq",
            "allele_depths"} <= names
    assert {"ds_ag", "ds_al", "ds_dg", "ds_dl", "protein_score", "splice_model", "splice_model_version",
            "protein_model", "protein_model_version", "ac", "an", "af", "carriers"} <= names
    assert schema.SCORED_CALLS.field("allele_depths").type == pa.list_(pa.int32())
    # every calls column is in the view, in order, with the variant key the calls files do not store
    assert [n for n in schema.SCORED_CALLS.names[:len(schema.CALLS) + 1] if n != "variant_id"] == schema.CALLS.names
    assert "variant_id" not in schema.CALLS.names and schema.CALLS.names[0] == "chrom"


def test_score_caches_share_the_variant_key_columns():
    for stage, s in scorecache.SCORE_SCHEMAS.items():
        assert s.names[:5] == ["variant_id", "pos", "ref", "alt", "status"], stage
    assert scorecache.STAGES == ("splice", "protein")
    assert set(schema.SUMMARY_COUNTS) <= set(schema.VARIANTS.names)


@pytest.mark.parametrize("chrom", ["chr1", "HLA-A*01:01:01:01", "chrUn_gl000220"])
def test_variant_id_round_trips(chrom):
    key = scorecache.variant_id(chrom, 12345, "AC", "A")
    assert scorecache.parse_variant_id(key) == (chrom, 12345, "AC", "A")
    assert scorecache.model_id("spliceai-1.3.1", "0123456789ab") == "spliceai-1.3.1@0123456789ab"


def test_check_schema_names_the_column():
    good = schema.empty(schema.VARIANTS).schema
    scorecache.check_schema(good, schema.VARIANTS, "x.parquet")
    with pytest.raises(ValueError, match="x.parquet: missing column 'hom_alt'"):
        scorecache.check_schema(pa.schema([f for f in good if f.name != "hom_alt"]), schema.VARIANTS, "x.parquet")
    bad = pa.schema([pa.field("ac", pa.int32()) if f.name == "ac" else f for f in good])
    with pytest.raises(ValueError, match="x.parquet: column 'ac' is int32, expected int64"):
        scorecache.check_schema(bad, schema.VARIANTS, "x.parquet")
