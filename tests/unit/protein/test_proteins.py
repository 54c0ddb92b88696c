"""aisci.protein.proteins: protein FASTA checks, mutagenesis tables, heatmaps, translating an annotation."""

from __future__ import annotations

import gzip

import numpy as np
import pyarrow.parquet as pq
import pytest

from aisci.errors import InputError
from aisci.protein.proteins import (AMINO_ACIDS, plot_heatmap, read_proteins, select, translate_annotation,
                                    write_embeddings, write_mutagenesis)


def test_read_proteins_normalises_and_keys(tmp_path):
    path = tmp_path / "p.fa.gz"
    with gzip.open(path, "wt") as fh:
        fh.write("; a comment\n>sp|P69905|HBA_HUMAN Hemoglobin\nmvls\nPADK*\n\n>x.1\nMK\n")
    a, b = read_proteins(path)
    assert (a.id, a.key, a.sequence, a.line) == ("sp|P69905|HBA_HUMAN", "sp_P69905_HBA_HUMAN", "MVLSPADK", 2)
    assert (b.id, b.key, b.sequence) == ("x.1", "x.1", "MK")
    assert select([a, b], "x.1", "p.fa") is b
    with pytest.raises(InputError, match="p.fa: no protein with key 'y'"):
        select([a, b], "y", "p.fa")


@pytest.mark.parametrize("text, message", [
    ("MKT\n", "line 1: sequence before the first '>' header"),
    (">\nMKT\n", "line 1: FASTA header without an id"),
    ("", "contains no FASTA records"),
    (">a\nMK-T\n", "line 1: a: letters that are not residues: -"),
    (">p1\nMKT\n>p2\nMK*TA\n", "p.fa line 3: p2: an internal stop '\\*'"),
    (">p1\nMKT\n>p1 again\nMKA\n", r"p.fa line 3: p1: duplicate id \(first at line 1\)"),
    (">a|b\nMKT\n>a_b\nMKA\n", r"p.fa line 3: a_b: its key 'a_b' clashes with 'a\|b' at line 1; rename one"),
    (">P1\nMKT\n>x\nMK\n>p1\nMKA\n",
     r"p.fa line 5: p1: its key 'p1' clashes with 'P1' at line 1 \(key 'P1': keys may not differ only in case\)"),
    (">p1\n>p2\nMKA\n", "p.fa line 1: p1: empty sequence"),
])
def test_read_proteins_errors(tmp_path, text, message):
    path = tmp_path / "p.fa"
    path.write_text(text)
    with pytest.raises(InputError, match=message):
        read_proteins(path)
    with pytest.raises(InputError, match="protein FASTA: file not found"):
        read_proteins(tmp_path / "missing.fa")


def test_mutagenesis_table_and_heatmap(tmp_path):
    (tmp_path / "p.fa").write_text(">p\nMKW\n")
    protein = read_proteins(tmp_path / "p.fa")[0]
    scores = np.arange(60, dtype=float).reshape(3, 20)
    write_mutagenesis(protein, scores, "m", "wt-marginals", str(tmp_path / "p.parquet"))
    t = pq.read_table(tmp_path / "p.parquet").to_pydict()
    assert len(t["position"]) == 57 and set(t["wt"]) == {"M", "K", "W"}
    assert all(w != m for w, m in zip(t["wt"], t["mt"]))
    # each score is read from the row of its position and the column of its mutant residue
    assert all(s == scores[p - 1, AMINO_ACIDS.index(m)] for p, m, s in zip(t["position"], t["mt"], t["score"]))
    with pytest.raises(ValueError, match="shape"):
        write_mutagenesis(protein, scores[:2], "m", "wt-marginals", str(tmp_path / "bad.parquet"))
    assert not (tmp_path / "bad.parquet").exists()
    plot_heatmap(str(tmp_path / "p.parquet"), str(tmp_path / "p.png"))
    assert (tmp_path / "p.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    with pytest.raises(InputError, match="cannot read as Parquet"):
        plot_heatmap(str(tmp_path / "p.fa"), str(tmp_path / "x.png"))


def test_embeddings_table(tmp_path):
    (tmp_path / "p.fa").write_text(">a\nMKW\n>b\nMK\n")
    proteins = read_proteins(tmp_path / "p.fa")
    write_embeddings(proteins, np.ones((2, 4)), "m", str(tmp_path / "e.parquet"))
    t = pq.read_table(tmp_path / "e.parquet")
    kind = t.schema.field("embedding").type
    assert kind.list_size == 4 and str(kind.value_type) == "float"
    assert t.column("length").to_pylist() == [3, 2]


def test_translate_annotation_both_strands(tmp_path):
    """A + strand two-exon gene and a - strand one-exon gene, translated by hand."""
    import pysam

    # + gene: CDS 11..15 'ATGAA' + intron GTAAG + 21..27 'ATGGTAA' (codon AAA split across the exons)
    seq = list("N" * 10 + "ATGAA" + "GTAAG" + "ATGGTAA" + "N" * 10 + "TTACATCAT" + "N" * 5)
    ref = tmp_path / "ref.fa"
    ref.write_text(">chr1\n" + "".join(seq) + "\n")
    pysam.faidx(str(ref))
    gff = tmp_path / "g.gff3"
    rows = [
        ("gene", 11, 27, "+", ".", "ID=g1;Name=ONE"), ("mRNA", 11, 27, "+", ".", "ID=t1;Parent=g1"),
        ("exon", 11, 15, "+", ".", "Parent=t1"), ("CDS", 11, 15, "+", "0", "Parent=t1"),
        ("exon", 21, 27, "+", ".", "Parent=t1"), ("CDS", 21, 27, "+", "1", "Parent=t1"),
        ("gene", 38, 46, "-", ".", "ID=g2;Name=TWO"), ("mRNA", 38, 46, "-", ".", "ID=t2;Parent=g2"),
        ("exon", 38, 46, "-", ".", "Parent=t2"), ("CDS", 38, 46, "-", "0", "Parent=t2"),
    ]
    gff.write_text("##gff-version 3\n" + "".join(f"chr1\tt\t{k}\t{s}\t{e}\t.\t{st}\t{p}\t{a}\n"
                                                 for k, s, e, st, p, a in rows))
    assert translate_annotation(str(gff), str(ref), str(tmp_path / "p.fa")) == 2
    # t1: ATGAA + ATGGTAA = ATG AAA TGG TAA -> MKW; t2: revcomp(TTACATCAT) = ATG ATG TAA -> MM
    assert (tmp_path / "p.fa").read_text() == ">t1 gene=ONE\nMKW\n>t2 gene=TWO\nMM\n"
    assert translate_annotation(str(gff), str(ref), str(tmp_path / "p1.fa"), first=1) == 1
    assert (tmp_path / "p1.fa").read_text() == ">t1 gene=ONE\nMKW\n"


@pytest.mark.parametrize("header, key, problem", [
    ("-x", "-x", "must match"),  # would read as an option: `aisci plm mutagenesis --protein -x`
    ("--help", "--help", "must match"),
    (".x", ".x", "must match"),  # a hidden file
    ("..", "..", "must match"),  # results/plm/mutagenesis/...parquet, and '..' as a folder
    ("../../etc/x", ".._.._etc_x", "must match"),
    ("|sp|P1|", "_sp_P1_", "must match"),
    ("\u03b1-globin", "_-globin", "must match"),  # non-ASCII letters become '_'
])
def test_protein_keys_that_are_not_names_are_refused(tmp_path, header, key, problem):
    path = tmp_path / "p.fa"
    path.write_text(f">ok\nMK\n>{header} description\nMKT\n")
    with pytest.raises(InputError) as err:
        read_proteins(path)
    assert str(err.value).startswith(f"{path} line 3: id {header!r}: its key {key!r} (the id with characters "
                                     f"outside [A-Za-z0-9._-] as '_') {problem}")
    assert str(err.value).endswith("; rename the protein in the FASTA header")


def test_protein_keys_are_names(tmp_path):
    """Every key a FASTA gives satisfies aisci.names, and the longest allowed id is kept whole."""
    from aisci.names import name_problem

    path = tmp_path / "p.fa"
    path.write_text(f">{'q' * 64}\nMK\n>0.x_y-z\nMK\n>sp|P69905|HBA_HUMAN\nMK\n>a..b\nMK\n")
    keys = [p.key for p in read_proteins(path)]
    assert keys == ["q" * 64, "0.x_y-z", "sp_P69905_HBA_HUMAN", "a..b"]
    assert [name_problem(k) for k in keys] == [None] * 4


def test_fasta_that_is_not_utf8_is_a_one_line_error(tmp_path):
    plain = tmp_path / "p.fa"
    plain.write_bytes(b">a\nMKT\n>b caf\xe9\nMK\n")
    with pytest.raises(InputError) as err:
        read_proteins(plain)
    assert str(err.value) == f"{plain} line 3: not UTF-8 text (byte 0xe9 at column 7); a protein FASTA is plain text"
    packed = tmp_path / "p.fa.gz"
    packed.write_bytes(gzip.compress(b">a\nMK\xffT\n"))
    with pytest.raises(InputError, match=r"^.*p\.fa\.gz line 2: not UTF-8 text \(byte 0xff at column 3\)"):
        read_proteins(packed)
    packed.write_bytes(gzip.compress(b">a\nMKT\n" * 100)[:-12])  # truncated
    with pytest.raises(InputError, match=r"p\.fa\.gz line \d+: cannot read \("):
        read_proteins(packed)
    bom = tmp_path / "bom.fa"
    bom.write_bytes(b"\xef\xbb\xbf>a\nMK\n")  # a byte-order mark (Windows editors) is not part of the header
    assert [(p.id, p.sequence) for p in read_proteins(bom)] == [("a", "MK")]


def test_long_ids_get_short_unique_keys(tmp_path):
    """GENCODE's pc_translations ids are ~115 characters of '|'-joined fields: keys keep 55 and add a hash."""
    from aisci.names import check_name

    ids = ["ENSP00000493376.2|ENST00000641515.2|ENSG00000186092.7|OTTHUMG00000001094.4|OTTHUMT00000003223.4|"
           f"OR4F5-201|OR4F5|{n}" for n in (326, 327)]
    fasta = tmp_path / "pc_translations.fa"
    fasta.write_text("".join(f">{i}\nMKW\n" for i in ids))
    proteins = read_proteins(fasta)
    keys = [p.key for p in proteins]
    assert [len(k) for k in keys] == [64, 64] and keys[0] != keys[1]
    assert keys[0].startswith("ENSP00000493376.2_ENST00000641515.2_ENSG00000186092.7_O_")
    assert all(check_name(k, "key") for k in keys)
    assert read_proteins(fasta)[0].key == keys[0]  # the same id always gives the same key
