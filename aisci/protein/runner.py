"""Protein language models in the score caches: the cache model of a staged model and options, and its runner.

`protein_model` checks every input (reference, annotation, staged model, options) before any model
loads and names the model's cache by their content; `ProteinRunner` annotates each variant's coding
consequences and scores the in-frame changes, so cached values equal those of `aisci plm score`.
"""

from __future__ import annotations

import threading
from pathlib import Path
from typing import Any

import pyarrow as pa

from aisci.errors import InputError
from aisci.protein.consequence import COLUMNS, ModelCache, RefMismatch, annotate_variant
from aisci.protein.plm import STRATEGIES
from aisci.protein.store import check_model, scoring_identity
from aisci.protein.transcripts import load_transcripts
from aisci.protein.variants import score_rows
from aisci.scorecache import (
    KEY_COLUMNS,
    PROTEIN_SCORES,
    ScoreModel,
    cached_sha256,
    check_runtime,
    input_file,
    model_version,
    parsed_once,
    reference_path,
    unchanged_sha256,
)



def protein_model(ref: str | Path, annotation: str | Path, model: str, store: str | Path | None = None,
                  strategy: str = "masked-marginals", batch_size: int = 16, device: str = "auto",
                  threads: int = 0) -> ScoreModel:
    """The protein language model of a cohort's protein scores, every input checked before any model loads.

    Args:
        ref: reference FASTA (plain or bgzip, indexed).
        annotation: GFF3 or GTF with exon and CDS lines.
        model: model name in the model store.
        store: the model store (default: $AISCI_MODELS).
        strategy: masked-marginals, wt-marginals or pseudo-ppl (indels always use pseudo-ppl).
        batch_size: sequences per forward pass.
        device: auto, cpu, cuda or cuda:N (checked for syntax only).
        threads: torch CPU threads per process (0: torch's default).

    Returns:
        The model; its version changes with the model files, reference, annotation and strategy.

    Raises:
        InputError: naming the option and file: unknown strategy, bad device, threads or batch size,
            unreadable reference, malformed annotation, a model not staged or failing verification.
    """
    if strategy not in STRATEGIES:
        raise InputError(f"--strategy {strategy!r}: expected one of {', '.join(STRATEGIES)}")
    check_runtime(device, threads, batch_size)
    ref_path = reference_path(ref)
    ann_path = input_file(annotation, "--annotation")
    ann_sha = cached_sha256(ann_path)
    parsed_once(load_transcripts, str(ann_path), ann_sha)
    model_dir = check_model(store, model, where="--model")  # verified against the store's manifest
    files, strategy = scoring_identity(model_dir, model, strategy)
    content = {"weights": files, "reference": cached_sha256(ref_path), "annotation": ann_sha, "strategy": strategy}
    options = {"ref": str(ref_path), "annotation": str(ann_path), "model": model, "model_dir": str(model_dir),
               "strategy": strategy, "device": device, "threads": int(threads), "batch_size": int(batch_size),
               "content": content}
    return ScoreModel("protein", model, model_version("protein", content), options)


class ProteinRunner:
    """Consequences of each variant on every transcript (aisci.protein.consequence), in-frame changes scored by ESM."""

    def __init__(self, opts: dict[str, Any]) -> None:
        import pysam

        from aisci.protein.plm import load  # torch: imported only when a runner is built

        self.lock = threading.Lock()
        self.opts = opts
        self.fasta = pysam.FastaFile(opts["ref"])
        self.cache = ModelCache(self.fasta)
        sha = unchanged_sha256(Path(opts["annotation"]), opts["content"]["annotation"], opts["annotation"])
        self.transcripts = parsed_once(load_transcripts, opts["annotation"], sha)
        self.bundle = load(opts["model_dir"], device=opts["device"], name=opts["model"])

    def score(self, chrom: str, variants: pa.Table) -> pa.Table:
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
        return pa.Table.from_pylist(rows, schema=PROTEIN_SCORES)
