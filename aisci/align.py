"""Alignment stage: reads -> aligner -> fixmate -> coordinate sort -> markdup -> indexed BAM, streamed in one pipe."""

from __future__ import annotations

import argparse
import contextlib
import logging
import os
import subprocess
import tempfile
from pathlib import Path

from aisci.errors import InputError, ToolError
from aisci.fileio import atomic_output

log = logging.getLogger(__name__)

ALIGNERS = ("minimap2", "bwa")


def read_group(sample: str) -> str:
    """The @RG header line (tab-escaped, as minimap2/bwa -R expect) for a sample.

    One read group per sample: ID, SM and LB are the sample name, so duplicate marking and
    joint calling treat each sample as one library.
    """
    return rf"@RG\tID:{sample}\tSM:{sample}\tLB:{sample}\tPL:ILLUMINA"


def aligner_command(aligner: str, index: Path, fq1: Path, fq2: Path, sample: str, threads: int) -> list[str]:
    """The aligner's argv: minimap2 `-ax sr` with a .mmi index, or `bwa mem` with a bwa index prefix."""
    rg = read_group(sample)
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
    fq1: Path,
    fq2: Path,
    sample: str,
    out_bam: Path,
    dup_stats: Path | None = None,
    threads: int = 1,
    sort_mem_mb: int = 768,
) -> None:
    """Align a FASTQ pair and write a duplicate-marked, coordinate-sorted, indexed BAM.

    Args:
        aligner: ``minimap2`` or ``bwa``.
        index: minimap2 ``.mmi`` file, or the bwa index prefix (the FASTA path).
        fq1: read 1 FASTQ.
        fq2: read 2 FASTQ.
        sample: sample name; sets the read group.
        out_bam: output BAM; ``out_bam.bai`` is written beside it.
        dup_stats: optional file for `samtools markdup` statistics.
        threads: threads for the aligner and samtools.
        sort_mem_mb: memory per sort thread, in MB.

    Raises:
        ToolError: a tool in the pipe failed. Nothing is left at ``out_bam``.
    """
    out_bam = Path(out_bam)
    out_bam.parent.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(prefix=f".{sample}.sort.", dir=out_bam.parent) as tmpdir:
        tmp_bam = Path(tmpdir) / "markdup.bam"
        stats = ["-f", str(dup_stats)] if dup_stats else []
        _run_pipeline(
            [
                aligner_command(aligner, index, fq1, fq2, sample, threads),
                # fixmate -m adds the mate-score tags that markdup needs; input is name-grouped
                # because aligners keep mates adjacent.
                ["samtools", "fixmate", "-m", "-u", "-", "-"],
                ["samtools", "sort", "-u", "-@", str(threads), "-m", f"{sort_mem_mb}M",
                 "-T", str(Path(tmpdir) / "sort"), "-"],
                ["samtools", "markdup", "-@", str(threads), *stats, "-", str(tmp_bam)],
            ]
        )
        _run_pipeline([["samtools", "index", "-@", str(threads), str(tmp_bam)]])
        # index first, then BAM: a BAM present at its final path always has a fresh index
        os.replace(f"{tmp_bam}.bai", f"{out_bam}.bai")
        os.replace(tmp_bam, out_bam)


def configure_parser(parser: argparse.ArgumentParser) -> None:
    """Options of `aisci align`."""
    parser.add_argument("--aligner", choices=ALIGNERS, default="minimap2")
    parser.add_argument("--index", required=True, type=Path, help="minimap2 .mmi, or bwa index prefix")
    parser.add_argument("--fq1", required=True, type=Path)
    parser.add_argument("--fq2", required=True, type=Path)
    parser.add_argument("--sample", required=True, help="sample name (read group ID and SM)")
    parser.add_argument("--out", required=True, type=Path, help="output BAM (+ .bai)")
    parser.add_argument("--dup-stats", type=Path, help="write samtools markdup statistics here")
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--sort-mem-mb", type=int, default=768, help="memory per sort thread")


def run(args: argparse.Namespace) -> int:
    """Run the alignment pipe."""
    with contextlib.ExitStack() as stack:
        stats = stack.enter_context(atomic_output(args.dup_stats)) if args.dup_stats else None
        align(aligner=args.aligner, index=args.index, fq1=args.fq1, fq2=args.fq2, sample=args.sample,
              out_bam=args.out, dup_stats=stats, threads=args.threads, sort_mem_mb=args.sort_mem_mb)
    return 0
