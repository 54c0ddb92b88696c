"""Resource requests that rules declare: memory and wall time that grow with each retry.

``mem_per_attempt`` gives ``mem_mb``; ``runtime_per_attempt`` gives Snakemake's ``runtime``
(minutes) from the size of a job's inputs:

    minutes = ceil((base_min + (min_per_gb * GB + min_per_k_records * records / 1000) * share
                    / (1 + efficiency * (threads - 1))) * factor ** (attempt - 1)),
    clamped to [floor, ceiling].

GB are decimal (1e9 bytes) of the files *as stored*: a gzipped FASTQ, a BAM or a CRAM counts
compressed, a CRAM as ``CRAM_AS_BAM`` times its bytes (the BAM it would be). Records come from
a VCF's tabix index (exact, nothing decompressed), else from its size at ``VCF_BYTES_PER_RECORD``.
An input that does not exist yet (a dry run; a file made earlier in the same group job) makes
that term 0, so the estimate falls back to ``base_min`` (or to ``fallback_bytes``): a dry run
never fails. Retries multiply by ``factor`` (2, as ``mem_per_attempt``), so a job killed at its
time limit comes back with twice the time. Snakemake passes ``wildcards``, ``input``,
``threads`` and ``attempt`` to the callable by parameter name; it keeps whole minutes.

Presets, one per rule class (CPU-minutes on one thread; ``efficiency`` is the share of each
further thread that shortens the job). Measured on the 2-vCPU AMD EPYC development VM with
the real NA12878 chr20 reads of shared/data (101 bp pairs, HiSeq qualities), the commands and
timings below; quality binning (NovaSeq, 4 levels) halves a FASTQ.gz or a BAM for the same
reads (measured: 1.07 -> 2.0 bases per FASTQ.gz byte; BAM 3.93 -> 2.00 MB), so per-GB figures
are given for binned files, the denser case.

=================  ======  ======  ========  ====  ==============================================
preset             base    /GB     /1k rec   eff.  source
=================  ======  ======  ========  ====  ==============================================
ALIGN_MINIMAP2     10      20      -         0.75  assumed, see below (measured here: 1.9 + 0.9)
ALIGN_BWA          10      60      -         0.75  3x minimap2 (minimap2 paper; here: 7.5x)
EXTRACT_READS      2       4       -         0.75  collate | fastq, 2 threads: 2.3 min/GB of BAM
SCAN               2       1       -         0     stats 0.6, check-reads 0.4, flagstat 0.1 /GB
CALL               1       8       -         0.9   mpileup | call: 8.0 min/GB of binned BAM
VCF_PASS           2       2       -         0     concat | norm, filters + tabix: 300k rec/s
SPLICEAI_CPU       5       -       3.2       0.75  measured: 3.3-3.5 entries/s on 2 threads
SPLICEAI_GPU       5       -       0.2       0     assumed 10x the 2-thread CPU job; unmeasured
INDEX_BWA          5       50      -         0     bwa index: 186 s for 64 MB of FASTA (all bases)
INDEX_MINIMAP2     2       1       -         0     minimap2 -x sr -d: 4.3 s per 102 MB of FASTA
PREPARE_REFERENCE  2       1       -         0     gzip -cdf + faidx: 0.8 s per 31 MB of .fa.gz
=================  ======  ======  ========  ====  ==============================================

Measurements (``/usr/bin/time``; reads x20 = the pairs concatenated 20 times, 97.6 MB):

* ``minimap2 -ax sr -t 1 ref.mmi R1.fq.gz R2.fq.gz``: 10.8-11.6 s (-t 2: 6.2-6.6 s, efficiency
  0.73), i.e. 1.9 CPU-min/GB of full-quality FASTQ.gz; ``samtools fixmate | sort | markdup`` +
  index, 2 threads: 0.9 CPU-min/GB. ``bwa mem -t 1``: 85 s (-t 2: 58 s), 7.5x minimap2.
  The reference here is 1.3 Mb of real sequence: reads meet none of the genome's repeats, so this
  is a lower bound (binned: 3.6 + 1.7). The presets take the order public pipelines report, the
  planning figure of benchmarks/placement/runtimes.yaml: ~20 core-hours of minimap2 for a 30x
  genome's ~60 GB of FASTQ.gz, 20 CPU-min/GB, about 4x this lower bound; bwa mem three times that
  (minimap2 paper: "3-4 times as fast as BWA-MEM"). Not measured at genome scale: a retry
  doubles the time, and benchmarks/align_reads/*.tsv of the first genome should replace it.
* ``samtools collate -u -O -@ 2 | samtools fastq``: 5.2-5.6 s per 40 MB of BAM (1.04 M reads);
  a CRAM holds the same reads in 0.32 of the BAM's bytes (``CRAM_AS_BAM``). FASTQ.gz written by
  samtools fastq is 1.5x the BAM's bytes (``FASTQ_GZ_PER_BAM_BYTE``).
* ``samtools stats --reference``: 1.4 s, ``samtools flagstat``: 0.25 s per 40 MB of BAM;
  ``aisci check-reads``: 2.5 s per 97.6 MB of FASTQ.gz.
* ``bcftools mpileup -a FORMAT/AD,FORMAT/DP -q 20 -Q 13 -d 500 | bcftools call -mv``: 1.0-1.1 s
  over chr20:10.0-10.1 Mb at ~50x (2.0 MB binned BAM), 0.09 s of it start-up: about 5 CPU-hours
  for a 30x genome. A calling job reads only its share of the BAMs: pass ``share`` (its length
  over the genome's). Its chunks run ``threads`` at a time as separate processes: efficiency 0.9
  assumed (not measurable on this shared 2-vCPU VM). Whole minutes make any job at least 1.
* SpliceAI scores each ALT allele x gene whose transcript span holds it. The packaged GRCh38 genes
  (19,305) cover 35.3% of the genome, 0.363 genes per base: 0.363 entries per (split) record. At
  3.4 entries/s on 2 threads that is 1.8 min per 1,000 records (3.2 on one thread at eff. 0.75).
* VCF.gz written by bcftools call (one sample, AD/DP): 48.6 bytes per record.
"""

from __future__ import annotations

import gzip
import logging
import math
import os
import struct
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from typing import Any

log = logging.getLogger(__name__)

#: Resource classes a job can run in: "cpu" (no GPU) or "gpu" (the GPUs it declares).
CPU, GPU = "cpu", "gpu"
GB = 1e9  # decimal, as aisci.placement counts input bytes
CRAM_AS_BAM = 3.2  # BAM bytes per CRAM byte, same reads (binned: 1,995,145 / 634,248)
FASTQ_GZ_PER_BAM_BYTE = 1.5  # samtools fastq output per BAM byte (binned: 60.2 MB / 40.0 MB)
VCF_BYTES_PER_RECORD = 50.0  # bgzipped single-sample bcftools call output: 48.6 measured
_TBI_PSEUDO_BIN = 37450  # htslib's per-reference bin holding (n_mapped, n_unmapped)


def mem_per_attempt(base_mb: int, factor: float = 2.0) -> Callable[[Any, int], int]:
    """A Snakemake ``mem_mb`` callable: ``base_mb`` on the first attempt, times ``factor`` on each retry.

    A job killed for exceeding its memory (Slurm OUT_OF_MEMORY) is resubmitted by Snakemake's
    ``retries`` with the next attempt number, and so with more memory.

    Args:
        base_mb: memory of the first attempt, in MB.
        factor: growth per retry.

    Returns:
        A function of (wildcards, attempt) giving MB.
    """
    if base_mb <= 0 or factor < 1:
        raise ValueError("base_mb must be positive and factor >= 1")

    def mem_mb(wildcards: Any, attempt: int) -> int:
        return int(base_mb * factor ** (attempt - 1))

    mem_mb.__name__ = f"mem_per_attempt_{base_mb}"
    return mem_mb


# --------------------------------------------------------------------------- measuring inputs


def bytes_of(paths: Iterable[str | os.PathLike[str]]) -> float | None:
    """Bytes of the files as stored, a CRAM counted as ``CRAM_AS_BAM`` times its size.

    Args:
        paths: the files.

    Returns:
        The sum, or None when any file does not exist (yet).
    """
    total = 0.0
    for path in paths:
        try:
            size = os.path.getsize(path)
        except OSError:
            return None
        total += size * CRAM_AS_BAM if os.fspath(path).endswith(".cram") else size
    return total


def tabix_records(index: str | os.PathLike[str]) -> int | None:
    """Records of a bgzipped VCF, read from its tabix (.tbi) index without touching the VCF.

    Args:
        index: the ``.tbi`` file.

    Returns:
        The number of records placed on a contig, or None when the file is missing, is not a
        tabix index or carries no counts (htslib writes them; a few other writers do not).
    """
    try:
        with gzip.open(index, "rb") as fh:
            data = fh.read()
        if data[:4] != b"TBI\x01":
            return None
        n_ref = struct.unpack_from("<i", data, 4)[0]
        l_nm = struct.unpack_from("<i", data, 32)[0]
        at = 36 + l_nm
        records, counted = 0, False
        for _ in range(n_ref):
            n_bin = struct.unpack_from("<i", data, at)[0]
            at += 4
            for _ in range(n_bin):
                bin_id, n_chunk = struct.unpack_from("<Ii", data, at)
                at += 8
                if bin_id == _TBI_PSEUDO_BIN and n_chunk == 2:
                    records += struct.unpack_from("<Q", data, at + 16)[0]
                    counted = True
                at += 16 * n_chunk
            n_intv = struct.unpack_from("<i", data, at)[0]
            at += 4 + 8 * n_intv
    except (OSError, EOFError, struct.error):
        return None
    return records if counted or n_ref == 0 else None


def records_of(paths: Iterable[str | os.PathLike[str]]) -> float | None:
    """Records of VCF files: from each tabix index (the path itself if it is a ``.tbi``, else
    ``path.tbi``), else from the file's size at ``VCF_BYTES_PER_RECORD``.

    Args:
        paths: VCF files or their ``.tbi`` indexes.

    Returns:
        The sum, or None when any file does not exist (yet).
    """
    total = 0.0
    for path in paths:
        name = os.fspath(path)
        index = name if name.endswith(".tbi") else f"{name}.tbi"
        counted = tabix_records(index)
        if counted is not None:
            total += counted
            continue
        size = bytes_of([name])
        if size is None or name.endswith(".tbi"):
            return None
        total += size / VCF_BYTES_PER_RECORD
    return total


def _named_files(input: Any, name: str) -> list[str]:
    """The files of input ``name`` of a Snakemake ``InputFiles`` (one file or a list of them)."""
    if name not in input.keys():
        raise ValueError(f"runtime: the rule has no input named {name!r} (it has {sorted(input.keys())})")
    value = input[name]
    if isinstance(value, (str, os.PathLike)):
        return [os.fspath(value)]
    return [os.fspath(f) for f in value]


# --------------------------------------------------------------------------- the estimate


def estimate_minutes(
    base_min: float,
    min_per_gb: float,
    gb: float,
    min_per_k_records: float,
    records: float,
    *,
    threads: int = 1,
    attempt: int = 1,
    efficiency: float = 1.0,
    share: float = 1.0,
    factor: float = 2.0,
    floor: int = 1,
    ceiling: int | None = None,
) -> int:
    """The module's formula (see its docstring), for measured sizes. Arguments as in
    :func:`runtime_per_attempt`; ``gb`` and ``records`` measure the job's inputs.

    Returns:
        Whole minutes, within [floor, ceiling].
    """
    speedup = 1 + efficiency * (max(1, int(threads)) - 1)
    work = (min_per_gb * gb + min_per_k_records * records / 1000) * share / speedup
    # round first: 12.000000001 minutes of float noise must not become 13
    minutes = math.ceil(round((base_min + work) * factor ** (max(1, int(attempt)) - 1), 6))
    minutes = max(floor, minutes)
    return minutes if ceiling is None else min(ceiling, minutes)


def runtime_per_attempt(
    base_min: float,
    min_per_gb: float = 0.0,
    inputs: Sequence[str] = (),
    *,
    min_per_k_records: float = 0.0,
    records: Sequence[str] = (),
    efficiency: float = 1.0,
    share: float | Callable[[Any], float] = 1.0,
    fallback_bytes: Callable[[Any], float | None] | None = None,
    factor: float = 2.0,
    floor: int = 1,
    ceiling: int | None = None,
) -> Callable[..., int]:
    """A Snakemake ``runtime`` callable: minutes from the size of the named inputs, growing per retry.

    Args:
        base_min: minutes of a job with empty inputs (start-up, loading an index or a model).
        min_per_gb: CPU-minutes per GB (1e9 bytes, as stored) of the ``inputs`` on one thread.
        inputs: names of the rule's inputs whose bytes are measured, e.g. ``("fq1", "fq2")``.
        min_per_k_records: CPU-minutes per 1,000 VCF records of the ``records`` inputs.
        records: names of the rule's VCF (or ``.tbi``) inputs whose records are counted.
        efficiency: 0..1, how much each thread beyond the first shortens the work (1: the work
            divides by ``threads``; 0: threads do not help, or the work is on a GPU).
        share: the fraction of the inputs a job reads (a calling group: its length over the
            genome's), or a function of the wildcards giving it.
        fallback_bytes: function of the wildcards giving the bytes to assume when an ``inputs``
            file does not exist yet (None: fall back to ``base_min``), e.g. for a file that an
            earlier job of the same group job writes.
        factor: growth per retry (``mem_per_attempt``'s 2 by default).
        floor: fewest minutes.
        ceiling: most minutes (None: no limit; partitions' limits live in profiles/).

    Returns:
        A function of (wildcards, input, threads, attempt) giving whole minutes.

    Raises:
        ValueError: on a negative coefficient, a coefficient without inputs to measure (or
            inputs without a coefficient), ``efficiency`` outside 0..1, ``share`` outside (0, 1],
            ``factor`` < 1, ``floor`` < 1 or ``ceiling`` < ``floor``; the callable raises it for
            an input name the rule does not have or a ``share`` function outside (0, 1].
    """
    for label, names in (("inputs", inputs), ("records", records)):
        if isinstance(names, str) or not all(isinstance(n, str) for n in names):
            raise ValueError(f"{label} must be a tuple of input names, e.g. ('fq1', 'fq2'), got {names!r}")
    if min(base_min, min_per_gb, min_per_k_records) < 0:
        raise ValueError("base_min, min_per_gb and min_per_k_records must be >= 0")
    if bool(min_per_gb) != bool(inputs) or bool(min_per_k_records) != bool(records):
        raise ValueError("min_per_gb needs inputs and min_per_k_records needs records (and vice versa)")
    if not 0 <= efficiency <= 1:
        raise ValueError(f"efficiency must be within 0..1, got {efficiency}")
    if not callable(share) and not 0 < share <= 1:
        raise ValueError(f"share must be within (0, 1], got {share}")
    if factor < 1 or floor < 1 or (ceiling is not None and ceiling < floor):
        raise ValueError("factor must be >= 1, floor >= 1 and ceiling (if given) >= floor")

    def runtime(wildcards: Any, input: Any, threads: int = 1, attempt: int = 1, rulename: str = "") -> int:
        size = bytes_of(f for n in inputs for f in _named_files(input, n)) if inputs else 0.0
        if size is None and fallback_bytes is not None:
            size = fallback_bytes(wildcards)
        count = records_of(f for n in records for f in _named_files(input, n)) if records else 0.0
        fraction = share(wildcards) if callable(share) else share
        if not 0 < fraction <= 1:
            raise ValueError(f"runtime of {rulename or 'a rule'}: share must be within (0, 1], got {fraction}")
        minutes = estimate_minutes(
            base_min, min_per_gb, (size or 0.0) / GB, min_per_k_records, count or 0.0,
            threads=threads, attempt=attempt, efficiency=efficiency, share=fraction,
            factor=factor, floor=floor, ceiling=ceiling,
        )
        if log.isEnabledFor(logging.DEBUG):
            log.debug(
                "runtime of %s %s: %s GB, %s records, %s threads, attempt %s -> %d min", rulename,
                dict(wildcards.items()) if hasattr(wildcards, "items") else wildcards,
                "?" if size is None else f"{size / GB:.3g}", "?" if count is None else f"{count:.0f}",
                threads, attempt, minutes,
            )
        return minutes

    runtime.__name__ = f"runtime_per_attempt_{base_min:g}"
    return runtime


# --------------------------------------------------------------------------- presets


@dataclass(frozen=True)
class RuntimeModel:
    """Coefficients of one rule class; see the table in the module docstring."""

    base_min: float
    min_per_gb: float = 0.0
    min_per_k_records: float = 0.0
    efficiency: float = 1.0
    floor: int = 1

    def per_attempt(
        self,
        inputs: Sequence[str] = (),
        records: Sequence[str] = (),
        **options: Any,
    ) -> Callable[..., int]:
        """:func:`runtime_per_attempt` with these coefficients.

        Args:
            inputs: input names whose bytes are measured (needed when ``min_per_gb`` is set).
            records: VCF input names whose records are counted (needed with ``min_per_k_records``).
            **options: ``share``, ``fallback_bytes``, ``factor``, ``ceiling``.

        Returns:
            The runtime callable.
        """
        return runtime_per_attempt(
            self.base_min, self.min_per_gb, inputs, min_per_k_records=self.min_per_k_records,
            records=records, efficiency=self.efficiency, floor=self.floor, **options,
        )


ALIGN_MINIMAP2 = RuntimeModel(base_min=10, min_per_gb=20, efficiency=0.75, floor=10)
ALIGN_BWA = RuntimeModel(base_min=10, min_per_gb=60, efficiency=0.75, floor=10)
EXTRACT_READS = RuntimeModel(base_min=2, min_per_gb=4, efficiency=0.75, floor=2)
SCAN = RuntimeModel(base_min=2, min_per_gb=1, efficiency=0, floor=2)
CALL = RuntimeModel(base_min=1, min_per_gb=8, efficiency=0.9)
VCF_PASS = RuntimeModel(base_min=2, min_per_gb=2, efficiency=0, floor=2)
SPLICEAI_CPU = RuntimeModel(base_min=5, min_per_k_records=3.2, efficiency=0.75, floor=5)
SPLICEAI_GPU = RuntimeModel(base_min=5, min_per_k_records=0.2, efficiency=0, floor=5)
INDEX_BWA = RuntimeModel(base_min=5, min_per_gb=50, efficiency=0, floor=5)
INDEX_MINIMAP2 = RuntimeModel(base_min=2, min_per_gb=1, efficiency=0, floor=2)
PREPARE_REFERENCE = RuntimeModel(base_min=2, min_per_gb=1, efficiency=0, floor=2)

#: the align_reads preset of each aligner (config ``aligner``)
ALIGN_MODELS: dict[str, RuntimeModel] = {"minimap2": ALIGN_MINIMAP2, "bwa": ALIGN_BWA}
