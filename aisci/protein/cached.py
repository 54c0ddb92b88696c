"""Score once: protein language model scores of (wild-type, mutant) protein pairs, kept per model version.

An in-frame change scores the same whichever VCF, callset or batch it comes from (`aisci.protein.plm`
runs batches of fixed shape), so its score is a function of the two proteins, the model's files and
the strategy. `PairCache` keeps those scores, ``<root>/protein-pairs/<model>@<version>/part-<id>.parquet``
(columns key, strategy, score), where the version hashes the model's files (their SHA-256 in the
model store's manifest) and the requested strategy: a re-staged model or another strategy starts
afresh. A key is the SHA-256 of the two sequences. Each part is written whole under a temporary
name; parts only grow. fp16 scores (--precision fp16) are not cached.

`fill` scores what the cache lacks of some consequence tables, each pair once; `aisci.protein.variants`
``score_rows(..., cache=...)`` takes every score it can from the cache.
"""

from __future__ import annotations

import hashlib
import json
import logging
import time
import uuid
from collections.abc import Callable, Iterable, Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from aisci.errors import InputError
from aisci.fileio import atomic_output, write_json

log = logging.getLogger(__name__)

# Bump when what the scorer returns for the same pair, files and strategy changes.
REVISION = 1
STAGE = "protein-pairs"


def pair_key(wt: str, mut: str) -> str:
    """The cache key of a (wild-type, mutant) pair: 32 hex digits of SHA-256."""
    return hashlib.sha256(f"{wt}>{mut}".encode()).hexdigest()[:32]


@dataclass(frozen=True)
class PairCache:
    """The scores of one model version under ``root``."""

    root: Path
    model: str
    version: str

    @classmethod
    def for_model(cls, root: str | Path, store: str | None, model: str, strategy: str) -> "PairCache":
        """The cache of a store's model and a strategy (the model checked intact, as `aisci plm score` does).

        Raises:
            InputError: the model is not staged or fails verification.
        """
        from aisci.protein.store import check_model, scoring_identity, store_dir

        path = check_model(store_dir(store), model, where="--model")
        files, strategy = scoring_identity(path, model, strategy)
        text = json.dumps({"revision": REVISION, "files": files, "strategy": strategy}, sort_keys=True)
        return cls(Path(root), model, hashlib.sha256(text.encode()).hexdigest()[:12])

    @property
    def folder(self) -> Path:
        """``<root>/protein-pairs/<model>@<version>``."""
        return self.root / STAGE / f"{self.model}@{self.version}"

    def lookup(self, keys: Iterable[str]) -> dict[str, tuple[str, float]]:
        """The cached (strategy, score) of those ``keys`` the cache holds."""
        import pyarrow as pa
        import pyarrow.compute as pc
        import pyarrow.parquet as pq

        wanted = pa.array(sorted(set(keys)), pa.string())
        found: dict[str, tuple[str, float]] = {}
        if not len(wanted):
            return found
        for part in sorted(self.folder.glob("part-*.parquet")):
            t = pq.read_table(part)
            t = t.filter(pc.is_in(t.column("key"), value_set=wanted))
            for key, strategy, score in zip(*(t.column(c).to_pylist() for c in ("key", "strategy", "score"))):
                found.setdefault(key, (strategy, score))
        return found

    def add(self, rows: Sequence[tuple[str, str, float]]) -> Path | None:
        """Add (key, strategy, score) rows as one part, atomically; nothing for no rows."""
        import pyarrow as pa
        import pyarrow.parquet as pq

        if not rows:
            return None
        schema = pa.schema([pa.field("key", pa.string(), nullable=False), pa.field("strategy", pa.string()),
                            pa.field("score", pa.float64())])
        table = pa.Table.from_arrays([pa.array(list(c), f.type) for c, f in zip(zip(*rows), schema)], schema=schema)
        path = self.folder / f"part-{uuid.uuid4().hex}.parquet"
        with atomic_output(path, suffix=".part") as tmp:
            pq.write_table(table, tmp)
        return path


def cached_scores(pairs: Sequence[tuple[str, str]], cache: PairCache, load: Callable[[], Any], strategy: str,
                  batch_size: int) -> tuple[list[tuple[str, float]], int]:
    """(strategy, score) of each pair, from the cache or scored (each distinct missing pair once) and added.

    Args:
        pairs: (wild type, mutant) proteins.
        cache: the model version's cache.
        load: loads the model; called only when a pair is missing.
        strategy: the requested strategy (indels are scored with pseudo-ppl whatever it is).
        batch_size: sequences per forward pass.

    Returns:
        The scores in order, and how many distinct pairs were scored now.
    """
    from aisci.protein.plm import score_variants

    keys = [pair_key(wt, mut) for wt, mut in pairs]
    known = cache.lookup(keys)
    missing = {k: p for k, p in zip(keys, pairs) if k not in known}
    if missing:
        scores = score_variants(load(), list(missing.values()), strategy, batch_size=batch_size)
        new = [(k, s.strategy, float(s.score)) for k, s in zip(missing, scores)]
        cache.add(new)
        known.update((k, (st, sc)) for k, st, sc in new)
    return [known[k] for k in keys], len(missing)


@dataclass
class FillCounts:
    """What `fill` did: tables read, scorable rows (with repeats), distinct pairs, pairs scored now, seconds."""

    tables: int = 0
    rows: int = 0
    pairs: int = 0
    scored: int = 0
    seconds: float = 0.0


def fill(cache: PairCache, load: Callable[[], Any], strategy: str, batch_size: int, tables: Iterable[str],
         regions: Any = None) -> FillCounts:
    """Score every scorable pair of the consequence ``tables`` (rows in ``regions``) that the cache lacks, once."""
    from aisci.protein.consequence import read_consequences, scorable

    counts, t0 = FillCounts(), time.perf_counter()
    pairs: dict[str, tuple[str, str]] = {}
    for path in tables:
        table = read_consequences(path)
        if regions:
            import pyarrow as pa

            table = table.filter(pa.array(regions.mask(table["chrom"].to_pylist(), table["pos"].to_numpy())))
        rows = [r for r in table.select(["consequence", "wt_protein", "mut_protein"]).to_pylist() if scorable(r)]
        counts.tables += 1
        counts.rows += len(rows)
        pairs.update((pair_key(r["wt_protein"], r["mut_protein"]), (r["wt_protein"], r["mut_protein"])) for r in rows)
    counts.pairs = len(pairs)
    _, counts.scored = cached_scores(list(pairs.values()), cache, load, strategy, batch_size)
    counts.seconds = round(time.perf_counter() - t0, 3)
    log.info("%s@%s: %d tables, %d scorable rows, %d distinct protein changes, %d not in the cache before, "
             "scored in %.1f s", cache.model, cache.version, counts.tables, counts.rows, counts.pairs, counts.scored,
             counts.seconds)
    return counts


def write_summary(path: str | Path, cache: PairCache, counts: FillCounts) -> None:
    """The JSON record of one `fill`."""
    write_json(path, {"model": cache.model, "version": cache.version, **asdict(counts)})


def refuse_reduced_precision(precision: str) -> None:
    """The cache holds fp32 scores only."""
    if precision != "fp32":
        raise InputError(f"--precision {precision}: the score cache holds fp32 scores only; drop --cache or score in fp32")
