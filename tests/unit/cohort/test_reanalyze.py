"""Pieces of `aisci reanalyze` that need no cluster: opening a store after a kill, the end-of-run summary."""

from __future__ import annotations

import os
import time

from aisci.cohort.reanalyze import STALE_TEMP_S, Failure, Outcome, open_store, stages_of


def test_open_store_removes_stale_cache_temporaries_only(tmp_path):
    root = tmp_path / "store"
    open_store(root)
    part_dir = root / "scores" / "protein" / "m@0123456789ab" / "chrom=chr1"
    part_dir.mkdir(parents=True)
    old = part_dir / ".part-aaa.parquet.x1.tmp.part"   # left by a run killed an hour ago
    new = part_dir / ".part-bbb.parquet.x2.tmp.part"   # a concurrent writer's, now
    done = part_dir / "part-ccc.parquet"
    for p in (old, new, done):
        p.write_bytes(b"x")
    past = time.time() - STALE_TEMP_S - 60
    os.utime(old, (past, past))
    open_store(root)
    assert not old.exists() and new.exists() and done.exists()


def test_outcome_lists_failures_last():
    o = Outcome(ingested=["A"], up_to_date=2, scored={"splice": 3}, cached={"splice": 4}, tasks={"splice": 1},
                gpu_tasks={"splice": 1}, failures=[Failure("sample B", "b.vcf line 3: POS 'x' is not a positive integer")],
                seconds={"ingest": 1.0})
    text = o.text().splitlines()
    assert text[0] == "samples ingested: 1, already in the store and unchanged: 2"
    assert text[1] == ("splice: 3 variants scored now, 4 taken from the score cache; 1 scoring tasks, "
                       "1 on GPU workers")
    assert text[-2:] == ["FAILED (1):", "  sample B: b.vcf line 3: POS 'x' is not a positive integer"]
    assert stages_of("all") == ["splice", "protein"] and stages_of("none") == []
