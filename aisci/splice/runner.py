"""SpliceAI in the score caches: the cache model of a set of scoring options, and its runner, loaded once per process.

`splice_model` checks every input (reference, annotation, weights, options) before any model loads
and names the model's cache by their content; `SpliceRunner` scores a chromosome's variants with
`aisci.splice.scoring.Scorer`, so cached values equal those of `aisci splice score`.
"""

from __future__ import annotations

import threading
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pyarrow as pa

from aisci.errors import InputError
from aisci.scorecache import (
    KEY_COLUMNS,
    SPLICE_SCORES,
    ScoreModel,
    cached_sha256,
    check_runtime,
    input_file,
    model_version,
    parsed_once,
    reference_path,
    unchanged_sha256,
)
from aisci.splice.annotation import PACKAGED, load_annotation, packaged_table
from aisci.splice.scoring import CHUNK, SKIPS, check_distance, chunks
from aisci.splice.weights import FILES, INSTALL, SPLICEAI, weights_dir

SPLICE_NAME = "spliceai-1.3.1"


def splice_model(ref: str | Path, annotation: str | Path, weights: str | Path | None = None, distance: int = 50,
                 mask: bool = False, device: str = "auto", threads: int = 0, batch_size: int = 64,
                 verify_weights: bool = True) -> ScoreModel:
    """The SpliceAI model of a cohort's splice scores, every input checked before any model loads.

    Args:
        ref: reference FASTA the VCFs were called against (plain or bgzip, indexed).
        annotation: "grch37" / "grch38" (the spliceai package's tables) or a table, GFF3 or GTF file.
        weights: folder with spliceai1..5.h5 (default: $AISCI_SPLICEAI_WEIGHTS, else the spliceai package's).
        distance: max distance between the variant and a gained or lost site (spliceai -D).
        mask: masked scores (spliceai -M 1).
        device: auto, cpu, cuda or cuda:N (checked for syntax only: workers may have GPUs the driver lacks).
        threads: torch CPU threads per process (0: torch's default).
        batch_size: variant windows per forward pass.
        verify_weights: require the official spliceai 1.3.1 files (SHA-256).

    Returns:
        The model; its version changes with the weights, reference, annotation, distance and mask.

    Raises:
        InputError: naming the option and file: bad distance, device, threads or batch size, unreadable
            reference, missing or malformed annotation, missing or altered weight file.
    """
    check_distance(distance)
    check_runtime(device, threads, batch_size)
    ref_path = reference_path(ref)
    spec = str(annotation) if str(annotation) in PACKAGED else str(input_file(annotation, "--annotation"))
    ann_path = packaged_table(spec) if spec in PACKAGED else Path(spec)
    ann_sha = cached_sha256(input_file(ann_path, "--annotation"))
    parsed_once(load_annotation, spec, ann_sha)
    folder = weights_dir(weights).resolve()
    hashes = {}
    for name in FILES:
        path = folder / name
        if not path.is_file():
            raise InputError(f"--splice-weights {folder}: {name} missing (stage the weights with `{INSTALL}`)")
        hashes[name] = cached_sha256(path)
        if verify_weights and hashes[name] != SPLICEAI.sha256[name]:
            raise InputError(f"--splice-weights {path}: SHA-256 differs from the official spliceai 1.3.1 release")
    content = {"weights": hashes, "reference": cached_sha256(ref_path), "annotation": ann_sha,
               "distance": int(distance), "mask": bool(mask)}
    options = {"ref": str(ref_path), "annotation": spec, "weights": str(folder), "distance": int(distance),
               "mask": bool(mask), "device": device, "threads": int(threads), "batch_size": int(batch_size),
               "content": content}
    return ScoreModel("splice", SPLICE_NAME, model_version("splice", content), options)


@dataclass(frozen=True)
class _Record:
    """What `Scorer.plan` reads of a VCF record."""

    chrom: str
    pos: int
    ref: str
    alts: tuple[str, ...]
    id: str


class SpliceRunner:
    """aisci.splice.scoring.Scorer on one reference, annotation and engine; unscored records keep the skip reason."""

    def __init__(self, opts: dict[str, Any]) -> None:
        import pysam

        from aisci.device import pick_device
        from aisci.splice.engine import Engine
        from aisci.splice.scoring import Scorer

        self.lock = threading.Lock()
        self.fasta = pysam.FastaFile(opts["ref"])
        spec = opts["annotation"]
        sha = unchanged_sha256(packaged_table(spec) if spec in PACKAGED else Path(spec), opts["content"]["annotation"], spec)
        annotation = parsed_once(load_annotation, spec, sha)
        from aisci.splice import weights  # looked up at call time: tests replace load_ensemble

        engine = Engine(weights.load_ensemble(opts["weights"], verify=False), pick_device(opts["device"]),
                        batch_size=opts["batch_size"])
        self.scorer = Scorer(self.fasta, annotation, engine, opts["distance"], opts["mask"], skip_mismatch=True,
                             source="cohort store")

    def score(self, chrom: str, variants: pa.Table) -> pa.Table:
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
        names = SPLICE_SCORES.names
        return pa.Table.from_pydict(dict(zip(names, zip(*rows))), schema=SPLICE_SCORES)
