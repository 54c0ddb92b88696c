"""`aisci evaluate`: compare a call VCF with a truth VCF and report precision, recall and F1."""

from __future__ import annotations

import argparse
import bisect
import contextlib
import gzip
import json
import logging
import os
import re
import subprocess
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import IO, Any, Iterable, Iterator

from aisci.errors import InputError, ToolError
from aisci.fileio import atomic_output, check_readable, is_gzipped, open_text

log = logging.getLogger(__name__)

PathLike = str | os.PathLike
Key = tuple[str, int, str, str]  # (CHROM, POS, REF, ALT) after normalisation
Intervals = dict[str, tuple[list[int], list[int]]]  # contig -> (starts, ends), merged, sorted

TYPES = ("snv", "indel", "all")
LEVELS = ("allele", "genotype")
TSV_HEADER = ("type", "level", "tp", "fp", "fn", "precision", "recall", "f1")
DETAIL_HEADER = ("chrom", "pos", "ref", "alt", "type", "status")
# hap.py's summary.csv columns that this comparison defines (MultiQC's hap.py module reads them); hap.py
# matches at genotype level, so the genotype-level counts fill them, and only PASS calls are compared.
HAPPY_HEADER = ("Type", "Filter", "TRUTH.TOTAL", "TRUTH.TP", "TRUTH.FN", "QUERY.TOTAL", "QUERY.TP", "QUERY.FP",
                "FP.gt", "METRIC.Recall", "METRIC.Precision", "METRIC.F1_Score")
FIXED_COLUMNS = ("#CHROM", "POS", "ID", "REF", "ALT", "QUAL", "FILTER", "INFO")
# Zygosity codes: the number of copies of the split record's ALT, where a haploid '1' counts
# as HOM so that a hemizygous call (chrX in a male) matches a 1/1 truth at genotype level.
HET, HOM = 1, 2
_GT_SPLIT = re.compile(r"[/|]")
_CONTIG_ID = re.compile(r"^##contig=<.*?\bID=([^,>]+)")


@dataclass(frozen=True)
class Discordance:
    """A call or truth variant that did not match: status is FP, FN or GT_MISMATCH."""

    chrom: str
    pos: int
    ref: str
    alt: str
    vtype: str
    status: str


def _require_file(path: PathLike, what: str) -> Path:
    return check_readable(Path(path), what)


def _reference_contigs(reference: Path) -> dict[str, int]:
    """Contig lengths from the .fai; refuse to let htslib build indexes next to the input."""
    fai = Path(f"{reference}.fai")
    if not fai.is_file():
        raise InputError(f"reference {reference}: no index {fai} (run `samtools faidx {reference}`)")
    if is_gzipped(reference) and not Path(f"{reference}.gzi").is_file():
        raise InputError(f"reference {reference}: bgzip FASTA without {reference}.gzi "
                         f"(run `samtools faidx {reference}`)")
    contigs: dict[str, int] = {}
    with open(fai) as fh:
        for n, line in enumerate(fh, 1):
            cols = line.rstrip("\n").split("\t")
            if len(cols) < 2 or not cols[1].isdigit():
                raise InputError(f"{fai} line {n}: not a FASTA index line")
            contigs[cols[0]] = int(cols[1])
    return contigs


def _read_bed(path: PathLike) -> Intervals:
    """Read a BED (0-based, half-open) into merged, sorted intervals per contig."""
    raw: dict[str, list[tuple[int, int]]] = {}
    with _reading(_require_file(path, "BED")) as fh:
        for n, line in enumerate(fh, 1):
            if not line.strip() or line.startswith(("#", "track", "browser")):
                continue
            cols = line.rstrip("\n").split("\t")
            if len(cols) < 3 or not (cols[1].isdigit() and cols[2].isdigit()) or int(cols[1]) > int(cols[2]):
                raise InputError(f"BED {path} line {n}: expected 'chrom<TAB>start<TAB>end', 0 <= start <= end")
            raw.setdefault(cols[0], []).append((int(cols[1]), int(cols[2])))
    merged: Intervals = {}
    for contig, spans in raw.items():
        starts, ends = merged.setdefault(contig, ([], []))
        for start, end in sorted(spans):
            if starts and start <= ends[-1]:  # overlapping or touching: extend the last one
                ends[-1] = max(ends[-1], end)
            else:
                starts.append(start)
                ends.append(end)
    return merged


def _in_bed(bed: Intervals, chrom: str, start0: int) -> bool:
    starts, ends = bed.get(chrom, ([], []))
    i = bisect.bisect_right(starts, start0) - 1
    return i >= 0 and start0 < ends[i]


@contextlib.contextmanager
def _reading(path: Path) -> Iterator[IO[str]]:
    """Open a text file, turning decoding/gzip failures into an InputError naming it."""
    try:
        with open_text(path) as fh:
            yield fh
    except (OSError, EOFError, UnicodeDecodeError, gzip.BadGzipFile) as exc:
        raise InputError(f"{path}: cannot read ({exc})") from exc


def _prepare_vcf(src: Path, dst: Path, ref_contigs: dict[str, int], sample: str | None,
                 label: str) -> tuple[str, set[str]]:
    """Validate a VCF and write a minimal copy for `bcftools norm`.

    The copy keeps one sample and only GT, drops INFO, and keeps only PASS/'.' records on
    reference contigs whose genotype carries some ALT allele. Trimming to GT spares bcftools
    from splitting Number=A/R fields that are often undeclared, and lets us report malformed
    input with its line number instead of an opaque htslib message.

    Returns:
        (chosen sample name, contigs named in the header or the records).
    """
    contigs: set[str] = set()
    col, ncols, name, kept, skipped_filter, off_ref = -1, -1, "", 0, 0, 0
    with _reading(src) as fh, open(dst, "w") as out:
        for n, line in enumerate(fh, 1):
            line = line.rstrip("\r\n")
            if n == 1 and not line.startswith("##fileformat=VCF"):
                raise InputError(f"{label} {src} line 1: not a VCF (no ##fileformat header)")
            if line.startswith("##"):
                if (m := _CONTIG_ID.match(line)):
                    contigs.add(m.group(1))
                continue
            if line.startswith("#"):
                header = line.split("\t")
                if tuple(header[:8]) != FIXED_COLUMNS:
                    raise InputError(f"{label} {src} line {n}: malformed #CHROM header")
                samples = header[9:]
                if not samples:
                    raise InputError(f"{label} {src}: no sample columns (a genotype is needed)")
                name = samples[0] if sample is None else sample
                if name not in samples:
                    raise InputError(f"{label} {src}: sample '{name}' not found "
                                     f"(samples: {', '.join(samples)})")
                col = 9 + samples.index(name)
                out.write("##fileformat=VCFv4.2\n##FILTER=<ID=PASS,Description=\"All filters passed\">\n"
                          "##FORMAT=<ID=GT,Number=1,Type=String,Description=\"Genotype\">\n")
                out.writelines(f"##contig=<ID={c},length={length}>\n" for c, length in ref_contigs.items())
                out.write("\t".join(header[:9] + [name]) + "\n")
                ncols = len(header)
                continue
            if not line.strip():
                continue
            if col < 0:
                raise InputError(f"{label} {src} line {n}: record before the #CHROM header line")
            f = line.split("\t")
            if len(f) != ncols:
                raise InputError(f"{label} {src} line {n}: {len(f)} columns, header has {ncols}")
            chrom, pos, ref, alt = f[0], f[1], f[3], f[4]
            if not pos.isdigit() or int(pos) < 1 or not ref.isalpha() or not alt:
                raise InputError(f"{label} {src} line {n}: bad POS/REF/ALT '{pos} {ref} {alt}'")
            contigs.add(chrom)
            if f[6] not in ("PASS", "."):
                skipped_filter += 1
                continue
            if chrom not in ref_contigs:
                off_ref += 1
                continue
            if int(pos) + len(ref) - 1 > ref_contigs[chrom]:
                raise InputError(f"{label} {src} line {n}: {chrom}:{pos} lies past the contig end "
                                 f"({ref_contigs[chrom]} bp) in the reference")
            gt = _genotype(f[8], f[col], 0 if alt == "." else alt.count(",") + 1, f"{label} {src} line {n}")
            if not any(a not in (".", "0") for a in _GT_SPLIT.split(gt)):
                continue  # 0/0, ./., 0/.: no ALT allele in this sample
            out.write("\t".join(f[:7] + [".", "GT", gt]) + "\n")
            kept += 1
    if col < 0:
        raise InputError(f"{label} {src}: no #CHROM header line; not a VCF")
    if off_ref:
        log.warning("%s %s: %d records on contigs absent from the reference ignored", label, src, off_ref)
    log.info("%s %s: sample %s, %d records with an ALT allele, %d non-PASS ignored",
             label, src, name, kept, skipped_filter)
    return name, contigs


def _genotype(fmt: str, value: str, n_alt: int, where: str) -> str:
    keys = fmt.split(":")
    if "GT" not in keys:
        raise InputError(f"{where}: no GT in FORMAT '{fmt}'")
    parts, i = value.split(":"), keys.index("GT")
    gt = parts[i] if i < len(parts) and parts[i] else "."  # trailing FORMAT fields may be dropped
    for allele in _GT_SPLIT.split(gt):
        if allele != "." and (not allele.isdigit() or int(allele) > n_alt):
            raise InputError(f"{where}: bad genotype '{gt}' for {n_alt} ALT allele(s)")
    return gt


def _normalise(src: Path, dst: Path, reference: Path, original: Path, label: str) -> None:
    """Split multi-allelics and left-align with bcftools; REF mismatches are input errors."""
    # -c e: a REF that disagrees with the FASTA means the wrong reference; stop, don't guess
    cmd = ["bcftools", "norm", "-m", "-any", "-f", str(reference), "-c", "e", "-O", "v", "-o", str(dst),
           str(src)]
    try:
        proc = subprocess.run(cmd, capture_output=True, text=True)
    except FileNotFoundError as exc:
        raise ToolError("bcftools not found on PATH") from exc
    if proc.returncode != 0:
        err = proc.stderr.strip()
        mismatch = [ln for ln in err.splitlines() if "Reference allele mismatch" in ln]
        if mismatch:
            raise InputError(f"{label} {original}: REF does not match reference {reference}: {mismatch[0]}")
        raise ToolError(f"bcftools norm failed on {label} {original} (exit {proc.returncode}): {err}")


def _load_normalised(path: Path, bed: Intervals | None) -> dict[Key, int]:
    """Read normalised records into key -> zygosity (HET/HOM), keeping ALT-carrying ones."""
    variants: dict[Key, int] = {}
    with open(path) as fh:
        for line in fh:
            if line.startswith("#"):
                continue
            f = line.rstrip("\n").split("\t")
            chrom, pos, ref, alt = f[0], int(f[1]), f[3], f[4]
            # symbolic alleles, spanning deletions and breakends cannot be compared by sequence
            if alt in (".", "*") or alt.startswith("<") or "[" in alt or "]" in alt:
                continue
            if bed is not None and not _in_bed(bed, chrom, pos - 1):
                continue
            alleles = _GT_SPLIT.split(f[9].split(":")[0])
            copies = alleles.count("1")  # after -m -any the split record's ALT is allele 1
            if copies == 0:
                continue
            zyg = HOM if copies == len(alleles) else HET
            # duplicates (same normalised allele twice) collapse; keep the stronger genotype
            variants[(chrom, pos, ref, alt)] = max(zyg, variants.get((chrom, pos, ref, alt), 0))
    return variants


def _ratio(num: int, den: int) -> float | None:
    return num / den if den else None  # undefined, not 0, when nothing was called / expected


def _f1(p: float | None, r: float | None) -> float | None:
    return None if p is None or r is None else (2 * p * r / (p + r) if p + r else 0.0)


def _summary(tp: int, fp: int, fn: int, gt_tp: int, gt_fp: int, gt_fn: int) -> dict[str, Any]:
    p, r = _ratio(tp, tp + fp), _ratio(tp, tp + fn)
    gp, gr = _ratio(gt_tp, gt_tp + gt_fp), _ratio(gt_tp, gt_tp + gt_fn)
    return {"tp": tp, "fp": fp, "fn": fn, "precision": p, "recall": r, "f1": _f1(p, r),
            "gt_tp": gt_tp, "gt_fp": gt_fp, "gt_fn": gt_fn,
            "gt_precision": gp, "gt_recall": gr, "gt_f1": _f1(gp, gr)}


def _compare(calls: dict[Key, int], truth: dict[Key, int]) -> tuple[dict[str, Any], list[Discordance]]:
    """Match by allele, then by zygosity; a wrong zygosity is both a GT-FP and a GT-FN."""
    counts = {t: [0] * 6 for t in TYPES}  # tp, fp, fn, gt_tp, gt_fp, gt_fn
    detail: list[Discordance] = []
    for key in calls.keys() | truth.keys():
        in_calls, in_truth = key in calls, key in truth
        # SNV = 1 bp substitution; insertions, deletions, MNPs and complex alleles are INDEL
        vtype = "snv" if len(key[2]) == 1 and len(key[3]) == 1 else "indel"
        if in_calls and in_truth:
            same = calls[key] == truth[key]
            delta = (1, 0, 0, 1, 0, 0) if same else (1, 0, 0, 0, 1, 1)
            status = None if same else "GT_MISMATCH"
        elif in_calls:
            delta, status = (0, 1, 0, 0, 1, 0), "FP"
        else:
            delta, status = (0, 0, 1, 0, 0, 1), "FN"
        for t in (vtype, "all"):
            counts[t] = [a + b for a, b in zip(counts[t], delta)]
        if status:
            detail.append(Discordance(*key, vtype, status))
    detail.sort(key=lambda d: (d.chrom, d.pos, d.ref, d.alt))
    return {t: _summary(*c) for t, c in counts.items()}, detail


def evaluate_detailed(calls: PathLike, truth: PathLike, reference: PathLike, *, bed: PathLike | None = None,
                      sample: str | None = None, truth_sample: str | None = None
                      ) -> tuple[dict[str, Any], list[Discordance]]:
    """Like :func:`evaluate`, also returning the FP, FN and genotype-mismatch records."""
    calls_p, truth_p = _require_file(calls, "calls VCF"), _require_file(truth, "truth VCF")
    ref_p = _require_file(reference, "reference FASTA")
    ref_contigs = _reference_contigs(ref_p)
    intervals = _read_bed(bed) if bed is not None else None
    with tempfile.TemporaryDirectory(prefix="aisci-evaluate-") as tmp:
        work = Path(tmp)
        name, call_contigs = _prepare_vcf(calls_p, work / "calls.vcf", ref_contigs, sample, "calls VCF")
        _, truth_contigs = _prepare_vcf(truth_p, work / "truth.vcf", ref_contigs, truth_sample, "truth VCF")
        for label, path, seen in (("calls VCF", calls_p, call_contigs), ("truth VCF", truth_p, truth_contigs)):
            if seen and not seen & ref_contigs.keys():
                raise InputError(f"{label} {path}: none of its contigs ({_names(seen)}) are in reference "
                                 f"{ref_p} ({_names(ref_contigs)})")
        if call_contigs and truth_contigs and not call_contigs & truth_contigs & ref_contigs.keys():
            raise InputError(f"no contig shared by calls VCF {calls_p} ({_names(call_contigs)}), truth VCF "
                             f"{truth_p} ({_names(truth_contigs)}) and reference {ref_p}")
        _normalise(work / "calls.vcf", work / "calls.norm.vcf", ref_p, calls_p, "calls VCF")
        _normalise(work / "truth.vcf", work / "truth.norm.vcf", ref_p, truth_p, "truth VCF")
        by_type, detail = _compare(_load_normalised(work / "calls.norm.vcf", intervals),
                                  _load_normalised(work / "truth.norm.vcf", intervals))
    metrics: dict[str, Any] = {"calls": str(calls), "truth": str(truth), "reference": str(reference),
                               "bed": None if bed is None else str(bed), "sample": name}
    metrics.update(by_type)
    return metrics, detail


def evaluate(calls: PathLike, truth: PathLike, reference: PathLike, *, bed: PathLike | None = None,
             sample: str | None = None, truth_sample: str | None = None) -> dict[str, Any]:
    """Compare a call VCF with a truth VCF after normalising both with `bcftools norm`.

    Only PASS/'.' records whose genotype carries the ALT are compared; symbolic ALTs are
    skipped. A variant is an SNV when REF and ALT are 1 bp, otherwise an INDEL (MNPs included).

    Args:
        calls: call VCF (plain or bgzip).
        truth: truth VCF (plain or bgzip).
        reference: FASTA (plain or bgzip) with .fai (and .gzi when bgzip).
        bed: optional BED; a variant counts when its 0-based start (POS-1) is inside.
        sample: sample column of the calls (default: the first).
        truth_sample: sample column of the truth (default: the first).

    Returns:
        {'calls', 'truth', 'reference', 'bed', 'sample', 'snv', 'indel', 'all'}; each type maps
        to tp/fp/fn/precision/recall/f1 and their gt_* genotype-level twins (None when 0/0).

    Raises:
        InputError: missing/malformed input, unknown sample, REF mismatch, no shared contigs.
        ToolError: bcftools failed.
    """
    return evaluate_detailed(calls, truth, reference, bed=bed, sample=sample, truth_sample=truth_sample)[0]


def _names(contigs: Iterable[str], limit: int = 5) -> str:
    items = sorted(contigs)
    return ", ".join(items[:limit]) + (f", ... ({len(items)} in all)" if len(items) > limit else "")


def _fmt(value: float | None) -> str:
    return "NA" if value is None else f"{value:.6f}"


def _rows(metrics: dict[str, Any]) -> list[tuple[str, ...]]:
    rows = []
    for t in TYPES:
        m = metrics[t]
        for level, pre in zip(LEVELS, ("", "gt_")):
            rows.append((t, level, str(m[pre + "tp"]), str(m[pre + "fp"]), str(m[pre + "fn"]),
                         _fmt(m[pre + "precision"]), _fmt(m[pre + "recall"]), _fmt(m[pre + "f1"])))
    return rows


def _happy_rows(metrics: dict[str, Any]) -> list[tuple[str, ...]]:
    rows = []
    for t, label in (("indel", "INDEL"), ("snv", "SNP")):
        m = metrics[t]
        mismatched = m["gt_fp"] - m["fp"]  # right alleles, wrong zygosity: hap.py's FP.gt
        rows.append((label, "PASS", str(m["gt_tp"] + m["gt_fn"]), str(m["gt_tp"]), str(m["gt_fn"]),
                     str(m["gt_tp"] + m["gt_fp"]), str(m["gt_tp"]), str(m["gt_fp"]), str(mismatched),
                     *("" if m[k] is None else f"{m[k]:.6f}" for k in ("gt_recall", "gt_precision", "gt_f1"))))
    return rows


def write_reports(metrics: dict[str, Any], *, json_path: PathLike | None = None,
                  tsv_path: PathLike | None = None, summary_csv: PathLike | None = None) -> None:
    """Write the metrics as JSON, TSV and/or hap.py-style CSV; each file appears only once fully written.

    Args:
        metrics: the dict returned by :func:`evaluate`.
        json_path: JSON output path (None: skip).
        tsv_path: TSV output (type, level, tp, fp, fn, precision, recall, f1; NA for undefined).
        summary_csv: hap.py-style ``*.summary.csv`` (rows INDEL and SNP, filter PASS; genotype-level counts;
            empty for undefined), the file MultiQC's hap.py module reads.
    """
    with contextlib.ExitStack() as stack:
        if json_path is not None:
            tmp = stack.enter_context(atomic_output(json_path))
            tmp.write_text(json.dumps(metrics, indent=2) + "\n")
        if tsv_path is not None:
            tmp = stack.enter_context(atomic_output(tsv_path))
            tmp.write_text("".join("\t".join(r) + "\n" for r in [TSV_HEADER, *_rows(metrics)]))
        if summary_csv is not None:
            tmp = stack.enter_context(atomic_output(summary_csv))
            tmp.write_text("".join(",".join(r) + "\n" for r in [HAPPY_HEADER, *_happy_rows(metrics)]))


def write_detail(detail: list[Discordance], path: PathLike) -> None:
    """Write FP/FN/GT_MISMATCH records as TSV (chrom, pos, ref, alt, type, status), atomically.

    Args:
        detail: records from :func:`evaluate_detailed`.
        path: output TSV.
    """
    rows = [DETAIL_HEADER] + [(d.chrom, str(d.pos), d.ref, d.alt, d.vtype, d.status) for d in detail]
    with atomic_output(path) as tmp:
        tmp.write_text("".join("\t".join(r) + "\n" for r in rows))


def _format_table(metrics: dict[str, Any]) -> str:
    widths = (6, 9, 8, 8, 8, 10, 10, 10)
    return "\n".join("".join(c.ljust(w) if i < 2 else c.rjust(w) for i, (c, w) in enumerate(zip(r, widths)))
                     for r in [TSV_HEADER, *_rows(metrics)])


def configure_parser(parser: argparse.ArgumentParser) -> None:
    """Register the `aisci evaluate` options on ``parser``."""
    parser.add_argument("--calls", required=True, metavar="VCF", help="call VCF (plain or bgzip)")
    parser.add_argument("--truth", required=True, metavar="VCF", help="truth VCF (plain or bgzip)")
    parser.add_argument("--ref", required=True, metavar="FASTA", help="reference FASTA (plain or bgzip, indexed)")
    parser.add_argument("--bed", metavar="BED", help="restrict to these regions (0-based start inside)")
    parser.add_argument("--sample", metavar="NAME", help="sample column of the calls (default: first)")
    parser.add_argument("--truth-sample", metavar="NAME", help="sample column of the truth (default: first)")
    parser.add_argument("--json", metavar="OUT.json", help="write metrics as JSON")
    parser.add_argument("--tsv", metavar="OUT.tsv", help="write metrics as TSV")
    parser.add_argument("--summary-csv", metavar="OUT.summary.csv",
                        help="write hap.py-style summary CSV (what MultiQC's hap.py module reads)")
    parser.add_argument("--detail", metavar="OUT.tsv", help="write FP/FN/GT_MISMATCH records as TSV")


def run(args: argparse.Namespace) -> int:
    """Run `aisci evaluate`: print the table and write the requested reports.

    Args:
        args: parsed options from :func:`configure_parser`.

    Returns:
        0 on success (errors raise).

    Raises:
        InputError: bad inputs (see :func:`evaluate`).
        ToolError: bcftools failed.
    """
    metrics, detail = evaluate_detailed(args.calls, args.truth, args.ref, bed=args.bed,
                                        sample=args.sample, truth_sample=args.truth_sample)
    write_reports(metrics, json_path=args.json, tsv_path=args.tsv, summary_csv=args.summary_csv)
    if getattr(args, "detail", None):
        write_detail(detail, args.detail)
    print(_format_table(metrics))
    return 0
