"""The protein pipeline's report: the model, every protein's mutagenesis map and scores, the embeddings.

Built from the files workflows/protein wrote (results/plm/): the mutagenesis tables (all 19 substitutions at
every position), their heatmaps (embedded as PNG: the pictures the pipeline drew), the embeddings table, and
the model store's manifest entry of the model that scored them.
"""

from __future__ import annotations

import base64
import datetime
import math
from collections.abc import Sequence
from dataclasses import dataclass
from html import escape
from importlib import metadata
from pathlib import Path
from typing import Any

from aisci.errors import InputError
from aisci.fileio import check_readable
from aisci.report import svg
from aisci.report.page import Section, numbers, table

MAX_HEATMAPS = 24  # embedded PNGs (about 100 kB each); the rest are named, in results/plm/mutagenesis/
MAX_SIMILARITY = 40  # proteins in the embedding similarity map


@dataclass(frozen=True)
class Map:
    """One protein's saturation mutagenesis: its scores and their summary."""

    key: str  # the file name's: the FASTA id with characters outside [A-Za-z0-9._-] replaced
    protein: str
    length: int
    scores: list[float]
    model: str
    strategy: str
    lowest: tuple[str, float]  # (change as wt+position+mt, score)
    highest: tuple[str, float]

    @property
    def mean(self) -> float:
        return sum(self.scores) / len(self.scores)


def read_map(path: Path) -> Map:
    """A mutagenesis table (results/plm/mutagenesis/{protein}.parquet): protein, position, wt, mt, score, ..."""
    import pyarrow.parquet as pq

    check_readable(path, "mutagenesis table")
    cols = ["protein", "position", "wt", "mt", "score", "model", "strategy"]
    try:
        t = pq.read_table(path)
    except (OSError, ValueError) as exc:
        raise InputError(f"{path}: not a Parquet table ({exc})") from None
    missing = set(cols) - set(t.column_names)
    if missing or t.num_rows == 0:
        raise InputError(f"{path}: not a mutagenesis table ({'missing ' + ', '.join(sorted(missing)) if missing else 'no rows'})")
    d = t.select(cols).to_pydict()
    scored = [(s, f"{w}{p}{m}") for s, w, p, m in zip(d["score"], d["wt"], d["position"], d["mt"]) if s is not None]
    if not scored:
        raise InputError(f"{path}: no scored substitution")
    low, high = min(scored), max(scored)
    return Map(path.name.removesuffix(".parquet"), d["protein"][0], max(d["position"]), [s for s, _ in scored], d["model"][0], d["strategy"][0],
               (low[1], low[0]), (high[1], high[0]))


def run_section(maps: Sequence[Map], model: str | None, store: Path | None, now: datetime.datetime) -> Section:
    """The model (its store manifest entry: source, architecture, file checksums), the strategy, versions."""
    from aisci.protein.store import list_models

    s = Section("run", "The run")
    strategies = sorted({m.strategy for m in maps})
    s.blocks.append(numbers([("proteins", len(maps)), ("model", model or (maps[0].model if maps else "?")),
                             ("strategy", ", ".join(strategies) or "?"), ("written (UTC)", now.isoformat(timespec="seconds"))]))
    versions = []
    for package in ("aisci", "torch", "transformers", "pyarrow"):
        try:
            versions.append([package, metadata.version(package)])
        except metadata.PackageNotFoundError:
            versions.append([package, None])
    s.heading("Packages")
    s.blocks.append(table(["package", "version"], versions))
    if model and store is not None:
        entry = next((e for e in list_models(store) if e.name == model), None)
        if entry is None:
            raise InputError(f"model store {store}: no model {model!r} in its manifest")
        s.heading(f"Model {model}")
        s.blocks.append(numbers([("source", entry.source), ("architecture", entry.architecture), ("layers", entry.layers),
                                 ("hidden", entry.hidden), ("window (residues)", entry.window), ("added", entry.added)]))
        s.blocks.append(table(["file", "bytes", "sha256"], [[f, v["size"], v["sha256"]] for f, v in sorted(entry.files.items())]))
    return s


def _png(path: Path) -> str:
    check_readable(path, "heatmap")
    data = path.read_bytes()
    if not data.startswith(b"\x89PNG\r\n\x1a\n"):
        raise InputError(f"{path}: not a PNG image")
    return base64.b64encode(data).decode()


def mutagenesis_section(maps: Sequence[Map], heatmaps: dict[str, Path]) -> Section:
    """Per protein: length, substitutions, mean, lowest and highest change; the score distribution; the heatmaps."""
    s = Section("mutagenesis", "Saturation mutagenesis")
    s.blocks.append(table(["protein", "length", "substitutions scored", "mean score", "lowest change", "lowest score",
                           "highest change", "highest score"],
                          [[m.protein, m.length, len(m.scores), m.mean, *m.lowest, *m.highest] for m in maps]))
    s.note("Score: the model's log-likelihood ratio of the substitution against the wild type (lower: less "
           "likely under the model, more likely damaging).")
    everything = [x for m in maps for x in m.scores]
    lo, hi = min(everything), max(everything)
    width = (hi - lo) / 40 or 1.0
    bins = [0] * 40
    for x in everything:
        bins[min(int((x - lo) / width), 39)] += 1
    s.charts(svg.histogram("Substitution scores, all proteins", [(lo + i * width, n) for i, n in enumerate(bins)],
                           x_label="score (lower: more damaging)", y_label="substitutions"))
    shown = [m for m in maps if m.key in heatmaps][:MAX_HEATMAPS]
    if shown:
        s.heading("Heatmaps")
        s.blocks.append('<div class="figures">' + "".join(
            f'<figure><img alt="mutagenesis heatmap of {escape(m.protein)}" src="data:image/png;base64,'
            f'{_png(heatmaps[m.key])}"><figcaption>{escape(m.protein)} ({m.length} residues)</figcaption></figure>'
            for m in shown) + "</div>")
        rest = [m.key for m in maps if m.key in heatmaps][MAX_HEATMAPS:]
        if rest:
            s.note(f"{len(rest)} more heatmaps in results/plm/mutagenesis/: {', '.join(rest[:20])}"
                   + (" ..." if len(rest) > 20 else ""))
    return s


def read_embeddings(path: Path) -> list[dict[str, Any]]:
    """The embeddings table (results/plm/embeddings.parquet): protein, length, model, embedding."""
    import pyarrow.parquet as pq

    check_readable(path, "embeddings table")
    try:
        t = pq.read_table(path)
    except (OSError, ValueError) as exc:
        raise InputError(f"{path}: not a Parquet table ({exc})") from None
    missing = {"protein", "length", "model", "embedding"} - set(t.column_names)
    if missing:
        raise InputError(f"{path}: not an embeddings table (missing {', '.join(sorted(missing))})")
    return t.select(["protein", "length", "model", "embedding"]).to_pylist()


def embeddings_section(rows: Sequence[dict[str, Any]]) -> Section:
    """Per protein: length, model, dimensions, norm; cosine similarities between the proteins' embeddings."""
    s = Section("embeddings", "Embeddings")

    def norm(v: Sequence[float]) -> float:
        return math.sqrt(sum(x * x for x in v))

    s.blocks.append(table(["protein", "length", "model", "dimensions", "L2 norm"],
                          [[r["protein"], r["length"], r["model"], len(r["embedding"]), norm(r["embedding"])] for r in rows]))
    some = rows[:MAX_SIMILARITY]
    if len(some) >= 2:
        norms = [norm(r["embedding"]) or 1.0 for r in some]
        sims = [[sum(a * b for a, b in zip(r["embedding"], q["embedding"])) / (na * nb) for q, nb in zip(some, norms)]
                for r, na in zip(some, norms)]
        names = [r["protein"] for r in some]
        s.charts(svg.heatmap("Cosine similarity of the mean-pooled embeddings", names, names, sims,
                             x_label="protein", y_label="protein"))
        if len(rows) > len(some):
            s.note(f"Similarities of the first {len(some)} of {len(rows)} proteins.")
    return s
