"""Tests for aisci.protein.consequence and aisci.protein.annotate: hand-checked coding consequences on a toy genome."""

from __future__ import annotations

import gzip
from pathlib import Path

import pyarrow.parquet as pq
import pysam
import pytest

from aisci.protein.annotate import annotate_vcf, arrow_schema
from aisci.errors import InputError
from aisci.gather import read_regions
from aisci.protein.consequence import (
    COLUMNS,
    IMPACT,
    SEVERITY,
    ModelCache,
    RefMismatch,
    annotate_variant,
    revcomp,
    translate_to_stop,
)
from aisci.protein.transcripts import load_transcripts

# ------------------------------------------------------------------ the toy genome (chrT, 320 bp)
#
# TXP1 (gene GENEP, + strand), 3 exons, CDS phases 0 / 1 / 2:
#   1-20 flank | exon1 21-47: 5'UTR 21-30, CDS 31-47 | intron1 48-77 | exon2 78-103 | intron2 104-133
#   | exon3 134-153: CDS 134-147 (stop TAA 145-147), 3'UTR 148-153 | 154-159 CTGTGA (3' genome)
#   codons: ATG(31) GCT(34) CGG(37) AAA(40) CTT(43) GA|G(46,47|78) CAC(79) CAG(82) TGG(85) GAT(88)
#           TGC(91) GGC(94) TAC(97) TCA(100) A|CC(103|134) GAA(136) AAG(139) TTT(142) TAA(145)
#   protein MARKLEHQWDCGYSTEKF (18 residues)
# TXP2 (gene GENEP, + strand, retained intron, no CDS): exons 21-103 and 134-153.
# TXM1 (gene GENEM, - strand), 2 exons; genome 200-282 is the reverse complement of its pre-mRNA,
#   so transcript index i (0-based, pre-mRNA) sits at genomic 282 - i:
#   exon1 259-282: 5'UTR idx 0-7 (282-275), CDS idx 8-23 (274-259)
#   intron 229-258 (donor GT at 258,257; acceptor AG at 230,229)
#   exon2 200-228: CDS idx 54-76 (228-206; stop TAA 208-206), 3'UTR 205-200
#   codons: ATG CGC AAG CTG GAT G|CC TTC GCA CAG CTG AGC CCA TAA -> MRKLDAFAQLSP (12 residues)
P_UTR5, P_CDS1 = "CCGCACCACC", "ATGGCTCGGAAACTTGA"
P_INTRON1 = "GTAAGTATCTCTCTCTCTCTCTCTTTTCAG"
P_EXON2 = "G" + "CACCAGTGGGATTGCGGCTACTCA" + "A"
P_INTRON2 = "GTGAGTACTCTCTCTCTCTCTCTCCCACAG"
P_EXON3 = "CC" + "GAAAAGTTT" + "TAA" + "GCAGCA"
M_EXON1 = "CAGCAGCC" + "ATGCGCAAGCTGGATG"
M_INTRON = "GTAAGTCTCTCTCTCTCTCTCTCTTTTTAG"
M_EXON2 = "CC" + "TTCGCACAGCTGAGCCCA" + "TAA" + "GCAGAC"
GENOME = ("GATTACAGATTACAGATTAC" + P_UTR5 + P_CDS1 + P_INTRON1 + P_EXON2 + P_INTRON2 + P_EXON3 + "CTGTGA"
          + "ACGTTGCAACGTTGCAACGTTGCAACGTTGCAACGTTGCA" + revcomp(M_EXON1 + M_INTRON + M_EXON2)
          + "GATTACAGATTACAGATTACAGATTACAGATTACAGAT")
WT_P = "MARKLEHQWDCGYSTEKF"
WT_M = "MRKLDAFAQLSP"

# (type, start, end, phase, ID, Parent, extra attributes) in GFF3 terms; GTF is derived from the same.
FEATURES = [
    ("gene", 21, 153, ".", "gene:GP", None, "Name=GENEP;gene_id=GP;biotype=protein_coding"),
    ("mRNA", 21, 153, ".", "transcript:TXP1", "gene:GP", "transcript_id=TXP1;biotype=protein_coding"),
    ("exon", 21, 47, ".", None, "transcript:TXP1", ""), ("CDS", 31, 47, "0", None, "transcript:TXP1", ""),
    ("exon", 78, 103, ".", None, "transcript:TXP1", ""), ("CDS", 78, 103, "1", None, "transcript:TXP1", ""),
    ("exon", 134, 153, ".", None, "transcript:TXP1", ""), ("CDS", 134, 147, "2", None, "transcript:TXP1", ""),
    ("transcript", 21, 153, ".", "transcript:TXP2", "gene:GP", "transcript_id=TXP2;biotype=retained_intron"),
    ("exon", 21, 103, ".", None, "transcript:TXP2", ""), ("exon", 134, 153, ".", None, "transcript:TXP2", ""),
    ("gene", 200, 282, ".", "gene:GM", None, "Name=GENEM;gene_id=GM;biotype=protein_coding"),
    ("mRNA", 200, 282, ".", "transcript:TXM1", "gene:GM", "transcript_id=TXM1;biotype=protein_coding"),
    ("exon", 259, 282, ".", None, "transcript:TXM1", ""), ("CDS", 259, 274, "0", None, "transcript:TXM1", ""),
    ("exon", 200, 228, ".", None, "transcript:TXM1", ""), ("CDS", 206, 228, "2", None, "transcript:TXM1", ""),
]
STRAND = {"GP": "+", "GM": "-"}


def write_gff3(path: Path) -> Path:
    lines = ["##gff-version 3"]
    for kind, start, end, phase, fid, parent, extra in FEATURES:
        attrs = ";".join(a for a in (f"ID={fid}" if fid else "", f"Parent={parent}" if parent else "", extra) if a)
        strand = "+" if start < 190 else "-"  # GENEP lies in 21-153, GENEM in 200-282
        lines.append(f"chrT\ttoy\t{kind}\t{start}\t{end}\t.\t{strand}\t{phase}\t{attrs}")
    path.write_text("\n".join(lines) + "\n")
    return path


def write_gtf(path: Path) -> Path:
    """The same models as GTF: CDS lines without the stop codon, which gets its own stop_codon line."""
    names = {"GP": "GENEP", "GM": "GENEM"}
    tx = {"TXP1": "GP", "TXP2": "GP", "TXM1": "GM"}
    lines = ['#!genome-build toy']
    for kind, start, end, phase, fid, parent, extra in FEATURES:
        if kind == "gene":
            continue
        tid = (fid or parent).split(":")[1]
        gid = tx[tid]
        attrs = f'gene_id "{gid}"; transcript_id "{tid}"; gene_name "{names[gid]}";'
        if kind in ("mRNA", "transcript"):
            kind, attrs = "transcript", attrs + f' transcript_biotype "{extra.split("biotype=")[1]}";'
        rows = [(kind, start, end, phase)]
        if (tid, kind, start) == ("TXP1", "CDS", 134):
            rows = [("CDS", 134, 144, "2"), ("stop_codon", 145, 147, "0")]
        if (tid, kind, start) == ("TXM1", "CDS", 206):
            rows = [("CDS", 209, 228, "2"), ("stop_codon", 206, 208, "0")]
        for k, s, e, p in rows:
            lines.append(f"chrT\ttoy\t{k}\t{s}\t{e}\t.\t{STRAND[gid]}\t{p}\t{attrs}")
    path.write_text("\n".join(lines) + "\n")
    return path


@pytest.fixture(scope="module")
def toy(tmp_path_factory):
    d = tmp_path_factory.mktemp("toy")
    (d / "ref.fa").write_text(">chrT\n" + "\n".join(GENOME[i:i + 60] for i in range(0, len(GENOME), 60)) + "\n")
    pysam.faidx(str(d / "ref.fa"))
    write_gff3(d / "genes.gff3")
    write_gtf(d / "genes.gtf")
    return d


@pytest.fixture(scope="module")
def env(toy):
    fasta = pysam.FastaFile(str(toy / "ref.fa"))
    yield load_transcripts(toy / "genes.gff3"), fasta, ModelCache(fasta)
    fasta.close()


def csq(env, pos, ref, alt, transcript=None):
    """The consequences of one allele, as dicts keyed by transcript (or the one for ``transcript``)."""
    txs, fasta, cache = env
    rows = {c.transcript: c for c in annotate_variant("chrT", pos, ref, alt, txs, fasta, cache=cache)}
    return rows[transcript] if transcript else rows


def test_toy_layout():
    # The hand-computed coordinates above, checked against the genome as built.
    assert len(GENOME) == 320 and len(P_INTRON1) == len(P_INTRON2) == len(M_INTRON) == 30
    assert GENOME[30:33] == "ATG" and GENOME[36:39] == "CGG" and GENOME[144:147] == "TAA"
    assert GENOME[45:49] == "GAGT" and GENOME[76:78] == "GG" and GENOME[153:159] == "CTGTGA"
    assert revcomp(GENOME[271:274]) == "ATG" and revcomp(GENOME[205:208]) == "TAA"
    assert revcomp(GENOME[256:258]) == "GT" and revcomp(GENOME[228:230]) == "AG"


def test_wild_type_proteins_both_strands(env):
    row = csq(env, 37, "C", "T", "TXP1")
    assert row.wt_protein == WT_P and row.protein_length == 18
    assert csq(env, 271, "G", "A", "TXM1").wt_protein == WT_M


def test_missense_plus_strand(env):
    # codon 3 CGG (37-39) -> TGG: Arg3Trp; c.7 is the first base of codon 3
    row = csq(env, 37, "C", "T", "TXP1")
    assert (row.consequence, row.impact, row.hgvs_c, row.hgvs_p) == ("missense_variant", "MODERATE", "c.7C>T",
                                                                       "p.Arg3Trp")
    assert (row.protein_pos, row.protein_end, row.ref_aa, row.alt_aa) == (3, 3, "R", "W")
    assert row.mut_protein == "MAWKLEHQWDCGYSTEKF"
    assert (row.gene, row.gene_id, row.strand) == ("GENEP", "GP", "+")


def test_missense_minus_strand(env):
    # codon 2 CGC = transcript idx 11-13 = genomic 271-269; its C (c.4) is G at 271 on the + strand.
    # G>A on + is C>T on the transcript: CGC -> TGC, Arg2Cys.
    row = csq(env, 271, "G", "A", "TXM1")
    assert (row.consequence, row.hgvs_c, row.hgvs_p, row.protein_pos) == ("missense_variant", "c.4C>T", "p.Arg2Cys", 2)
    assert row.mut_protein == "MCKLDAFAQLSP" and (row.gene, row.strand) == ("GENEM", "-")


def test_synonymous(env):
    # codon 2 GCT (34-36) -> GCC, still Ala
    row = csq(env, 36, "T", "C", "TXP1")
    assert (row.consequence, row.impact, row.hgvs_p, row.hgvs_c) == ("synonymous_variant", "LOW", "p.Ala2=", "c.6T>C")
    assert row.mut_protein == row.wt_protein == WT_P and (row.ref_aa, row.alt_aa) == ("A", "A")


def test_stop_gained(env):
    # codon 8 CAG (82-84) -> TAG
    row = csq(env, 82, "C", "T", "TXP1")
    assert (row.consequence, row.impact, row.hgvs_c, row.hgvs_p) == ("stop_gained", "HIGH", "c.22C>T", "p.Gln8Ter")
    assert row.mut_protein == "MARKLEH" and (row.protein_pos, row.ref_aa, row.alt_aa) == (8, "Q", "*")


def test_stop_lost_reads_into_the_3prime_genome(env):
    # stop TAA (145-147) -> CAA Gln; then 3'UTR GCA GCA (Ala Ala) and, past the transcript end at 153,
    # the genome's CTG TGA (Leu, stop): the new stop is 4 residues after the old one.
    row = csq(env, 145, "T", "C", "TXP1")
    assert (row.consequence, row.impact, row.hgvs_c, row.hgvs_p) == ("stop_lost", "HIGH", "c.55T>C",
                                                                       "p.Ter19GlnextTer4")
    assert row.mut_protein == WT_P + "QAAL"
    assert (row.protein_pos, row.protein_end, row.ref_aa, row.alt_aa) == (19, 19, "*", "Q")


def test_stop_retained(env):
    row = csq(env, 147, "A", "G", "TXP1")  # TAA -> TAG
    assert (row.consequence, row.hgvs_p, row.mut_protein) == ("stop_retained_variant", "p.Ter19=", WT_P)


def test_start_lost(env):
    row = csq(env, 32, "T", "C", "TXP1")  # ATG -> ACG
    assert (row.consequence, row.impact, row.hgvs_c, row.hgvs_p) == ("start_lost", "HIGH", "c.2T>C", "p.Met1?")
    assert row.mut_protein is None and row.wt_protein == WT_P and row.protein_pos == 1


def test_frameshift_minus_strand(env):
    # Deleting the G of codon 8 GCA (transcript idx 59 = genomic 223, C on +; VCF pads with 222 G):
    # ... TTC [G]CA CAG CTG -> TTC CAC AGC TGA: Phe7 then His Ser and a stop: p.Ala8HisfsTer3
    row = csq(env, 222, "GC", "G", "TXM1")
    assert (row.consequence, row.impact, row.hgvs_c, row.hgvs_p) == ("frameshift_variant", "HIGH", "c.22del",
                                                                       "p.Ala8HisfsTer3")
    assert row.mut_protein == "MRKLDAFHS" and (row.protein_pos, row.ref_aa, row.alt_aa) == (8, "A", "H")


def test_frameshift_through_the_stop_reads_the_3prime_genome(env):
    # Deleting the first T of TTT (142; VCF pads with 141 G) on TXP1:
    # AAG TT|T AAG CAG CAC TGT GA... -> Phe18 kept, the stop TAA becomes AAG (Lys), then Gln His Cys
    # and on past the transcript end (153) into the genome until a stop codon.
    row = csq(env, 141, "GT", "G", "TXP1")
    spliced = GENOME[30:47] + GENOME[77:103] + GENOME[133:141] + GENOME[142:]  # the mutant, read on
    expected = translate_to_stop(spliced)
    assert expected.startswith(WT_P + "KQHC") and expected.endswith("*")
    assert (row.consequence, row.impact) == ("frameshift_variant&stop_lost", "HIGH")
    assert row.hgvs_p == f"p.Ter19LysextTer{len(expected) - 1 - 18}" and row.mut_protein == expected[:-1]


def test_inframe_deletion_plus(env):
    # GAA AAG TTT (136-144) minus AAG (139-141; VCF pads with 138 A): Lys17 deleted
    row = csq(env, 138, "AAAG", "A", "TXP1")
    assert (row.consequence, row.impact, row.hgvs_c, row.hgvs_p) == ("inframe_deletion", "MODERATE", "c.49_51del",
                                                                       "p.Lys17del")
    assert row.mut_protein == "MARKLEHQWDCGYSTEF" and (row.protein_pos, row.protein_end, row.ref_aa, row.alt_aa) == (
        17, 17, "K", "")


def test_inframe_deletion_across_exon_boundary_minus(env):
    # The last 3 bases of exon 1 (transcript idx 21-23 = genomic 261-259, 'CAT' on +) are c.14-16:
    # GAT G|CC -> G|CC: codon 5 becomes GCC (Ala) and codon 6 (split by the intron) disappears, so
    # DAF -> AF, i.e. Asp5 deleted; the exon's last 3 bases are in the splice region.
    row = csq(env, 258, "CCAT", "C", "TXM1")
    assert (row.consequence, row.hgvs_c, row.hgvs_p) == ("inframe_deletion&splice_region_variant", "c.14_16del",
                                                         "p.Asp5del")
    assert row.mut_protein == "MRKLAFAQLSP"


def test_inframe_insertion_in_split_codon_minus(env):
    # GGG inserted between c.17 and c.18 (the 2nd and 3rd base of split codon 6 G|CC, genomic 228|227):
    # G|C[GGG]C TTC -> GCG GGC TTC: Ala6, new Gly, Phe: p.Ala6_Phe7insGly
    row = csq(env, 227, "G", "GCCC", "TXM1")
    assert (row.consequence, row.impact, row.hgvs_c, row.hgvs_p) == ("inframe_insertion&splice_region_variant",
                                                                       "MODERATE", "c.17_18insGGG", "p.Ala6_Phe7insGly")
    assert row.mut_protein == "MRKLDAGFAQLSP" and (row.protein_pos, row.protein_end, row.alt_aa) == (6, 7, "G")


def test_inframe_duplication(env):
    # a second AAG after codon 17 (insert AAG after 141): Lys17dup
    row = csq(env, 141, "G", "GAAG", "TXP1")
    assert (row.consequence, row.hgvs_p, row.mut_protein) == ("inframe_insertion", "p.Lys17dup", "MARKLEHQWDCGYSTEKKF")


def test_mnv_two_residues(env):
    # AAA CTT (40-45): AC at 42-43 -> TG gives AAT GTT: Lys4Asn and Leu5Val
    row = csq(env, 42, "AC", "TG", "TXP1")
    assert (row.consequence, row.hgvs_c, row.hgvs_p) == ("missense_variant", "c.12_13delinsTG",
                                                         "p.Lys4_Leu5delinsAsnVal")
    assert (row.protein_pos, row.protein_end, row.ref_aa, row.alt_aa) == (4, 5, "KL", "NV")
    assert row.mut_protein == "MARNVEHQWDCGYSTEKF"


def test_protein_altering_delins(env):
    # AAA CTT (40-45) minus ACT (42-44; VCF pads with 41 A) leaves AAT: Lys4 and Leu5 become one Asn
    row = csq(env, 41, "AACT", "A", "TXP1")
    assert (row.consequence, row.impact, row.hgvs_c, row.hgvs_p) == ("protein_altering_variant", "MODERATE",
                                                                       "c.12_14del", "p.Lys4_Leu5delinsAsn")
    assert (row.protein_pos, row.protein_end, row.ref_aa, row.alt_aa) == (4, 5, "KL", "N")
    assert row.mut_protein == "MARNEHQWDCGYSTEKF"


def test_stop_gained_by_inframe_insertion(env):
    # TAA inserted between codon 9 TGG (85-87) and codon 10 GAT: the protein ends after Trp9
    row = csq(env, 87, "G", "GTAA", "TXP1")
    assert (row.consequence, row.hgvs_c, row.hgvs_p, row.mut_protein) == ("stop_gained", "c.27_28insTAA",
                                                                          "p.Asp10Ter", "MARKLEHQW")


def test_splice_sites_plus(env):
    assert csq(env, 48, "G", "A", "TXP1").consequence == "splice_donor_variant"  # intron1 +1
    assert csq(env, 49, "T", "C", "TXP1").impact == "HIGH"  # intron1 +2
    assert csq(env, 52, "G", "C", "TXP1").consequence == "splice_region_variant&intron_variant"  # +5
    assert csq(env, 56, "C", "G", "TXP1").consequence == "intron_variant"  # +9: outside the region
    assert csq(env, 133, "G", "A", "TXP1").consequence == "splice_acceptor_variant"  # intron2 last base
    assert csq(env, 126, "T", "A", "TXP1").consequence == "splice_region_variant&intron_variant"  # -8
    row = csq(env, 46, "G", "C", "TXP1")  # exon1's last 3 bases: GAG -> CAG
    assert (row.consequence, row.impact, row.hgvs_p) == ("missense_variant&splice_region_variant", "MODERATE",
                                                         "p.Glu6Gln")


def test_splice_sites_minus(env):
    # donor: transcript intron +1/+2 = genomic 258/257; acceptor: intron -1/-2 = genomic 229/230
    assert csq(env, 258, "C", "T", "TXM1").consequence == "splice_donor_variant"
    assert csq(env, 257, "A", "G", "TXM1").consequence == "splice_donor_variant"
    assert csq(env, 229, "C", "A", "TXM1").consequence == "splice_acceptor_variant"
    assert csq(env, 230, "T", "G", "TXM1").consequence == "splice_acceptor_variant"
    assert csq(env, 254, GENOME[253], "A" if GENOME[253] != "A" else "C", "TXM1").consequence == \
        "splice_region_variant&intron_variant"  # intron +5
    row = csq(env, 258, "C", "T", "TXM1")
    assert row.hgvs_c is None and row.hgvs_p is None and row.wt_protein is None


def test_insertion_in_splice_dinucleotide(env):
    # between intron +1 and +2 (48|49): donor; between the exon's last base and +1 (47|48): region only
    assert csq(env, 48, "G", "GA", "TXP1").consequence == "splice_donor_variant"
    assert csq(env, 47, "A", "AT", "TXP1").consequence == "splice_region_variant"


def test_utr_intron_and_non_coding(env):
    rows = csq(env, 25, "A", "C")
    assert rows["TXP1"].consequence == "5_prime_UTR_variant" and rows["TXP1"].impact == "MODIFIER"
    assert rows["TXP1"].hgvs_c is None and rows["TXP1"].mut_protein is None
    assert rows["TXP2"].consequence == "non_coding_transcript_exon_variant"
    assert csq(env, 150, "A", "T", "TXP1").consequence == "3_prime_UTR_variant"
    rows = csq(env, 60, "C", "A")  # intron 1 of TXP1 is exonic in TXP2 (retained intron)
    assert {t: r.consequence for t, r in rows.items()} == {"TXP1": "intron_variant",
                                                           "TXP2": "non_coding_transcript_exon_variant"}
    assert csq(env, 280, GENOME[279], "T" if GENOME[279] != "T" else "A", "TXM1").consequence == "5_prime_UTR_variant"


def test_overlapping_transcripts_give_one_row_each(env):
    rows = list(csq(env, 37, "C", "T").values())
    assert [(r.transcript, r.consequence) for r in rows] == [("TXP1", "missense_variant"),
                                                            ("TXP2", "non_coding_transcript_exon_variant")]
    assert csq(env, 190, "C", "G") == {} and csq(env, 10, "T", "G") == {}  # intergenic


def test_deletion_spanning_an_exon_edge(env):
    # exon2 end + intron2 start (102-106): splicing unpredictable, no protein
    row = csq(env, 101, GENOME[100:106], GENOME[100], "TXP1")
    assert row.consequence == "splice_donor_variant&splice_region_variant&coding_sequence_variant&intron_variant"
    assert row.hgvs_p is None and row.mut_protein is None


def test_symbolic_and_ref_mismatch(env):
    txs, fasta, _ = env
    assert annotate_variant("chrT", 37, "C", "<DEL>", txs, fasta) == []
    assert annotate_variant("chrT", 37, "C", "*", txs, fasta) == []
    with pytest.raises(RefMismatch, match=r"chrT:37 REF 'A' does not match the reference \('C'\)"):
        annotate_variant("chrT", 37, "A", "T", txs, fasta)
    with pytest.raises(InputError, match="contig 'chrZ' is not in the reference"):
        annotate_variant("chrZ", 37, "A", "T", txs, fasta)


def test_severity_tables():
    rank = SEVERITY.index
    assert rank("splice_acceptor_variant") < rank("stop_gained") < rank("missense_variant") < rank("intron_variant")
    assert {IMPACT[t] for t in ("stop_lost", "start_lost", "frameshift_variant")} == {"HIGH"}
    assert IMPACT["protein_altering_variant"] == "MODERATE" and IMPACT["intron_variant"] == "MODIFIER"


# ------------------------------------------------------------------ the VCF -> Parquet stage

VARIANTS = [(25, "A", "C"), (32, "T", "C"), (36, "T", "C"), (37, "C", "T,G"), (42, "AC", "TG"), (48, "G", "A"),
            (60, "C", "A"), (82, "C", "T"), (138, "AAAG", "A"), (145, "T", "C"), (190, "C", "<DEL>"),
            (222, "GC", "G"), (227, "G", "GCCC"), (258, "CCAT", "C"), (271, "G", "A")]


def write_vcf(path: Path, variants) -> Path:
    head = ["##fileformat=VCFv4.2", "##contig=<ID=chrT,length=320>", "##contig=<ID=chrZ,length=100>",
            "#CHROM\tPOS\tID\tREF\tALT\tQUAL\tFILTER\tINFO"]
    body = [f"{c}\t{p}\t.\t{r}\t{a}\t.\tPASS\t." for c, p, r, a in
            ((v[0], *v[1:]) if isinstance(v[0], str) else ("chrT", *v) for v in variants)]
    path.write_text("\n".join(head + body) + "\n")
    return path


def test_annotate_vcf_parquet(toy, tmp_path):
    out = tmp_path / "csq.parquet"
    summary = annotate_vcf(write_vcf(tmp_path / "in.vcf", VARIANTS), toy / "ref.fa", toy / "genes.gff3", out)
    table = pq.read_table(out)
    assert table.schema.equals(arrow_schema()) and table.column_names == list(COLUMNS)
    assert [str(table.schema.field(c).type) for c in ("pos", "protein_pos", "protein_end", "protein_length")] == [
        "int64", "int32", "int32", "int32"]
    assert not table.schema.field("chrom").nullable and table.schema.field("hgvs_p").nullable
    rows = table.to_pylist()
    # 15 records, 16 ALTs, one symbolic; TXP2 (21-103, 134-153) adds a row to each ALT in 25-145
    assert (summary["records"], summary["alleles"], summary["symbolic"], summary["rows"]) == (15, 16, 1, 26)
    assert len(rows) == 26 and rows[0]["transcript"] == "TXP1" and rows[0]["pos"] == 25
    by = {(r["pos"], r["alt"], r["transcript"]): r for r in rows}
    assert by[(37, "G", "TXP1")]["hgvs_p"] == "p.Arg3Gly"  # CGG -> GGG
    assert by[(145, "C", "TXP1")]["mut_protein"] == WT_P + "QAAL"
    assert summary["consequences"]["missense_variant"] == 4


def test_gtf_and_gff3_give_identical_rows(toy, tmp_path):
    vcf = write_vcf(tmp_path / "in.vcf", VARIANTS)
    annotate_vcf(vcf, toy / "ref.fa", toy / "genes.gff3", tmp_path / "a.parquet")
    annotate_vcf(vcf, toy / "ref.fa", toy / "genes.gtf", tmp_path / "b.parquet")
    a, b = pq.read_table(tmp_path / "a.parquet"), pq.read_table(tmp_path / "b.parquet")
    assert a.num_rows == 26 and a.equals(b)


def test_empty_table_keeps_the_schema(toy, tmp_path):
    out = tmp_path / "none.parquet"
    summary = annotate_vcf(write_vcf(tmp_path / "in.vcf", [(190, "C", "G")]), toy / "ref.fa", toy / "genes.gff3", out)
    table = pq.read_table(out)
    assert summary["rows"] == 0 and table.num_rows == 0 and table.schema.equals(arrow_schema())


def test_ref_mismatch_names_the_record(toy, tmp_path):
    vcf = write_vcf(tmp_path / "in.vcf", [(36, "T", "C"), (37, "A", "T"), (82, "C", "T")])
    out = tmp_path / "x.parquet"
    with pytest.raises(InputError, match=r"in\.vcf record 2 \(chrT:37 A>T\): chrT:37 REF 'A' does not match"):
        annotate_vcf(vcf, toy / "ref.fa", toy / "genes.gff3", out)
    assert not out.exists() and not list(tmp_path.glob(".x.parquet*"))  # nothing half-written
    summary = annotate_vcf(vcf, toy / "ref.fa", toy / "genes.gff3", out, skip_mismatch=True)
    assert (summary["ref_mismatch"], summary["rows"]) == (1, 4)


def test_contig_missing_from_reference(toy, tmp_path):
    vcf = write_vcf(tmp_path / "in.vcf", [("chrZ", 5, "A", "G")])
    with pytest.raises(InputError, match=r"record 1 \(chrZ:5 A>G\): contig 'chrZ' is not in the reference"):
        annotate_vcf(vcf, toy / "ref.fa", toy / "genes.gff3", tmp_path / "x.parquet")


def test_cli(toy, tmp_path, capsys):
    from aisci.cli import main

    vcf = write_vcf(tmp_path / "in.vcf", VARIANTS)
    gz = tmp_path / "genes.gff3.gz"
    gz.write_bytes(gzip.compress((toy / "genes.gff3").read_bytes()))
    out = tmp_path / "cli.parquet"
    assert main(["annotate", "--vcf", str(vcf), "--ref", str(toy / "ref.fa"), "--annotation", str(gz),
                 "--out", str(out)]) == 0
    assert "-> 26 consequence rows" in capsys.readouterr().out and pq.read_table(out).num_rows == 26
    bad = write_vcf(tmp_path / "bad.vcf", [(37, "A", "T")])
    assert main(["annotate", "--vcf", str(bad), "--ref", str(toy / "ref.fa"), "--annotation", str(gz),
                 "--out", str(out), "--skip-mismatch"]) == 0
    assert main(["annotate", "--vcf", str(bad), "--ref", str(toy / "ref.fa"), "--annotation", str(gz),
                 "--out", str(out)]) == 1
    assert "REF 'A' does not match" in capsys.readouterr().err


# ------------------------------------------------------------------ consistency on `aisci simulate` output


@pytest.fixture(scope="module")
def simulated(tmp_path_factory):
    from aisci.demo.germline import simulate

    return simulate(tmp_path_factory.mktemp("sim"), genome_size=300_000, n_samples=1, depth=1, seed=3,
                    snv_rate=4e-3)


def _cds_codons(tx, fasta):
    """Independent re-implementation: the CDS in transcript order, and genomic pos -> CDS index."""
    bases = [p for s, e, _ in tx.cds for p in range(s, e + 1)]
    bases = bases if tx.strand == "+" else bases[::-1]
    seq = "".join(fasta.fetch(tx.chrom, p - 1, p) for p in bases).upper()
    return (seq if tx.strand == "+" else seq.translate(str.maketrans("ACGT", "TGCA"))), {p: i for i, p in
                                                                                          enumerate(bases)}


def test_simulated_genes_and_truth_snvs(simulated, tmp_path):
    from Bio.Seq import translate

    txs = load_transcripts(simulated.annotation)
    assert len(txs) >= 8 and {t.strand for t in txs} == {"+", "-"}
    fasta = pysam.FastaFile(str(simulated.reference))
    index = {}
    for tx in txs:
        cds, where = _cds_codons(tx, fasta)
        protein = translate(cds)
        assert protein[0] == "M" and protein.endswith("*") and "*" not in protein[:-1], tx.id
        index[tx.id] = (protein[:-1], where)
    assert sum(any(p for _, _, p in tx.cds) for tx in txs) >= len(txs) // 2  # non-zero CDS phases
    out = tmp_path / "sim.parquet"
    summary = annotate_vcf(simulated.truth_vcfs["S1"], simulated.reference, simulated.annotation, out)
    rows = pq.read_table(out).to_pylist()
    assert summary["rows"] == len(rows) > 0
    checked = 0
    for r in rows:
        wt, where = index[r["transcript"]]
        if len(r["ref"]) != 1 or len(r["alt"]) != 1 or r["pos"] not in where:
            continue
        codon = where[r["pos"]] // 3  # 0-based residue; the stop codon is residue len(wt)
        assert r["wt_protein"] == wt and r["protein_pos"] == codon + 1, r
        mut = r["mut_protein"]
        term = r["consequence"].split("&")[0]
        if term == "synonymous_variant" or term == "stop_retained_variant":
            assert mut == wt
        elif term == "missense_variant":
            assert len(mut) == len(wt) and [i for i in range(len(wt)) if wt[i] != mut[i]] == [codon]
        elif term == "stop_gained":
            assert mut == wt[:codon]
        elif term == "stop_lost":
            assert mut.startswith(wt) and len(mut) > len(wt) and codon == len(wt)
        else:
            assert term == "start_lost" and codon == 0 and mut is None, r
        checked += 1
    assert checked >= 20, checked
    fasta.close()


def _edited_protein(tx, contig: str, pos: int, ref: str, alt: str) -> str:
    """Independent mutant protein of an indel inside a CDS exon: edit the contig, shift the exons, splice,
    read on into the 3' genome, translate to the first stop."""
    from Bio.Seq import translate

    d = len(alt) - len(ref)
    edited = contig[:pos - 1] + alt + contig[pos - 1 + len(ref):]

    def shift(x: int) -> int:  # coordinates after the padding base move by d
        return x + d if x > pos else x

    exons = [(shift(a), shift(b)) for a, b in tx.exons]
    five = shift(tx.cds[0][0] if tx.strand == "+" else tx.cds[-1][1])
    if tx.strand == "+":
        spliced = "".join(edited[a - 1:b] for a, b in exons if b >= five)
        seq = spliced[five - max(a for a, b in exons if a <= five):] + edited[exons[-1][1]:]
    else:
        spliced = "".join(revcomp(edited[a - 1:b]) for a, b in reversed(exons) if a <= five)
        start = min(b for a, b in exons if b >= five)
        seq = spliced[start - five:] + revcomp(edited[:exons[0][0] - 1])
    protein = str(translate(seq[: len(seq) // 3 * 3]))
    return protein.split("*")[0]


def test_simulated_indels_match_a_genome_edit(tmp_path_factory):
    from aisci.demo.germline import simulate

    sim = simulate(tmp_path_factory.mktemp("simi"), genome_size=300_000, n_samples=1, depth=1, seed=7,
                   snv_rate=1e-4, indel_rate=2e-3)
    out = tmp_path_factory.mktemp("simi_out") / "c.parquet"
    annotate_vcf(sim.truth_vcfs["S1"], sim.reference, sim.annotation, out)
    txs = {t.id: t for t in load_transcripts(sim.annotation)}
    checked = set()
    with pysam.FastaFile(str(sim.reference)) as fasta:
        contigs = {c: fasta.fetch(c).upper() for c in fasta.references}
        for r in pq.read_table(out).to_pylist():
            tx = txs[r["transcript"]]
            last = r["pos"] + max(len(r["ref"]), len(r["alt"]))
            inner = any(a + 3 <= r["pos"] and last + 3 <= b for a, b, _ in tx.cds)  # clear of CDS edges
            if len(r["ref"]) == len(r["alt"]) or not inner or r["hgvs_p"] is None:
                continue
            expected = _edited_protein(tx, contigs[r["chrom"]], r["pos"], r["ref"], r["alt"])
            assert r["mut_protein"] == expected, (r["hgvs_p"], r["strand"])
            checked.add((r["strand"], r["consequence"].split("&")[0]))
    assert {("+", "frameshift_variant"), ("-", "frameshift_variant"), ("+", "inframe_insertion"),
            ("-", "inframe_deletion")} <= checked, checked


# ------------------------------------------------------------------ scattered over groups of regions, gathered


@pytest.mark.parametrize("indexed", [False, True], ids=["plain", "tabix"])
def test_annotate_scattered_over_three_groups_equals_unscattered(toy, tmp_path, indexed):
    """Boundaries inside the deletion at 138-141 (it goes to the group of its POS) and at the record at 258
    (POS == BEG); adjacent intervals in one group; contigs without records (chrZ, an HLA-style name)."""
    from aisci.cli import main
    from aisci.gather import gather_parquet

    vcf = write_vcf(tmp_path / "in.vcf", VARIANTS)
    if indexed:  # regions read through the index, one fetch per interval
        vcf = Path(pysam.tabix_index(str(vcf), preset="vcf", force=True))
    groups = [[("chrT", 1, 139)], [("chrT", 140, 189), ("chrT", 190, 257)],
              [("chrT", 258, 320), ("chrZ", 1, 100), ("HLA-A*01:01:01:01", 1, 3000)]]
    common = ["--ref", str(toy / "ref.fa"), "--annotation", str(toy / "genes.gff3")]
    assert main(["annotate", "--vcf", str(vcf), *common, "--out", str(tmp_path / "whole.parquet")]) == 0
    parts = []
    for n, group in enumerate(groups):
        regions = tmp_path / f"{n:04d}.tsv"
        regions.write_text("".join(f"{c}\t{b}\t{e}\t{n:04d}\n" for c, b, e in group))
        parts.append(tmp_path / f"{n:04d}.parquet")
        assert main(["annotate", "--vcf", str(vcf), *common, "--regions-file", str(regions),
                     "--out", str(parts[-1])]) == 0
    tables = [pq.read_table(p) for p in parts]
    assert [sorted({r["pos"] for r in t.to_pylist()}) for t in tables] == [
        [25, 32, 36, 37, 42, 48, 60, 82, 138], [145, 222, 227], [258, 271]]  # 190 is <DEL>: no row
    assert all(t.schema.equals(arrow_schema(), check_metadata=True) for t in tables)
    gather_parquet(parts, tmp_path / "gathered.parquet")
    whole, gathered = pq.read_table(tmp_path / "whole.parquet"), pq.read_table(tmp_path / "gathered.parquet")
    assert whole.num_rows == 26 and gathered.equals(whole, check_metadata=True)
    assert (tmp_path / "gathered.parquet").read_bytes() == (tmp_path / "whole.parquet").read_bytes()
    # a group of contigs the VCF lacks: an empty table of the schema
    (tmp_path / "none.tsv").write_text("chrZ\t1\t100\nchrQ\t1\t10\n")
    summary = annotate_vcf(vcf, toy / "ref.fa", toy / "genes.gff3", tmp_path / "none.parquet",
                           regions=read_regions(tmp_path / "none.tsv"))
    assert summary["records"] == 0 and pq.read_table(tmp_path / "none.parquet").schema.equals(arrow_schema())


def test_annotate_scattered_names_records_by_position(toy, tmp_path):
    """A scatter job reads some records only: a failing record is named by its position, not a file-wide number."""
    vcf = write_vcf(tmp_path / "in.vcf", [(36, "T", "C"), (37, "A", "T")])
    (tmp_path / "g.tsv").write_text("chrT\t37\t320\n")
    with pytest.raises(InputError, match=r"in\.vcf record \(chrT:37 A>T\): chrT:37 REF 'A' does not match"):
        annotate_vcf(vcf, toy / "ref.fa", toy / "genes.gff3", tmp_path / "x.parquet",
                     regions=read_regions(tmp_path / "g.tsv"))
