"""Alignment stage: reads -> aligner -> fixmate -> coordinate sort -> markdup -> indexed BAM; lanes merged before markdup."""

from __future__ import annotations

import argparse
import contextlib
import logging
import os
import subprocess
import tempfile
from pathlib import Path
from typing import Sequence

from aisci.errors import InputError, ToolError
from aisci.fileio import atomic_output
from aisci.reads import Lane, add_pair_options, check_lanes, lanes_from_args

log = logging.getLogger(__name__)

ALIGNERS = ("minimap2", "bwa")


def read_group(sample: str, lane: str | None = None) -> str:
    """The @RG header line (tab-escaped, as minimap2/bwa -R expect) for a sample, or for one lane of it.

    Without a lane, one read group per sample: ID, SM and LB are the sample name. With a lane, one
    read group per lane (ID ``<sample>.<lane>``, PU the lane) but still one library per sample (LB),
    so that duplicate marking treats the sample's lanes as one library and joint calling as one sample.
    """
    if lane is None:
        return rf"@RG\tID:{sample}\tSM:{sample}\tLB:{sample}\tPL:ILLUMINA"
    return rf"@RG\tID:{sample}.{lane}\tSM:{sample}\tLB:{sample}\tPU:{lane}\tPL:ILLUMINA"


def aligner_command(
    aligner: str, index: Path, fq1: Path, fq2: Path, sample: str, threads: int, lane: str | None = None
) -> list[str]:
    """The aligner's argv: minimap2 `-ax sr` with a .mmi index, or `bwa mem` with a bwa index prefix."""
    rg = read_group(sample, lane)
    if aligner == "minimap2":
        return ["minimap2", "-ax", "sr", "-t", str(threads), "-R", rg, str(index), str(fq1), str(fq2)]
    if aligner == "bwa":
        return ["bwa", "mem", "-t", str(threads), "-R", rg, str(index), str(fq1), str(fq2)]
    raise InputError(f"aligner {aligner!r} is not one of {', '.join(ALIGNERS)}")


def _run_pipeline(commands: list[list[str]]) -> None:
    """Run commands connected by pipes; stderr goes to ours (the rule's log). Fail if any fails."""
    procs: list[subprocess.Popen] = []
    prev = None
    for i, cmd in enumerate(commands):
        log.info("running: %s", " ".join(cmd))
        last = i == len(commands) - 1
        p = subprocess.Popen(cmd, stdin=prev, stdout=None if last else subprocess.PIPE)
        if prev is not None:
            prev.close()  # so that the upstream process gets SIGPIPE if this one dies
        prev = p.stdout
        procs.append(p)
    failed = [(p.args[0], rc) for p in procs if (rc := p.wait()) != 0]
    if failed:
        name, rc = failed[0]
        raise ToolError(f"{name} exited with status {rc} (its messages are above in this log)")


def align(
    *,
    aligner: str,
    index: Path,
    sample: str,
    out_bam: Path,
    fq1: Path | None = None,
    fq2: Path | None = None,
    lanes: Sequence[Lane] | None = None,
    dup_stats: Path | None = None,
    threads: int = 1,
    sort_mem_mb: int = 768,
) -> None:
    """Align a sample's reads and write a duplicate-marked, coordinate-sorted, indexed BAM.

    The reads are one FASTQ pair (``fq1``/``fq2``; one read group named after the sample) or one
    pair per lane (``lanes``; one read group per lane). With several lanes each is aligned, fixed
    and sorted into a temporary BAM, and the lanes are merged before duplicate marking, so that a
    duplicate whose copies were sequenced on different lanes of the library is marked. One lane
    streams straight into duplicate marking, as one pair does.

    Args:
        aligner: ``minimap2`` or ``bwa``.
        index: minimap2 ``.mmi`` file, or the bwa index prefix (the FASTA path).
        sample: sample name; sets the read group(s).
        out_bam: output BAM; ``out_bam.bai`` is written beside it.
        fq1: read 1 FASTQ of the sample's only pair.
        fq2: read 2 FASTQ of the sample's only pair.
        lanes: the sample's lanes, instead of ``fq1``/``fq2``.
        dup_stats: optional file for `samtools markdup` statistics.
        threads: threads for the aligner and samtools.
        sort_mem_mb: memory per sort thread, in MB.

    Raises:
        InputError: neither or both of a pair and lanes, or a bad or repeated lane id.
        ToolError: a tool failed. Nothing is left at ``out_bam``.
    """
    # (lane id or None, fq1, fq2): None is the sample's only pair, read group named after the sample
    pairs: list[tuple[str | None, Path, Path]]
    if lanes is not None and fq1 is None and fq2 is None:
        pairs = [(lane.id, Path(lane.fq1), Path(lane.fq2)) for lane in check_lanes(lanes)]
    elif lanes is None and fq1 is not None and fq2 is not None:
        pairs = [(None, Path(fq1), Path(fq2))]
    else:
        raise InputError("align needs either fq1 and fq2, or lanes")
    out_bam = Path(out_bam)
    out_bam.parent.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(prefix=f".{sample}.sort.", dir=out_bam.parent) as tmpdir:
        tmp = Path(tmpdir)
        tmp_bam = tmp / "markdup.bam"
        stats = ["-f", str(dup_stats)] if dup_stats else []
        markdup = ["samtools", "markdup", "-@", str(threads), *stats, "-", str(tmp_bam)]

        def aligned_and_sorted(lane: str | None, fq1: Path, fq2: Path, *sort_out: str) -> list[list[str]]:
            if lane is not None:
                log.info("lane %s: %s %s", lane, fq1, fq2)
            return [
                aligner_command(aligner, index, fq1, fq2, sample, threads, lane),
                # fixmate -m adds the mate-score tags that markdup needs; input is name-grouped
                # because aligners keep mates adjacent.
                ["samtools", "fixmate", "-m", "-u", "-", "-"],
                ["samtools", "sort", "-@", str(threads), "-m", f"{sort_mem_mb}M",
                 "-T", str(tmp / (f"sort.{lane}" if lane else "sort")), *sort_out, "-"],
            ]

        if len(pairs) == 1:  # one pair streams from the aligner into markdup: no temporary BAM
            _run_pipeline([*aligned_and_sorted(*pairs[0], "-u"), markdup])
        else:
            parts = []
            for lane, lane_fq1, lane_fq2 in pairs:
                part = tmp / f"lane.{lane}.bam"
                # level 1: the part is read once, by merge; fast compression keeps the temporary disk small
                _run_pipeline(aligned_and_sorted(lane, lane_fq1, lane_fq2, "-l", "1", "-o", str(part)))
                parts.append(str(part))
            # merge keeps every lane's @RG (their IDs differ) and the coordinate order
            _run_pipeline([["samtools", "merge", "-u", "-@", str(threads), "-o", "-", *parts], markdup])
        _run_pipeline([["samtools", "index", "-@", str(threads), str(tmp_bam)]])
        # index first, then BAM: a BAM present at its final path always has a fresh index
        os.replace(f"{tmp_bam}.bai", f"{out_bam}.bai")
        os.replace(tmp_bam, out_bam)


def configure_parser(parser: argparse.ArgumentParser) -> None:
    """Options of `aisci align`."""
    parser.add_argument("--aligner", choices=ALIGNERS, default="minimap2")
    parser.add_argument("--index", required=True, type=Path, help="minimap2 .mmi, or bwa index prefix")
    add_pair_options(parser)
    parser.add_argument("--sample", required=True, help="sample name (read group SM and LB; ID without --lane)")
    parser.add_argument("--out", required=True, type=Path, help="output BAM (+ .bai)")
    parser.add_argument("--dup-stats", type=Path, help="write samtools markdup statistics here")
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--sort-mem-mb", type=int, default=768, help="memory per sort thread")


def run(args: argparse.Namespace) -> int:
    """Run the alignment pipe."""
    lanes = lanes_from_args(args)
    with contextlib.ExitStack() as stack:
        stats = stack.enter_context(atomic_output(args.dup_stats)) if args.dup_stats else None
        align(aligner=args.aligner, index=args.index, sample=args.sample, out_bam=args.out,
              fq1=args.fq1, fq2=args.fq2, lanes=lanes,
              dup_stats=stats, threads=args.threads, sort_mem_mb=args.sort_mem_mb)
    return 0
