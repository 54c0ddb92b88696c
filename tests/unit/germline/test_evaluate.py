"""Unit tests of `aisci evaluate`: exact truth-set counts on small generated VCFs and on real data."""

from __future__ import annotations

import argparse
import json
import os
import random
import subprocess
import sys
from pathlib import Path

import pysam
import pytest

from aisci.errors import InputError, ToolError
from aisci.germline.evaluate import _read_bed, configure_parser, evaluate, evaluate_detailed, run, write_reports

REPO = Path(__file__).resolve().parents[3]
DATA = REPO.parent / "shared" / "data" / "na12878_chr20"
METRIC_KEYS = {"tp", "fp", "fn", "precision", "recall", "f1",
               "gt_tp", "gt_fp", "gt_fn", "gt_precision", "gt_recall", "gt_f1"}

# chr1 = 100 random bases, G, a 6 bp A homopolymer (1-based 102..107), C, 100 random bases.
HP = 101
_rng = random.Random(7)
CHR1 = "".join(_rng.choice("ACGT") for _ in range(100)) + "G" + "A" * 6 + "C" \
    + "".join(_rng.choice("ACGT") for _ in range(100))
CHR2 = "".join(_rng.choice("ACGT") for _ in range(150))


def base(pos: int, chrom: str = CHR1) -> str:
    """Reference base at 1-based ``pos``."""
    return chrom[pos - 1]


def other(b: str) -> str:
    """A base different from ``b``."""
    return "ACGT"[("ACGT".index(b) + 1) % 4]


def snv(pos: int, gt: str = "0/1", filt: str = "PASS") -> tuple:
    return ("chr1", pos, base(pos), other(base(pos)), filt, gt)


@pytest.fixture
def ref(tmp_path: Path) -> Path:
    path = tmp_path / "ref.fa"
    path.write_text(f">chr1\n{CHR1}\n>chr2\n{CHR2}\n")
    pysam.faidx(str(path))
    return path


def write_vcf(path: Path, records: list[tuple], samples: tuple[str, ...] = ("S1",),
              contigs: tuple[str, ...] = ("chr1", "chr2"), bgzip: bool = True) -> Path:
    """Write (chrom, pos, ref, alt, filter, gt...) records; bgzip + tabix when asked."""
    lines = ["##fileformat=VCFv4.2", '##FILTER=<ID=LowQual,Description="low">',
             '##FORMAT=<ID=GT,Number=1,Type=String,Description="Genotype">',
             '##FORMAT=<ID=DP,Number=1,Type=Integer,Description="Depth">']
    lines += [f"##contig=<ID={c}>" for c in contigs]
    lines.append("\t".join(["#CHROM", "POS", "ID", "REF", "ALT", "QUAL", "FILTER", "INFO", "FORMAT", *samples]))
    for chrom, pos, r, a, filt, *gts in sorted(records, key=lambda x: (x[0], x[1])):
        lines.append("\t".join([chrom, str(pos), ".", r, a, "50", filt, "DP=10", "GT:DP",
                                *[f"{g}:10" for g in gts]]))
    path.write_text("\n".join(lines) + "\n")
    if not bgzip:
        return path
    return Path(pysam.tabix_index(str(path), preset="vcf", force=True))


def pair(tmp_path: Path, calls: list[tuple], truth: list[tuple], **kw) -> tuple[Path, Path]:
    return write_vcf(tmp_path / "calls.vcf", calls, **kw), write_vcf(tmp_path / "truth.vcf", truth, **kw)


def counts(m: dict, kind: str = "all", gt: bool = False) -> tuple[int, int, int]:
    pre = "gt_" if gt else ""
    return m[kind][pre + "tp"], m[kind][pre + "fp"], m[kind][pre + "fn"]


def test_perfect_match(tmp_path: Path, ref: Path) -> None:
    recs = [snv(10), snv(20, "1/1"), snv(150, "0|1"), ("chr1", HP, "G", "GA", "PASS", "0/1")]
    m = evaluate(*pair(tmp_path, recs, recs), ref)
    assert counts(m, "snv") == (3, 0, 0) and counts(m, "indel") == (1, 0, 0)
    assert counts(m) == (4, 0, 0) and counts(m, gt=True) == (4, 0, 0)
    assert m["all"]["precision"] == m["all"]["recall"] == m["all"]["f1"] == 1.0
    assert m["sample"] == "S1" and m["bed"] is None
    assert set(m) == {"calls", "truth", "reference", "bed", "sample", "snv", "indel", "all"}
    assert all(set(m[t]) == METRIC_KEYS for t in ("snv", "indel", "all"))


def test_false_positive_and_false_negative(tmp_path: Path, ref: Path) -> None:
    calls, truth = pair(tmp_path, [snv(10), snv(20), snv(30), snv(40)], [snv(10), snv(20), snv(30), snv(50)])
    m, detail = evaluate_detailed(calls, truth, ref)
    assert counts(m) == (3, 1, 1) and counts(m, gt=True) == (3, 1, 1)
    assert m["all"]["precision"] == pytest.approx(0.75) and m["all"]["recall"] == pytest.approx(0.75)
    assert m["all"]["f1"] == pytest.approx(0.75)
    assert [(d.pos, d.status) for d in detail] == [(40, "FP"), (50, "FN")]


def test_genotype_mismatch_counts_only_at_genotype_level(tmp_path: Path, ref: Path) -> None:
    m, detail = evaluate_detailed(*pair(tmp_path, [snv(10, "0/1"), snv(20)], [snv(10, "1/1"), snv(20)]), ref)
    assert counts(m) == (2, 0, 0)
    assert counts(m, gt=True) == (1, 1, 1)
    assert m["all"]["gt_precision"] == pytest.approx(0.5) and m["all"]["gt_recall"] == pytest.approx(0.5)
    assert [(d.pos, d.status) for d in detail] == [(10, "GT_MISMATCH")]


def test_haploid_alt_counts_as_homozygous(tmp_path: Path, ref: Path) -> None:
    calls = [snv(10, "1"), snv(20, "1"), snv(30, "1")]
    truth = [snv(10, "1/1"), snv(20, "1|1"), snv(30, "0/1")]
    m, detail = evaluate_detailed(*pair(tmp_path, calls, truth), ref)
    assert counts(m) == (3, 0, 0) and counts(m, gt=True) == (2, 1, 1)
    assert [(d.pos, d.status) for d in detail] == [(30, "GT_MISMATCH")]


def test_homopolymer_indels_match_after_left_alignment(tmp_path: Path, ref: Path) -> None:
    assert CHR1[HP - 1:HP + 7] == "GAAAAAAC"
    # calls at the right end of the A run; truth left-aligned onto the G anchor
    calls = [("chr1", HP + 5, "AA", "A", "PASS", "0/1"), ("chr1", HP + 6, "A", "AA", "PASS", "1/1")]
    truth = [("chr1", HP, "GA", "G", "PASS", "0/1"), ("chr1", HP, "G", "GA", "PASS", "1/1")]
    m = evaluate(*pair(tmp_path, calls, truth), ref)
    assert counts(m, "indel") == (2, 0, 0) and counts(m, "indel", gt=True) == (2, 0, 0)
    assert counts(m, "snv") == (0, 0, 0)


def test_multiallelic_call_is_split_and_matched(tmp_path: Path, ref: Path) -> None:
    b = base(60)
    alts = [x for x in "ACGT" if x != b]
    calls = [("chr1", 60, b, f"{alts[0]},{alts[1]}", "PASS", "1/2"),
             ("chr1", 70, base(70), f"{other(base(70))},{base(70)}T", "PASS", "0/2")]
    truth = [("chr1", 60, b, alts[0], "PASS", "0/1"), ("chr1", 60, b, alts[1], "PASS", "1/0"),
             ("chr1", 70, base(70), f"{base(70)}T", "PASS", "0/1")]
    m = evaluate(*pair(tmp_path, calls, truth, bgzip=False), ref)
    # the 0/2 record's first ALT carries no copy and is dropped: no FP
    assert counts(m, "snv") == (2, 0, 0) and counts(m, "indel") == (1, 0, 0)
    assert counts(m, gt=True) == (3, 0, 0)


def test_symbolic_and_spanning_deletion_alleles_are_skipped(tmp_path: Path, ref: Path) -> None:
    calls = [snv(10), ("chr1", 20, base(20), "<DEL>", "PASS", "0/1"), ("chr1", 30, base(30), "<*>", "PASS", "0/1"),
             ("chr1", 40, base(40), f"{other(base(40))},*", "PASS", "1/2")]
    m = evaluate(*pair(tmp_path, calls, [snv(10), snv(40)]), ref)
    assert counts(m) == (2, 0, 0) and counts(m, gt=True) == (2, 0, 0)


def test_non_pass_calls_and_truth_are_ignored(tmp_path: Path, ref: Path) -> None:
    calls = [snv(10), snv(20, filt="LowQual"), snv(30, filt="LowQual"), snv(40, filt="."), snv(50)]
    truth = [snv(10), snv(20), snv(40), snv(50, filt="LowQual")]
    m = evaluate(*pair(tmp_path, calls, truth), ref)
    # 20: filtered call -> FN; 30: filtered, no truth -> nothing; 50: truth filtered -> FP
    assert counts(m) == (2, 1, 1)


def test_bed_restricts_calls_and_truth(tmp_path: Path, ref: Path) -> None:
    bed = tmp_path / "regions.bed"
    # 0-based [9, 15) and [12, 30) merge to [9, 30): POS 10..30 inside, POS 31 outside
    bed.write_text("track name=x\nchr1\t12\t30\nchr1\t9\t15\nchr2\t0\t5\n")
    assert _read_bed(bed) == {"chr1": ([9], [30]), "chr2": ([0], [5])}
    calls = [snv(9), snv(10), snv(30), snv(31), snv(80)]
    truth = [snv(10), snv(25), snv(31), snv(90)]
    m, detail = evaluate_detailed(*pair(tmp_path, calls, truth), ref, bed=bed)
    assert counts(m) == (1, 1, 1) and m["bed"] == str(bed)
    assert [(d.pos, d.status) for d in detail] == [(25, "FN"), (30, "FP")]


def test_genotypes_without_alt_are_ignored(tmp_path: Path, ref: Path) -> None:
    calls = [snv(10), snv(20, "0/0"), snv(30, "./."), snv(40, "0/."), snv(50, "./1")]
    truth = [snv(10), snv(20, "0/0"), snv(30), snv(50, "0/1"), snv(60, "0|0")]
    m = evaluate(*pair(tmp_path, calls, truth), ref)
    assert counts(m) == (2, 0, 1) and counts(m, gt=True) == (2, 0, 1)


def test_snv_indel_classification_includes_mnp_as_indel(tmp_path: Path, ref: Path) -> None:
    r = CHR1[39:41]
    mnp = "".join(other(c) for c in r)  # both bases differ, so norm cannot trim it to an SNV
    recs = [snv(10), ("chr1", 40, r, mnp, "PASS", "0/1"),
            ("chr1", 20, CHR1[19:23], base(20), "PASS", "0/1"), ("chr1", 30, base(30), base(30) + "CG", "PASS", "0/1")]
    m = evaluate(*pair(tmp_path, recs, recs), ref)
    assert counts(m, "snv") == (1, 0, 0) and counts(m, "indel") == (3, 0, 0) and counts(m) == (4, 0, 0)


def test_no_calls_gives_null_precision(tmp_path: Path, ref: Path) -> None:
    m = evaluate(*pair(tmp_path, [], [snv(10), snv(20)]), ref)
    assert counts(m) == (0, 0, 2)
    assert m["all"]["precision"] is None and m["all"]["f1"] is None and m["all"]["recall"] == 0.0
    assert m["indel"]["precision"] is None and m["indel"]["recall"] is None
    write_reports(m, json_path=tmp_path / "m.json", tsv_path=tmp_path / "m.tsv")
    assert json.loads((tmp_path / "m.json").read_text())["all"]["precision"] is None
    all_allele = (tmp_path / "m.tsv").read_text().splitlines()[5].split("\t")
    assert all_allele == ["all", "allele", "0", "0", "2", "NA", "0.000000", "NA"]


def test_sample_selection(tmp_path: Path, ref: Path) -> None:
    calls = write_vcf(tmp_path / "calls.vcf", [("chr1", 10, base(10), other(base(10)), "PASS", "0/0", "0/1")],
                      samples=("A", "B"))
    truth = write_vcf(tmp_path / "truth.vcf", [snv(10)], samples=("T",))
    assert counts(evaluate(calls, truth, ref)) == (0, 0, 1)  # default: first sample, A
    m = evaluate(calls, truth, ref, sample="B", truth_sample="T")
    assert counts(m) == (1, 0, 0) and m["sample"] == "B"
    with pytest.raises(InputError, match=r"calls.*sample 'C' not found.*A, B"):
        evaluate(calls, truth, ref, sample="C")
    with pytest.raises(InputError, match=r"truth\.vcf\.gz.*sample 'B' not found"):
        evaluate(calls, truth, ref, truth_sample="B")


def test_missing_files_are_input_errors(tmp_path: Path, ref: Path) -> None:
    calls, truth = pair(tmp_path, [snv(10)], [snv(10)])
    missing = tmp_path / "nope.vcf.gz"
    for args, kw in [((missing, truth, ref), {}), ((calls, missing, ref), {}),
                     ((calls, truth, tmp_path / "nope.fa"), {}), ((calls, truth, ref), {"bed": missing})]:
        with pytest.raises(InputError, match="nope"):
            evaluate(*args, **kw)


def test_ref_mismatch_names_the_file(tmp_path: Path, ref: Path) -> None:
    bad = [("chr1", 10, other(base(10)), base(10), "PASS", "0/1")]
    calls, truth = pair(tmp_path, bad, [snv(10)])
    with pytest.raises(InputError, match=r"calls\.vcf\.gz: REF does not match.*chr1:10"):
        evaluate(calls, truth, ref)
    with pytest.raises(InputError, match=r"truth VCF .*calls\.vcf\.gz: REF does not match"):
        evaluate(truth, calls, ref)


def test_no_shared_contigs(tmp_path: Path, ref: Path) -> None:
    other_contig = write_vcf(tmp_path / "chrZ.vcf", [("chrZ", 10, "A", "C", "PASS", "0/1")], contigs=("chrZ",))
    chr2 = write_vcf(tmp_path / "chr2.vcf", [("chr2", 10, base(10, CHR2), other(base(10, CHR2)), "PASS", "0/1")],
                     contigs=("chr2",))
    chr1 = write_vcf(tmp_path / "chr1.vcf", [snv(10)], contigs=("chr1",))
    with pytest.raises(InputError, match=r"chrZ\.vcf\.gz: none of its contigs \(chrZ\).*ref\.fa"):
        evaluate(other_contig, chr1, ref)
    with pytest.raises(InputError, match=r"no contig shared by calls VCF .*chr2\.vcf\.gz.*chr1\.vcf\.gz"):
        evaluate(chr2, chr1, ref)


def test_malformed_vcf_names_file_and_line(tmp_path: Path, ref: Path) -> None:
    calls = write_vcf(tmp_path / "calls.vcf", [snv(10), snv(20)], bgzip=False)
    lines = calls.read_text().splitlines()
    lines[-1] = lines[-1].replace("\t20\t", "\tx20\t")
    calls.write_text("\n".join(lines) + "\n")
    truth = write_vcf(tmp_path / "truth.vcf", [snv(10)])
    with pytest.raises(InputError, match=rf"calls\.vcf line {len(lines)}: bad POS"):
        evaluate(calls, truth, ref)
    calls.write_text(">chr1\nACGT\n")
    with pytest.raises(InputError, match=r"calls\.vcf line 1: not a VCF"):
        evaluate(calls, truth, ref)


def test_bcftools_failure_is_tool_error(tmp_path: Path, ref: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    calls, truth = pair(tmp_path, [snv(10)], [snv(10)])
    fake = tmp_path / "bin"
    fake.mkdir()
    (fake / "bcftools").write_text("#!/bin/sh\necho 'boom: disk on fire' >&2\nexit 3\n")
    (fake / "bcftools").chmod(0o755)
    monkeypatch.setenv("PATH", f"{fake}{os.pathsep}{os.environ['PATH']}")
    with pytest.raises(ToolError, match=r"bcftools norm failed on calls VCF .*calls\.vcf\.gz.*boom: disk on fire"):
        evaluate(calls, truth, ref)


def _cli(argv: list[str]) -> argparse.Namespace:
    parser = argparse.ArgumentParser()
    configure_parser(parser)
    return parser.parse_args(argv)


def test_cli_writes_reports_and_table(tmp_path: Path, ref: Path, capsys: pytest.CaptureFixture[str]) -> None:
    calls, truth = pair(tmp_path, [snv(10), snv(20, "1/1"), snv(40)], [snv(10), snv(20), snv(30)])
    out = tmp_path / "out"
    args = _cli(["--calls", str(calls), "--truth", str(truth), "--ref", str(ref), "--json", str(out / "m.json"),
                 "--tsv", str(out / "m.tsv"), "--detail", str(out / "d.tsv")])
    assert run(args) == 0
    assert "all   allele" in capsys.readouterr().out
    m = json.loads((out / "m.json").read_text())
    assert list(m) == ["calls", "truth", "reference", "bed", "sample", "snv", "indel", "all"]
    assert set(m["all"]) == METRIC_KEYS and (m["all"]["tp"], m["all"]["gt_tp"]) == (2, 1)
    rows = [r.split("\t") for r in (out / "m.tsv").read_text().splitlines()]
    assert rows[0] == ["type", "level", "tp", "fp", "fn", "precision", "recall", "f1"]
    assert [r[:2] for r in rows[1:]] == [[t, lv] for t in ("snv", "indel", "all") for lv in ("allele", "genotype")]
    assert rows[5] == ["all", "allele", "2", "1", "1", "0.666667", "0.666667", "0.666667"]
    assert rows[6] == ["all", "genotype", "1", "2", "2", "0.333333", "0.333333", "0.333333"]
    detail = [r.split("\t") for r in (out / "d.tsv").read_text().splitlines()]
    assert detail[0] == ["chrom", "pos", "ref", "alt", "type", "status"]
    assert [(r[1], r[5]) for r in detail[1:]] == [("20", "GT_MISMATCH"), ("30", "FN"), ("40", "FP")]
    assert sorted(p.name for p in out.iterdir()) == ["d.tsv", "m.json", "m.tsv"]  # no temp files left


def test_cli_error_leaves_no_reports(tmp_path: Path, ref: Path) -> None:
    calls, truth = pair(tmp_path, [("chr1", 10, other(base(10)), base(10), "PASS", "0/1")], [snv(10)])
    out = tmp_path / "out"
    out.mkdir()
    args = _cli(["--calls", str(calls), "--truth", str(truth), "--ref", str(ref), "--json", str(out / "m.json"),
                 "--tsv", str(out / "m.tsv")])
    with pytest.raises(InputError):
        run(args)
    assert list(out.iterdir()) == []


def test_cli_in_subprocess(tmp_path: Path, ref: Path) -> None:
    calls, truth = pair(tmp_path, [snv(10)], [snv(10)])
    code = ("import argparse, sys; from aisci.germline.evaluate import configure_parser, run; "
            "p = argparse.ArgumentParser(); configure_parser(p); sys.exit(run(p.parse_args(sys.argv[1:])))")
    proc = subprocess.run([sys.executable, "-c", code, "--calls", str(calls), "--truth", str(truth),
                           "--ref", str(ref), "--json", str(tmp_path / "m.json")],
                          cwd=REPO, capture_output=True, text=True)
    assert proc.returncode == 0, proc.stderr
    assert json.loads((tmp_path / "m.json").read_text())["all"]["tp"] == 1


def test_real_truth_against_itself_in_confident_regions() -> None:
    assert DATA.is_dir(), f"real test data missing: {DATA}"
    vcf = DATA / "test_nist.b37_chr20_100kbp_at_10mb.vcf.gz"
    ref = DATA / "ucsc.hg19.chr20.unittest.fasta.gz"
    m = evaluate(vcf, vcf, ref, bed=DATA / "test_nist.b37_chr20_100kbp_at_10mb.bed")
    assert counts(m) == (49, 0, 0) and counts(m, gt=True) == (49, 0, 0)
    assert counts(m, "snv") == (45, 0, 0) and counts(m, "indel") == (4, 0, 0)
    # whole slice: 221 records, the one 1|2 record splits into two
    m = evaluate(vcf, vcf, ref)
    assert counts(m, "snv") == (186, 0, 0) and counts(m, "indel") == (36, 0, 0)


def test_summary_csv_is_happys_form(tmp_path: Path, ref: Path) -> None:
    """hap.py's summary.csv (what MultiQC's hap.py module reads): genotype-level counts, one PASS row per type."""
    calls, truth = pair(tmp_path, [snv(10), snv(20, "1/1"), snv(40)], [snv(10), snv(20), snv(30)])
    out = tmp_path / "S1.summary.csv"
    assert run(_cli(["--calls", str(calls), "--truth", str(truth), "--ref", str(ref), "--summary-csv", str(out)])) == 0
    rows = [r.split(",") for r in out.read_text().splitlines()]
    assert rows[0] == ["Type", "Filter", "TRUTH.TOTAL", "TRUTH.TP", "TRUTH.FN", "QUERY.TOTAL", "QUERY.TP", "QUERY.FP",
                       "FP.gt", "METRIC.Recall", "METRIC.Precision", "METRIC.F1_Score"]
    # SNVs: 10 matches; 20 has the right allele but the wrong zygosity (an FP and an FN, and FP.gt); 40 FP; 30 FN
    assert rows[2] == ["SNP", "PASS", "3", "1", "2", "3", "1", "2", "1", "0.333333", "0.333333", "0.333333"]
    assert rows[1] == ["INDEL", "PASS", "0", "0", "0", "0", "0", "0", "0", "", "", ""]  # undefined: empty, as hap.py
