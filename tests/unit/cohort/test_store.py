"""The cohort store: exact schemas, incremental summaries equal to a from-scratch build, replacement,
crash safety, AN/AF by hand, region queries with pushdown, concurrent commits, no temporary .parquet names."""

from __future__ import annotations

import json
import multiprocessing
import os
import random
import subprocess
import sys
from pathlib import Path

import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.dataset as ds
import pyarrow.parquet as pq
import pytest

from aisci.cohort import store as store_mod
from aisci.cohort.schema import CALLS, SCORED_CALLS, VARIANTS
from aisci.cohort.store import SUMMARIES, CohortStore, parse_region
from aisci.cohort.tables import sort_calls
from aisci.errors import InputError

HEADER = ("##fileformat=VCFv4.2\n##contig=<ID=chr1,length=1000000>\n##contig=<ID=chr2,length=1000000>\n"
          '##FORMAT=<ID=GT,Number=1,Type=String,Description="Genotype">\n'
          '##FORMAT=<ID=DP,Number=1,Type=Integer,Description="Depth">\n'
          '##FORMAT=<ID=AD,Number=R,Type=Integer,Description="Allele depths">\n'
          '##FORMAT=<ID=GQ,Number=1,Type=Integer,Description="Genotype quality">\n'
          "#CHROM\tPOS\tID\tREF\tALT\tQUAL\tFILTER\tINFO\tFORMAT\t{sample}\n")


def write_vcf(path: Path, sample: str, records: list[tuple]) -> Path:
    """records: (chrom, pos, ref, alts, gt) — written bcftools-call-like with GT:DP:AD:GQ."""
    lines = [HEADER.format(sample=sample)]
    for chrom, pos, ref, alts, gt in records:
        ad = ",".join(str(7 + i) for i in range(len(alts.split(",")) + 1))
        lines.append(f"{chrom}\t{pos}\t.\t{ref}\t{alts}\t50.5\tPASS\tDP=20\tGT:DP:AD:GQ\t{gt}:20:{ad}:45\n")
    path.write_text("".join(lines))
    return path


def expected_counts(samples: dict[str, list[tuple]]) -> dict[str, tuple[int, ...]]:
    """variant_id -> (ac, called_alleles, n_records, carriers, hom_alt), counted record by record."""
    counts: dict[str, list[int]] = {}
    for records in samples.values():
        for chrom, pos, ref, alts, gt in records:
            alleles = [int(a) for a in gt.replace("|", "/").split("/") if a != "."]
            for i, alt in enumerate(alts.split(","), 1):
                c = counts.setdefault(f"{chrom}:{pos}:{ref}:{alt}", [0, 0, 0, 0, 0])
                k = alleles.count(i)
                c[0] += k
                c[1] += len(alleles)
                c[2] += 1
                c[3] += k > 0
                c[4] += len(alleles) >= 2 and k == len(alleles)
    return {key: tuple(v) for key, v in counts.items()}


def store_counts(store: CohortStore) -> dict[str, tuple[int, ...]]:
    t = store.summaries()
    cols = [t[c].to_pylist() for c in ("variant_id", "ac", "called_alleles", "n_records", "carriers", "hom_alt")]
    return {row[0]: tuple(row[1:]) for row in zip(*cols, strict=True)}


def random_cohort(n: int, seed: int, sites: int = 120) -> dict[str, list[tuple]]:
    """n samples drawn from a shared pool of sites on two chromosomes, with multi-allelics and no-calls."""
    rng = random.Random(seed)
    pool = []
    for chrom in ("chr1", "chr2"):
        for pos in sorted(rng.sample(range(1, 5000), sites)):
            ref = rng.choice("ACGT")
            alts = [b for b in "ACGT" if b != ref]
            pool.append((chrom, pos, ref, ",".join(rng.sample(alts, rng.choice([1, 1, 1, 2])))))
    cohort = {}
    for i in range(n):
        records = []
        for chrom, pos, ref, alts in rng.sample(pool, sites // 2):
            n_alt = len(alts.split(","))
            gt = rng.choice(["0/1", "1/1", "0|1", "./.", "1"] + (["1/2", "2/2", "0/2"] if n_alt == 2 else []))
            records.append((chrom, pos, ref, alts, gt))
        records.sort(key=lambda r: (r[0], r[1]))
        # chr1 comes back after chr2 for a few records (allowed; the store sorts)
        tail = [r for r in records if r[0] == "chr1"][-3:]
        cohort[f"S{seed}_{i}"] = [r for r in records if r not in tail] + tail
    return cohort


def build(root: Path, vcf_dir: Path, cohort: dict[str, list[tuple]], batches: list[list[str]]) -> CohortStore:
    store = CohortStore(root, create=True)
    for names in batches:
        store.commit([store.stage_sample(n, write_vcf(vcf_dir / f"{n}.vcf", n, cohort[n])) for n in names])
    return store


def parquet_files(root: Path) -> list[Path]:
    return sorted(p for p in root.rglob("*.parquet") if ".staging" not in p.parts)


# ------------------------------------------------------------------------------------------- regions
def test_parse_region():
    assert parse_region("chr1:1,000-2,000") == ("chr1", 1000, 2000)
    assert parse_region("chr1")[:2] == ("chr1", 1) and parse_region("chr1")[2] > 10**15
    assert parse_region("chr1:500")[:2] == ("chr1", 500)
    assert parse_region("{HLA-A*01:01}:5-9") == ("HLA-A*01:01", 5, 9)
    assert parse_region("{HLA:x}")[:2] == ("HLA:x", 1)
    for bad in ("", "chr1:0-5", "chr1:9-5", "{x}:a-b", "chr1:abc", "chr1:5-x"):
        with pytest.raises(InputError, match="region"):
            parse_region(bad)


# ------------------------------------------------------------------------------------------- AN / AF
HAND = {
    "S1": [("chr1", 100, "A", "C", "0/1"), ("chr1", 200, "G", "T,GA", "1/2"), ("chr2", 50, "C", "G", "1/1")],
    "S2": [("chr1", 100, "A", "C", "1/1"), ("chr1", 200, "G", "T", "0/1"), ("chr1", 300, "T", "A", "./.")],
    "S3": [("chr1", 100, "A", "C", "./."), ("chr1", 200, "G", "GA", "0/1"), ("chr2", 50, "C", "G", "0/1")],
}


def test_an_af_by_hand_with_a_multiallelic_site_and_no_calls(tmp_path):
    store = build(tmp_path / "store", tmp_path, HAND, [["S1", "S2", "S3"]])
    t = store.summaries()
    assert t.schema.equals(SUMMARIES)
    rows = {r["variant_id"]: (r["ac"], r["called_alleles"], r["n_records"], r["carriers"], r["hom_alt"], r["an"],
                              r["af"]) for r in t.to_pylist()}
    # N = 3; AN = 2 * (N - n_records) + called_alleles
    assert rows == {
        "chr1:100:A:C": (3, 4, 3, 2, 1, 4, 0.75),    # 0/1 + 1/1 + ./. (called 0)
        "chr1:200:G:T": (2, 4, 2, 2, 0, 6, 2 / 6),   # S1 1/2 (T is allele 1), S2 0/1, S3 hom-ref
        "chr1:200:G:GA": (2, 4, 2, 2, 0, 6, 2 / 6),  # S1 1/2 (GA is allele 2), S3 0/1 (GA is allele 1 there)
        "chr1:300:T:A": (0, 0, 1, 0, 0, 4, 0.0),     # a no-call only
        "chr2:50:C:G": (3, 4, 2, 2, 1, 6, 0.5),
    }
    assert t["chrom"].to_pylist() == ["chr1"] * 4 + ["chr2"]
    assert store.chromosomes() == ["chr1", "chr2"] and store.n_samples() == 3
    assert store_counts(store) == expected_counts(HAND)


# ------------------------------------------------------------------------------------------- schemas
def test_every_written_file_has_the_exact_schema_sorted_and_in_row_groups(tmp_path):
    store = build(tmp_path / "store", tmp_path, HAND, [["S1", "S2"], ["S3"]])
    state = json.loads((store.root / "store.json").read_text())
    assert (state["format"], state["format_version"], state["generation"], state["variants"]) == (
        "aisci-cohort", 3, 2, "variants/v2")
    assert set(state["samples"]["S1"]) >= {"vcf", "fingerprint", "file", "chroms", "records", "rows", "ingested"}
    assert (state["samples"]["S1"]["records"], state["samples"]["S1"]["rows"]) == (3, 4)
    assert state["samples"]["S1"]["chroms"] == ["chr1", "chr2"]
    files = parquet_files(store.root)
    calls = [p for p in files if p.parts[-2] == "calls"]
    assert sorted(str(p.relative_to(store.root)) for p in calls) == sorted(
        e["file"] for e in state["samples"].values())
    assert {p.name.split(".")[0] for p in calls} == {"S1", "S2", "S3"}
    for p in calls:  # one file per sample; one chromosome per row group, sorted by pos
        assert pq.read_schema(p).equals(CALLS), p
        f = pq.ParquetFile(p)
        for i in range(f.metadata.num_row_groups):
            group = f.read_row_group(i)
            assert len(group["chrom"].unique()) == 1
            stats = f.metadata.row_group(i).column(0).statistics
            assert stats.min == stats.max == group["chrom"][0].as_py()
            assert group["pos"].to_pylist() == sorted(group["pos"].to_pylist())
    variants = [p for p in files if "variants" in p.parts]
    assert sorted(str(p.relative_to(store.root)) for p in variants) == [
        "variants/v2/chrom=chr1/part.parquet", "variants/v2/chrom=chr2/part.parquet"]
    for p in variants:
        assert pq.read_schema(p).equals(VARIANTS), p
    assert store.calls_dataset().to_table().num_rows == 4 + 3 + 3
    assert store.calls_dataset().to_table(filter=pc.field("chrom") == "chr2").num_rows == 2
    assert store.variants_dataset().to_table().num_rows == 5
    assert [(c, b.num_rows) for c, b in store.variant_batches()] == [("chr1", 4), ("chr2", 1)]
    assert [c for c, _ in store.variant_batches("chr2")] == ["chr2"]


def test_row_groups_and_no_temporary_name_ends_in_parquet(tmp_path, monkeypatch):
    written = []
    real = store_mod._output

    def spy(path):
        written.append(str(path))
        return real(path)

    monkeypatch.setattr(store_mod, "_output", spy)  # every Parquet file is written through it
    records = [("chr1", p, "A", "G", "0/1") for p in range(1, 40001)] + [("chr2", 5, "C", "T", "1/1")]
    store = build(tmp_path / "store", tmp_path, {"BIG": records}, [["BIG"]])
    assert any("calls" in w for w in written) and any("variants" in w for w in written)
    assert all(w.endswith(".part") for w in written if "counts.arrow" not in w)  # counts: a private folder
    path = store.root / store.samples()["BIG"]["file"]
    meta = pq.read_metadata(path)
    assert [meta.row_group(i).num_rows for i in range(meta.num_row_groups)] == [16384, 16384, 40000 - 2 * 16384, 1]
    pos = meta.row_group(1).column(CALLS.get_field_index("pos"))
    assert (pos.statistics.min, pos.statistics.max) == (16385, 32768)  # what region pushdown prunes on
    assert not [p for p in store.root.rglob("*") if p.is_file() and ".part" in p.name]
    assert not list((store.root / ".staging").iterdir())


# ------------------------------------------------------------------------------------------- incremental
def test_incremental_append_equals_a_from_scratch_build(tmp_path):
    cohort = random_cohort(6, seed=1)
    names = list(cohort)
    inc = build(tmp_path / "inc", tmp_path, cohort, [names[:2], names[2:3], names[3:]])
    full = build(tmp_path / "full", tmp_path, cohort, [names])
    assert inc.summaries().equals(full.summaries())
    assert store_counts(full) == expected_counts(cohort)
    assert len(expected_counts(cohort)) > 100 and max(v[2] for v in expected_counts(cohort).values()) >= 3
    for n in names:
        a, b = inc.samples()[n]["file"], full.samples()[n]["file"]
        assert a == b
        table = pq.read_table(inc.root / a)
        assert table.equals(pq.read_table(full.root / a))
        f = pq.ParquetFile(inc.root / a)
        assert [f.metadata.row_group(i).column(0).statistics.min for i in range(f.metadata.num_row_groups)] == [
            "chr1", "chr2"]  # chr1 came back after chr2 in the VCF: merged into one sorted run
        for chrom in ("chr1", "chr2"):
            pos = table.filter(pc.equal(table["chrom"], chrom))["pos"].to_pylist()
            assert pos == sorted(pos)
        rows = sum(len(r[3].split(",")) for r in cohort[n])
        assert table.num_rows == rows == inc.samples()[n]["rows"]
        assert inc.samples()[n]["records"] == len(cohort[n])
    sort = [("chrom", "ascending"), ("pos", "ascending"), ("alt", "ascending"), ("sample", "ascending")]
    assert inc.calls_dataset().to_table().sort_by(sort).equals(full.calls_dataset().to_table().sort_by(sort))
    # only the current generation of summaries is left
    assert {p.relative_to(inc.root).parts[1] for p in (inc.root / "variants").rglob("*.parquet")} == {"v3"}
    # a sample already committed with the same content is not committed again
    again = inc.stage_sample(names[0], tmp_path / f"{names[0]}.vcf")
    inc.commit([again])
    assert json.loads((inc.root / "store.json").read_text())["generation"] == 3
    assert not Path(again.staging).exists()


def test_a_commit_of_new_samples_reads_no_calls_file(tmp_path, monkeypatch):
    """Their counts come from the staging folder (computed while staging); only replaced samples are read."""
    cohort = random_cohort(4, seed=7)
    names = list(cohort)
    store = CohortStore(tmp_path / "store", create=True)
    staged = [store.stage_sample(n, write_vcf(tmp_path / f"{n}.vcf", n, cohort[n])) for n in names]
    assert all(set(s.counts) == {"chr1", "chr2"} and Path(s.file).is_file() for s in staged)
    read = []
    real, real_chrom = store_mod._read_parquet, store_mod._read_chrom

    def spy(path, schema, columns=None):
        read.append((Path(path), None))
        return real(path, schema, columns)

    def spy_chrom(path, chrom, columns):
        read.append((Path(path), chrom))
        return real_chrom(path, chrom, columns)

    monkeypatch.setattr(store_mod, "_read_parquet", spy)
    monkeypatch.setattr(store_mod, "_read_chrom", spy_chrom)
    store.commit(staged[:2])
    store.commit(staged[2:])
    assert read and all("variants" in p.parts for p, _ in read)  # only the previous summaries were read
    assert store_counts(store) == expected_counts(cohort)
    old = store.root / store.samples()[names[0]]["file"]
    changed = dict(cohort, **{names[0]: cohort[names[0]][1:]})
    store.commit([store.stage_sample(names[0], write_vcf(tmp_path / "changed.vcf", names[0], changed[names[0]]))])
    assert {(p, c) for p, c in read if "calls" in p.parts} == {(old, "chr1"), (old, "chr2")}  # the replaced one
    assert store_counts(store) == expected_counts(changed)


def test_sort_calls_is_a_stable_sort_by_position_and_finds_repeated_variants():
    rows = [(5, "A", "T"), (5, "A", "G"), (7, "C", "A"), (5, "AC", "A"), (9, "G", "C")]
    calls = pa.table({"chrom": ["c"] * len(rows), "pos": [r[0] for r in rows], "ref": [r[1] for r in rows],
                      "alt": [r[2] for r in rows], "depth": list(range(len(rows)))})
    expected = calls.take([0, 1, 3, 2, 4])  # rows at one position (a multi-allelic record) keep their order
    assert sort_calls([calls.slice(0, 2), calls.slice(2)], "x").equals(expected)
    assert sort_calls([expected], "x").equals(expected)
    assert sort_calls([expected.slice(3), expected.slice(0, 3)], "x").equals(expected)  # a chromosome came back
    for parts in ([expected, expected.slice(0, 1)], [expected.slice(0, 2), expected.slice(1, 1)]):
        with pytest.raises(InputError, match="x: variant c:5:A:(T|G) appears in more than one record"):
            sort_calls(parts, "x")


def test_importing_the_store_does_not_import_pyarrow_dataset():
    """pyarrow.dataset imports pandas (0.4 s), which every ingest job would pay."""
    code = "import sys, aisci.cohort.store; print(sorted({'pyarrow.dataset', 'pandas'} & set(sys.modules)))"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.strip() == "[]"


def test_replacing_a_sample_subtracts_its_old_counts(tmp_path):
    cohort = random_cohort(4, seed=2)
    names = list(cohort)
    store = build(tmp_path / "store", tmp_path, cohort, [names])
    old_files = [store.root / store.samples()[names[1]]["file"]]
    vcf = tmp_path / f"{names[1]}.vcf"
    assert not store.needs_ingest(names[1], vcf)
    os.utime(vcf, ns=(1, 1))  # touched, same content
    assert not store.needs_ingest(names[1], vcf) and store.needs_ingest("new", vcf)
    changed = dict(cohort)
    changed[names[1]] = [r for r in cohort[names[1]][::2]] + [("chr2", 9999, "A", "T", "1/1")]
    write_vcf(vcf, names[1], changed[names[1]])
    assert store.needs_ingest(names[1], vcf)
    store.commit([store.stage_sample(names[1], vcf)])
    assert not store.needs_ingest(names[1], vcf)
    assert store.n_samples() == 4
    assert store_counts(store) == expected_counts(changed)
    gone = set(expected_counts(cohort)) - set(expected_counts(changed))
    assert gone and not gone & set(store_counts(store))
    assert not [p for p in old_files if p.exists()]
    (tmp_path / "fresh").mkdir()
    fresh = build(tmp_path / "fresh" / "store", tmp_path / "fresh", changed, [names])
    assert store.summaries().equals(fresh.summaries())


# ------------------------------------------------------------------------------------------- crash safety
def test_a_crash_before_store_json_is_replaced_leaves_the_old_state_and_garbage(tmp_path, monkeypatch):
    cohort = random_cohort(3, seed=3)
    names = list(cohort)
    store = build(tmp_path / "store", tmp_path, cohort, [names[:2]])
    before = store.summaries()
    referenced = set(parquet_files(store.root))
    staged = store.stage_sample(names[2], write_vcf(tmp_path / "c.vcf", names[2], cohort[names[2]]))
    replace = os.replace

    def crash(src, dst):
        if Path(dst).name == "store.json":
            raise KeyboardInterrupt("killed")  # as a kill would: nothing after this point runs
        return replace(src, dst)

    monkeypatch.setattr(os, "replace", crash)
    with pytest.raises(KeyboardInterrupt):
        store.commit([staged])
    monkeypatch.setattr(os, "replace", replace)
    garbage = set(parquet_files(store.root)) - referenced
    assert any("calls" in p.parts for p in garbage) and any("v2" in p.parts for p in garbage)
    reopened = CohortStore(store.root)
    assert sorted(reopened.samples()) == sorted(names[:2])
    assert reopened.summaries().equals(before)
    assert reopened.calls_dataset().to_table().num_rows == sum(len(cohort[n]) + sum(
        r[3].count(",") for r in cohort[n]) for n in names[:2])
    leftover = store.root / ".store.json.x1y2.tmp.part"  # what a kill inside the store.json write leaves
    leftover.write_text("{")
    removed = reopened.collect_garbage(staging_max_age=0)
    assert garbage | {leftover} <= set(removed)
    assert set(parquet_files(store.root)) == referenced
    assert not list((store.root / ".staging").iterdir())
    assert not [p for p in store.root.rglob("*") if p.is_file() and ".part" in p.name]
    # the sample is staged again and lands
    reopened.commit([reopened.stage_sample(names[2], tmp_path / "c.vcf")])
    assert store_counts(reopened) == expected_counts(cohort)


def test_garbage_collection_keeps_recent_staging_and_failed_staging_leaves_nothing(tmp_path):
    store = CohortStore(tmp_path / "store", create=True)
    staged = store.stage_sample("S1", write_vcf(tmp_path / "a.vcf", "S1", HAND["S1"]))
    assert store.collect_garbage() == []  # staged a moment ago: maybe about to be committed elsewhere
    store.commit([staged])
    assert store.n_samples() == 1
    dup = write_vcf(tmp_path / "dup.vcf", "S2", HAND["S2"] + [HAND["S2"][0]])
    with pytest.raises(InputError, match="chr1:100:A:C appears in more than one record"):
        store.stage_sample("S2", dup)
    with pytest.raises(InputError, match="must match"):
        store.stage_sample("../x", dup)
    assert not list((store.root / ".staging").iterdir())
    with pytest.raises(InputError, match="not a cohort store"):
        CohortStore(tmp_path / "nothing")
    (tmp_path / "a-file").write_text("x")
    for create in (False, True):
        with pytest.raises(InputError, match="a-file: not a cohort store \\(a file, not a folder\\)"):
            CohortStore(tmp_path / "a-file", create=create)
    (tmp_path / "other").mkdir()
    (tmp_path / "other" / "store.json").write_text('{"format": "something-else"}')
    with pytest.raises(InputError, match="not an aisci-cohort store of format version 2 or 3"):
        CohortStore(tmp_path / "other").samples()


# ------------------------------------------------------------------------------------------- queries
def test_region_query_pushdown_and_score_join(tmp_path):
    rng = random.Random(4)
    big = [("chr1", p, "A", "G", rng.choice(["0/1", "1/1"])) for p in range(1, 50001)]
    cohort = {"BIG": big + [("chr2", 7, "C", "T", "0/1")], **HAND}
    store = build(tmp_path / "store", tmp_path, cohort, [["BIG", "S1"], ["S2", "S3"]])
    everything = store.query()
    assert everything.schema.equals(SCORED_CALLS)
    assert everything.num_rows == 50001 + 4 + 3 + 3
    for region in [("chr1", 100, 200), ("chr1", 16380, 32770), ("chr1", 49990, 10**9), ("chr2", 1, 50),
                   ("chr3", 1, 10)]:
        got = store.query(region)
        mask = pc.and_(pc.equal(everything["chrom"], region[0]),
                       pc.and_(pc.greater_equal(everything["pos"], region[1]),
                               pc.less_equal(everything["pos"], region[2])))
        assert got.equals(everything.filter(mask)), region
    # pushdown: the chrom and position statistics of BIG's 5 row groups (4 of chr1, 1 of chr2) leave 1 or 2
    big = ds.dataset(str(store.root / store.samples()["BIG"]["file"]), format="parquet")
    (fragment,) = big.get_fragments()
    assert fragment.metadata.num_row_groups == 5
    for (lo, hi), n_groups in {(100, 200): 1, (16380, 16390): 2, (40000, 10**9): 2, (49500, 10**9): 1}.items():
        pruned = fragment.subset(filter=(ds.field("chrom") == "chr1") & (ds.field("pos") >= lo) & (
            ds.field("pos") <= hi))
        assert pruned.num_row_groups == n_groups
    assert fragment.subset(filter=ds.field("chrom") == "chr2").num_row_groups == 1
    hits = store.query(("chr1", 100, 101))
    assert [(r["sample"], r["variant_id"]) for r in hits.to_pylist()] == [  # sorted by pos, ref, alt, sample
        ("S1", "chr1:100:A:C"), ("S2", "chr1:100:A:C"), ("S3", "chr1:100:A:C"), ("BIG", "chr1:100:A:G"),
        ("BIG", "chr1:101:A:G")]
    n = 4
    by_id = {(r["sample"], r["variant_id"]): r for r in hits.to_pylist()}
    # chr1:100:A:G only in BIG; chr1:100:A:C in S1..S3: AN = 2 * (4 - 3) + 4
    assert by_id[("S1", "chr1:100:A:C")]["an"] == 2 * (n - 3) + 4 and by_id[("S1", "chr1:100:A:C")]["ac"] == 3
    assert by_id[("BIG", "chr1:100:A:G")]["an"] == 2 * (n - 1) + 2
    only = store.query(("chr1", 1, 300), samples=["S2"])
    assert only["sample"].unique().to_pylist() == ["S2"] and only.num_rows == 3
    with pytest.raises(InputError, match="'S9' is not in the store"):
        store.query(samples=["S9"])
    splice = pa.table({"variant_id": ["chr1:200:G:T", "chr9:1:A:C"], "splice_gene": ["G1", "G9"],
                       "ds_ag": pa.array([0.5, 0.1], pa.float32()), "ds_al": pa.array([0.0, 0.0], pa.float32()),
                       "ds_dg": pa.array([0.1, 0.0], pa.float32()), "ds_dl": pa.array([0.0, 0.2], pa.float32()),
                       "ds_max": pa.array([0.5, 0.2], pa.float32()), "splice_model": ["spliceai-1.3.1"] * 2,
                       "splice_model_version": ["abc123abc123"] * 2})
    scored = store.query(("chr1", 150, 300), scores={"splice": splice})
    assert scored.schema.equals(SCORED_CALLS)
    rows = {(r["sample"], r["variant_id"]): r for r in scored.to_pylist()}
    assert rows[("S1", "chr1:200:G:T")]["ds_max"] == 0.5 and rows[("S2", "chr1:200:G:T")]["splice_gene"] == "G1"
    assert rows[("S1", "chr1:200:G:GA")]["ds_max"] is None
    assert scored["protein_score"].null_count == scored.num_rows
    protein = pa.table({"variant_id": ["chr1:200:G:GA"], "protein_gene": ["G1"], "protein_transcript": ["T1"],
                        "hgvs_p": ["p.Gly2fs"], "protein_score": pa.array([-3.5], pa.float32()),
                        "protein_model": ["esm"], "protein_model_version": ["v1"]})
    scored = store.query(("chr1", 150, 300), scores={"splice": splice, "protein": protein})
    rows = {(r["sample"], r["variant_id"]): r for r in scored.to_pylist()}
    assert rows[("S3", "chr1:200:G:GA")]["protein_score"] == -3.5 and rows[("S3", "chr1:200:G:GA")]["hgvs_p"]
    assert rows[("S1", "chr1:200:G:T")]["protein_score"] is None
    with pytest.raises(ValueError, match="missing column 'ds_max'"):
        store.query(scores={"splice": splice.drop_columns(["ds_max"])})


def test_empty_store_reads_as_empty_tables(tmp_path):
    store = CohortStore(tmp_path / "s", create=True)
    assert store.n_samples() == 0 and store.chromosomes() == []
    assert store.summaries().schema.equals(SUMMARIES) and store.summaries().num_rows == 0
    assert store.query().schema.equals(SCORED_CALLS) and store.query(("chr1", 1, 9)).num_rows == 0
    assert store.calls_dataset().to_table().num_rows == 0 and store.variants_dataset().to_table().num_rows == 0
    assert list(store.variant_batches()) == []
    store.commit([])
    assert json.loads((store.root / "store.json").read_text())["generation"] == 0


# ------------------------------------------------------------------------------------------- concurrency
def _commit_in_process(root: str, vcfs: list[tuple[str, str]], barrier) -> None:
    store = CohortStore(root, create=True)
    staged = [store.stage_sample(name, vcf) for name, vcf in vcfs]
    barrier.wait(30)  # both processes commit at the same moment
    for s in staged:
        store.commit([s])


def test_concurrent_commits_from_two_processes_all_land(tmp_path):
    cohort = random_cohort(6, seed=6)
    names = list(cohort)
    vcfs = [(n, str(write_vcf(tmp_path / f"{n}.vcf", n, cohort[n]))) for n in names]
    ctx = multiprocessing.get_context("spawn")
    barrier = ctx.Barrier(2)
    procs = [ctx.Process(target=_commit_in_process, args=(str(tmp_path / "store"), vcfs[i::2], barrier))
             for i in (0, 1)]
    for p in procs:
        p.start()
    for p in procs:
        p.join(60)
        assert p.exitcode == 0
    store = CohortStore(tmp_path / "store")
    assert sorted(store.samples()) == sorted(names)
    assert json.loads((store.root / "store.json").read_text())["generation"] == 6
    assert store_counts(store) == expected_counts(cohort)
    assert store.collect_garbage(staging_max_age=0) == []


# ------------------------------------------------------------------------------- docs/reanalysis.md
def test_the_readme_duckdb_queries_run_on_a_store(tmp_path, monkeypatch):
    """docs/reanalysis.md's DuckDB block, as written there, against a real store and a protein score cache."""
    from aisci.scorecache import PROTEIN_SCORES

    readme = (Path(__file__).resolve().parents[3] / "docs" / "reanalysis.md").read_text()
    block = readme.split("```python\nimport duckdb", 1)[1].split("```", 1)[0]
    store = build(tmp_path / "cohort-store", tmp_path, HAND, [["S1", "S2"], ["S3"]])
    part = store.root / "scores/protein/esm2-demo@c53e72931ba1/chrom=chr1/part-0.parquet"
    part.parent.mkdir(parents=True)
    rows = [("chr1:200:G:T", 200, "G", "T", "scored", -4.5), ("chr1:100:A:C", 100, "A", "C", "scored", -1.0),
            ("chr1:300:T:A", 300, "T", "A", "intergenic", None)]
    pq.write_table(pa.table({
        "variant_id": [r[0] for r in rows], "pos": [r[1] for r in rows], "ref": [r[2] for r in rows],
        "alt": [r[3] for r in rows], "status": [r[4] for r in rows], "gene": ["G1"] * 3, "transcript": ["T1"] * 3,
        "consequence": ["missense_variant"] * 3, "hgvs_p": ["p.X"] * 3, "strategy": ["masked-marginal"] * 3,
        "score": pa.array([r[5] for r in rows], pa.float32())}, schema=PROTEIN_SCORES), part)
    monkeypatch.chdir(tmp_path)
    scope: dict = {}
    exec("import duckdb" + block.replace("S0001", "S1"), scope)
    assert sorted(scope["per_chrom"].fetchall()) == [("chr1", 3 + 3 + 2, 3), ("chr2", 2, 2)]
    mine = sorted(scope["mine"].fetchall())
    assert mine == [("chr1", 100, "A", "C", "0/1", 3, 2), ("chr1", 200, "G", "GA", "1/2", 2, 2),
                    ("chr1", 200, "G", "T", "1/2", 2, 2)]
    worst = scope["worst"].fetchall()
    assert [(w[0], w[1], w[3], w[4], w[8]) for w in worst] == [("chr1", 200, "T", 2, -4.5), ("chr1", 100, "C", 3, -1.0)]
