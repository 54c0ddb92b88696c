"""aisci.cohort.vcf (VCF -> CALLS batches) against pysam and `bcftools query`; aisci.demo.cohort cohorts."""

from __future__ import annotations

import gzip
import random
import re
import subprocess
from pathlib import Path

import numpy as np
import pyarrow as pa
import pysam
import pytest

from aisci.cohort import vcf
from aisci.cohort.normalize import trim
from aisci.cohort.schema import CALLS
from aisci.demo.cohort import simulate_cohort
from aisci.cohort.tables import variant_ids
from aisci.cohort.vcf import read_calls
from aisci.errors import InputError

NIST = "test_nist.b37_chr20_100kbp_at_10mb.vcf.gz"          # in the na12878 fixture's folder
QUERY = "%CHROM\t%POS\t%REF\t%ALT\t%QUAL\t%FILTER[\t%GT\t%DP\t%GQ\t%AD]\n"

HEADER_LINES = [
    "##fileformat=VCFv4.2",
    '##FILTER=<ID=PASS,Description="All filters passed">',
    '##FILTER=<ID=LowQual,Description="Low quality">',
    '##FILTER=<ID=LowDepth,Description="Low depth">',
    "##contig=<ID=chr1,length=10000>",
    "##contig=<ID=chr2,length=10000>",
    '##ALT=<ID=DEL,Description="Deletion">',
    '##INFO=<ID=DP,Number=1,Type=Integer,Description="Depth">',
    '##FORMAT=<ID=GT,Number=1,Type=String,Description="Genotype">',
    '##FORMAT=<ID=PL,Number=G,Type=Integer,Description="Genotype likelihoods">',
    '##FORMAT=<ID=DP,Number=1,Type=Integer,Description="Depth">',
    '##FORMAT=<ID=AD,Number=R,Type=Integer,Description="Allelic depths">',
    '##FORMAT=<ID=GQ,Number=1,Type=Integer,Description="Genotype quality">',
    '##FORMAT=<ID=PS,Number=1,Type=Integer,Description="Phase set">',
    "#CHROM\tPOS\tID\tREF\tALT\tQUAL\tFILTER\tINFO\tFORMAT\tS1",
]
HEADER = "\n".join(HEADER_LINES) + "\n"
N_HEADER = HEADER.count("\n")

# bcftools-call-style records: multi-allelics, indels, '.' QUAL/FILTER/DP/GQ/AD and AD entries, phased and
# haploid GTs, several FILTERs, '*' and <DEL> ALTs, FORMAT changing between records, trailing FORMAT fields
# dropped (record at 800), a no-ALT record (skipped), lower-case bases, two chromosomes.
RECORDS = [
    "chr1\t100\t.\tA\tG\t50.5\tPASS\tDP=10\tGT:PL:DP:AD:GQ\t0/1:50,0,60:10:5,5:45",
    "chr1\t200\trs1\tC\tT,G\t99\tPASS\tDP=20\tGT:PL:DP:AD:GQ\t1/2:90,80,70,60,0,50:20:0,10,10:99",
    "chr1\t300\t.\tAT\tA\t.\tLowQual;LowDepth\tDP=3\tGT:PL:DP:AD:GQ\t0/1:20,0,30:3:1,2:10",
    "chr1\t400\t.\tG\tA,*\t30\t.\tDP=8\tGT:PS:DP:AD:GQ\t1|2:400:8:.,4,4:20",
    "chr1\t500\t.\tC\t<DEL>\t12.3\tPASS\t.\tGT:DP:GQ\t1:.:.",
    "chr1\t550\t.\tT\t.\t40\tPASS\tDP=5\tGT:DP\t0/0:5",
    "chr1\t600\t.\tA\tC,G,T\t7e1\tPASS\tDP=9\tGT:AD:DP:GQ\t./.:.:9:.",
    "chr1\t700\t.\tGAT\tG,GATAT\t22.125\tPASS\tDP=9\tGT:PL:DP:AD:GQ\t0/2:5,6,7,8,0,9:9:4,.,5:30",
    "chr1\t800\t.\tC\tT\t0.0001\tPASS\tDP=9\tGT:PL:DP:AD:GQ\t0/1:5,0,9",
    "chr2\t50\t.\tACGT\tA\t100\tPASS\tDP=30\tGT:PL:DP:AD:GQ\t1/1:99,60,0:30:0,30:99",
    "chr2\t60\t.\tc\tt\t5\tLowQual\tDP=1\tGT:DP:AD\t0|1:1:0,1",
    "chr2\t70\t.\tG\tA\t3\tPASS\tDP=2\tGT:PL:DP:AD:GQ\t.:.:.:.:.",
    "chr2\t80\t.\tG\tA,C\t3\tPASS\tDP=2\tGT:DP:AD\t.|2:2:.,.,.",
    "chr2\t90\t.\tG\tA\t3\tPASS\tDP=2\tDP:AD\t2:1,1",
]


def write_vcf(path: Path, records: list[str], header: str = HEADER, bgzip: bool = False) -> Path:
    text = header + "".join(r + "\n" for r in records)
    if bgzip:
        plain = path.with_suffix("")
        plain.write_text(text)
        pysam.tabix_compress(str(plain), str(path), force=True)
        plain.unlink()
    else:
        path.write_text(text)
    return path


def read_all(path: Path, sample: str = "S1", batch_rows: int = 65536) -> pa.Table:
    """read_calls as one table; checks every batch's schema and chromosome."""
    tables = []
    for chrom, batch in read_calls(path, sample, batch_rows):
        assert batch.schema.equals(CALLS, check_metadata=True)
        assert 0 < batch.num_rows <= batch_rows
        assert set(batch.column("chrom").to_pylist()) == {chrom}
        tables.append(pa.Table.from_batches([batch]))
    if not tables:
        return CALLS.empty_table()
    return pa.concat_tables(tables)


def minimal(ref: str, alt: str, pos: int) -> tuple[str, str, int]:
    """The spelling read_calls gives a split allele: upper case, trimmed unless symbolic (tested in cohort/test_normalize.py)."""
    ref, alt = ref.upper(), alt.upper()
    return (ref, alt, pos) if "<" in alt or "*" in alt else trim(ref, alt, pos)


def read_calls_reference(path: Path, sample: str) -> pa.Table:
    """The slow reference: htslib's parse through pysam, one Python dict per ALT allele.

    `phased` is defined as "the GT is written with '|'", so a haploid GT is not phased (pysam says True).
    """
    rows = []
    with pysam.VariantFile(str(path)) as vcf:
        for rec in vcf:
            if not rec.alts:
                continue
            call = rec.samples[0]
            gt = call.get("GT") if "GT" in rec.format else None
            text = None if gt is None else ("|" if call.phased else "/").join(
                "." if a is None else str(a) for a in gt)
            called = None if gt is None else sum(a is not None for a in gt)
            ad = call.get("AD") if "AD" in rec.format else None
            if ad is not None and len(ad) == 1 and ad[0] is None:
                ad = None                                   # AD '.' (or dropped): the whole list is missing
            for i, alt in enumerate(rec.alts, 1):
                ref, alt_, pos = minimal(rec.ref, alt, rec.pos)
                rows.append({
                    "chrom": rec.chrom, "sample": sample, "pos": pos, "ref": ref, "alt": alt_,
                    "alt_index": i, "qual": rec.qual,
                    "filter": ";".join(rec.filter.keys()) or None, "genotype": text,
                    "alt_copies": None if not called else sum(a == i for a in gt),
                    "called_alleles": called,
                    "phased": None if gt is None else bool(call.phased and len(gt) > 1),
                    "depth": call.get("DP"), "gq": call.get("GQ"),
                    "allele_depths": None if ad is None else list(ad),
                })
    return pa.Table.from_pylist(rows, schema=CALLS)


def read_calls_bcftools(path: Path) -> list[dict]:
    """`bcftools query` output, split per ALT, as dicts of the columns it prints."""
    with pysam.VariantFile(str(path)) as vcf:
        has_ad = "AD" in vcf.header.formats             # bcftools refuses %AD when the header lacks it
    query = QUERY if has_ad else QUERY.replace("%AD]", ".]")
    out = subprocess.run(["bcftools", "query", "-f", query, str(path)], capture_output=True, text=True,
                         check=True).stdout
    rows = []

    def num(v):
        return None if v == "." else int(v)

    for line in out.splitlines():
        chrom, pos, ref, alt, qual, filt, gt, dp, gq, ad = line.split("\t")
        for i, a in enumerate([] if alt == "." else alt.split(","), 1):
            r, a, p = minimal(ref, a, int(pos))
            rows.append({"chrom": chrom, "pos": p, "ref": r, "alt": a, "alt_index": i,
                         "qual": None if qual == "." else float(np.float32(qual)),
                         "filter": None if filt == "." else filt, "genotype": gt, "depth": num(dp),
                         "gq": num(gq), "allele_depths": None if ad == "." else [num(x) for x in ad.split(",")]})
    return rows


def assert_matches_references(path: Path, ours: pa.Table) -> None:
    assert ours.to_pylist() == read_calls_reference(path, "S1").to_pylist()
    mine = ours.select(["chrom", "pos", "ref", "alt", "alt_index", "qual", "filter", "genotype", "depth", "gq",
                        "allele_depths"]).to_pylist()
    for row in mine:
        row["genotype"] = "." if row["genotype"] is None else row["genotype"]   # bcftools prints '.' for no GT
    assert mine == read_calls_bcftools(path)


# --- equality with the references ---------------------------------------------------------------------


def test_real_nist_vcf_matches_pysam_and_bcftools(na12878):
    # the real NA12878 truth slice in ../shared: a missing file is a failure, never a skip
    path = na12878 / NIST
    assert path.is_file(), f"real test data missing: {path}"
    ours = read_all(path)
    assert ours.num_rows == 222 and set(ours.column("chrom").to_pylist()) == {"chr20"}
    assert_matches_references(path, ours)


@pytest.mark.parametrize("bgzip", [False, True])
def test_handcrafted_vcf_matches_pysam_and_bcftools(tmp_path, bgzip):
    path = write_vcf(tmp_path / ("hand.vcf.gz" if bgzip else "hand.vcf"), RECORDS, bgzip=bgzip)
    ours = read_all(path)
    assert_matches_references(path, ours)
    rows = {(r["pos"], r["alt"]): r for r in ours.to_pylist()}
    assert len(ours) == 19 and 550 not in {p for p, _ in rows}                       # ALT '.' skipped
    assert rows[200, "G"]["alt_index"] == 2 and rows[200, "G"]["allele_depths"] == [0, 10, 10]
    assert rows[400, "*"]["phased"] and rows[400, "*"]["allele_depths"] == [None, 4, 4]
    assert rows[500, "<DEL>"]["genotype"] == "1" and rows[500, "<DEL>"]["called_alleles"] == 1
    assert rows[600, "T"]["alt_copies"] is None and rows[600, "T"]["called_alleles"] == 0
    assert rows[700, "G"]["alt_copies"] == 0 and rows[700, "GAT"]["alt_copies"] == 1  # GAT>GATAT of the record, trimmed
    assert rows[800, "T"]["depth"] is None and rows[800, "T"]["allele_depths"] is None   # fields dropped
    assert rows[300, "A"]["qual"] is None and rows[300, "A"]["filter"] == "LowQual;LowDepth"
    assert rows[90, "A"]["genotype"] is None and rows[90, "A"]["called_alleles"] is None  # no GT key


def test_synthetic_cohort_matches_pysam_and_bcftools(tmp_path):
    manifest = simulate_cohort(tmp_path / "cohort", 2, 3000, seed=5)
    lines = manifest.read_text().splitlines()
    assert lines[0] == "sample\tvcf" and len(lines) == 3
    for line in lines[1:]:
        path = manifest.parent / line.split("\t")[1]
        ours = read_all(path, "S1", batch_rows=700)            # several batches per chromosome
        assert_matches_references(path, ours)
        assert ours.num_rows > 2500


def test_batches_never_mix_chromosomes_and_keep_file_order(tmp_path):
    recs = [f"chr{c}\t{p}\t.\tA\tC\t9\tPASS\t.\tGT\t0/1" for c, p in [(1, 5), (1, 9), (2, 3), (1, 1), (1, 2)]]
    path = write_vcf(tmp_path / "x.vcf", recs)
    got = [(chrom, b.column("pos").to_pylist()) for chrom, b in read_calls(path, "S1", batch_rows=1)]
    assert got == [("chr1", [5]), ("chr1", [9]), ("chr2", [3]), ("chr1", [1]), ("chr1", [2])]
    got = [(chrom, b.column("pos").to_pylist()) for chrom, b in read_calls(path, "S1")]
    assert got == [("chr1", [5, 9]), ("chr2", [3]), ("chr1", [1, 2])]


def test_blank_lines_are_ignored_and_line_numbers_kept(tmp_path):
    path = write_vcf(tmp_path / "x.vcf", [RECORDS[0], "", RECORDS[1], "", "chr1\tx\t.\tA\tC\t9\tPASS\t.\tGT\t0/1"])
    with pytest.raises(InputError, match=rf"x.vcf line {N_HEADER + 5}: POS 'x'"):
        read_all(path)
    path = write_vcf(tmp_path / "y.vcf", [RECORDS[0], "", RECORDS[1], ""])
    assert read_all(path).num_rows == 3


def test_crlf_line_ends(tmp_path):
    plain = write_vcf(tmp_path / "lf.vcf", RECORDS)
    crlf = tmp_path / "crlf.vcf"
    crlf.write_bytes(plain.read_bytes().replace(b"\n", b"\r\n"))
    assert read_all(crlf).to_pylist() == read_all(plain).to_pylist()


def test_only_sample_name_is_taken_from_the_caller(tmp_path):
    path = write_vcf(tmp_path / "x.vcf", RECORDS[:1])
    assert set(read_all(path, "NA-1").column("sample").to_pylist()) == {"NA-1"}


# --- malformed input: every error names the file, the line and the field -------------------------------

GOOD = "chr1\t100\t.\tA\tG,T\t50\tPASS\tDP=1\tGT:DP:GQ:AD\t0/1:10:20:5,5,0"


@pytest.mark.parametrize(("column", "value", "message"), [
    (1, "abc", "POS 'abc' is not a positive integer"),
    (1, "0", "POS '0' is not a positive integer"),
    (1, "-4", "POS '-4' is not a positive integer"),
    (1, ".", "POS '.' is not a positive integer"),
    (0, "", "CHROM '' is empty"),
    (3, "AXG", "REF 'AXG' is not a sequence"),
    (3, ".", "REF '.' is not a sequence"),
    (4, "G,.", "ALT '.' is not A/C/G/T/N"),
    (4, "G,", "ALT '' is not A/C/G/T/N"),
    (4, "G,<DEL", "ALT '<DEL' is not A/C/G/T/N"),
    (5, "high", "QUAL 'high' is not a number"),
    (9, "0/x:10:20:5,5,0", "GT '0/x' is not a genotype"),
    (9, "0//1:10:20:5,5,0", "GT '0//1' is not a genotype"),
    (9, ":10:20:5,5,0", "GT '' is not a genotype"),
    (9, "0/3:10:20:5,5,0", "GT '0/3' names an allele beyond"),
    (9, "0/128:10:20:5,5,0", "GT '0/128' names an allele beyond"),
    (9, "0/99999999999999999999999:10:20:5,5,0", "GT '0/99999999999999999999999' names an allele beyond"),
    (9, "0/-1:10:20:5,5,0", "GT '0/-1' is not a genotype"),
    (1, "1.5", "POS '1.5' is not a positive integer"),
    (1, "99999999999999999999", "POS '99999999999999999999' is not a positive integer"),
    (9, "0/1:1.5:20:5,5,0", "DP '1.5' is not an integer"),
    (9, "0/1:10:x:5,5,0", "GQ 'x' is not an integer"),
    (9, "0/1:10:20:5,x,0", "AD '5,x,0' is not a list of integers"),
    (9, "0/1:10:20:5;5", "AD '5;5' is not a list of integers"),
    (9, "0/1:10:20:5,5,0:7", "sample column '0/1:10:20:5,5,0:7' has more fields than FORMAT"),
])
@pytest.mark.parametrize("bgzip", [False, True])
def test_bad_field_names_file_line_and_field(tmp_path, column, value, message, bgzip):
    bad = GOOD.split("\t")
    bad[column] = value
    path = write_vcf(tmp_path / ("bad.vcf.gz" if bgzip else "bad.vcf"), [GOOD, GOOD, "\t".join(bad), GOOD],
                     bgzip=bgzip)
    with pytest.raises(InputError, match=rf"^{re.escape(str(path))} line {N_HEADER + 3}: {re.escape(message)}"):
        read_all(path)


@pytest.mark.parametrize("bgzip", [False, True])
def test_wrong_column_count_names_line(tmp_path, bgzip):
    path = write_vcf(tmp_path / ("bad.vcf.gz" if bgzip else "bad.vcf"), [GOOD, GOOD.rsplit("\t", 2)[0], GOOD],
                     bgzip=bgzip)
    with pytest.raises(InputError, match=rf"^{re.escape(str(path))} line {N_HEADER + 2}: expected 10 .*found 8"):
        read_all(path)


@pytest.fixture(params=["isal", "pyarrow"])
def inflate(request, monkeypatch):
    """Both gzip readers: ISA-L's igzip when installed, else (and always in the second run) pyarrow's zlib."""
    if request.param == "pyarrow":
        monkeypatch.setattr(vcf, "_igzip", None)
    elif vcf._igzip is None:
        pytest.skip("the optional isal package is not installed")
    return request.param


def test_line_numbers_count_across_blocks(tmp_path, monkeypatch, inflate):
    # ~1.6 MB of records read in 64 KiB blocks: the bad record is in a later block
    monkeypatch.setattr(vcf, "BLOCK", 1 << 16)
    recs = [f"chr1\t{p}\t.\tA\tC\t50\tPASS\tDP=10;MQ=60;X=abcdefghijklmnopq\tGT:DP:GQ:AD\t0/1:10:20:5,5"
            for p in range(1, 20001)]
    good = write_vcf(tmp_path / "good.vcf.gz", recs, bgzip=True)
    assert read_all(good, batch_rows=1000).column("pos").to_pylist() == list(range(1, 20001))
    recs[19_000] = recs[19_000].replace("\tA\tC\t", "\tA\tQ\t")
    path = write_vcf(tmp_path / "big.vcf.gz", recs, bgzip=True)
    assert len("\n".join(recs)) > 20 * (1 << 16)
    with pytest.raises(InputError, match=rf"big.vcf.gz line {N_HEADER + 19_001}: ALT 'Q'"):
        read_all(path, batch_rows=1000)


def test_non_canonical_pos_gives_canonical_variant_id(tmp_path):
    path = write_vcf(tmp_path / "x.vcf", [GOOD.replace("\t100\t", "\t0100\t"), GOOD.replace("\t100\t", "\t007\t")])
    t = read_all(path)
    assert t.column("pos").to_pylist() == [100, 100, 7, 7]
    assert variant_ids(t).to_pylist() == ["chr1:100:A:G", "chr1:100:A:T", "chr1:7:A:G", "chr1:7:A:T"]


@pytest.mark.parametrize(("old", "new"), [("PASS", "P\xe4SS"), ("chr1", "chr\xff"), ("GT:DP", "GT:D\xff"),
                                          ("0/1:10", "0/1:1\xe9")])
@pytest.mark.parametrize("gz", [False, True])
def test_non_utf8_text_names_line(tmp_path, old, new, gz):
    path = tmp_path / ("latin1.vcf.gz" if gz else "latin1.vcf")
    data = (HEADER + GOOD + "\n").encode() + GOOD.replace(old, new).encode("latin-1") + b"\n"
    path.write_bytes(gzip.compress(data) if gz else data)
    with pytest.raises(InputError, match=rf"^{re.escape(str(path))} line {N_HEADER + 2}: not UTF-8"):
        read_all(path)


@pytest.mark.parametrize(("header", "message"), [
    (HEADER.replace("#CHROM", "##CHROM"), "no '#CHROM' header line"),
    (HEADER.replace("\tS1\n", "\n"), "has 0 sample columns"),
    (HEADER.replace("\tS1\n", "\tS1\tS2\n"), "has 2 sample columns"),
])
def test_bad_header_names_file(tmp_path, header, message):
    path = write_vcf(tmp_path / "h.vcf", [GOOD], header=header)
    with pytest.raises(InputError, match=rf"^{re.escape(str(path))}.*{re.escape(message)}"):
        read_all(path)


def test_large_header_and_header_only_files(tmp_path, monkeypatch, inflate):
    monkeypatch.setattr(vcf, "BLOCK", 1 << 16)                   # the header spans many blocks
    contigs = "".join(f"##contig=<ID=extra{i},length=1000000,assembly=aisci-test-padding>\n" for i in range(5_000))
    big = HEADER.replace("##contig=<ID=chr1", contigs + "##contig=<ID=chr1")
    assert len(big) > 4 * (1 << 16)
    path = write_vcf(tmp_path / "big_header.vcf.gz", RECORDS, header=big, bgzip=True)
    assert read_all(path).to_pylist() == read_all(write_vcf(tmp_path / "small.vcf", RECORDS)).to_pylist()
    for text in (HEADER, HEADER.rstrip("\n")):
        (tmp_path / "empty.vcf").write_text(text)
        assert list(read_calls(tmp_path / "empty.vcf", "S1")) == []


def test_truncated_gzip_names_file(tmp_path, inflate):
    full = write_vcf(tmp_path / "full.vcf.gz", [GOOD.replace("\t100\t", f"\t{p}\t") for p in range(1, 5000)],
                     bgzip=True)
    cut = tmp_path / "cut.vcf.gz"
    cut.write_bytes(full.read_bytes()[: full.stat().st_size // 2])
    with pytest.raises(InputError, match=rf"^{re.escape(str(cut))}: .*(truncated|corrupt)"):
        read_all(cut)
    missing = tmp_path / "missing.vcf"
    with pytest.raises(InputError, match=re.escape(str(missing))):
        read_all(missing)


# --- hostile input: an InputError naming the file (and the line where there is one), never a traceback -----


@pytest.mark.parametrize("form", ["plain", "gzip", "gzip magic"])
def test_random_bytes_name_the_file(tmp_path, form):
    data = np.random.default_rng(5).integers(0, 256, 4000, dtype=np.uint8).tobytes()
    path = tmp_path / "random.vcf.gz"
    path.write_bytes({"plain": data, "gzip": gzip.compress(data), "gzip magic": b"\x1f\x8b" + data}[form])
    what = "truncated or corrupt gzip stream" if form == "gzip magic" else "no '#CHROM' header line"
    with pytest.raises(InputError, match=rf"^{re.escape(str(path))}: {what}"):
        read_all(path)


def test_plain_gzip_is_read_like_bgzip(tmp_path):
    """A gzip file that is not BGZF (`gzip x.vcf`) is accepted: the reader streams it, it needs no index."""
    plain = write_vcf(tmp_path / "x.vcf", RECORDS)
    gz = tmp_path / "x.vcf.gz"
    gz.write_bytes(gzip.compress(plain.read_bytes()))
    bgz = write_vcf(tmp_path / "b.vcf.gz", RECORDS, bgzip=True)
    assert read_all(gz).equals(read_all(plain)) and read_all(bgz).equals(read_all(plain))


def test_gt_of_any_ploidy_is_counted_exactly(tmp_path):
    """int8 counts wrapped: a GT of 257 ALT alleles was stored as 1 copy of 1 called allele."""
    gts = ["/".join(["1"] * 128), "|".join(["1"] * 257), "/".join(["2"] * 150 + ["0"] * 150 + ["."] * 3)]
    path = write_vcf(tmp_path / "ploidy.vcf", [GOOD.replace("\t100\t", f"\t{100 + i}\t").replace("0/1:", gt + ":")
                                               for i, gt in enumerate(gts)])
    t = read_all(path)
    assert t.schema.field("alt_copies").type == pa.int32() == t.schema.field("called_alleles").type
    assert [(r["alt_index"], r["alt_copies"], r["called_alleles"]) for r in t.to_pylist()] == [
        (1, 128, 128), (2, 0, 128), (1, 257, 257), (2, 0, 257), (1, 0, 300), (2, 150, 300)]
    assert t.to_pylist() == read_calls_reference(path, "S1").to_pylist()


def test_a_long_bad_value_is_shortened_in_the_message(tmp_path):
    gt = "/".join(["1"] * 200) + "/x"
    path = write_vcf(tmp_path / "long.vcf", [GOOD, GOOD.replace("0/1:", gt + ":")])
    with pytest.raises(InputError) as err:
        read_all(path)
    assert str(err.value) == (f"{path} line {N_HEADER + 2}: GT {gt[:60]!r}... ({len(gt)} characters) "
                              "is not a genotype such as 0/1, 1|2 or ./.")


def damaged(rng: random.Random, data: bytes, start: int) -> bytes:
    """``data`` with 1-5 random edits after ``start`` (mostly in the records): bytes changed, inserted
    (separators, digits, bytes that are not UTF-8), deleted or repeated, or the file cut."""
    out = bytearray(data)
    for _ in range(rng.choice([1, 1, 2, 5])):
        if len(out) < 2:
            break
        i = rng.randrange(min(start, len(out) - 1), len(out))
        op = rng.randrange(5)
        if op == 0:
            out[i] = rng.randrange(256)
        elif op == 1:
            out[i:i] = bytes([rng.choice(b"\t:,/|.\n\r0123456789-#<>*eE+ \x00\xff")])
        elif op == 2:
            del out[i:i + rng.randrange(1, 20)]
        elif op == 3:
            out[i:i] = out[rng.randrange(len(out)):][:rng.randrange(1, 30)]
        else:
            del out[i:]
    return bytes(out)


def test_damaged_vcfs_raise_only_input_errors_naming_the_file(tmp_path):
    """Seeded random damage, plain, gzipped and gzipped then cut: read, or an InputError naming the file."""
    rng = random.Random(11)
    base = (HEADER + "".join(r + "\n" for r in RECORDS)).encode()
    outcomes = {"read": 0, "refused": 0}
    for k in range(150):
        data = damaged(rng, base, len(HEADER) - 40)
        form = k % 3
        if form:
            data = gzip.compress(data)
            data = data[:rng.randrange(len(data))] if form == 2 else data
        path = tmp_path / f"d{k}.vcf.gz"
        path.write_bytes(data)
        try:
            for _chrom, batch in read_calls(path, "S1"):
                assert batch.schema.equals(CALLS)
            outcomes["read"] += 1
        except InputError as exc:
            assert str(exc).startswith(str(path)), exc
            outcomes["refused"] += 1
    assert outcomes["read"] > 10 and outcomes["refused"] > 50, outcomes


# --- the synthetic cohort ----------------------------------------------------------------------------


def test_simulate_cohort_is_deterministic_sorted_and_indexed(tmp_path):
    a = simulate_cohort(tmp_path / "a", 3, 1500, seed=2)
    b = simulate_cohort(tmp_path / "b", 3, 1500, seed=2)
    c = simulate_cohort(tmp_path / "c", 3, 1500, seed=3)
    assert a.read_text() == "sample\tvcf\nS1\tvcf/S1.vcf.gz\nS2\tvcf/S2.vcf.gz\nS3\tvcf/S3.vcf.gz\n"
    vcfs = [a.parent / "vcf" / f"S{i}.vcf.gz" for i in (1, 2, 3)]
    for path in vcfs:
        assert gzip.decompress(path.read_bytes()) == gzip.decompress((b.parent / "vcf" / path.name).read_bytes())
        assert Path(f"{path}.tbi").is_file()
    assert gzip.decompress(vcfs[0].read_bytes()) != gzip.decompress((c.parent / "vcf/S1.vcf.gz").read_bytes())
    keys = []
    for path in vcfs:
        t = read_all(path)
        records = t.filter(pa.compute.equal(t.column("alt_index"), 1))
        assert 1200 < records.num_rows < 1800                               # ~n_variants records
        pos = list(zip(records.column("chrom").to_pylist(), records.column("pos").to_pylist()))
        assert pos == sorted(pos, key=lambda cp: (int(cp[0][3:]), cp[1]))  # sorted, chr1 < chr2 < chr3
        assert (t.column("alt_index").to_numpy() == 2).sum() > 0             # some multi-allelics
        assert set(t.column("filter").to_pylist()) == {"PASS", "LowQual"}
        keys.append(set(variant_ids(t).to_pylist()))
        with pysam.VariantFile(str(path)) as vcf:                             # the tabix index works
            assert sum(1 for _ in vcf.fetch("chr2")) == records.filter(
                pa.compute.equal(records.column("chrom"), "chr2")).num_rows
    # one shared pool, many rare and some common variants: both private and shared-by-all variants
    union, shared = keys[0] | keys[1] | keys[2], keys[0] & keys[1] & keys[2]
    private = [v for v in union if sum(v in k for k in keys) == 1]
    assert len(private) > 0.15 * len(union) and 0.1 * len(keys[0]) < len(shared) < 0.8 * len(keys[0])


def test_simulate_cohort_takes_ref_from_fasta_and_favours_exons(tmp_path, sim_data):
    manifest = simulate_cohort(tmp_path / "c", 1, 2000, reference=sim_data.reference,
                               annotation=sim_data.annotation, bgzip=False, sample_prefix="P")
    assert manifest.read_text() == "sample\tvcf\nP1\tvcf/P1.vcf\n"
    t = read_all(manifest.parent / "vcf/P1.vcf")
    exons = [line.split("\t") for line in sim_data.annotation.read_text().splitlines()
             if not line.startswith("#") and line.split("\t")[2] == "exon"]
    inside = 0
    with pysam.FastaFile(str(sim_data.reference)) as fasta:
        lengths = dict(zip(fasta.references, fasta.lengths))
        for chrom, pos, ref in zip(*(t.column(c).to_pylist() for c in ("chrom", "pos", "ref"))):
            assert fasta.fetch(chrom, pos - 1, pos - 1 + len(ref)).upper() == ref
            inside += any(e[0] == chrom and int(e[3]) <= pos <= int(e[4]) for e in exons)
    exonic = sum(int(e[4]) - int(e[3]) + 1 for e in exons) / sum(lengths.values())
    assert inside / t.num_rows > exonic + 0.2


def test_simulate_cohort_rejects_bad_arguments(tmp_path):
    with pytest.raises(InputError, match="n_samples"):
        simulate_cohort(tmp_path, 0, 10)
    with pytest.raises(InputError, match="pool_factor"):
        simulate_cohort(tmp_path, 1, 10, pool_factor=0.5)
    with pytest.raises(InputError, match="nope.fa"):
        simulate_cohort(tmp_path, 1, 10, reference=tmp_path / "nope.fa")
