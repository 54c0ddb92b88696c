"""The reanalysis run's report: the cohort's samples and variants, the allele frequency spectrum, scores per model
version, and what each ingest shard did.

Numbers come from the run's reports (results/reanalysis/) and from the cohort store, read one record batch at a time
(a store can hold millions of variants). A section whose files are not given is left out; a given file that is
missing or malformed stops the report with its name.
"""

from __future__ import annotations

import datetime
import json
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from aisci.errors import InputError
from aisci.fileio import check_readable
from aisci.report import page, svg
from aisci.report.page import Section, numbers, table

if TYPE_CHECKING:  # pyarrow loads only when a report is built: `aisci` imports the report CLI to build its parser
    import pyarrow as pa

    from aisci.cohort.store import CohortStore
    from aisci.scorecache import ScoreCache, ScoreModel

MAX_ROWS = 500  # rows of the samples and shards tables; the rest are counted, not listed
AF_BINS = 20  # the spectrum's bins, each 1/AF_BINS wide
# Exclusive classes of a variant: by allele count first (AC 1: singletons, 2: doubletons), then by AF for AC >= 3.
AF_CLASSES = ("AC 0", "AC 1", "AC 2", "AF < 1%", "AF 1-5%", "AF 5-50%", "AF ≥ 50%")
AF_EDGES = (0.01, 0.05, 0.5)
SUMMARY_HEADER = ["chrom", "variants", "samples"]  # `aisci cohort info --out`


@dataclass
class ChromStats:
    """One chromosome's distinct variants (one ALT allele each) by kind and allele count."""

    variants: int = 0
    snvs: int = 0
    indels: int = 0
    other: int = 0  # same-length substitutions of more than one base
    singletons: int = 0
    doubletons: int = 0


@dataclass
class Coverage:
    """One model version's score cache, and how much of the store it holds."""

    model: ScoreModel
    cached: int  # distinct variants in its cache (on any chromosome, in the store now or not)
    covered: int = 0  # store variants with an entry (scored, or the reason they were not)
    scored: int = 0  # store variants with at least one "scored" row


@dataclass
class Scan:
    """What one pass over the store's variant summaries counted."""

    chroms: dict[str, ChromStats] = field(default_factory=dict)
    af_bins: list[int] = field(default_factory=lambda: [0] * AF_BINS)  # variants with AC >= 1 by AF
    classes: list[int] = field(default_factory=lambda: [0] * len(AF_CLASSES))
    coverage: list[Coverage] = field(default_factory=list)


def _json(path: Path, what: str) -> Any:
    check_readable(path, what)
    try:
        return json.loads(path.read_text())
    except (ValueError, UnicodeDecodeError) as exc:
        raise InputError(f"{path}: not JSON ({exc})") from None


def _require(path: Path, data: Any, kinds: dict[str, Any], what: str) -> dict[str, Any]:
    """``data`` as a dict whose keys have the given types (``[str]``: a list of strings); a bool is no int."""
    if not isinstance(data, dict):
        raise InputError(f"{path}: not {what} (a JSON object expected)")
    for key, kind in kinds.items():
        value = data.get(key)
        if isinstance(value, bool) or not (isinstance(value, list) and all(isinstance(v, kind[0]) for v in value)
                                           if isinstance(kind, list) else isinstance(value, kind)):
            raise InputError(f"{path}: {key}: {str(value)[:80]!r} is not what {what} holds there")
    return data


def _seconds(report: dict[str, Any], key: str) -> float | None:
    value = report.get("seconds", {}).get(key) if isinstance(report.get("seconds"), dict) else None
    return round(value, 1) if isinstance(value, (int, float)) else None


def _count(mask: Any) -> int:
    import pyarrow.compute as pc

    return pc.sum(mask).as_py() or 0


def cached_models(scores: Path) -> list[ScoreModel]:
    """Every model version with a score cache under a store's scores/ folder, by stage then name."""
    from aisci.scorecache import STAGES, ScoreModel

    return [ScoreModel(stage, *d.name.rsplit("@", 1)) for stage in STAGES
            for d in sorted((scores / stage).glob("*@*")) if d.is_dir()]


def _cache_keys(cache: ScoreCache, model: ScoreModel, chrom: str) -> tuple[pa.Array, pa.Array]:
    """The distinct variant ids a model version's cache holds on one chromosome, and those with a score."""
    import pyarrow as pa
    import pyarrow.compute as pc
    import pyarrow.parquet as pq

    tables = []
    for part in cache.parts(model, chrom):
        try:
            tables.append(pq.read_table(part, columns=["variant_id", "status"]))
        except (OSError, pa.ArrowException) as exc:
            raise InputError(f"{part}: not a score cache file ({exc})") from None
    if not tables:
        return pa.array([], pa.string()), pa.array([], pa.string())
    t = pa.concat_tables(tables)
    return pc.unique(t["variant_id"]), pc.unique(pc.filter(t["variant_id"], pc.equal(t["status"], "scored")))


def scan_store(store: CohortStore, models: Sequence[ScoreModel] = ()) -> Scan:
    """Count the store's variants by chromosome, kind and allele frequency, and which ones each model has scored.

    AF is the store's own (`aisci.cohort.tables.with_an_af`); one record batch (and one chromosome's cached keys
    per model version) is in memory at a time.
    """
    import pyarrow as pa
    import pyarrow.compute as pc

    from aisci.cohort.tables import with_an_af
    from aisci.scorecache import ScoreCache

    n = store.n_samples()
    cache = ScoreCache(store.root / "scores")
    scan = Scan(coverage=[Coverage(m, cache.count(m)) for m in models])
    chrom_keys: tuple[str | None, list[tuple[pa.Array, pa.Array]]] = (None, [])
    for chrom, batch in store.variant_batches():
        if chrom != chrom_keys[0]:
            chrom_keys = (chrom, [_cache_keys(cache, c.model, chrom) for c in scan.coverage])
        t = with_an_af(chrom, pa.Table.from_batches([batch]), n)
        ac, af = t["ac"], t["af"]
        ref, alt = pc.utf8_length(t["ref"]), pc.utf8_length(t["alt"])
        snv, same = pc.and_(pc.equal(ref, 1), pc.equal(alt, 1)), pc.equal(ref, alt)
        s = scan.chroms.setdefault(chrom, ChromStats())
        s.variants += t.num_rows
        s.snvs += _count(snv)
        s.indels += _count(pc.invert(same))
        s.other += _count(pc.and_(same, pc.invert(snv)))
        singles, doubles = _count(pc.equal(ac, 1)), _count(pc.equal(ac, 2))
        s.singletons += singles
        s.doubletons += doubles
        common = pc.filter(af, pc.greater_equal(ac, 3))  # AN >= AC > 0: no null AF
        below = [_count(pc.less(common, edge)) for edge in AF_EDGES] + [len(common)]
        by_class = [_count(pc.equal(ac, 0)), singles, doubles, below[0], *(b - a for a, b in zip(below, below[1:]))]
        scan.classes = [x + y for x, y in zip(scan.classes, by_class)]
        seen = pc.filter(af, pc.greater(ac, 0))
        bins = pc.min_element_wise(pc.cast(pc.floor(pc.multiply(seen, float(AF_BINS))), pa.int64()), AF_BINS - 1)
        for entry in pc.value_counts(bins).to_pylist():
            scan.af_bins[entry["values"]] += entry["counts"]
        for c, (keys, scored) in zip(scan.coverage, chrom_keys[1]):
            c.covered += _count(pc.is_in(t["variant_id"], value_set=keys))
            c.scored += _count(pc.is_in(t["variant_id"], value_set=scored))
    return scan


def _capped(s: Section, columns: list[str], rows: list[list[Any]], what: str) -> None:
    s.blocks.append(table(columns, rows[:MAX_ROWS]))
    if len(rows) > MAX_ROWS:
        s.note(f"The first {MAX_ROWS:,} {what} of {len(rows):,}; {len(rows) - MAX_ROWS:,} more are not listed.")


def cohort_section(store: CohortStore) -> Section:
    """Samples, distinct variants, chromosomes, the store's generation, and a table of the samples (store.json)."""
    state = _json(store.root / "store.json", "cohort store")
    samples = store.samples()
    s = Section("cohort", "The cohort")
    s.blocks.append(numbers([("samples", len(samples)), ("distinct variants", sum(store.variant_counts().values())),
                             ("chromosomes", len(store.chromosomes())), ("store generation", state.get("generation")),
                             ("store", str(store.root))]))
    rows = [[name, e.get("vcf"), e.get("records"), e.get("rows"), len(e.get("chroms", [])), e.get("ingested"),
             str(e.get("fingerprint", ""))[:12]] for name, e in sorted(samples.items())]
    _capped(s, ["sample", "VCF", "records with an ALT", "ALT alleles", "chromosomes", "ingested (UTC)", "fingerprint"],
            rows, "samples")
    return s


def read_summary(path: Path) -> dict[str, tuple[int, int]]:
    """`aisci cohort info --out` (results/reanalysis/cohort.tsv): chrom -> (distinct variants, samples)."""
    check_readable(path, "cohort summary")
    try:
        lines = path.read_text().splitlines()
    except UnicodeDecodeError:
        raise InputError(f"{path}: not text") from None
    if not lines or lines[0].split("\t") != SUMMARY_HEADER:
        raise InputError(f"{path} line 1: expected the header {' '.join(SUMMARY_HEADER)} (tab-separated)")
    out = {}
    for i, line in enumerate(lines[1:], 2):
        f = line.split("\t")
        if len(f) != 3 or not f[0] or not f[1].isdigit() or not f[2].isdigit():
            raise InputError(f"{path} line {i}: expected a chromosome, then variants and samples as whole numbers")
        out[f[0]] = (int(f[1]), int(f[2]))
    return out


def variants_section(scan: Scan, summary: dict[str, tuple[int, int]] | None) -> Section:
    """Variants per chromosome by kind, singletons and doubletons, the allele frequency spectrum."""
    s = Section("variants", "Variants")
    total = ChromStats(*(sum(getattr(c, f) for c in scan.chroms.values()) for f in ChromStats.__dataclass_fields__))
    s.blocks.append(numbers([("distinct variants", total.variants), ("SNVs", total.snvs), ("indels", total.indels),
                             ("other substitutions", total.other), ("singletons (AC 1)", total.singletons),
                             ("doubletons (AC 2)", total.doubletons), ("no ALT called (AC 0)", scan.classes[0])]))
    kinds = ("snvs", "indels", "other", "singletons", "doubletons")
    counts = {c: (st.variants, None) for c, st in scan.chroms.items()} if summary is None else summary
    rows = [[c, v, *([] if summary is None else [n]), *(getattr(scan.chroms.get(c, ChromStats()), k) for k in kinds)]
            for c, (v, n) in counts.items()]
    s.blocks.append(table(["chromosome", "distinct variants", *([] if summary is None else ["samples"]), "SNVs",
                           "indels", "other", "singletons", "doubletons"], rows))
    if {c: v for c, (v, _) in counts.items()} != {c: st.variants for c, st in scan.chroms.items()}:
        s.note("cohort.tsv was written at the end of the run and the store has changed since: the other columns "
               "and the numbers above are the store's now.")
    s.charts(svg.histogram("Allele frequency spectrum (AC ≥ 1)", [(i / AF_BINS, n) for i, n in enumerate(scan.af_bins)],
                           x_label="AF (bin start)", y_label="variants"),
             svg.bars("Variants by allele count and frequency", list(AF_CLASSES), scan.classes, y_label="variants"))
    s.note("AF = AC / AN, AN = 2 × (samples without a record) + called alleles: a sample without a record at a "
           "variant counts as homozygous reference. Multi-allelic sites count once per ALT allele.")
    return s


def read_score_report(path: Path) -> dict[str, Any]:
    """`aisci cohort score --report` (results/reanalysis/scores/{stage}.json): stage, model, scored, cached."""
    from aisci.scorecache import STAGES

    data = _require(path, _json(path, "score report"), {"stage": str, "model": str, "scored": int, "cached": int},
                    "an `aisci cohort score` report")
    if data["stage"] not in STAGES or "@" not in data["model"]:
        raise InputError(f"{path}: stage {data['stage']!r} / model {data['model']!r}: expected one of "
                         f"{', '.join(STAGES)} and name@version")
    return data


def scores_section(runs: Sequence[dict[str, Any]], coverage: Sequence[Coverage], store_variants: int) -> Section:
    """Per stage and model version: variants scored now and served from the cache, and the caches in the store."""
    s = Section("scores", "Scores")
    rows = [[r["stage"], *r["model"].rsplit("@", 1), r["scored"], r["cached"], r["scored"] + r["cached"],
             _seconds(r, f"score {r['stage']}")] for r in runs]
    s.blocks.append(table(["stage", "model", "version", "scored now", "from the cache", "store variants then",
                           "seconds"], rows))
    s.charts(svg.bars("Variants scored in this run", [f"{r['stage']} {k}" for r in runs for k in ("scored", "cached")],
                      [r[k] for r in runs for k in ("scored", "cached")], y_label="variants"))
    s.heading("Score caches in the store")
    ran = {(r["stage"], r["model"]) for r in runs}
    s.blocks.append(table(["stage", "model", "version", "this run", "cached variants", "store variants with an entry",
                           "with a score", "without an entry"],
                          [[c.model.stage, c.model.name, c.model.version, (c.model.stage, c.model.model_id) in ran,
                            c.cached, c.covered, c.scored, store_variants - c.covered] for c in coverage]))
    s.note("A variant has one cache entry per model version: its scores, or why it was not scored (outside every "
           "gene, no protein change, a REF mismatch). A new version (weights, reference, annotation or options "
           "changed) scores every variant again; an unchanged one never scores a variant twice.")
    return s


def read_shard_report(path: Path) -> dict[str, Any]:
    """`aisci cohort ingest --report` (results/reanalysis/shards/{shard}.json)."""
    return _require(path, _json(path, "ingest report"), {"shard": (int, type(None)), "samples": [str],
                                                         "ingested": [str], "up_to_date": int},
                    "an `aisci cohort ingest` report")


def ingest_section(shards: Sequence[dict[str, Any]], store_samples: Sequence[str]) -> Section:
    """Per shard of the manifest: samples ingested now and already up to date."""
    s = Section("ingest", "Ingest")
    shards = sorted(shards, key=lambda r: -1 if r.get("shard") is None else r["shard"])
    named = {n for r in shards for n in r["samples"]}
    s.blocks.append(numbers([("shards", len(shards)), ("samples in them", len(named)),
                             ("ingested now", sum(len(r["ingested"]) for r in shards)),
                             ("already up to date", sum(r["up_to_date"] for r in shards)),
                             ("store samples of other manifests", len(set(store_samples) - named))]))
    rows = [["all" if r.get("shard") is None else r["shard"], len(r["samples"]), len(r["ingested"]), r["up_to_date"],
             _seconds(r, "ingest")] for r in shards]
    _capped(s, ["shard", "samples", "ingested now", "up to date", "seconds"], rows, "shards")
    s.note("A sample is up to date when the store holds it with the same VCF content; a changed VCF is ingested "
           "again and replaces its earlier calls.")
    return s


def build_cohort(store: Path, shard_reports: Sequence[Path], score_reports: Sequence[Path], summary: Path | None,
                 now: datetime.datetime | None = None) -> str:
    """The reanalysis run's page: the cohort, its variants, and (given their reports) the scores and the ingest.

    Args:
        store: the cohort store folder (config ``store``).
        shard_reports: results/reanalysis/shards/{shard}.json; none: the Ingest section is left out.
        score_reports: results/reanalysis/scores/{stage}.json; none: the Scores section is left out.
        summary: results/reanalysis/cohort.tsv, or None: the per-chromosome counts come from the store alone.
        now: the time the page says it was written (default: now, UTC).

    Returns:
        The whole HTML page (the caller writes it).

    Raises:
        InputError: naming a given file that is missing or not what it should be, or a store that cannot be read.
    """
    import pyarrow as pa

    from aisci.cohort.store import CohortStore
    from aisci.scorecache import ScoreModel

    now = now or datetime.datetime.now(datetime.UTC)
    shards = [read_shard_report(p) for p in shard_reports]
    runs = [read_score_report(p) for p in score_reports]
    per_chrom = read_summary(summary) if summary is not None else None
    cohort = CohortStore(store)
    models = cached_models(cohort.root / "scores") if runs else []
    missing = {(r["stage"], r["model"]) for r in runs} - {(m.stage, m.model_id) for m in models}
    models += [ScoreModel(stage, *model.rsplit("@", 1)) for stage, model in sorted(missing)]  # nothing cached yet
    try:
        sections = [cohort_section(cohort)]
        scan = scan_store(cohort, models)
    except (OSError, pa.ArrowException) as exc:
        raise InputError(f"{cohort.root}: cannot read the cohort store ({exc})") from None
    sections.append(variants_section(scan, per_chrom))
    if runs:
        sections.append(scores_section(runs, scan.coverage, sum(c.variants for c in scan.chroms.values())))
    if shards:
        sections.append(ingest_section(shards, list(cohort.samples())))
    n, v = cohort.n_samples(), sum(c.variants for c in scan.chroms.values())
    subtitle = (f"{n:,} sample{'s' if n != 1 else ''}, {v:,} distinct variants; store {cohort.root}; "
                f"written {now.isoformat(timespec='seconds')}")
    return page.render("aisci cohort reanalysis report", subtitle, sections)
