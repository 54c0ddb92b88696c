"""Call one group of chunks: bcftools mpileup | call on each chunk, in parallel on the job's threads, concatenated in order."""

from __future__ import annotations

import argparse
import logging
import os
import shlex
import subprocess
import tempfile
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

from aisci.errors import InputError, ToolError
from aisci.fileio import atomic_output

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class CallOptions:
    """bcftools mpileup filters (config calling.*)."""

    min_mapq: int = 20
    min_baseq: int = 13
    max_depth: int = 500


def read_group_regions(path: str | os.PathLike[str]) -> list[tuple[str, str]]:
    """A group's regions file as (chunk name, that chunk's 3-column regions text), in file order.

    Raises:
        InputError: a line without four tab-separated fields.
    """
    chunks: dict[str, list[str]] = {}
    for n, line in enumerate(Path(path).read_text().splitlines(), 1):
        fields = line.split("\t")
        if len(fields) != 4:
            raise InputError(f"{path} line {n}: expected CHROM, BEG, END, CHUNK (tab-separated)")
        chunks.setdefault(fields[3], []).append("\t".join(fields[:3]) + "\n")
    if not chunks:
        raise InputError(f"{path}: no regions")
    return [(name, "".join(lines)) for name, lines in chunks.items()]


def _call_chunk(bams: list[str], ref: str, regions: Path, out: Path, options: CallOptions) -> None:
    """One chunk: mpileup | call -m, variants only, to BCF (the same command the pipeline ran per chunk job)."""
    q = shlex.quote
    mpileup = (f"bcftools mpileup --fasta-ref {q(ref)} --regions-file {q(str(regions))} --annotate FORMAT/AD,FORMAT/DP"
               f" --min-MQ {int(options.min_mapq)} --min-BQ {int(options.min_baseq)} --max-depth {int(options.max_depth)}"
               f" --output-type u {' '.join(q(b) for b in bams)}")
    call = f"bcftools call --multiallelic-caller --variants-only --output-type b --output {q(str(out))}"
    res = subprocess.run(["bash", "-o", "pipefail", "-c", f"{mpileup} | {call}"], capture_output=True, text=True)
    if res.returncode != 0:
        raise ToolError(f"chunk {regions.stem}: bcftools failed (exit {res.returncode}): {res.stderr.strip()[-2000:]}")


def call_group(bams: list[str], ref: str, regions_file: str | os.PathLike[str], out: str | os.PathLike[str],
               threads: int = 1, options: CallOptions = CallOptions()) -> int:
    """Call every chunk of a group, ``threads`` at a time, and concatenate their BCFs in order into ``out``.

    Chunks are disjoint and in reference order, so the concatenation is sorted. ``out`` appears only
    when every chunk succeeded (written under a temporary name, then renamed).

    Returns:
        The number of chunks called.

    Raises:
        InputError: a malformed regions file.
        ToolError: bcftools failed on a chunk (named, with bcftools' message).
    """
    chunks = read_group_regions(regions_file)
    out = Path(out)
    start = time.monotonic()
    with tempfile.TemporaryDirectory(prefix=".call-", dir=out.parent) as tmp:
        parts = []
        for name, text in chunks:
            (Path(tmp) / f"{name}.tsv").write_text(text)
            parts.append(Path(tmp) / f"{name}.bcf")
        with ThreadPoolExecutor(max_workers=max(1, threads)) as pool:
            futures = [pool.submit(_call_chunk, bams, ref, Path(tmp) / f"{name}.tsv", part, options)
                       for (name, _), part in zip(chunks, parts)]
            for future in futures:
                future.result()
        with atomic_output(out) as staged:
            if len(parts) == 1:
                os.replace(parts[0], staged)
            else:
                list_file = Path(tmp) / "parts.txt"
                list_file.write_text("".join(f"{p}\n" for p in parts))
                res = subprocess.run(["bcftools", "concat", "--file-list", str(list_file), "--output-type", "b",
                                      "--output", str(staged)], capture_output=True, text=True)
                if res.returncode != 0:
                    raise ToolError(f"bcftools concat failed (exit {res.returncode}): {res.stderr.strip()[-2000:]}")
    log.info("%d chunks called on %d threads in %.1f s", len(chunks), threads, time.monotonic() - start)
    return len(chunks)


def configure_parser(parser: argparse.ArgumentParser) -> None:
    """Options of `aisci call`."""
    parser.add_argument("--bams", nargs="+", required=True, help="the callset's BAMs (indexed)")
    parser.add_argument("--ref", required=True, help="reference FASTA (with .fai)")
    parser.add_argument("--regions-file", required=True, help="the group's regions: CHROM, BEG, END, CHUNK")
    parser.add_argument("--out", required=True, help="output BCF")
    parser.add_argument("--threads", type=int, default=1, help="chunks called at once")
    parser.add_argument("--min-mapq", type=int, default=CallOptions.min_mapq, help="mpileup --min-MQ")
    parser.add_argument("--min-baseq", type=int, default=CallOptions.min_baseq, help="mpileup --min-BQ")
    parser.add_argument("--max-depth", type=int, default=CallOptions.max_depth, help="mpileup --max-depth")


def run(args: argparse.Namespace) -> int:
    """Call a group."""
    n = call_group(args.bams, args.ref, args.regions_file, args.out, args.threads,
                   CallOptions(args.min_mapq, args.min_baseq, args.max_depth))
    print(f"{args.out}: {n} chunks")
    return 0
