"""Tests for aisci.splice.annotation: official tables, GFF3/GTF conversion, gene lookup and boundary distances."""

from __future__ import annotations

import gzip
import random
import re
from importlib import metadata
from pathlib import Path

import numpy as np
import pytest

from aisci.errors import InputError
from aisci.splice import annotation as ann
from aisci.splice import package
from aisci.splice.annotation import Annotation, Gene, load_annotation, write_table

DATA = Path(__file__).parents[1] / "data" / "splice"


def _have_spliceai() -> bool:
    try:
        metadata.distribution("spliceai")
    except metadata.PackageNotFoundError:
        return False
    return True


needs_spliceai = pytest.mark.skipif(not _have_spliceai(), reason="pip install --no-deps spliceai==1.3.1")


@pytest.fixture(scope="module")
def grch37() -> Annotation:
    if not _have_spliceai():
        pytest.skip("pip install --no-deps spliceai==1.3.1")
    return load_annotation("grch37")


# ---------------------------------------------------------------- packaged tables


def test_grch37_known_genes(grch37):
    ankef1 = next(g for g in grch37.genes if g.name == "ANKEF1")
    assert (ankef1.chrom, ankef1.strand, ankef1.tx_start, ankef1.tx_end) == ("20", "+", 10015689, 10036470)
    assert ankef1.boundaries[:4] == (10015689, 10015981, 10016227, 10016290)  # EXON_START + 1, EXON_END
    assert [g.name for g in grch37.genes_at("chr20", 10020000)] == ["ANKEF1"]
    assert [g.name for g in grch37.genes_at("20", 10020000)] == ["ANKEF1"]
    assert grch37.genes_at("20", 10100000) == []  # between ANKEF1 and SNAP25
    assert grch37.genes_at("chr20", 10015688) == []  # TX_START itself is 0-based, so outside
    assert [g.name for g in grch37.genes_at("chr20", 10015689)] == ["ANKEF1"]
    (mkks,) = grch37.genes_at("chr20", 10400000)
    assert (mkks.name, mkks.strand, mkks.tx_start, mkks.tx_end) == ("MKKS", "-", 10381657, 10414870)
    assert grch37.genes_at("chrZZ", 1) == []
    assert grch37.source == "grch37" and len(grch37.genes) == 20274


class _OfficialAnnotator:
    """The official Annotator's table reading and lookups (spliceai 1.3.1 utils.py), re-expressed with numpy."""

    def __init__(self, path: Path) -> None:
        pd = pytest.importorskip("pandas")
        df = pd.read_csv(path, sep="\t", dtype={"CHROM": object})
        self.chroms = df["CHROM"].to_numpy()
        self.tx_starts = df["TX_START"].to_numpy() + 1
        self.tx_ends = df["TX_END"].to_numpy()
        self.exon_starts = [np.asarray([int(x) for x in re.split(",", c)[:-1]]) + 1 for c in df["EXON_START"]]
        self.exon_ends = [np.asarray([int(x) for x in re.split(",", c)[:-1]]) for c in df["EXON_END"]]

    def idxs(self, chrom: str, pos: int) -> list[int]:
        first = self.chroms[0]
        if chrom.startswith("chr") and not first.startswith("chr"):
            chrom = chrom.strip("chr")
        elif not chrom.startswith("chr") and first.startswith("chr"):
            chrom = "chr" + chrom
        hit = (self.chroms == chrom) & (self.tx_starts <= pos) & (pos <= self.tx_ends)
        return list(np.nonzero(hit)[0])

    def dist_exon_bdry(self, idx: int, pos: int) -> int:
        return int(min(np.union1d(self.exon_starts[idx], self.exon_ends[idx]) - pos, key=abs))


@pytest.mark.parametrize("name", ["grch37", "grch38"])
def test_packaged_tables_match_official_lookup(name):
    if not _have_spliceai():
        pytest.skip("pip install --no-deps spliceai==1.3.1")
    ours = load_annotation(name)
    official = _OfficialAnnotator(ann.packaged_table(name))
    index = {id(g): i for i, g in enumerate(ours.genes)}
    rng = random.Random(7)
    checked = 0
    for _ in range(1500):
        g = rng.choice(ours.genes)
        pos = rng.randint(g.tx_start - 20000, g.tx_end + 20000)
        chrom = rng.choice([g.chrom, "chr" + g.chrom])
        got = [index[id(h)] for h in ours.genes_at(chrom, pos)]
        assert got == official.idxs(chrom, pos), (chrom, pos)
        for i in got:
            assert ours.genes[i].nearest_boundary(pos) == official.dist_exon_bdry(i, pos)
            checked += 1
    assert checked > 500


def test_packaged_needs_spliceai(monkeypatch):
    def missing(name):
        raise metadata.PackageNotFoundError(name)

    monkeypatch.setattr(package.metadata, "distribution", missing)
    with pytest.raises(InputError, match=r"pip install spliceai==1\.3\.1"):
        load_annotation("grch38")


# ---------------------------------------------------------------- boundaries and lookup


def test_nearest_boundary_semantics():
    g = Gene("G", "1", "+", 100, 300, (100, 200, 300))
    assert g.nearest_boundary(150) == -50  # tie: the upstream (negative) one, as numpy min over union1d
    assert g.nearest_boundary(151) == 49
    assert g.nearest_boundary(149) == -49
    assert g.nearest_boundary(200) == 0
    assert g.nearest_boundary(10) == 90
    assert g.nearest_boundary(1000) == -700
    assert Gene("S", "1", "-", 5, 5, (5,)).nearest_boundary(3) == 2
    for pos in range(400):
        assert g.nearest_boundary(pos) == min((b - pos for b in g.boundaries), key=abs)


def test_genes_at_file_order_overlaps_and_chr_naming():
    genes = [
        Gene("B", "chr1", "+", 100, 500, (100, 500)),
        Gene("A", "chr1", "-", 50, 150, (50, 150)),
        Gene("BIG", "chr1", "+", 1, 3_000_000, (1, 3_000_000)),  # spans many index bins
        Gene("X", "chrX", "+", 100, 200, (100, 200)),
    ]
    a = Annotation("mem", genes)
    assert [g.name for g in a.genes_at("1", 120)] == ["B", "A", "BIG"]
    assert [g.name for g in a.genes_at("chr1", 2_500_000)] == ["BIG"]
    assert [g.name for g in a.genes_at("X", 200)] == ["X"]
    assert a.genes_at("X", 201) == []
    assert Annotation("empty", []).genes_at("1", 1) == []
    plain = Annotation("mem", [Gene("Y", "Y", "+", 10, 20, (10, 20))])
    assert [g.name for g in plain.genes_at("chrY", 15)] == ["Y"]


# ---------------------------------------------------------------- GFF3 / GTF / table equivalence

# Gene ALPHA (+) has a long untagged transcript and a short canonical one; BETA (-) has one;
# GAMMA (+) has exons directly under the gene.
TABLE = """#NAME\tCHROM\tSTRAND\tTX_START\tTX_END\tEXON_START\tEXON_END
ALPHA\tchr7\t+\t1199\t1600\t1199,1499,\t1300,1600,
BETA\tchr7\t-\t1999\t2900\t1999,2399,2799,\t2100,2500,2900,
GAMMA\tchr8\t+\t99\t300\t99,\t300,
"""


def _gff3(canonical: bool) -> str:
    tag = ";tag=basic,Ensembl_canonical" if canonical else ""
    rows = [
        ("gene", 1000, 1600, "+", "ID=g1;Name=ALPHA-name;gene_name=ALPHA"),
        ("mRNA", 1000, 1600, "+", "ID=t_long;Parent=g1"),
        ("exon", 1000, 1100, "+", "Parent=t_long"),
        ("exon", 1200, 1300, "+", "Parent=t_long,t_short"),  # one exon line shared by two transcripts
        ("exon", 1500, 1600, "+", "Parent=t_long"),
        ("CDS", 1210, 1290, "+", "Parent=t_long"),
        ("mRNA", 1200, 1600, "+", "ID=t_short;Parent=g1" + tag),  # defined after its first exon
        ("exon", 1500, 1600, "+", "Parent=t_short"),
        ("gene", 2000, 2900, "-", "ID=g2;Name=BETA"),
        ("lnc_RNA", 2000, 2900, "-", "ID=t_b;Parent=g2"),
        ("exon", 2000, 2100, "-", "ID=e1;Parent=t_b"),
        ("exon", 2400, 2500, "-", "Parent=t_b"),
        ("exon", 2800, 2900, "-", "Parent=t_b"),
        ("gene", 100, 300, "+", "ID=g3;Name=GAMMA"),
        ("exon", 100, 300, "+", "Parent=g3"),
        ("gene", 5000, 6000, "+", "ID=g4;Name=NOEXONS"),
    ]
    lines = ["##gff-version 3"]
    for kind, s, e, strand, attrs in rows:
        c = "chr8" if ("g3" in attrs or "GAMMA" in attrs) else "chr7"
        lines.append(f"{c}\tsrc\t{kind}\t{s}\t{e}\t.\t{strand}\t.\t{attrs}")
    return "\n".join(lines) + "\n"


def _gtf(canonical: bool) -> str:
    def row(c, kind, s, e, strand, gene, tx, extra=""):
        return f'{c}\tsrc\t{kind}\t{s}\t{e}\t.\t{strand}\t.\tgene_id "{gene}"; transcript_id "{tx}";{extra}'

    alpha = ' gene_name "ALPHA";'
    tag = ' tag "basic"; tag "Ensembl_canonical";' if canonical else ""
    lines = [
        '#!genome-build test',
        'chr7\tsrc\tgene\t1000\t1600\t.\t+\t.\tgene_id "g1"; gene_name "ALPHA";',
        row("chr7", "transcript", 1000, 1600, "+", "g1", "t_long", alpha),
        row("chr7", "exon", 1000, 1100, "+", "g1", "t_long", alpha),
        row("chr7", "exon", 1200, 1300, "+", "g1", "t_long", alpha),
        row("chr7", "exon", 1500, 1600, "+", "g1", "t_long", alpha),
        row("chr7", "exon", 1200, 1300, "+", "g1", "t_short", alpha + tag),
        row("chr7", "exon", 1500, 1600, "+", "g1", "t_short", alpha + tag),
        row("chr7", "exon", 2000, 2100, "-", "BETA", "t_b"),
        row("chr7", "exon", 2400, 2500, "-", "BETA", "t_b"),
        row("chr7", "exon", 2800, 2900, "-", "BETA", "t_b"),
        row("chr8", "exon", 100, 300, "+", "g3", "t_g", ' gene_name "GAMMA";'),
    ]
    return "\n".join(lines) + "\n"


def _untagged_table() -> str:
    """TABLE with ALPHA as its longer, three-exon transcript."""
    return TABLE.replace("1199\t1600\t1199,1499,\t1300,", "999\t1600\t999,1199,1499,\t1100,1300,")


@pytest.mark.parametrize("canonical", [True, False])
def test_gff3_gtf_and_table_agree(tmp_path, canonical):
    table = tmp_path / "t.txt"
    table.write_text(TABLE if canonical else _untagged_table())
    gff3 = tmp_path / "a.gff3"
    gff3.write_text(_gff3(canonical))
    gtf = tmp_path / "a.gtf.gz"
    with gzip.open(gtf, "wt") as fh:
        fh.write(_gtf(canonical))
    expected = load_annotation(str(table)).genes
    assert [g.name for g in expected] == ["ALPHA", "BETA", "GAMMA"]
    assert load_annotation(str(gff3)).genes == expected
    assert load_annotation(str(gtf)).genes == expected
    alpha = expected[0]
    if canonical:  # the tagged short transcript wins
        assert (alpha.tx_start, alpha.tx_end, alpha.boundaries) == (1200, 1600, (1200, 1300, 1500, 1600))
    else:  # the transcript with more exonic bases wins
        assert (alpha.tx_start, alpha.boundaries) == (1000, (1000, 1100, 1200, 1300, 1500, 1600))
    assert expected[1].strand == "-" and expected[1].exons == ((2000, 2100), (2400, 2500), (2800, 2900))
    assert [g.name for g in load_annotation(str(gff3)).genes_at("7", 2050)] == ["BETA"]


def test_equal_length_transcripts_pick_smallest_id(tmp_path):
    gtf = tmp_path / "x.gtf"
    gtf.write_text(
        'c\ts\texon\t10\t20\t.\t+\t.\tgene_id "G"; transcript_id "tB";\n'
        'c\ts\texon\t30\t40\t.\t+\t.\tgene_id "G"; transcript_id "tA";\n'
    )
    (g,) = load_annotation(str(gtf)).genes
    assert (g.name, g.tx_start, g.tx_end) == ("G", 30, 40)


def test_fixture_files_agree():
    paths = [DATA / f"custom.{ext}" for ext in ("txt", "gff3", "gtf")]
    if not all(p.is_file() for p in paths):
        pytest.skip("tests/unit/data/splice/custom.* not written yet")
    loaded = [load_annotation(str(p)) for p in paths]
    rows = [
        [(g.name, g.chrom.removeprefix("chr"), g.strand, g.tx_start, g.tx_end, g.boundaries) for g in a.genes]
        for a in loaded
    ]
    assert rows[0] == rows[1] == rows[2]
    assert [g.name for g in loaded[0].genes] == ["ANKEF1", "SNAP25", "MKKS", "JAG1", "ANKEF1-AS"]
    for a in loaded:  # the made-up antisense gene overlaps ANKEF1; file order is kept
        assert [g.name for g in a.genes_at("20", 10019000)] == ["ANKEF1", "ANKEF1-AS"]
        assert [g.name for g in a.genes_at("chr20", 10019000)] == ["ANKEF1", "ANKEF1-AS"]


# ---------------------------------------------------------------- round trip


def test_round_trip_gff3(tmp_path):
    gff3 = tmp_path / "a.gff3"
    gff3.write_text(_gff3(False))
    original = load_annotation(str(gff3))
    write_table(original, tmp_path / "a.txt")
    again = load_annotation(str(tmp_path / "a.txt"))
    assert again.genes == original.genes
    assert [g.exons for g in again.genes] == [g.exons for g in original.genes]
    assert again.source == str(tmp_path / "a.txt")


def test_round_trip_packaged_is_identical(tmp_path, grch37):
    write_table(grch37, tmp_path / "g.txt.gz")
    assert load_annotation(str(tmp_path / "g.txt.gz")).genes == grch37.genes
    packaged = ann.packaged_table("grch37").read_text().splitlines()
    with gzip.open(tmp_path / "g.txt.gz", "rt") as fh:
        written = fh.read().splitlines()
    assert written == packaged  # byte-identical rows: the conversion writes what the official reads


def test_round_trip_gene_without_exons(tmp_path):
    genes = [Gene("H", "2", "-", 10, 90, (10, 40, 60, 90))]
    write_table(Annotation("mem", genes), tmp_path / "h.txt")
    assert load_annotation(str(tmp_path / "h.txt")).genes == genes


# ---------------------------------------------------------------- bad inputs

GFF = "##gff-version 3\n"
GTF_T = 'c\ts\texon\t1\t5\t.\t+\t.\tgene_id "g"; transcript_id "t";\n'
OK_GENE = "c\ts\tgene\t1\t100\t.\t+\t.\tID=g\nc\ts\tmRNA\t1\t100\t.\t+\t.\tID=t;Parent=g\n"


@pytest.mark.parametrize(
    "name, text, line, pattern",
    [
        ("a.gff3", GFF + "c\ts\tgene\t1\t100\t.\t+\n", 2, "7 tab-separated columns"),
        ("a.gff3", GFF + "c\ts\tgene\t1\tx\t.\t+\t.\tID=g\n", 2, "end .column 5. 'x' is not an integer"),
        ("a.gff3", GFF + "c\ts\tgene\t100\t1\t.\t+\t.\tID=g\n", 2, "start 100 > end 1"),
        ("a.gff3", GFF + OK_GENE + "c\ts\texon\t1\t50\t.\t.\t.\tParent=t\n", 4, "strand '.' must be"),
        ("a.gff3", GFF + OK_GENE + "c\ts\texon\t1\t50\t.\t+\t.\tParent=nope\n", 4, "Parent 'nope' is not the ID"),
        ("a.gff3", GFF + OK_GENE + "c\ts\texon\t1\t50\t.\t+\t.\tID=e\n", 4, "exon has no Parent"),
        ("a.gff3", GFF + "c\ts\tmRNA\t1\t100\t.\t+\t.\tID=t;Parent=gone\nc\ts\texon\t1\t50\t.\t+\t.\tParent=t\n",
         2, "transcript Parent 'gone'"),
        ("a.gff3", GFF + OK_GENE + "c\ts\texon\t1\t50\t.\t+\t.\tParent=t\nd\ts\texon\t60\t90\t.\t+\t.\tParent=t\n",
         5, "transcript 't' has exons on c\\+ and d\\+"),
        ("a.gff3", GFF + OK_GENE + "c\ts\texon\t1\t50\t.\t+\t.\tParent=t\nc\ts\texon\t60\t90\t.\t-\t.\tParent=t\n",
         5, "has exons on c\\+ and c-"),
        ("a.gtf", 'c\ts\texon\t1\t5\t.\t+\t.\tgene_id "g";\n', 1, "exon lacks transcript_id"),
        ("a.gtf", GTF_T + GTF_T.replace("\t1\t5\t.\t+", "\t9\t12\t.\t-"), 2, "has exons on c\\+ and c-"),
        ("a.gtf", 'c\ts\texon\t1\t5\t.\t?\t.\tgene_id "g"; transcript_id "t";\n', 1, "strand '\\?' must be"),
        ("t.txt", TABLE.replace("\tEXON_END", "\tEND"), 1, "header lacks column.s. EXON_END"),
        ("t.txt", TABLE.replace("\t300,\n", "\n"), 4, "6 columns, header has 7 .missing EXON_END."),
        ("t.txt", TABLE.replace("\t2900\t", "\t29O0\t"), 3, "TX_END '29O0' is not an integer"),
        ("t.txt", TABLE.replace("1199,1499,", "1199,x,"), 2, "EXON_START 'x' is not an integer"),
        ("t.txt", TABLE.replace("1199,1499,", "1199,"), 2, "EXON_START has 1 values, EXON_END 2"),
        ("t.txt", TABLE.replace("\t+\t99\t", "\t.\t99\t"), 4, "STRAND '.' must be"),
    ],
)
def test_bad_inputs_name_file_and_line(tmp_path, name, text, line, pattern):
    path = tmp_path / name
    path.write_text(text)
    with pytest.raises(InputError, match=rf"^{re.escape(str(path))} line {line}: .*{pattern}"):
        load_annotation(str(path))


def test_unreadable_or_unknown(tmp_path):
    with pytest.raises(InputError, match="cannot read annotation"):
        load_annotation(str(tmp_path / "missing.gff3"))
    other = tmp_path / "x.bed"
    other.write_text("chr1\t1\t10\n")
    with pytest.raises(InputError, match="not an annotation table"):
        load_annotation(str(other))
