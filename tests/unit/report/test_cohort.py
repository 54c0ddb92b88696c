"""aisci.report.cohort: the reanalysis report of a real store, built, scored and summarised by `aisci cohort` as the
workflow's rules run it; every number on the page checked against the store, its score cache or an independent count."""

from __future__ import annotations

import datetime
import html
import json
import re
import shutil
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import unquote

import numpy as np
import pyarrow.compute as pc
import pyarrow.parquet as pq
import pytest

from aisci.cli import main
from aisci.cohort.store import CohortStore
from aisci.errors import InputError
from aisci.report import cohort as report
from aisci.scorecache import ScoreCache, ScoreModel

NOW = datetime.datetime(2026, 1, 2, 3, 4, 5, tzinfo=datetime.UTC)
SHARD_SIZE = 2


@dataclass(frozen=True)
class Run:
    """The reports of one run of the workflow's commands (shards/{shard}.json, scores/protein.json, cohort.tsv)."""

    shards: list[Path]
    scores: list[Path]
    summary: Path


@dataclass(frozen=True)
class Cohort:
    """A store after two runs: five samples scored by two protein model versions, then all seven by the first."""

    store: Path
    first: Run
    second: Run
    old_model: str  # the model id of the version only the first run scored with


@pytest.fixture(scope="module")
def cohort(sim_data, esm_store, tmp_path_factory) -> Cohort:
    tmp = tmp_path_factory.mktemp("cohort_report")
    out, store = tmp / "cohort", tmp / "store"
    assert main(["cohort", "simulate", "--out", str(out), "--samples", "7", "--variants", "15", "--seed", "4",
                 "--ref", str(sim_data.reference), "--annotation", str(sim_data.annotation)]) == 0
    manifest = out / "samples.tsv"
    first = out / "first.tsv"  # beside the manifest: its VCF paths are relative to it
    first.write_text("\n".join(manifest.read_text().splitlines()[:6]) + "\n")
    model = ["--ref", str(sim_data.reference), "--annotation", str(sim_data.annotation), "--model", esm_store.model,
             "--model-store", str(esm_store.path), "--threads", "1"]

    def run(name: str, samples: Path, n: int, *strategies: str) -> Run:
        shards = [tmp / name / "shards" / f"{i}.json" for i in range((n + SHARD_SIZE - 1) // SHARD_SIZE)]
        for i, path in enumerate(shards):
            assert main(["cohort", "ingest", "--manifest", str(samples), "--store", str(store), "--shard", str(i),
                         "--shard-size", str(SHARD_SIZE), "--report", str(path)]) == 0
        scores = [tmp / name / "scores" / f"protein.{s}.json" for s in strategies]
        for strategy, path in zip(strategies, scores):
            assert main(["cohort", "score", "--store", str(store), "--stage", "protein", *model, "--strategy", strategy,
                         "--report", str(path)]) == 0
        summary = tmp / name / "cohort.tsv"
        assert main(["cohort", "info", "--store", str(store), "--out", str(summary)]) == 0
        return Run(shards, scores[:1], summary)

    one = run("first", first, 5, "masked-marginals", "wt-marginals")
    old = json.loads((tmp / "first" / "scores" / "protein.wt-marginals.json").read_text())["model"]
    return Cohort(store, one, run("second", manifest, 7, "masked-marginals"), old)


def parse(page: str) -> dict[str, dict]:
    """Each section of a page: its key numbers, its tables (header, rows; numbers as numbers), notes and charts."""
    def value(num: str, text: str):
        if num:
            return float(num) if "." in num or "e" in num else int(num)
        return "" if text == "–" else html.unescape(text)

    out = {}
    for sid, body in re.findall(r'<section id="(\w+)">(.*?)</section>', page, re.S):
        tables = []
        for tab in re.findall(r'<table class="sortable">(.*?)</table>', body, re.S):
            head = [html.unescape(h) for h in re.findall(r"<th>(.*?)</th>", tab)]
            rows = [[value(n, t) for n, t in re.findall(r'<td(?: class="n" data-v="([^"]*)")?>(.*?)</td>', tr)]
                    for tr in re.findall(r"<tr>(.*?)</tr>", tab.split("<tbody>")[1])]
            tables.append((head, rows))
        charts = {html.unescape(t): [int(v.replace(",", "")) for v in re.findall(r"<title>[^<]*: ([\d,]+)</title>", g)]
                  for t, g in re.findall(r'<svg class="chart"[^>]*aria-label="([^"]*)"(.*?)</svg>', body, re.S)}
        nums = {html.unescape(k): html.unescape(v)
                for v, k in re.findall(r"<div><b>(.*?)</b><span>(.*?)</span></div>", body)}
        out[sid] = {"numbers": nums, "tables": tables, "charts": charts,
                    "notes": [html.unescape(n) for n in re.findall(r'<p class="note">(.*?)</p>', body)]}
    return out


def num(section: dict, label: str) -> int:
    return int(section["numbers"][label].replace(",", ""))


def rows_by(table: tuple[list[str], list[list]], key: str) -> dict:
    head, rows = table
    return {r[head.index(key)]: dict(zip(head, r)) for r in rows}


def variants_by_hand(store: Path) -> dict[str, dict[str, np.ndarray]]:
    """Per chromosome: the store's variant summaries read straight from their Parquet files, AN and AF by hand."""
    state = json.loads((store / "store.json").read_text())
    n = len(state["samples"])
    out = {}
    for part in sorted((store / state["variants"]).glob("chrom=*/part.parquet")):
        t = pq.read_table(part).to_pydict()
        ac = np.array(t["ac"])
        an = 2 * (n - np.array(t["n_records"])) + np.array(t["called_alleles"])
        ref, alt = np.array([len(r) for r in t["ref"]]), np.array([len(a) for a in t["alt"]])
        out[unquote(part.parent.name.removeprefix("chrom="))] = {
            "ac": ac, "af": np.divide(ac, an, out=np.zeros(len(ac)), where=an > 0), "id": np.array(t["variant_id"]),
            "snv": (ref == 1) & (alt == 1), "indel": ref != alt}
    return out


def af_classes(ac: np.ndarray, af: np.ndarray, edges: tuple[float, float, float]) -> list[int]:
    """AC 0, 1, 2, then AC >= 3 below edges[0], in [edges[0], edges[1]), [edges[1], edges[2]), from edges[2]."""
    common = af[ac >= 3]
    bounds = [-1.0, *edges, 2.0]
    return [int((ac == k).sum()) for k in range(3)] + [int(((common >= lo) & (common < hi)).sum())
                                                        for lo, hi in zip(bounds, bounds[1:])]


def test_the_cohort_section_is_the_store(cohort):
    page = report.build_cohort(cohort.store, cohort.second.shards, cohort.second.scores, cohort.second.summary, NOW)
    sections = parse(page)
    assert list(sections) == ["cohort", "variants", "scores", "ingest"]
    store = CohortStore(cohort.store)
    samples = store.samples()
    s = sections["cohort"]
    assert num(s, "samples") == len(samples) == 7
    assert num(s, "distinct variants") == sum(store.variant_counts().values()) > 0
    assert num(s, "chromosomes") == len(store.chromosomes())
    assert num(s, "store generation") == json.loads((cohort.store / "store.json").read_text())["generation"]
    table = rows_by(s["tables"][0], "sample")
    assert sorted(table) == sorted(samples)
    for name, entry in samples.items():
        row = table[name]
        assert (row["VCF"], row["records with an ALT"], row["ALT alleles"], row["fingerprint"]) == (
            entry["vcf"], entry["records"], entry["rows"], entry["fingerprint"][:12])
    assert f"written {NOW.isoformat()}" in page


def test_variants_and_the_spectrum_equal_an_independent_count(cohort, monkeypatch):
    by_hand = variants_by_hand(cohort.store)
    ac = np.concatenate([v["ac"] for v in by_hand.values()])
    af = np.concatenate([v["af"] for v in by_hand.values()])
    # the cohort must have each class of variant for this test to mean anything
    assert (ac == 1).any() and (ac == 2).any() and (ac >= 3).any()
    assert any(v["indel"].any() for v in by_hand.values())
    s = parse(report.build_cohort(cohort.store, [], [], cohort.second.summary, NOW))["variants"]
    assert num(s, "distinct variants") == len(ac)
    assert num(s, "singletons (AC 1)") == int((ac == 1).sum())
    assert num(s, "doubletons (AC 2)") == int((ac == 2).sum())
    assert num(s, "no ALT called (AC 0)") == int((ac == 0).sum())
    assert num(s, "SNVs") == sum(int(v["snv"].sum()) for v in by_hand.values())
    summary = dict(line.split("\t", 1) for line in cohort.second.summary.read_text().splitlines()[1:])
    table = rows_by(s["tables"][0], "chromosome")
    assert sorted(table) == sorted(by_hand) == sorted(summary)
    for chrom, v in by_hand.items():
        row = table[chrom]
        assert [row["distinct variants"], row["samples"]] == [int(x) for x in summary[chrom].split("\t")]
        assert (row["distinct variants"], row["SNVs"], row["indels"], row["other"], row["singletons"],
                row["doubletons"]) == (len(v["ac"]), v["snv"].sum(), v["indel"].sum(),
                                       len(v["ac"]) - v["snv"].sum() - v["indel"].sum(), (v["ac"] == 1).sum(),
                                       (v["ac"] == 2).sum())
    spectrum, _ = np.histogram(af[ac > 0], bins=report.AF_BINS, range=(0, 1))
    assert s["charts"]["Allele frequency spectrum (AC ≥ 1)"] == spectrum.tolist()
    classes = af_classes(ac, af, report.AF_EDGES)
    assert s["charts"]["Variants by allele count and frequency"] == classes and sum(classes) == len(ac)
    assert not [n for n in s["notes"] if "changed since" in n]
    # seven samples put every AC >= 3 above AF 5 %: edges inside the data check the classes' bounds too
    edges = tuple(np.quantile(af[ac >= 3], [0.25, 0.5, 0.75], method="lower"))
    assert len(set(edges)) == 3 and edges[0] in af
    monkeypatch.setattr(report, "AF_EDGES", edges)
    s = parse(report.build_cohort(cohort.store, [], [], None, NOW))["variants"]
    assert s["charts"]["Variants by allele count and frequency"] == af_classes(ac, af, edges)


def test_scores_per_model_version_equal_the_reports_and_the_cache(cohort):
    s = parse(report.build_cohort(cohort.store, [], cohort.second.scores, None, NOW))["scores"]
    total = sum(CohortStore(cohort.store).variant_counts().values())
    before = sum(int(line.split("\t")[1]) for line in cohort.first.summary.read_text().splitlines()[1:])
    assert 0 < before < total
    sent = json.loads(cohort.second.scores[0].read_text())
    (run,) = s["tables"][0][1]
    assert run[:5] == ["protein", *sent["model"].rsplit("@", 1), sent["scored"], sent["cached"]]
    # the second run scored exactly the variants the two new samples brought; the rest came from the cache
    assert (sent["scored"], sent["cached"]) == (total - before, before)
    assert s["charts"]["Variants scored in this run"] == [total - before, before]
    caches = rows_by(s["tables"][1], "version")
    assert len(caches) == 2
    ids = {m: sent["model"] == m for m in (sent["model"], cohort.old_model)}
    store_ids = np.concatenate([v["id"] for v in variants_by_hand(cohort.store).values()])
    for model_id, this_run in ids.items():
        name, version = model_id.rsplit("@", 1)
        row = caches[version]
        cache_dir = cohort.store / "scores" / "protein" / model_id
        rows = pq.ParquetDataset(sorted(cache_dir.rglob("part-*.parquet"))).read(columns=["variant_id", "status"])
        scored = pc.unique(pc.filter(rows["variant_id"], pc.equal(rows["status"], "scored"))).to_pylist()
        cached = set(rows["variant_id"].to_pylist())
        assert row["this run"] == ("yes" if this_run else "no") and row["model"] == name
        assert row["cached variants"] == len(cached) == ScoreCache(cohort.store / "scores").count(
            ScoreModel("protein", name, version))
        assert row["store variants with an entry"] == len(cached & set(store_ids)) == (total if this_run else before)
        assert row["without an entry"] == total - row["store variants with an entry"]
        assert row["with a score"] == len(set(scored) & set(store_ids)) > 0


def test_ingest_shards_equal_their_reports(cohort):
    s = parse(report.build_cohort(cohort.store, cohort.second.shards, [], None, NOW))["ingest"]
    table = rows_by(s["tables"][0], "shard")
    assert sorted(table) == list(range(4))
    for i, path in enumerate(cohort.second.shards):
        sent = json.loads(path.read_text())
        row = table[i]
        assert (row["samples"], row["ingested now"], row["up to date"]) == (
            len(sent["samples"]), len(sent["ingested"]), sent["up_to_date"])
    # the first five samples were ingested by the first run; the last two by this one (shards 2 and 3)
    assert [table[i]["ingested now"] for i in range(4)] == [0, 0, 1, 1]
    assert (num(s, "shards"), num(s, "samples in them"), num(s, "ingested now"), num(s, "already up to date"),
            num(s, "store samples of other manifests")) == (4, 7, 2, 5, 0)
    # the first run's manifest held five of the seven samples now in the store
    s = parse(report.build_cohort(cohort.store, cohort.first.shards, [], None, NOW))["ingest"]
    assert (num(s, "ingested now"), num(s, "store samples of other manifests")) == (5, 2)


def test_sections_are_left_out_without_their_inputs(cohort):
    sections = parse(report.build_cohort(cohort.store, [], [], None, NOW))
    assert list(sections) == ["cohort", "variants"]
    head, rows = sections["variants"]["tables"][0]
    assert "samples" not in head
    assert {r[0]: r[1] for r in rows} == CohortStore(cohort.store).variant_counts()
    # a summary written before the store last changed is said to be out of date, not silently mixed in
    stale = parse(report.build_cohort(cohort.store, [], [], cohort.first.summary, NOW))["variants"]
    assert [n for n in stale["notes"] if "changed since" in n]


def test_long_tables_are_capped(cohort, monkeypatch):
    monkeypatch.setattr(report, "MAX_ROWS", 3)
    s = parse(report.build_cohort(cohort.store, cohort.second.shards, [], None, NOW))
    assert len(s["cohort"]["tables"][0][1]) == 3 and len(s["ingest"]["tables"][0][1]) == 3
    assert "The first 3 samples of 7; 4 more are not listed." in s["cohort"]["notes"]
    assert "The first 3 shards of 4; 1 more are not listed." in s["ingest"]["notes"]


def _corrupt(store: Path, tmp: Path, pattern: str) -> tuple[Path, Path]:
    """A copy of the store with the first file matching ``pattern`` overwritten by garbage."""
    copy = tmp / "store"
    shutil.copytree(store, copy)
    victim = sorted(copy.glob(pattern))[0]
    victim.write_bytes(b"not parquet")
    return copy, victim


@pytest.mark.parametrize("case", ["missing", "not json", "no ingested", "bool up_to_date", "bad stage",
                                  "scored text", "summary header", "summary row", "not a store", "variants file",
                                  "cache file"])
def test_a_missing_or_malformed_input_stops_the_report_naming_it(cohort, tmp_path, case):
    store, shards, scores, summary = cohort.store, [], [], None
    bad = tmp_path / "bad.json"
    good_shard = json.loads(cohort.second.shards[0].read_text())
    good_score = json.loads(cohort.second.scores[0].read_text())
    if case == "missing":
        shards, name = [tmp_path / "nope.json"], "nope.json"
    elif case in ("not json", "no ingested", "bool up_to_date"):
        text = {"not json": "{", "no ingested": json.dumps({**good_shard, "ingested": None}),
                "bool up_to_date": json.dumps({**good_shard, "up_to_date": True})}[case]
        bad.write_text(text)
        shards, name = [bad], str(bad)
    elif case in ("bad stage", "scored text"):
        bad.write_text(json.dumps({**good_score, **({"stage": "rna"} if case == "bad stage" else {"scored": "7"})}))
        scores, name = [bad], str(bad)
    elif case.startswith("summary"):
        summary = tmp_path / "cohort.tsv"
        lines = cohort.second.summary.read_text().splitlines()
        summary.write_text("chrom\tn\n" if case == "summary header" else "\n".join(lines[:2] + ["chr9\tmany\t7"]))
        name = f"{summary} line {1 if case == 'summary header' else 3}"
    elif case == "not a store":
        store = tmp_path / "empty"
        store.mkdir()
        name = str(store)
    elif case == "variants file":
        store, _ = _corrupt(cohort.store, tmp_path, "variants/v*/chrom=*/part.parquet")
        scores, name = cohort.second.scores, str(store)
    else:
        store, victim = _corrupt(cohort.store, tmp_path, "scores/protein/*/chrom=*/part-*.parquet")
        scores, name = cohort.second.scores, victim.name
    with pytest.raises(InputError, match=re.escape(name)):
        report.build_cohort(store, shards, scores, summary, NOW)
