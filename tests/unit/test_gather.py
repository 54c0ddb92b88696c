"""aisci.gather: a regions file's records (indexed and streamed alike), and VCF / Parquet parts gathered in order.

The stages scattered and gathered end to end are tested beside each stage: test_splice_scoring (splice
score), test_consequence (annotate), test_plm (plm score).
"""

from __future__ import annotations

import gzip
import shutil

import pyarrow as pa
import pyarrow.parquet as pq
import pysam
import pytest

from aisci.cli import main
from aisci.errors import InputError
from aisci.gather import ROW_GROUP_ROWS, Regions, gather_parquet, gather_vcfs, read_regions, write_parquet
from aisci.gather import Interval


def keys(records):
    return [(r.chrom, r.pos, r.ref, r.alts) for r in records]


def write_regions(path, *lines):
    path.write_text("".join("\t".join(map(str, line)) + "\n" for line in lines))
    return path


def test_read_regions_takes_three_columns_and_names_as_written(tmp_path):
    path = tmp_path / "g.tsv"
    path.write_text("# a comment, as bcftools reads it\nchr1\t1\t100\t0000\r\nchr1\t101\t250\t0001\n"
                    "HLA-A*01:01:01:01\t1\t3000\t0002\textra\ngi|568336023|gb|CM000663.2|\t5\t9\n\n")
    regions = read_regions(path)
    assert regions.intervals == (Interval("chr1", 1, 100), Interval("chr1", 101, 250),
                                 Interval("HLA-A*01:01:01:01", 1, 3000), Interval("gi|568336023|gb|CM000663.2|", 5, 9))
    assert regions.describe() == "4 intervals on 3 contigs, 3,255 bp"
    assert [regions.contains(c, p) for c, p in (("chr1", 1), ("chr1", 250), ("chr1", 251), ("chr2", 5),
                                                ("HLA-A*01:01:01:01", 3000), ("gi|568336023|gb|CM000663.2|", 4))] == [
        True, True, False, False, True, False]
    assert regions.mask(["chr1", "chr1", "chrX", "HLA-A*01:01:01:01", "chr1"], [100, 251, 5, 1, 0]).tolist() == [
        True, False, False, True, False]


@pytest.mark.parametrize("text, message", [
    ("chr1\t1\n", r"line 1: expected CHROM, BEG, END \(tab-separated\)"),
    ("chr1 1 100\n", r"line 1: expected CHROM, BEG, END"),
    ("chr1\t1\t100\nchr1\t1,000\t2000\n", r"line 2: BEG '1,000' and END '2000' must be whole numbers"),
    ("chr1\t0\t100\n", r"line 1: BEG '0' and END '100' must be whole numbers with 1 <= BEG <= END"),
    ("chr1\t200\t100\n", r"line 1: BEG '200' and END '100'"),
    ("chr1\t1\t100\nchr2\t1\t5\nchr1\t100\t200\n", r"line 3: chr1:100-200 overlaps or comes before the interval "
                                                   r"of line 1 \(ending at 100\)"),
    ("# nothing\n", r": no intervals \(expected lines of CHROM, BEG, END\)"),
])
def test_bad_regions_files_name_the_line(tmp_path, text, message):
    (tmp_path / "g.tsv").write_text(text)
    with pytest.raises(InputError, match=f"g\\.tsv.*{message}"):
        read_regions(tmp_path / "g.tsv")


def test_indexed_and_streamed_inputs_give_each_record_to_one_group(sim_data, tmp_path):
    """Groups split at a deletion (it belongs to the group of its POS, though it reaches into the next) and at a
    record (POS == BEG); adjacent intervals in one group; a contig the VCF lacks. The indexed input (fetch per
    interval) and a copy without an index (read whole) select the same records, in file order."""
    indexed = sim_data.truth_vcfs["S1"]
    plain = tmp_path / "plain.vcf.gz"  # the same bgzip file, no .tbi beside it
    shutil.copy(indexed, plain)
    with pysam.VariantFile(str(indexed)) as vcf:
        records = keys(vcf)
    deletion = next(r for r in records if len(r[2]) > 2 and r[0] == "chr1")
    at = next(r for r in records if r[0] == "chr1" and r[1] > deletion[1] + 1000)
    groups = [
        Regions("g0", (Interval("chr1", 1, deletion[1]),)),
        Regions("g1", (Interval("chr1", deletion[1] + 1, deletion[1] + 500), Interval("chr1", deletion[1] + 501,
                                                                                       at[1] - 1))),
        Regions("g2", (Interval("chr1", at[1], 150_000), Interval("chr2", 1, 150_000), Interval("chrUn*|x", 1, 9))),
    ]
    picked = []
    for group in groups:
        with pysam.VariantFile(str(indexed)) as a, pysam.VariantFile(str(plain)) as b:
            assert a.index is not None
            fetched, streamed = keys(group.records(a, indexed)), keys(group.records(b, plain))
        assert fetched == streamed and fetched
        picked.append(fetched)
    assert picked[0][-1] == deletion and deletion not in picked[1]  # it reaches into g1 but is read by g0 only
    assert picked[2][0] == at
    assert [r for p in picked for r in p] == records
    only_missing = Regions("g3", (Interval("chrUn*|x", 1, 9), Interval("chr3", 1, 100)))
    with pysam.VariantFile(str(indexed)) as a, pysam.VariantFile(str(plain)) as b:
        assert list(only_missing.records(a, indexed)) == [] == list(only_missing.records(b, plain))


def test_a_csi_indexed_bcf_is_read_in_the_order_of_its_records(tmp_path):
    """A BCF's CSI index lists the header's contigs (here chr2 first), not the records' order: the order the
    pre-scan saw (`check_vcf(...).contigs`) keeps the records in file order."""
    import subprocess

    from aisci.vcfcheck import check_vcf

    (tmp_path / "in.vcf").write_text("##fileformat=VCFv4.2\n##contig=<ID=chr2,length=100>\n"
                                     "##contig=<ID=chr1,length=100>\n#CHROM\tPOS\tID\tREF\tALT\tQUAL\tFILTER\tINFO\n"
                                     "chr1\t5\ta\tA\tG\t.\t.\t.\nchr2\t7\tb\tA\tG\t.\t.\t.\n")
    bcf = tmp_path / "in.bcf"
    with pysam.VariantFile(str(tmp_path / "in.vcf")) as src:
        with pysam.VariantFile(str(bcf), "wb", header=src.header) as dst:
            for rec in src:
                dst.write(rec)
    subprocess.run(["bcftools", "index", str(bcf)], check=True)
    scan = check_vcf(bcf, require_sorted=True)
    regions = Regions("g", (Interval("chr1", 1, 100), Interval("chr2", 1, 100)))
    with pysam.VariantFile(str(bcf)) as vcf:
        assert list(vcf.index) == ["chr2", "chr1"]
        assert [r.id for r in regions.records(vcf, bcf, scan.contigs)] == ["a", "b"]


def test_a_stale_index_is_refused_not_read(tmp_path):
    """Records on a contig the index does not list would be lost without a word: the index is older than the file."""
    from aisci.vcfcheck import check_vcf

    old = _vcf(tmp_path / "in.vcf.gz", records=(5,))
    pysam.tabix_index(str(old), preset="vcf", force=True)
    index = (tmp_path / "in.vcf.gz.tbi").read_bytes()
    text = gzip.open(old).read().decode().replace("##contig=<ID=chr1,length=1000>\n",
                                                  "##contig=<ID=chr1,length=1000>\n##contig=<ID=chr2,length=9>\n")
    (tmp_path / "new.vcf").write_text(text + "chr2\t3\t.\tA\tG\t.\t.\t.\n")
    pysam.tabix_compress(str(tmp_path / "new.vcf"), str(old), force=True)
    (tmp_path / "in.vcf.gz.tbi").write_bytes(index)
    regions = Regions("g", (Interval("chr1", 1, 1000), Interval("chr2", 1, 9)))
    with pysam.VariantFile(str(old)) as vcf:
        with pytest.raises(InputError, match=r"in\.vcf\.gz: has records on chr2 but its index does not list that "
                                             r"contig: the index is older than the file"):
            list(regions.records(vcf, old, check_vcf(old).contigs))


def _vcf(path, header_extra=(), records=()):
    text = "##fileformat=VCFv4.2\n##contig=<ID=chr1,length=1000>\n" + "".join(f"{h}\n" for h in header_extra)
    text += "#CHROM\tPOS\tID\tREF\tALT\tQUAL\tFILTER\tINFO\n"
    text += "".join(f"chr1\t{p}\t.\tA\tG\t.\t.\t.\n" for p in records)
    plain = path.with_suffix("")
    plain.write_text(text)
    pysam.tabix_compress(str(plain), str(path), force=True)
    return path


def test_gather_vcfs_concatenates_and_indexes(tmp_path, capsys):
    """Parts with no records, and a plain-text part whose last record has no line end (it must not run on)."""
    plain = tmp_path / "b.vcf"
    plain.write_bytes(gzip.open(_vcf(tmp_path / "b.vcf.gz", records=(9,))).read().rstrip(b"\n"))
    parts = [_vcf(tmp_path / "a.vcf.gz", records=(5,)), plain, _vcf(tmp_path / "empty.vcf.gz"),
             _vcf(tmp_path / "c.vcf.gz", records=(10, 700))]
    whole = _vcf(tmp_path / "whole.vcf.gz", records=(5, 9, 10, 700))
    out = tmp_path / "out" / "gathered.vcf.gz"
    assert main(["gather", "vcf", "--out", str(out), *map(str, parts)]) == 0
    assert "4 parts, 4 records" in capsys.readouterr().out
    assert gzip.open(out).read() == gzip.open(whole).read()
    with pysam.VariantFile(str(out)) as vcf:
        assert [r.pos for r in vcf.fetch("chr1", 8, 10)] == [9, 10]
    # parts in the wrong order cannot be indexed: said so, nothing written
    with pytest.raises(InputError, match="cannot be tabix-indexed.*reference order"):
        gather_vcfs([parts[3], parts[0]], tmp_path / "bad.vcf.gz")
    assert not list(tmp_path.glob("bad.vcf.gz*")) and not list(tmp_path.glob(".bad*"))


def test_gather_vcfs_refuses_parts_of_other_runs(tmp_path, capsys):
    a = _vcf(tmp_path / "a.vcf.gz", records=(5,))
    b = _vcf(tmp_path / "b.vcf.gz", header_extra=['##INFO=<ID=X,Number=1,Type=Integer,Description="x">'], records=(9,))
    with pytest.raises(InputError, match=r"b\.vcf\.gz: its header differs from that of .*a\.vcf\.gz at header line 3 "
                                         r"\(##INFO=<ID=X"):
        gather_vcfs([a, b], tmp_path / "out.vcf.gz")
    assert main(["gather", "vcf", "--out", str(tmp_path / "out.vcf"), str(a)]) == 1
    assert "must end in .vcf.gz" in capsys.readouterr().err
    (tmp_path / "junk.vcf.gz").write_bytes(b"\x1f\x8b\x08\x00junk")
    with pytest.raises(InputError, match=r"junk\.vcf\.gz: cannot read as a VCF part"):
        gather_vcfs([a, tmp_path / "junk.vcf.gz"], tmp_path / "out.vcf.gz")
    assert not (tmp_path / "out.vcf.gz").exists()


def test_parquet_row_groups_do_not_depend_on_batching(tmp_path):
    """The same rows, batched two ways, give the same file; row groups of exactly ROW_GROUP_ROWS rows."""
    schema = pa.schema([pa.field("pos", pa.int64(), nullable=False), pa.field("name", pa.string())])
    n = 2 * ROW_GROUP_ROWS + 123
    table = pa.table({"pos": pa.array(range(n), pa.int64()), "name": [f"v{i % 97}" for i in range(n)]}, schema=schema)
    assert write_parquet(tmp_path / "one.parquet", schema, [table]) == n
    assert write_parquet(tmp_path / "many.parquet", schema, table.to_batches(max_chunksize=1000)) == n
    meta = pq.ParquetFile(tmp_path / "one.parquet").metadata
    assert [meta.row_group(i).num_rows for i in range(meta.num_row_groups)] == [ROW_GROUP_ROWS, ROW_GROUP_ROWS, 123]
    assert (tmp_path / "one.parquet").read_bytes() == (tmp_path / "many.parquet").read_bytes()
    assert write_parquet(tmp_path / "none.parquet", schema, []) == 0
    assert pq.read_table(tmp_path / "none.parquet").schema.equals(schema)


def test_gather_parquet_refuses_other_schemas(tmp_path, capsys):
    schema = pa.schema([pa.field("pos", pa.int64())])
    parts = []
    for n, rows in enumerate(([1, 2], [], [3])):
        parts.append(tmp_path / f"p{n}.parquet")
        write_parquet(parts[-1], schema, [pa.table({"pos": pa.array(rows, pa.int64())})])
    out = tmp_path / "all.parquet"
    assert main(["gather", "parquet", "--out", str(out), *map(str, parts)]) == 0
    assert "3 parts, 3 rows" in capsys.readouterr().out
    assert pq.read_table(out).column("pos").to_pylist() == [1, 2, 3]
    other = tmp_path / "other.parquet"
    pq.write_table(pa.table({"pos": pa.array([4], pa.int32())}), other)
    with pytest.raises(InputError, match=r"other\.parquet: its schema \(columns\) differs from that of .*p0\.parquet"):
        gather_parquet([parts[0], other], out)
    tagged = tmp_path / "tagged.parquet"
    pq.write_table(pa.table({"pos": pa.array([4], pa.int64())}).replace_schema_metadata({"model": "x"}), tagged)
    with pytest.raises(InputError, match=r"tagged\.parquet: its schema \(metadata\) differs"):
        gather_parquet([parts[0], tagged], out)
    assert gather_parquet([tagged, tagged], tmp_path / "tagged2.parquet") == 2  # metadata kept
    assert pq.read_table(tmp_path / "tagged2.parquet").schema.metadata == {b"model": b"x"}
    with pytest.raises(InputError, match=r"nope\.parquet: cannot read as Parquet"):
        gather_parquet([parts[0], tmp_path / "nope.parquet"], out)
    assert pq.read_table(out).num_rows == 3  # the earlier output is left as it was
