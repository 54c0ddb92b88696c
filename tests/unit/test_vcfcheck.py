"""Bad VCFs given to `aisci splice score`, `annotate` and `context`: one line naming file, line and field, exit 1, nothing written.

The pre-scan (`aisci.vcfcheck.check_vcf`) runs before any model or annotation loads; the
guards below fail a test if one is touched. Its contract is checked against htslib itself: what
htslib reads, the scan accepts; what htslib fails on, the scan refuses with the reason.
"""

from __future__ import annotations

import gzip
import re

import pyarrow.parquet as pq
import pysam
import pytest

from aisci.cli import main
from aisci.errors import InputError
from aisci.vcfcheck import check_vcf
from tests.conftest import REPO

DATA = REPO / "tests" / "unit" / "data" / "splice"
FASTA = "ucsc.hg19.chr20.unittest.fasta.gz"
HEADER = (
    "##fileformat=VCFv4.2\n##contig=<ID=chr20,length=63025520>\n"
    '##FORMAT=<ID=GT,Number=1,Type=String,Description="Genotype">\n'
    '##FORMAT=<ID=DP,Number=1,Type=Integer,Description="Depth">\n'
    '##FORMAT=<ID=GL,Number=G,Type=Float,Description="Genotype likelihoods">\n'
    "#CHROM\tPOS\tID\tREF\tALT\tQUAL\tFILTER\tINFO\tFORMAT\tS1\n"
)
GOOD = "chr20\t10016197\td0\tA\tG\t.\t.\t.\tGT\t0/1\n"  # line 7; ANKEF1, + strand, REF matches hg19


def _text(body: str) -> bytes:
    return (HEADER + GOOD + body).encode()


def _write(tmp_path, name: str, data: bytes):
    path = tmp_path / name
    path.write_bytes(data)
    return path


def _bgzipped(tmp_path, name: str, data: bytes):
    plain = _write(tmp_path, name + ".plain", data)
    out = tmp_path / name
    pysam.tabix_compress(str(plain), str(out), force=True)
    plain.unlink()
    return out


# The robustness probe's cases: name -> (file maker, the message that replaces its traceback).
def _bad_pos(t):
    return _write(t, "bad_pos.vcf", _text("chr20\t1001x6225\td2\tA\tC\t.\t.\t.\tGT\t0/1\n"))


def _missing_column(t):
    return _write(t, "missing_column.vcf", _text("chr20\t10016225\td2\tA\n"))


def _bad_gt(t):
    return _write(t, "bad_gt.vcf", _text("chr20\t10016225\td2\tA\tC\t.\t.\t.\tGT\tx/y\n"))


def _pos_zero(t):
    return _write(t, "pos_zero.vcf", (HEADER + "chr20\t0\td0\tA\tG\t.\t.\t.\tGT\t0/1\n").encode())


def _plain_gzip(t):
    return _write(t, "plain.vcf.gz", gzip.compress(_text("")))


def _truncated_bgzip(t):
    whole = _bgzipped(t, "whole.vcf.gz", _text("".join(f"chr20\t{10016200 + i}\t.\tA\tG\t.\t.\t.\tGT\t0/1\n"
                                                        for i in range(2000))))
    data = whole.read_bytes()
    whole.unlink()
    return _write(t, "truncated.vcf.gz", data[: len(data) * 2 // 3])


def _random_bytes(t):
    return _write(t, "random.vcf", bytes(range(256)) * 16)  # binary, no line structure, not gzip


def _non_utf8(t):
    latin1 = "chr20\t10016225\tr\xe9s\tA\tC\t.\t.\t.\tGT\t0/1\n".encode("latin-1")  # an ID in Latin-1, not UTF-8
    return _write(t, "latin1.vcf", _text("") + latin1)


BAD = {
    "bad_pos": (_bad_pos, r"bad_pos\.vcf line 8: POS '1001x6225' is not a position \(a whole number >= 1\)"),
    "missing_column": (_missing_column, r"missing_column\.vcf line 8: 4 tab-separated columns, the #CHROM line has 10 "
                                        r"\(no ALT, QUAL, FILTER, INFO, FORMAT, S1\)"),
    "bad_gt": (_bad_gt, r"bad_gt\.vcf line 8: sample S1 GT 'x/y' is not a genotype such as 0/1"),
    "pos_zero": (_pos_zero, r"pos_zero\.vcf line 7: POS '0' is not a position"),
    "plain_gzip": (_plain_gzip, r"plain\.vcf\.gz: is gzip, not bgzip .*recompress it with `zcat \S*plain\.vcf\.gz \| bgzip"),
    "truncated_bgzip": (_truncated_bgzip, r"truncated\.vcf\.gz: truncated bgzip file \(no end-of-file block\)"),
    "random_bytes": (_random_bytes, r"random\.vcf line 1: not a VCF \(the first line must be ##fileformat=VCFv4\.x\)"),
    "non_utf8": (_non_utf8, r"latin1\.vcf line 8: not UTF-8 text \(byte 17 of the line is 0xe9\)"),
}


@pytest.fixture
def no_model(monkeypatch):
    """Fail the test if a model, the device or a gene annotation would load: the VCF must be refused first."""
    def loaded(*_args, **_kwargs):
        raise AssertionError("loaded before the VCF was checked")

    monkeypatch.setattr("aisci.splice.weights.load_ensemble", loaded)
    monkeypatch.setattr("aisci.device.pick_device", loaded)  # every GPU-class stage gets its device from here
    monkeypatch.setattr("aisci.splice.annotation.load_annotation", loaded)
    monkeypatch.setattr("aisci.protein.transcripts.load_transcripts", loaded)


def _command(stage: str, vcf, out_dir, fasta):
    if stage == "splice":
        return ["splice", "score", "--vcf", str(vcf), "--ref", str(fasta), "--annotation", str(DATA / "custom.gff3"),
                "--out", str(out_dir / "x.vcf.gz"), "--parquet", str(out_dir / "x.parquet")]
    if stage == "annotate":
        return ["annotate", "--vcf", str(vcf), "--ref", str(fasta), "--annotation", str(DATA / "custom.gff3"),
                "--out", str(out_dir / "x.parquet")]
    return ["context", "--vcf", str(vcf), "--ref", str(fasta), "--out", str(out_dir / "x.parquet")]


def _fails_with_one_line(stage, argv, capfd, pattern):
    assert main(argv) == 1
    err = capfd.readouterr().err
    lines = [line for line in err.splitlines() if line.strip()]
    assert len(lines) == 1, err  # no traceback, no htslib message
    assert lines[0].startswith(f"aisci {stage}: error: "), err
    assert re.search(pattern, lines[0]), lines[0]


@pytest.mark.parametrize("stage", ["splice", "annotate", "context"])
@pytest.mark.parametrize("case", sorted(BAD))
def test_bad_vcf_is_one_line_error_before_any_model_and_nothing_written(stage, case, na12878, tmp_path, capfd,
                                                                         no_model):
    make, pattern = BAD[case]
    vcf = make(tmp_path)
    out_dir = tmp_path / "out"
    _fails_with_one_line(stage, _command(stage, vcf, out_dir, na12878 / FASTA), capfd, pattern)
    assert not out_dir.exists() or not list(out_dir.iterdir())


def test_unsorted_vcf_is_refused_by_splice_score_naming_the_line(na12878, tmp_path, capfd, no_model):
    """splice score writes a tabix-indexed VCF: an order tabix cannot index fails before scoring, not after."""
    back = _write(tmp_path, "back.vcf", _text("chr20\t10016190\td1\tA\tG\t.\t.\t.\tGT\t0/1\n"))
    out_dir = tmp_path / "out"
    _fails_with_one_line("splice", _command("splice", back, out_dir, na12878 / FASTA), capfd,
                         r"back\.vcf line 8: chr20:10016190 comes after chr20:10016197: the VCF is not sorted by "
                         r"position; sort it with `bcftools sort")
    again = _write(tmp_path, "again.vcf", (HEADER + "chr20\t5\t.\tA\tG\t.\t.\t.\tGT\t0/1\n"
                                           "chr21\t5\t.\tA\tG\t.\t.\t.\tGT\t0/1\nchr20\t9\t.\tA\tG\t.\t.\t.\tGT\t0/1\n"
                                           ).encode())
    _fails_with_one_line("splice", _command("splice", again, out_dir, na12878 / FASTA), capfd,
                         r"again\.vcf line 9: contig chr20 comes back after chr21")
    assert not out_dir.exists() or not list(out_dir.iterdir())


def test_unsorted_vcf_is_fine_for_the_stages_that_write_parquet(na12878, tmp_path, capfd):
    """annotate and context keep the file's order in a table: they need no index, so no sort order."""
    unsorted = _write(tmp_path, "unsorted.vcf", (HEADER + "chr20\t10016225\td2\tA\tC\t.\t.\t.\tGT\t0/1\n" + GOOD).encode())
    for stage in ("annotate", "context"):
        argv = _command(stage, unsorted, tmp_path / stage, na12878 / FASTA)
        assert main(argv) == 0, capfd.readouterr().err
        rows = pq.read_table(tmp_path / stage / "x.parquet").to_pylist()
        assert [r["pos"] for r in rows][:1] == [10016225] and 10016197 in [r["pos"] for r in rows]


# --- the scan against htslib: what htslib reads is accepted, what it fails on is refused with a reason -----

ACCEPTED = {  # sample column (FORMAT GT:DP:GL) -> read by htslib as written
    "missing values": "./.:.:.",
    "whole sample missing": ".",
    "trailing fields dropped": "0/1",
    "empty DP": "0/1::1,2,3",
    "signed DP": "0|1:+3:-1,-2,-3",
    "floats htslib reads": "1/1:3:nan,-Inf,0x10",
    "float forms": "0/1:3:.5,5.,1e-3",
    "triploid and big allele": "0/1/2:3",
}
REFUSED = {  # sample column -> (pattern of our message, what htslib says on stderr)
    "GT letter": ("x/1", r"line 7: sample S1 GT 'x/1' is not a genotype"),
    "GT dangling separator": ("0/", r"line 7: sample S1 GT '0/' is not a genotype"),
    "GT leading phase": ("|0/1", r"line 7: sample S1 GT '\|0/1' is not a genotype"),
    "DP not an integer": ("0/1:1.5", r"line 7: sample S1 DP '1.5' is not a list of integers"),
    "GL not a number": ("0/1:3:abc,1,2", r"line 7: sample S1 GL 'abc,1,2' is not a list of numbers"),
    "more values than FORMAT keys": ("0/1:3:1,2,3:9", r"line 7: sample S1 '0/1:3:1,2,3:9' has 4 ':'-separated values, "
                                                      r"FORMAT 'GT:DP:GL' has 3 keys"),
    "empty sample": ("", r"line 7: sample S1 is empty"),
}


def _one_record(tmp_path, sample: str):
    return _write(tmp_path, "one.vcf", (HEADER + f"chr20\t100\t.\tA\tG\t.\t.\t.\tGT:DP:GL\t{sample}\n").encode())


@pytest.mark.parametrize("case", sorted(ACCEPTED))
def test_scan_accepts_what_htslib_reads(case, tmp_path):
    vcf = _one_record(tmp_path, ACCEPTED[case])
    with pysam.VariantFile(str(vcf)) as fh:
        assert len(list(fh)) == 1
    scan = check_vcf(vcf, require_sorted=True)
    assert (scan.kind, scan.records, scan.contigs, scan.samples) == ("vcf", 1, ("chr20",), ("S1",))


@pytest.mark.parametrize("case", sorted(REFUSED))
def test_scan_refuses_what_htslib_fails_on_and_says_why(case, tmp_path):
    sample, pattern = REFUSED[case]
    vcf = _one_record(tmp_path, sample)
    with pytest.raises(OSError), pysam.VariantFile(str(vcf)) as fh:
        list(fh)
    with pytest.raises(InputError, match=pattern):
        check_vcf(vcf)


def test_scan_reads_bgzip_crlf_and_bcf_and_checks_bcf_order(tmp_path):
    body = "".join(f"chr20\t{p}\t.\tA\tG\t.\t.\t.\tGT\t0/1\r\n" for p in (5, 9, 9, 20))
    gz = _bgzipped(tmp_path, "crlf.vcf.gz", HEADER.replace("\n", "\r\n").encode() + body.encode())
    scan = check_vcf(gz, require_sorted=True)
    assert (scan.kind, scan.records) == ("vcf.gz", 4)
    with pysam.VariantFile(str(gz)) as src:
        records = list(src)
        for name, order in (("sorted.bcf", records), ("reversed.bcf", records[::-1])):
            with pysam.VariantFile(str(tmp_path / name), "wb", header=src.header) as out:
                for rec in order:
                    out.write(rec)
    assert check_vcf(tmp_path / "sorted.bcf", require_sorted=True).kind == "bcf"
    assert check_vcf(tmp_path / "reversed.bcf").records == 4  # order is only checked when asked
    with pytest.raises(InputError, match=r"reversed\.bcf record 2: chr20:9 comes after chr20:20: the VCF is not sorted"):
        check_vcf(tmp_path / "reversed.bcf", require_sorted=True)


@pytest.mark.parametrize("text, pattern", [
    ("", r"empty\.vcf: is empty; not a VCF"),
    ("##fileformat=VCFv4.2\n", r"empty\.vcf: no #CHROM header line; not a VCF"),
    ("##fileformat=VCFv4.2\nchr20\t5\t.\tA\tG\t.\t.\t.\n", r"line 2: a record before the #CHROM header line"),
    ("##fileformat=VCFv4.2\n#CHROM\tPOS\tREF\n", r"line 2: the #CHROM line must name the columns #CHROM POS ID"),
    ("##fileformat=VCFv4.2\n#CHROM\tPOS\tID\tREF\tALT\tQUAL\tFILTER\tINFO\tFORMAT\tA\tA\n",
     r"line 2: sample name\(s\) A appear more than once"),
    (HEADER + GOOD + "\n", r"line 8: empty line"),
    (HEADER + "chr20\t5\t.\t.\tG\t.\t.\t.\tGT\t0/1\n", r"line 7: REF '\.' is not a sequence of bases"),
    (HEADER + "chr20\t5\t.\tA\t\t.\t.\t.\tGT\t0/1\n", r"line 7: ALT is empty"),
    (HEADER + "chr20\t\t.\tA\tG\t.\t.\t.\tGT\t0/1\n", r"line 7: POS '' is not a position"),
    (HEADER + "chr20\t5\t.\tA\tG\t.\t.\t.\tGT:GT\t0/1:0/1\n", r"line 7: FORMAT 'GT:GT' names GT more than once"),
    (HEADER + GOOD.replace("\n", "\t0/1\n"), r"line 7: 11 tab-separated columns, the #CHROM line has 10"),
])
def test_scan_refuses_what_htslib_would_misread(text, pattern, tmp_path):
    """Cases htslib reads without an error but wrongly (empty POS as 0, extra columns dropped) or fails on."""
    with pytest.raises(InputError, match=pattern):
        check_vcf(_write(tmp_path, "empty.vcf", text.encode()))


def test_a_bad_value_after_many_samples_is_found_at_once(tmp_path):
    """Each sample is matched as an atomic group: without it, 25 samples of '0/1:10' (DS a Float) followed by
    a bad value took 15 s (the engine tried every split of '10' into '1' + '0'), and 40 would take days."""
    import signal

    header = HEADER.replace("#CHROM", '##FORMAT=<ID=DS,Number=1,Type=Float,Description="dosage">\n#CHROM', 1)
    names = [f"S{i}" for i in range(200)]
    header = header.replace("FORMAT\tS1", "FORMAT\t" + "\t".join(names))
    samples = ["0/1:10"] * 199 + ["0/1:x"]
    vcf = _write(tmp_path, "many.vcf", (header + "chr20\t100\t.\tA\tG\t.\t.\t.\tGT:DS\t" + "\t".join(samples) + "\n").encode())

    def hung(signum, frame):
        raise TimeoutError("the pre-scan backtracked")

    signal.signal(signal.SIGALRM, hung)
    signal.alarm(10)
    try:
        with pytest.raises(InputError, match=r"line 8: sample S199 DS 'x' is not a list of numbers"):
            check_vcf(vcf)
    finally:
        signal.alarm(0)
    good = _write(tmp_path, "good.vcf", (header + "chr20\t100\t.\tA\tG\t.\t.\t.\tGT:DS\t" + "\t".join(["0/1:10"] * 200) + "\n").encode())
    assert check_vcf(good).samples == tuple(names)
