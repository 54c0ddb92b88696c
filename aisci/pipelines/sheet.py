"""The germline sample sheet: a TSV of samples, their FASTQ pairs (lanes) or BAM/CRAM, and truth VCFs, checked row by row."""

from __future__ import annotations

import csv
import os
from dataclasses import dataclass
from pathlib import Path

from aisci.errors import InputError
from aisci.fileio import check_readable, read_utf8
from aisci.germline.reference import Contig
from aisci.names import check_name
from aisci.schema import load_schema, schema_validator

READ_COLUMNS = ("fq1", "fq2", "bam", "truth")


@dataclass(frozen=True)
class Lane:
    """One FASTQ pair of a sample (a sheet row); ``name`` is empty when the sheet gives no lane."""

    name: str
    fq1: Path
    fq2: Path
    line: int


@dataclass(frozen=True)
class Sample:
    """A validated sample: its sheet row, or its rows when it has several lanes; paths are absolute."""

    name: str
    line: int
    fq1: Path | None = None
    fq2: Path | None = None
    bam: Path | None = None
    truth: Path | None = None
    lanes: tuple[Lane, ...] = ()

    @property
    def from_bam(self) -> bool:
        return self.bam is not None

    @property
    def multi_lane(self) -> bool:
        """Whether the sheet names the sample's lanes (then each gets its own read group)."""
        return any(lane.name for lane in self.lanes)


def _validate_row(row: dict[str, str], where: str) -> None:
    for error in sorted(schema_validator("samples").iter_errors(row), key=lambda e: list(e.absolute_path)):
        if error.validator == "oneOf":
            given = [c for c in ("fq1", "fq2", "bam") if c in row]
            raise InputError(
                f"{where}: give either fq1 and fq2, or bam (given: {', '.join(given) or 'none'})"
            )
        if error.validator == "not" and list(error.absolute_path) == ["sample"]:
            raise InputError(f"{where}: sample name 'cohort' is reserved for the joint call")
        field = ".".join(str(p) for p in error.absolute_path)
        if error.validator == "pattern" and field in ("sample", "lane"):
            check_name(error.instance, f"{where}: {field}")
            raise InputError(f"{where}: {field} {error.instance!r} must match {error.validator_value}")
        raise InputError(f"{where}: {field + ': ' if field else ''}{error.message}")


def _cells(line: str, where: str) -> list[str]:
    try:
        return next(csv.reader([line], delimiter="\t"))
    except csv.Error as exc:
        raise InputError(f"{where}: not a tab-separated line ({exc})") from None


def read_sample_sheet(path: str | os.PathLike, *, check_files: bool = True) -> list[Sample]:
    """Read and validate a sample sheet (TSV with a header line).

    Blank lines and lines starting with '#' are ignored. Relative paths in the sheet are
    resolved against the sheet's own directory.

    Args:
        path: the sample sheet.
        check_files: check every read file readable (off inside a job: the driver checked them, and a
            job at another centre has only its own inputs there).

    Returns:
        The samples in sheet order.

    Raises:
        InputError: naming the sheet, the line and the field, for an unknown or missing
            column, a bad or duplicate sample name, fq1/fq2 vs bam conflicts, or a file that is
            missing or unreadable.
    """
    sheet = Path(path)
    check_readable(sheet, "sample sheet")
    allowed = list(load_schema("samples")["properties"])
    samples: list[Sample] = []
    seen: dict[str, int] = {}
    text = read_utf8(sheet, sheet.name)
    lines = [(n, line) for n, line in enumerate(text.splitlines(), 1) if line.strip() and not line.startswith("#")]
    if not lines:
        raise InputError(f"{sheet.name}: empty sample sheet (a header line and one row per sample are needed)")
    header_line, header_text = lines[0]
    header = _cells(header_text, f"{sheet.name} line {header_line}")
    header = [h.strip() for h in header]
    for col in header:
        if col not in allowed:
            raise InputError(
                f"{sheet.name} line {header_line}: unknown column '{col}' (allowed: {', '.join(allowed)})"
            )
    if len(set(header)) != len(header):
        raise InputError(f"{sheet.name} line {header_line}: a column appears twice")
    if "sample" not in header:
        raise InputError(f"{sheet.name} line {header_line}: the header has no 'sample' column")
    if len(lines) == 1:
        raise InputError(f"{sheet.name}: no samples (only a header line)")
    rows: dict[str, list[Sample]] = {}
    files: dict[Path, str] = {}
    for lineno, text in lines[1:]:
        where = f"{sheet.name} line {lineno}"
        cells = _cells(text.rstrip("\r\n"), where)
        if len(cells) > len(header):
            raise InputError(f"{where}: {len(cells)} fields but the header has {len(header)}")
        row = {col: cell.strip() for col, cell in zip(header, cells) if cell.strip()}
        _validate_row(row, where)
        name = row["sample"]
        if name in seen and "lane" not in row:
            raise InputError(f"{where}: duplicate sample '{name}' (first on line {seen[name]}); several FASTQ pairs "
                             "of one sample need a `lane` column, a different lane on each row")
        seen.setdefault(name, lineno)
        paths = {}
        for col in READ_COLUMNS:
            if col in row:
                p = Path(row[col])
                p = p if p.is_absolute() else (sheet.parent / p)
                if check_files:
                    check_readable(p, f"{where}: {col}")
                paths[col] = p.resolve()
        if paths.get("fq1") is not None and paths.get("fq1") == paths.get("fq2"):
            raise InputError(f"{where}: fq1 and fq2 name the same file")
        for col in ("fq1", "fq2", "bam"):
            if col in paths:
                # the path as written (made absolute), not resolved: a copy-paste slip in the sheet, not
                # links a site makes on purpose
                given = Path(os.path.abspath(sheet.parent / row[col]))
                if given in files:
                    raise InputError(f"{where}: {col} {row[col]} is already on {files[given]} (a read file "
                                     "belongs to one sample and one lane)")
                files[given] = f"line {lineno}"
        rows.setdefault(name, []).append(Sample(name=name, line=lineno, lanes=_lanes(row, paths, lineno), **paths))
    for name, group in rows.items():
        samples.append(group[0] if len(group) == 1 else _merge_lanes(group, sheet.name))
    return samples


def _lanes(row: dict[str, str], paths: dict[str, Path], lineno: int) -> tuple[Lane, ...]:
    if "fq1" not in paths:
        return ()
    return (Lane(row.get("lane", ""), paths["fq1"], paths["fq2"], lineno),)


def _merge_lanes(rows: list[Sample], sheet: str) -> Sample:
    """One sample from its lane rows: FASTQ pairs only, distinct lanes, one truth VCF at most."""
    first = rows[0]
    lanes: dict[str, int] = {}
    for row in rows:
        where = f"{sheet} line {row.line}"
        if row.from_bam:
            raise InputError(f"{where}: sample '{row.name}' has several rows (from line {first.line}): each must be a "
                             "FASTQ pair of one lane; a BAM/CRAM keeps its own read groups and stands alone")
        lane = row.lanes[0].name
        if not lane:
            raise InputError(f"{where}: sample '{row.name}' has several rows (from line {first.line}): give each a lane")
        if lane in lanes:
            raise InputError(f"{where}: lane '{lane}' of sample '{row.name}' is already on line {lanes[lane]}")
        lanes[lane] = row.line
    truths = {row.truth for row in rows if row.truth is not None}
    if len(truths) > 1:
        raise InputError(f"{sheet} line {rows[-1].line}: sample '{first.name}' has different truth VCFs on its lane rows")
    return Sample(name=first.name, line=first.line, truth=next(iter(truths), None),
                  lanes=tuple(lane for row in rows for lane in row.lanes))


def check_bam_contigs(sample: Sample, contigs: list[Contig], sheet: str) -> None:
    """Fail when an input BAM/CRAM was aligned to another assembly than the reference.

    Reads are re-aligned, but a BAM aligned to another assembly (``1`` vs ``chr1``, GRCh38 vs
    hg19) is almost always a mistake in the sample sheet or the reference, so it stops here.
    Headers often list every contig of the assembly while the reads cover a few (a chr20
    extract), so with an index the contigs *holding reads* must be in the reference; without
    one, at least one header contig must be. Contigs in both must have the same length.
    """
    import pysam

    assert sample.bam is not None
    where = f"{sheet} line {sample.line}: bam"
    try:
        with pysam.AlignmentFile(str(sample.bam), "r", check_sq=False) as aln:
            if not (aln.is_bam or aln.is_cram):
                raise ValueError("not BAM or CRAM format")
            header = dict(zip(aln.references, aln.lengths))
            used = None  # without a BAM index (or for CRAM) only the header can be checked
            if aln.is_bam and aln.has_index():
                used = [s.contig for s in aln.get_index_statistics() if s.mapped > 0]
    except (ValueError, OSError) as exc:
        raise InputError(f"{where}: cannot read {sample.bam} as BAM/CRAM ({exc})") from exc
    ref = {c.name: c.length for c in contigs}
    ref_names = f"{', '.join(list(ref)[:5])}{' ...' if len(ref) > 5 else ''}"
    missing = [c for c in (used if used is not None else header) if c not in ref]
    if (used is not None and missing) or (used is None and header and len(missing) == len(header)):
        what = "has reads on contigs" if used is not None else "has contigs"
        raise InputError(
            f"{where}: {sample.bam} {what} not in the reference: "
            f"{', '.join(missing[:5])}{' ...' if len(missing) > 5 else ''} (reference has: {ref_names})"
        )
    wrong = [c for c, n in header.items() if c in ref and ref[c] != n]
    if wrong:
        c = wrong[0]
        raise InputError(
            f"{where}: contig {c} has length {header[c]} in {sample.bam} but {ref[c]} in the reference "
            "(another assembly?)"
        )
