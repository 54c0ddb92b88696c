"""Alignment stage: reads -> aligner -> fixmate -> coordinate sort -> markdup -> indexed BAM; lanes merged before markdup.

Reads extracted from a BAM/CRAM keep their read groups: each read's ``RG:Z:`` FASTQ comment becomes
its RG tag (minimap2 -y, bwa mem -C) and the input's @RG lines head the aligner's SAM header.
"""

from __future__ import annotations

import argparse
import contextlib
import logging
import os
import subprocess
import tempfile
import threading
from pathlib import Path
from typing import Sequence

from aisci.errors import InputError, ToolError
from aisci.fileio import atomic_output
from aisci.germline.reads import Lane, ReadGroup, add_pair_options, bam_read_groups, check_lanes, lanes_from_args
from aisci.progress import Progress, read_offsets

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
    aligner: str, index: Path, fq1: Path, fq2: Path, sample: str, threads: int, lane: str | None = None,
    *, tags_from_comments: bool = False,
) -> list[str]:
    """The aligner's argv: minimap2 `-ax sr` with a .mmi index, or `bwa mem` with a bwa index prefix.

    With ``tags_from_comments`` the reads' FASTQ comments (SAM tags such as ``RG:Z:x``, as
    `samtools fastq -T` writes them) are copied into their records (minimap2 -y, bwa mem -C) and no
    read group is set with -R: the @RG lines then come from the input (see `input_read_groups`).
    """
    if aligner not in ALIGNERS:
        raise InputError(f"aligner {aligner!r} is not one of {', '.join(ALIGNERS)}")
    tags = [{"minimap2": "-y", "bwa": "-C"}[aligner]] if tags_from_comments else ["-R", read_group(sample, lane)]
    if aligner == "minimap2":
        return ["minimap2", "-ax", "sr", "-t", str(threads), *tags, str(index), str(fq1), str(fq2)]
    return ["bwa", "mem", "-t", str(threads), *tags, str(index), str(fq1), str(fq2)]


def input_read_groups(sample: str, groups: Sequence[ReadGroup], source: Path | str) -> list[ReadGroup]:
    """The read groups of a sample re-aligned from a BAM/CRAM whose header has these.

    Every field is kept, in order, but SM becomes the sample-sheet name (the sample is one sample
    downstream, whatever its read groups were called), and a read group without LB gets the sample
    name as its library, as a FASTQ sample's one library does (duplicates are marked per library:
    see `libraries`). Both changes are logged.

    Args:
        sample: the sample-sheet name.
        groups: the input's read groups (from `aisci.germline.reads.bam_read_groups`).
        source: the BAM/CRAM they came from (for the log).

    Returns:
        The read groups to write, in the input's order.
    """
    out = []
    for rg in groups:
        fields = [(tag, sample if tag == "SM" else value) for tag, value in rg.fields]
        old_sm = rg.get("SM")
        if old_sm is None:
            fields.append(("SM", sample))
            log.info("%s: read group %s has no SM; set to the sample %s", source, rg.id, sample)
        elif old_sm != sample:
            log.info("%s: read group %s has SM %s; set to the sample-sheet name %s", source, rg.id, old_sm, sample)
        if rg.get("LB") is None:
            fields.append(("LB", sample))
            log.info("%s: read group %s has no LB (library); set to the sample name %s", source, rg.id, sample)
        out.append(ReadGroup(rg.id, tuple(fields)))
    return out


def libraries(groups: Sequence[ReadGroup]) -> dict[str, list[str]]:
    """The read-group IDs of each library (LB), libraries in the order they first appear.

    `samtools markdup` knows no libraries: it compares every read with every other (or, with
    --use-read-groups, within a read group, which misses duplicates across the lanes of a
    library). Picard's rule, duplicates within a library only, is kept by marking each library
    on its own when there are several.
    """
    out: dict[str, list[str]] = {}
    for rg in groups:
        out.setdefault(rg.get("LB") or "", []).append(rg.id)
    return out


def _run_pipeline(commands: list[list[str]], reads: Sequence[Path] = ()) -> None:
    """Run commands connected by pipes; stderr goes to ours (the rule's log). Fail if any fails.

    With ``reads`` (the files the first command, the aligner, reads), the log gets the aligner's
    progress through them (`_watch_reads`).
    """
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
    stop = threading.Event()
    watcher = None
    if reads:
        watcher = threading.Thread(target=_watch_reads, args=(procs[0].pid, list(reads), stop), daemon=True)
        watcher.start()
    try:
        returncodes = [p.wait() for p in procs]
    finally:
        stop.set()
        if watcher is not None:
            watcher.join()
    failed = [(p.args[0], rc) for p, rc in zip(procs, returncodes) if rc != 0]
    if failed:
        name, rc = failed[0]
        raise ToolError(f"{name} exited with status {rc} (its messages are above in this log)")


def _watch_reads(pid: int, reads: list[Path], stop: threading.Event, interval: float = 5.0) -> None:
    """Log how far the aligner (process ``pid``) has read its FASTQ files, until ``stop`` is set.

    Aligners say nothing until they finish a batch of reads and nothing about the whole; the kernel
    knows each open file's offset (/proc/PID/fdinfo), so the share of the input bytes read (of the
    compressed files, for gzipped FASTQ) is the share of the work done. Where /proc is missing, or a
    file is, nothing is logged: progress never fails a job.
    """
    targets = {os.path.realpath(r) for r in reads}
    try:
        total = sum(os.path.getsize(r) for r in targets)
    except OSError:  # a file gone: the aligner fails and says so; progress has nothing to add
        return
    progress = Progress(f"aligning {', '.join(Path(r).name for r in reads)}", total / 1e6, "MB")
    while not stop.wait(interval):
        done = read_offsets(pid, targets)
        if done is not None and done / 1e6 > progress.done:
            progress.update(done / 1e6 - progress.done)
    progress.finish()


def align(
    *,
    aligner: str,
    index: Path,
    sample: str,
    out_bam: Path,
    fq1: Path | None = None,
    fq2: Path | None = None,
    lanes: Sequence[Lane] | None = None,
    read_groups_from: Path | None = None,
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

    A pair extracted from a BAM/CRAM (``read_groups_from``) keeps the input's read groups when its
    header has @RG lines: each read's ``RG:Z:`` comment becomes its RG tag and the header carries
    the input's @RG lines (see `input_read_groups`); `aisci check-reads` checked the comments
    against them. Without @RG lines it gets the one read group named after the sample. When its
    read groups hold several libraries (LB), duplicates are marked in each library on its own
    (`libraries`) and the libraries merged.

    Args:
        aligner: ``minimap2`` or ``bwa``.
        index: minimap2 ``.mmi`` file, or the bwa index prefix (the FASTA path).
        sample: sample name; sets the read group(s).
        out_bam: output BAM; ``out_bam.bai`` is written beside it.
        fq1: read 1 FASTQ of the sample's only pair.
        fq2: read 2 FASTQ of the sample's only pair.
        lanes: the sample's lanes, instead of ``fq1``/``fq2``.
        read_groups_from: the BAM/CRAM ``fq1``/``fq2`` were extracted from with ``samtools fastq -T RG``.
        dup_stats: optional file for `samtools markdup` statistics.
        threads: threads for the aligner and samtools.
        sort_mem_mb: memory per sort thread, in MB.

    Raises:
        InputError: neither or both of a pair and lanes, a bad or repeated lane id,
            ``read_groups_from`` with lanes, or an unreadable or malformed header there.
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
    groups: list[ReadGroup] = []
    if read_groups_from is not None:
        if lanes is not None:
            raise InputError("read_groups_from goes with fq1/fq2 (a BAM/CRAM is one pair, not lanes)")
        groups = input_read_groups(sample, bam_read_groups(Path(read_groups_from)), read_groups_from)
        if not groups:
            log.info("%s has no @RG lines: one read group named after the sample", read_groups_from)
    out_bam = Path(out_bam)
    out_bam.parent.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(prefix=f".{sample}.sort.", dir=out_bam.parent) as tmpdir:
        tmp = Path(tmpdir)
        tmp_bam = tmp / "markdup.bam"
        stats = ["-f", str(dup_stats)] if dup_stats else []
        markdup = ["samtools", "markdup", "-@", str(threads), *stats, "-", str(tmp_bam)]

        # the input's @RG lines, put before the aligner's own header lines (@SQ, @PG; neither
        # aligner writes @HD, which would have to come first) by `cat HEADER -` in the pipe
        rg_header = []
        if groups:
            header = tmp / "read_groups.sam"
            header.write_text("".join(f"{rg.line()}\n" for rg in groups))
            rg_header = [["cat", str(header), "-"]]

        def aligned_and_sorted(lane: str | None, fq1: Path, fq2: Path, *sort_out: str) -> list[list[str]]:
            if lane is not None:
                log.info("lane %s: %s %s", lane, fq1, fq2)
            return [
                aligner_command(aligner, index, fq1, fq2, sample, threads, lane, tags_from_comments=bool(groups)),
                *rg_header,
                # fixmate -m adds the mate-score tags that markdup needs; input is name-grouped
                # because aligners keep mates adjacent.
                ["samtools", "fixmate", "-m", "-u", "-", "-"],
                ["samtools", "sort", "-@", str(threads), "-m", f"{sort_mem_mb}M",
                 "-T", str(tmp / (f"sort.{lane}" if lane else "sort")), *sort_out, "-"],
            ]

        by_library = libraries(groups)
        if len(pairs) == 1 and len(by_library) <= 1:  # one pair streams from the aligner into markdup
            _run_pipeline([*aligned_and_sorted(*pairs[0], "-u"), markdup], reads=pairs[0][1:])
        elif len(pairs) == 1:  # one pair of several libraries (from a BAM/CRAM): markdup per library
            # level 1: the sorted BAM is read once per library; fast compression keeps the temporary disk small
            sorted_bam = tmp / "sorted.bam"
            _run_pipeline(aligned_and_sorted(*pairs[0], "-l", "1", "-o", str(sorted_bam)), reads=pairs[0][1:])
            _mark_each_library(sorted_bam, by_library, tmp_bam, dup_stats, threads)
        else:
            parts = []
            for lane, lane_fq1, lane_fq2 in pairs:
                part = tmp / f"lane.{lane}.bam"
                # level 1: the part is read once, by merge; fast compression keeps the temporary disk small
                _run_pipeline(aligned_and_sorted(lane, lane_fq1, lane_fq2, "-l", "1", "-o", str(part)),
                              reads=(lane_fq1, lane_fq2))
                parts.append(str(part))
            # merge keeps every lane's @RG (their IDs differ) and the coordinate order
            _run_pipeline([["samtools", "merge", "-u", "-@", str(threads), "-o", "-", *parts], markdup])
        _run_pipeline([["samtools", "index", "-@", str(threads), str(tmp_bam)]])
        # index first, then BAM: a BAM present at its final path always has a fresh index
        os.replace(f"{tmp_bam}.bai", f"{out_bam}.bai")
        os.replace(tmp_bam, out_bam)


def _mark_each_library(
    sorted_bam: Path, by_library: dict[str, list[str]], out_bam: Path, dup_stats: Path | None, threads: int
) -> None:
    """Mark duplicates in each library's reads on their own, then merge the libraries into ``out_bam``.

    ``dup_stats`` gets each library's `samtools markdup` statistics, each block headed by a
    ``LIBRARY: <LB> (read groups: ...)`` line.
    """
    tmp = sorted_bam.parent
    parts, blocks = [], []
    for i, (library, ids) in enumerate(by_library.items()):
        ids_file, part, stats = tmp / f"library.{i}.ids", tmp / f"library.{i}.bam", tmp / f"library.{i}.dup.txt"
        ids_file.write_text("".join(f"{rg}\n" for rg in ids))
        log.info("library %s: read groups %s", library, ", ".join(ids))
        # -D RG:FILE keeps the whole header and only reads tagged with a listed group (-R would also
        # keep reads without RG, in every library, and drop the other @RG lines)
        _run_pipeline([
            ["samtools", "view", "--no-PG", "-u", "-@", str(threads), "-D", f"RG:{ids_file}", str(sorted_bam)],
            ["samtools", "markdup", "-@", str(threads), *(["-f", str(stats)] if dup_stats else []), "-u", "-", str(part)],
        ])
        parts.append(str(part))
        if dup_stats:
            blocks.append(f"LIBRARY: {library} (read groups: {', '.join(ids)})\n{stats.read_text()}")
    # the parts share one header: -c and -p keep its @RG and @PG IDs as they are (without them
    # merge renames colliding IDs, and the reads' RG tags with them)
    _run_pipeline([["samtools", "merge", "-c", "-p", "-@", str(threads), "-o", str(out_bam), *parts]])
    if dup_stats:
        Path(dup_stats).write_text("".join(blocks))


def configure_parser(parser: argparse.ArgumentParser) -> None:
    """Options of `aisci align`."""
    parser.add_argument("--aligner", choices=ALIGNERS, default="minimap2")
    parser.add_argument("--index", required=True, type=Path, help="minimap2 .mmi, or bwa index prefix")
    add_pair_options(parser)
    parser.add_argument("--sample", required=True,
                        help="sample name (read group SM and LB; ID without --lane or input @RG lines)")
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
              fq1=args.fq1, fq2=args.fq2, lanes=lanes, read_groups_from=args.read_groups_from,
              dup_stats=stats, threads=args.threads, sort_mem_mb=args.sort_mem_mb)
    return 0
