"""One spelling per variant: trim the bases a split multi-allelic record leaves shared by REF and ALT, upper-case alleles.

A record ``TCC > T,TC`` splits into ``TCC>T`` and ``TCC>TC``; the second is the 1-bp deletion another
sample's VCF writes as ``TC>T``. Keys built from the untrimmed alleles would count and score one
variant twice, so after splitting, the common suffix and then the common prefix (moving POS) are
trimmed while both alleles keep at least one base — the minimal representation `bcftools norm`
gives. Left-alignment in repeats needs the reference and is left to the caller (`bcftools norm -f`,
which the germline pipeline runs). Symbolic (``<DEL>``) and ``*`` alleles are kept as written.
"""

from __future__ import annotations

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from aisci.cohort.tables import string_buffers


def trim(ref: str, alt: str, pos: int) -> tuple[str, str, int]:
    """Minimal representation of one REF/ALT pair: common suffix, then common prefix, each keeping one base."""
    while len(ref) > 1 and len(alt) > 1 and ref[-1] == alt[-1]:
        ref, alt = ref[:-1], alt[:-1]
    while len(ref) > 1 and len(alt) > 1 and ref[0] == alt[0]:
        ref, alt, pos = ref[1:], alt[1:], pos + 1
    return ref, alt, pos


def normalize_batch(batch: pa.RecordBatch) -> pa.RecordBatch:
    """Upper-case and trim the alleles of a CALLS batch (pos, ref and alt replaced where anything changed).

    Only rows whose REF and ALT are both longer than one base can change (a few per cent of a
    caller's output), so the Python work is over those rows' distinct allele pairs only.
    """
    ref, alt, pos = batch.column("ref"), batch.column("alt"), batch.column("pos")
    changed = False
    (ref_off, ref_bytes), (alt_off, alt_bytes) = string_buffers(ref), string_buffers(alt)
    ref_len, alt_len = np.diff(ref_off), np.diff(alt_off)
    if (ref_bytes >= ord("a")).any() or (alt_bytes >= ord("a")).any():  # lower-case letters (rare)
        ref, alt, changed = pc.utf8_upper(ref), pc.utf8_upper(alt), True
    # symbolic alleles (<DEL>) never change: their '<' and '>' match no REF base
    rows = np.flatnonzero((ref_len > 1) & (alt_len > 1))
    if rows.size:
        refs, alts = ref.take(rows).to_pylist(), alt.take(rows).to_pylist()
        poss = pos.take(rows).to_numpy()
        new = [trim(r, a, int(p)) for r, a, p in zip(refs, alts, poss)]
        moved = [i for i, (r, a, p) in enumerate(new) if (r, a, p) != (refs[i], alts[i], int(poss[i]))]
        if moved:
            idx = rows[moved]
            ref_py, alt_py, pos_np = ref.to_pylist(), alt.to_pylist(), pos.to_numpy().copy()
            for i, k in zip(moved, idx):
                ref_py[k], alt_py[k], pos_np[k] = new[i]
            ref, alt, pos = pa.array(ref_py, pa.string()), pa.array(alt_py, pa.string()), pa.array(pos_np, pa.int64())
            changed = True
    if not changed:
        return batch
    columns = {"pos": pos, "ref": ref, "alt": alt}
    return pa.RecordBatch.from_arrays([columns.get(f.name, batch.column(f.name)) for f in batch.schema],
                                      schema=batch.schema)
