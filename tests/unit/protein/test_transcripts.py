"""Tests for aisci.protein.transcripts: GFF3/GTF transcript models, phases, errors and the overlap index."""

from __future__ import annotations

import gzip
import logging
import random
from pathlib import Path

import pysam
import pytest

from aisci.errors import InputError
from aisci.protein.consequence import annotate_variant
from aisci.protein.transcripts import Transcript, TranscriptSet, load_transcripts
from tests.unit.protein.test_consequence import GENOME, write_gff3, write_gtf

HEADER = "##gff-version 3\n"


def gff(tmp_path: Path, body: str, name: str = "a.gff3") -> Path:
    """A GFF3 file from space-separated columns (one feature per line)."""
    lines = ["\t".join(line.split(None, 8)) for line in body.strip().splitlines()]
    path = tmp_path / name
    path.write_text(HEADER + "\n".join(lines) + "\n")
    return path


TWO = """
c1 s gene 100 900 . + . ID=g1;Name=ABC;biotype=protein_coding
c1 s mRNA 100 900 . + . ID=t1;Parent=g1
c1 s exon 100 200 . + . Parent=t1
c1 s exon 300 400 . + . Parent=t1
c1 s exon 800 900 . + . Parent=t1
c1 s CDS 150 200 . + 0 Parent=t1
c1 s CDS 300 400 . + 0 Parent=t1
c1 s CDS 800 850 . + 1 Parent=t1
c1 s gene 1000 2000 . - . ID=g2
c1 s lnc_RNA 1000 2000 . - . ID=t2;Parent=g2;transcript_biotype=lncRNA
c1 s exon 1000 1100 . - . Parent=t2
c1 s exon 1900 2000 . - . Parent=t2
"""


def test_gff3_models(tmp_path):
    txs = load_transcripts(gff(tmp_path, TWO))
    assert isinstance(txs, TranscriptSet) and len(txs) == 2 and txs.source.endswith("a.gff3")
    t1, t2 = txs
    # CDS lengths 51, 101, 51: phases 0, then (3 - 51 % 3) % 3 = 0, then (3 - 152 % 3) % 3 = 1
    assert t1 == Transcript("t1", "ABC", "g1", "c1", "+", ((100, 200), (300, 400), (800, 900)),
                            ((150, 200, 0), (300, 400, 0), (800, 850, 1)), "protein_coding")
    assert t1.translatable and t1.coding and (t1.start, t1.end) == (100, 900)
    assert t1.introns() == [(201, 299), (401, 799)] and t1.in_order()[0] == (100, 200)
    # no Name: the gene ID; transcript biotype wins over the gene's
    assert (t2.gene, t2.gene_id, t2.strand, t2.biotype, t2.coding) == ("g2", "g2", "-", "lncRNA", False)
    assert t2.in_order() == ((1900, 2000), (1000, 1100))


def test_gff3_and_gtf_give_the_same_transcripts(tmp_path):
    # GTF CDS lines lack the stop codon (stop_codon lines, on both strands); merged back they match the GFF3.
    a = load_transcripts(write_gff3(tmp_path / "toy.gff3"))
    b = load_transcripts(write_gtf(tmp_path / "toy.gtf"))
    assert list(a) == list(b) and len(a) == 3
    txm1 = next(t for t in b if t.id == "TXM1")
    assert txm1.cds == ((206, 228, 2), (259, 274, 0)) and txm1.biotype == "protein_coding"
    assert next(t for t in b if t.id == "TXP1").cds == ((31, 47, 0), (78, 103, 1), (134, 147, 2))
    assert [t.gene for t in b] == ["GENEP", "GENEP", "GENEM"]


def test_format_sniffed_from_content_and_gzip(tmp_path):
    gtf = write_gtf(tmp_path / "toy.gtf").read_text()
    (tmp_path / "annotation").write_text(gtf)
    (tmp_path / "genes.gff3.gz").write_bytes(gzip.compress(write_gff3(tmp_path / "x.gff3").read_bytes()))
    assert list(load_transcripts(tmp_path / "annotation")) == list(load_transcripts(tmp_path / "genes.gff3.gz"))
    (tmp_path / "notes.txt").write_text("hello\tworld\n")
    with pytest.raises(InputError, match="notes.txt: not a GFF3"):
        load_transcripts(tmp_path / "notes.txt")


def test_exons_under_a_gene_and_cds_only_models(tmp_path):
    txs = load_transcripts(gff(tmp_path, """
c1 s ncRNA_gene 10 50 . + . ID=g1;Name=MIR1
c1 s exon 10 50 . + . Parent=g1
c1 s gene 100 400 . - . ID=g2
c1 s mRNA 100 400 . - . ID=t2;Parent=g2
c1 s CDS 100 150 . - 1 Parent=t2
c1 s CDS 300 400 . - 0 Parent=t2
"""))
    g1, t2 = txs
    assert (g1.id, g1.gene, g1.exons, g1.cds) == ("g1", "MIR1", ((10, 50),), ())
    # CDS-only: the CDS are the exons; minus strand: 101 bp first (300-400), so (3 - 101 % 3) % 3 = 1
    assert t2.exons == ((100, 150), (300, 400)) and t2.cds == ((100, 150, 1), (300, 400, 0)) and t2.translatable


@pytest.mark.parametrize("body, message", [
    ("c1 s mRNA 1 100 . + . ID=t1\nc1 s exon 1 100 . + . Parent=t9",
     r"a.gff3 line 3: exon Parent 't9' is not the ID of any feature"),
    ("c1 s mRNA 1 100 . + . ID=t1;Parent=g9\nc1 s exon 1 100 . + . Parent=t1",
     r"a.gff3 line 2: mRNA Parent 'g9' is not the ID of any feature"),
    ("c1 s mRNA 1 100 . + . ID=t1\nc1 s exon 1 100 . + . ID=e1",
     r"a.gff3 line 3: exon has no Parent attribute"),
    ("c1 s mRNA 1 100 . + . ID=t1\nc1 s exon 1 50 . + . Parent=t1\nc1 s CDS 40 60 . + 0 Parent=t1",
     r"a.gff3 line 4: CDS 40-60 of transcript 't1' is outside its exons"),
    ("c1 s mRNA 1 100 . + . ID=t1\nc1 s exon 1 100 . + . Parent=t1\nc1 s CDS 10 60 . - 0 Parent=t1",
     r"a.gff3 line 4: CDS on c1- but its transcript 't1' \(line 2\) is on c1\+"),
    ("c1 s mRNA 1 100 . + . ID=t1\nc2 s exon 1 100 . + . Parent=t1",
     r"a.gff3 line 3: exon on c2\+ but its transcript 't1' \(line 2\) is on c1\+"),
    ("c1 s mRNA 1 100 . + . ID=t1\nc1 s exon 1 100 . + . Parent=t1\nc1 s CDS 10 60 . + 3 Parent=t1",
     r"a.gff3 line 4: phase '3' of CDS must be 0, 1 or 2"),
    ("c1 s mRNA 1 100 . + . ID=t1\nc1 s exon 1 100 . + . Parent=t1\nc1 s CDS 10 60 . + . Parent=t1",
     r"a.gff3 line 4: phase '.' of CDS must be 0, 1 or 2"),
    ("c1 s mRNA 1 100 . + . ID=t1\nc1 s exon 1 60 . + . Parent=t1\nc1 s exon 50 100 . + . Parent=t1",
     r"a.gff3 line 4: exon 50- overlaps the previous exon of transcript 't1' \(ends at 60\)"),
    ("c1 s mRNA 1 100 . + . ID=t1\nc1 s exon 1 100 . * . Parent=t1",
     r"a.gff3 line 3: strand '\*' must be \+ or -"),
    ("c1 s mRNA 1 100 . + . ID=t1\nc1 s exon 100 1 . + . Parent=t1", r"a.gff3 line 3: start 100 > end 1"),
    ("c1 s mRNA 1 100 . + . ID=t1\nc1 s exon one 100 . + . Parent=t1",
     r"a.gff3 line 3: start \(column 4\) 'one' is not an integer"),
])
def test_gff3_errors_name_file_and_line(tmp_path, body, message):
    with pytest.raises(InputError, match=message):
        load_transcripts(gff(tmp_path, body))


def test_column_count_error(tmp_path):
    path = tmp_path / "a.gff3"
    path.write_text(HEADER + "c1\ts\texon\t1\t10\t.\t+\t.\n")
    with pytest.raises(InputError, match=r"a.gff3 line 2: 8 tab-separated columns, GFF3/GTF needs 9"):
        load_transcripts(path)


@pytest.mark.parametrize("body, message", [
    ('c1\ts\texon\t1\t10\t.\t+\t.\tgene_id "g1";', r"a.gtf line 1: exon lacks transcript_id"),
    ('c1\ts\tCDS\t1\t10\t.\t+\t0\ttranscript_id "t1";', r"a.gtf line 1: CDS lacks gene_id"),
    (('c1\ts\texon\t1\t10\t.\t+\t.\tgene_id "g1"; transcript_id "t1";\n'
      'c1\ts\texon\t20\t30\t.\t+\t.\tgene_id "g2"; transcript_id "t1";'),
     r"a.gtf line 2: transcript 't1' is in genes 'g1' and 'g2'"),
    (('c1\ts\texon\t1\t10\t.\t+\t.\tgene_id "g1"; transcript_id "t1";\n'
      'c1\ts\tCDS\t1\t10\t.\t-\t0\tgene_id "g1"; transcript_id "t1";'),
     r"a.gtf line 2: CDS on c1- but its transcript 't1' \(line 1\) is on c1\+"),
    ('c1\ts\ttranscript\t1\t10\t.\t+\t.\tgene_id "g1"; transcript_id "t1";',
     r"a.gtf line 1: transcript 't1' has no exon or CDS lines"),
])
def test_gtf_errors(tmp_path, body, message):
    path = tmp_path / "a.gtf"
    path.write_text(body + "\n")
    with pytest.raises(InputError, match=message):
        load_transcripts(path)


def test_inconsistent_phase_is_kept_but_not_translated(tmp_path, caplog):
    # TXP1's exon-2 CDS has phase 1; claiming 0 contradicts the 17 bp before it (ribosomal slippage,
    # broken models): a warning, and the transcript gives no protein change.
    text = write_gff3(tmp_path / "toy.gff3").read_text().replace("\t78\t103\t.\t+\t1\t", "\t78\t103\t.\t+\t0\t")
    bad = tmp_path / "bad.gff3"
    bad.write_text(text)
    with caplog.at_level(logging.WARNING):
        txs = load_transcripts(bad)
    assert "line 7: CDS phase 0 of transcript 'TXP1' disagrees with the preceding CDS length (expected 1)" \
        in caplog.text
    txp1 = next(t for t in txs if t.id == "TXP1")
    assert not txp1.translatable and txp1.coding
    fa = tmp_path / "ref.fa"
    fa.write_text(">chrT\n" + GENOME + "\n")
    with pysam.FastaFile(str(fa)) as fasta:
        (row,) = [c for c in annotate_variant("chrT", 37, "C", "T", txs, fasta) if c.transcript == "TXP1"]
    assert (row.consequence, row.hgvs_c, row.hgvs_p, row.mut_protein) == ("coding_sequence_variant", "c.7C>T",
                                                                          None, None)


def test_overlapping_matches_brute_force():
    rng = random.Random(5)
    txs = []
    for i in range(400):
        start = rng.randrange(1, 1_000_000)
        exons = sorted({(start + k * 5_000, start + k * 5_000 + rng.randrange(1, 3_000))
                        for k in range(rng.randrange(1, 40))})
        txs.append(Transcript(f"t{i}", "g", "g", rng.choice(["chr1", "chr2"]), "+", tuple(exons)))
    index = TranscriptSet("random", txs)
    for _ in range(500):
        chrom, a = rng.choice(["chr1", "chr2"]), rng.randrange(1, 1_200_000)
        b = a + rng.choice([0, 1, 100, 70_000])
        got = index.overlapping(chrom, a, b)
        want = [t for t in txs if t.chrom == chrom and t.start <= b and t.end >= a]
        assert sorted(t.id for t in got) == sorted(t.id for t in want)
        assert len({id(t) for t in got}) == len(got)
        assert index.overlapping(chrom.removeprefix("chr"), a, b) == got  # 'chr' added to match
    assert index.overlapping("chrX", 1, 10**7) == [] and index.overlapping("chr1", 1, 0) == []


def test_overlapping_edges(tmp_path):
    txs = load_transcripts(gff(tmp_path, TWO))
    assert [t.id for t in txs.overlapping("c1", 900, 1000)] == ["t1", "t2"]
    assert txs.overlapping("c1", 901, 999) == []
    assert txs.overlapping("chrc1", 250, 250) == txs.overlapping("c1", 250, 250)  # 'chr' dropped to match
    assert [t.id for t in txs.overlapping("c1", 250, 250)] == ["t1"]  # in an intron: still the transcript


def test_gtf_split_stop_codon(tmp_path):
    # The stop codon split 2 + 1 over two exons; its GTF frame values are ignored (a stop has no residue).
    path = tmp_path / "a.gtf"
    ids = 'gene_id "g1"; transcript_id "t1";'
    path.write_text("".join(f"c1\ts\t{kind}\t{a}\t{b}\t.\t+\t{frame}\t{ids}\n" for kind, a, b, frame in [
        ("exon", 10, 30, "."), ("CDS", 10, 27, "0"), ("stop_codon", 28, 29, "0"),
        ("exon", 50, 60, "."), ("stop_codon", 50, 50, "2")]))
    (tx,) = load_transcripts(path)
    # 28-29 merge into the CDS (20 bp); the lone base at 50 then has phase (3 - 20 % 3) % 3 = 1
    assert tx.cds == ((10, 29, 0), (50, 50, 1)) and tx.translatable


def test_transcript_past_the_contig_end(tmp_path):
    fa = tmp_path / "ref.fa"
    fa.write_text(">c1\n" + "ACGT" * 25 + "\n")
    txs = load_transcripts(gff(tmp_path, "c1 s mRNA 50 150 . + . ID=t1\nc1 s exon 50 150 . + . Parent=t1"))
    with pysam.FastaFile(str(fa)) as fasta, pytest.raises(InputError, match=r"'t1' \(c1:50-150\) extends past"):
        annotate_variant("c1", 60, fasta.fetch("c1", 59, 60), "N", txs, fasta)


def test_abutting_exons_keep_their_cds_apart(tmp_path):
    (tx,) = load_transcripts(gff(tmp_path, """
c1 s mRNA 1 100 . - . ID=t1
c1 s exon 1 50 . - . Parent=t1
c1 s exon 51 100 . - . Parent=t1
c1 s CDS 10 50 . - 1 Parent=t1
c1 s CDS 51 79 . - 0 Parent=t1
"""))
    # 29 bp first (51-79, minus strand), so the next piece has phase (3 - 29 % 3) % 3 = 1
    assert tx.cds == ((10, 50, 1), (51, 79, 0)) and tx.translatable and tx.introns() == []
