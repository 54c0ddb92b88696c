"""Model runners of the score caches: SpliceAI and protein language model scorers, loaded once per process."""

from __future__ import annotations

import threading
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pyarrow as pa

from aisci.cohort import schema
from aisci.cohort.scores import KEY_COLUMNS, ScoreModel, _parsed, _sha256
from aisci.errors import InputError

_LOADED: dict[str, Any] = {}  # model_id -> loaded scorer of this process
MAX_LOADED = 2  # models kept loaded per process (a worker scoring splice then protein keeps both)
_LOCK = threading.Lock()


def _runner(model: ScoreModel) -> Any:
    with _LOCK:
        runner = _LOADED.get(model.model_id)
        if runner is None:
            if not model.options:
                raise InputError(f"{model.model_id}: no scoring options; build the model with splice_model() "
                                 "or protein_model()")
            if model.options.get("threads"):
                import torch

                torch.set_num_threads(model.options["threads"])
            runner = (_Splice if model.stage == "splice" else _Protein)(model.options)
            while len(_LOADED) >= MAX_LOADED:  # a long-lived worker meeting a new version drops the oldest
                _LOADED.pop(next(iter(_LOADED)))
            _LOADED[model.model_id] = runner
        return runner


@dataclass(frozen=True)
class _Record:
    """What `Scorer.plan` reads of a VCF record."""

    chrom: str
    pos: int
    ref: str
    alts: tuple[str, ...]
    id: str


class _Splice:
    """aisci.splice.scoring.Scorer on one reference, annotation and engine; unscored records keep the skip reason."""

    def __init__(self, opts: dict[str, Any]) -> None:
        import pysam

        from aisci.context import pick_device
        from aisci.splice.engine import Engine
        from aisci.splice.scoring import Scorer
        from aisci.splice.weights import load_ensemble

        self.lock = threading.Lock()
        self.fasta = pysam.FastaFile(opts["ref"])
        annotation = _parsed("splice", opts["annotation"], _annotation_sha(opts))
        engine = Engine(load_ensemble(opts["weights"], verify=False), pick_device(opts["device"]),
                        batch_size=opts["batch_size"])
        self.scorer = Scorer(self.fasta, annotation, engine, opts["distance"], opts["mask"], skip_mismatch=True,
                             source="cohort store")

    def score(self, chrom: str, variants: pa.Table) -> pa.Table:
        from aisci.splice.scoring import CHUNK, SKIPS, chunks

        records = [_Record(chrom, pos, ref, (alt,), vid) for vid, pos, ref, alt in
                   zip(*(variants.column(c).to_pylist() for c in KEY_COLUMNS))]
        rows: list[tuple[Any, ...]] = []
        for chunk in chunks(iter(records), CHUNK):
            planned, reasons = [], []
            for rec in chunk:
                before = [self.scorer.counts[k] for k in SKIPS]
                try:
                    planned.append(self.scorer.plan(rec))
                except InputError:  # the contig of an annotated gene is not in the reference
                    planned.append(None)
                    reasons.append("contig not in reference")
                    continue
                after = [self.scorer.counts[k] for k in SKIPS]
                reasons.append(next((k for k, b, a in zip(SKIPS, before, after) if a > b), "not scored"))
            self.scorer.run([p for p in planned if p is not None])
            for rec, p, reason in zip(chunk, planned, reasons):
                head = (rec.id, rec.pos, rec.ref, rec.alts[0])
                if p is None or not p.entries:
                    rows.append((*head, reason, None, None, *(None,) * 8))
                else:
                    rows += [(*head, "scored", e.gene.name, e.gene.strand, *e.values) for e in p.entries]
        names = schema.SPLICE_SCORES.names
        return pa.Table.from_pydict(dict(zip(names, zip(*rows))), schema=schema.SPLICE_SCORES)


class _Protein:
    """Consequences of each variant on every transcript (aisci.protein.consequence), in-frame changes scored by ESM."""

    def __init__(self, opts: dict[str, Any]) -> None:
        import pysam

        from aisci.protein.consequence import ModelCache
        from aisci.protein.esm import load_esm

        self.lock = threading.Lock()
        self.opts = opts
        self.fasta = pysam.FastaFile(opts["ref"])
        self.cache = ModelCache(self.fasta)
        self.transcripts = _parsed("protein", opts["annotation"], _annotation_sha(opts))
        self.bundle = load_esm(opts["model_dir"], device=opts["device"], name=opts["model"])

    def score(self, chrom: str, variants: pa.Table) -> pa.Table:
        from aisci.protein.consequence import COLUMNS, RefMismatch, annotate_variant
        from aisci.protein.variants import score_rows

        rows: list[dict[str, Any]] = []
        for vid, pos, ref, alt in zip(*(variants.column(c).to_pylist() for c in KEY_COLUMNS)):
            head = {"variant_id": vid, "pos": pos, "ref": ref, "alt": alt}
            try:
                found = annotate_variant(chrom, pos, ref, alt, self.transcripts, self.fasta, cache=self.cache)
            except RefMismatch:
                found, status = [], "ref mismatch"
            except InputError:
                found, status = [], "contig not in reference"
            else:
                status = "unscorable allele" if set(alt.upper()) - set("ACGTN") else "intergenic"
            if not found:
                rows.append({**head, "status": status})
            rows += [{**head, **{c: getattr(f, c) for c in COLUMNS if c not in head}} for f in found]
        todo = [r for r in rows if "transcript" in r]
        score_rows(todo, self.bundle, self.opts["strategy"], self.opts["batch_size"])
        for r in todo:
            r["status"] = "scored" if r["score"] is not None else "not scored"
        return pa.Table.from_pylist(rows, schema=schema.PROTEIN_SCORES)


def _annotation_sha(opts: dict[str, Any]) -> str:
    """The annotation's hash, which must still be the one the model version was made from."""
    from aisci.splice.annotation import PACKAGED, packaged_table

    spec = opts["annotation"]
    sha = _sha256(packaged_table(spec) if spec in PACKAGED else Path(spec))
    if sha != opts["content"]["annotation"]:
        raise InputError(f"{spec}: the annotation changed since the model version was computed; run again")
    return sha
