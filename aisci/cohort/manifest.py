"""The reanalysis manifest (`samples.tsv`: sample, vcf), checked line by line before any work starts."""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

from aisci.errors import InputError
from aisci.fileio import read_utf8
from aisci.names import check_name

COLUMNS = ("sample", "vcf")


@dataclass(frozen=True)
class Sample:
    """One manifest row: the sample's name, its VCF (absolute) and the manifest line it came from."""

    name: str
    vcf: Path
    line: int


def read_manifest(path: str | os.PathLike[str], check_files: bool = True) -> list[Sample]:
    """Read and check a manifest: a header ``sample<TAB>vcf``, then one row per sample.

    Relative VCF paths are taken relative to the manifest's folder. Blank lines and lines starting
    with ``#`` after the header are ignored.

    Args:
        path: the manifest TSV.
        check_files: also require every VCF to exist (a dry run of 10,000 samples still affords this).

    Returns:
        The samples, in manifest order.

    Raises:
        InputError: naming the manifest, the line and the field: a missing or unknown column, a bad
            (`aisci.names.check_name`) or duplicate sample name, an empty or missing VCF path.
    """
    manifest = Path(path)
    text = read_utf8(manifest)
    lines = [(n, line.rstrip("\r\n")) for n, line in enumerate(text.splitlines(), 1)]
    lines = [(n, line) for n, line in lines if line.strip() and not line.startswith("#")]
    if not lines:
        raise InputError(f"{manifest}: empty manifest (a header 'sample<TAB>vcf' and one row per sample are needed)")
    head_no, head = lines[0]
    header = head.split("\t")
    unknown = [c for c in header if c not in COLUMNS]
    if unknown:
        raise InputError(f"{manifest} line {head_no}: unknown column {unknown[0]!r} (the columns are: sample, vcf)")
    missing = [c for c in COLUMNS if c not in header]
    if missing:
        raise InputError(f"{manifest} line {head_no}: the header has no {missing[0]!r} column")
    if len(set(header)) != len(header):
        raise InputError(f"{manifest} line {head_no}: a column appears twice")
    i_name, i_vcf = header.index("sample"), header.index("vcf")
    base = manifest.resolve().parent
    seen: dict[str, int] = {}
    samples = []
    for n, line in lines[1:]:
        fields = line.split("\t")
        where = f"{manifest} line {n}"
        if len(fields) != len(header):
            raise InputError(f"{where}: {len(fields)} fields, the header has {len(header)} (fields are tab-separated)")
        name, vcf = fields[i_name].strip(), fields[i_vcf].strip()
        check_name(name, f"{where}: sample")  # the one rule (`aisci.names`): it becomes a file name in the store
        if name in seen:
            raise InputError(f"{where}: duplicate sample {name!r} (first on line {seen[name]})")
        seen[name] = n
        if not vcf:
            raise InputError(f"{where}: vcf is empty")
        vcf_path = Path(vcf) if os.path.isabs(vcf) else base / vcf
        if check_files and not vcf_path.is_file():
            raise InputError(f"{where}: vcf {vcf} does not exist (looked for {vcf_path})")
        samples.append(Sample(name, vcf_path, n))
    if not samples:
        raise InputError(f"{manifest}: no samples after the header")
    return samples


def n_shards(n_samples: int, size: int) -> int:
    """How many shards of ``size`` samples hold ``n_samples``."""
    if size < 1:
        raise InputError(f"shard size must be at least 1, got {size}")
    return max(1, -(-n_samples // size))


def shard(samples: list[Sample], index: int, size: int) -> list[Sample]:
    """The ``index``-th shard (0-based) of ``size`` consecutive samples.

    Raises:
        InputError: for an index outside the manifest's shards.
    """
    total = n_shards(len(samples), size)
    if not 0 <= index < total:
        raise InputError(f"shard {index} does not exist: {len(samples)} samples make {total} shards of {size}")
    return samples[index * size:(index + 1) * size]
