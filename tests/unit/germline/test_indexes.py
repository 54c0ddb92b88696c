"""Tests for aisci.germline.indexes: headers of real minimap2 and bwa indexes, and the refusals of check_index."""

import os
import random
import shutil
import subprocess
import time

import pytest

from aisci.errors import InputError
from aisci.germline.indexes import bwa_contigs, check_index, minimap2_contigs, read_mmi_header
from aisci.germline.reference import Contig, read_contigs

pytestmark = pytest.mark.skipif(
    not all(shutil.which(t) for t in ("minimap2", "bwa", "samtools")), reason="minimap2/bwa/samtools not installed"
)

WHERE = "config.yaml: index.minimap2"
# Names with the characters real references use (HLA alleles, NCBI gi names) and a FASTA comment.
CONTIGS = [("chr1", 3000), ("HLA-A*01:01:01:01", 1500), ("gi|568336023|gb|CM000663.2|", 700), ("chrM", 61)]


def write_fasta(path, contigs, seed=7):
    rng = random.Random(seed)
    with open(path, "w") as fh:
        for name, length in contigs:
            seq = "".join(rng.choice("ACGT") for _ in range(length))
            fh.write(f">{name} a comment\n")
            fh.writelines(seq[i:i + 60] + "\n" for i in range(0, length, 60))
    return path


def minimap2_index(fasta, mmi, *options):
    subprocess.run(["minimap2", *options, "-d", str(mmi), str(fasta)], check=True, capture_output=True)
    return mmi


def bwa_index(fasta):
    subprocess.run(["bwa", "index", str(fasta)], check=True, capture_output=True)
    return fasta


@pytest.fixture(scope="module")
def ref(tmp_path_factory):
    """The reference with its .fai (from samtools), its -x sr .mmi and its bwa index."""
    d = tmp_path_factory.mktemp("indexes")
    fa = write_fasta(d / "genome.fa", CONTIGS)
    subprocess.run(["samtools", "faidx", str(fa)], check=True)
    minimap2_index(fa, d / "genome.mmi", "-x", "sr")
    bwa_index(fa)
    return fa


def fai_contigs(fasta):
    lines = (line.split("\t") for line in open(f"{fasta}.fai"))
    return [(fields[0], int(fields[1])) for fields in lines]


def refusal(aligner, index, contigs, where=WHERE):
    with pytest.raises(InputError) as e:
        check_index(aligner, index, contigs, where)
    return str(e.value)


def test_contigs_read_from_real_indexes_equal_samtools_faidx(ref):
    assert fai_contigs(ref) == CONTIGS
    assert minimap2_contigs(ref.parent / "genome.mmi") == CONTIGS
    assert bwa_contigs(ref) == CONTIGS
    assert bwa_contigs(str(ref)) == CONTIGS
    header = read_mmi_header(ref.parent / "genome.mmi")
    assert (header.k, header.w, header.flag) == (21, 11, 0)


@pytest.mark.parametrize("aligner", ["minimap2", "bwa"])
def test_matching_index_is_accepted(ref, aligner):
    index = ref.parent / "genome.mmi" if aligner == "minimap2" else ref
    assert check_index(aligner, index, read_contigs(ref), WHERE) is None


def test_only_the_header_of_a_whole_genome_sized_mmi_is_read(ref, tmp_path):
    """A human .mmi is ~7 GB: the header is read, not the index (a sparse 8 GiB file here)."""
    big = tmp_path / "big.mmi"
    shutil.copy(ref.parent / "genome.mmi", big)
    os.truncate(big, 8 << 30)
    start = time.perf_counter()
    assert minimap2_contigs(big) == CONTIGS
    check_index("minimap2", big, read_contigs(ref), WHERE)
    assert time.perf_counter() - start < 0.5


@pytest.mark.parametrize(
    ("changed", "message"),
    [
        ([("chr1", 3000), ("HLA-A*01:01:01:02", 1500), *CONTIGS[2:]],
         "contig 2 is 'HLA-A*01:01:01:02' (1500 bp) in the index but 'HLA-A*01:01:01:01' (1500 bp) in the reference"),
        ([*CONTIGS[:2], ("gi|568336023|gb|CM000663.2|", 699), CONTIGS[3]],
         "contig 3 is 'gi|568336023|gb|CM000663.2|' (699 bp) in the index but 'gi|568336023|gb|CM000663.2|' "
         "(700 bp) in the reference"),
        ([*CONTIGS, ("chrEBV", 100)],
         "it holds 5 contigs, the reference 4: its contig 5, 'chrEBV', is not in the reference"),
        ([CONTIGS[0], *CONTIGS[2:]],
         "contig 2 is 'gi|568336023|gb|CM000663.2|' (700 bp) in the index but 'HLA-A*01:01:01:01' (1500 bp) "
         "in the reference"),
    ],
    ids=["renamed", "shorter", "extra-contig", "contig-dropped"],
)
def test_index_of_another_fasta_is_refused(ref, tmp_path, changed, message):
    other = write_fasta(tmp_path / "other.fa", changed)
    mmi = minimap2_index(other, tmp_path / "other.mmi", "-x", "sr")
    bwa_index(other)
    contigs = read_contigs(ref)
    assert refusal("minimap2", mmi, contigs) == (
        f"{WHERE}: {mmi}: built from a different FASTA: {message}; "
        "rebuild it: `minimap2 -x sr -d genome.mmi genome.fa`"
    )
    assert refusal("bwa", other, contigs, "config.yaml: index.bwa") == (
        f"config.yaml: index.bwa: {other}.ann: built from a different FASTA: {message}; "
        "rebuild it: `bwa index genome.fa`"
    )


def test_index_of_part_of_the_reference_or_multi_part_index_is_refused(ref, tmp_path):
    # -I 2k: each part holds ~2 kb of sequence, so the first part holds chr1 only.
    mmi = minimap2_index(ref, tmp_path / "parts.mmi", "-x", "sr", "-I", "2k")
    assert minimap2_contigs(mmi) == CONTIGS[:1]
    assert refusal("minimap2", mmi, read_contigs(ref)) == (
        f"{WHERE}: {mmi}: it holds 1 contigs, the reference 4: contig 2, 'HLA-A*01:01:01:01', is not in the "
        "index; it was built from part of the reference, or it is a multi-part index (minimap2 -I below the "
        "genome's size), which is not supported; rebuild it: `minimap2 -x sr -d genome.mmi genome.fa` "
        "(with -I above the genome's size if that is over 4 Gb)"
    )


@pytest.mark.parametrize(
    ("options", "built"),
    [
        ([], "built with k=15, w=10,"),
        (["-x", "map-pb"], "built with k=19, w=10, homopolymer-compressed (-H),"),
        (["-x", "sr", "-k", "19"], "built with k=19, w=11,"),
    ],
    ids=["default", "map-pb", "other-k"],
)
def test_mmi_built_for_other_reads_than_short_ones_is_refused(ref, tmp_path, options, built):
    mmi = minimap2_index(ref, tmp_path / "x.mmi", *options)
    assert minimap2_contigs(mmi) == CONTIGS
    assert refusal("minimap2", mmi, read_contigs(ref)) == (
        f"{WHERE}: {mmi}: {built} but the pipeline aligns short reads (`minimap2 -ax sr`: k=21, w=11) and "
        "minimap2 would silently use the index's k-mers; rebuild it: `minimap2 -x sr -d genome.mmi genome.fa`"
    )


def test_mmi_without_sequence_is_refused(ref, tmp_path):
    mmi = minimap2_index(ref, tmp_path / "noseq.mmi", "-x", "sr", "--idx-no-seq")
    assert refusal("minimap2", mmi, read_contigs(ref)) == (
        f"{WHERE}: {mmi}: built with --idx-no-seq: it holds no sequence, which `minimap2 -a` needs; "
        "rebuild it: `minimap2 -x sr -d genome.mmi genome.fa`"
    )


def test_missing_unreadable_or_garbled_mmi_is_refused(ref, tmp_path):
    contigs = read_contigs(ref)
    missing = tmp_path / "missing.mmi"
    assert refusal("minimap2", missing, contigs) == f"{WHERE}: {missing}: no such file"
    assert refusal("minimap2", tmp_path, contigs).startswith(f"{WHERE}: {tmp_path}: cannot read: ")
    assert refusal("minimap2", ref, contigs) == (
        f"{WHERE}: {ref}: not a minimap2 index (.mmi): it is a FASTA file (give the index that "
        "`minimap2 -x sr -d` writes)"
    )
    gz = tmp_path / "genome.mmi.gz"
    subprocess.run(f"gzip -c {ref.parent / 'genome.mmi'} > {gz}", shell=True, check=True)
    assert refusal("minimap2", gz, contigs) == (
        f"{WHERE}: {gz}: not a minimap2 index (.mmi): it is gzip-compressed (minimap2 reads only an "
        "uncompressed .mmi)"
    )
    other = tmp_path / "other.mmi"
    other.write_bytes(b"MMI\x01" + bytes(100))
    assert refusal("minimap2", other, contigs) == (
        f"{WHERE}: {other}: not a minimap2 index (.mmi): it does not start with minimap2's magic bytes "
        "'MMI\\2' (found b'MMI\\x01')"
    )
    raw = (ref.parent / "genome.mmi").read_bytes()
    cut = tmp_path / "cut.mmi"
    cut.write_bytes(raw[:24 + 1 + 4 + 4 + 5])  # the header, chr1, and 5 bytes of the second name
    assert refusal("minimap2", cut, contigs) == (
        f"{WHERE}: {cut}: truncated minimap2 index (.mmi): the file ends inside sequence 2 of 4"
    )
    cut.write_bytes(raw[:10])
    assert refusal("minimap2", cut, contigs) == (
        f"{WHERE}: {cut}: truncated minimap2 index (.mmi): the file ends inside the header"
    )
    garbled = tmp_path / "garbled.mmi"
    garbled.write_bytes(raw[:8] + (99).to_bytes(4, "little") + raw[12:])
    assert refusal("minimap2", garbled, contigs) == (
        f"{WHERE}: {garbled}: garbled minimap2 index (.mmi): header says k=99, w=11, b=14"
    )


def test_reference_name_too_long_for_minimap2_is_refused(tmp_path):
    name = "c" * 300
    fa = write_fasta(tmp_path / "long.fa", [(name, 100)])
    mmi = minimap2_index(fa, tmp_path / "long.mmi", "-x", "sr")
    assert minimap2_contigs(mmi) == [(name[:300 % 256], 100)]  # minimap2 keeps len % 256 bytes
    assert refusal("minimap2", mmi, [Contig(name, 100)]) == (
        f"{WHERE}: {mmi}: the reference's contig '{name[:40]}...' has a name over 255 bytes, which a "
        "minimap2 index cannot hold (it cuts such names)"
    )


@pytest.fixture
def bwa_copy(ref, tmp_path):
    """A copy of the reference's bwa index, to damage."""
    for suffix in (".amb", ".ann", ".bwt", ".pac", ".sa"):
        shutil.copy(f"{ref}{suffix}", tmp_path / f"genome.fa{suffix}")
    return tmp_path / "genome.fa"


def test_missing_bwa_file_is_refused(ref, bwa_copy):
    where = "config.yaml: index.bwa"
    os.remove(f"{bwa_copy}.sa")
    assert refusal("bwa", bwa_copy, read_contigs(ref), where) == (
        f"{where}: {bwa_copy}.sa: no such file (a bwa index is {bwa_copy}{{.amb,.ann,.bwt,.pac,.sa}}, "
        f"made by `bwa index {bwa_copy}`)"
    )
    given = f"{bwa_copy}.bwt"
    assert refusal("bwa", given, read_contigs(ref), where) == (
        f"{where}: {given}.amb: no such file (a bwa index is {given}{{.amb,.ann,.bwt,.pac,.sa}}, "
        f"made by `bwa index {given}`); give the prefix ({bwa_copy}), not one of its files"
    )


def test_garbled_ann_is_refused(ref, bwa_copy):
    ann = f"{bwa_copy}.ann"
    good = open(ann).read()
    lines = good.split("\n")
    cases = {
        "x 4 11\n" + "\n".join(lines[1:]): f"{ann} line 1: not a bwa index .ann file: the first line is not "
        "'total_length n_sequences seed'",
        "\n".join(lines[:-3]) + "\n": f"{ann}: not a bwa index .ann file: line 1 says 4 sequences, which take "
        "8 lines after it, but 6 follow",
        good.replace("\n3000 1500 0\n", "\n3001 1500 0\n"): f"{ann} line 5: not a bwa index .ann file: not "
        "'offset length n_ambiguous' with offset 3000",
        good.replace("5261 4 11", "5262 4 11"): f"{ann} line 1: not a bwa index .ann file: total length 5262 "
        "is not the sum of the sequences' lengths, 5261",
        good.replace("0 chr1 a comment", "x chr1 a comment"): f"{ann} line 2: not a bwa index .ann file: not "
        "'gi name [comment]'",
    }
    for text, message in cases.items():
        with open(ann, "w") as fh:
            fh.write(text)
        assert refusal("bwa", bwa_copy, read_contigs(ref), "c.yaml: index.bwa") == f"c.yaml: index.bwa: {message}"
    with open(ann, "wb") as fh:
        fh.write(b"\xff\xfe")
    assert refusal("bwa", bwa_copy, read_contigs(ref), "c.yaml: index.bwa") == (
        f"c.yaml: index.bwa: {ann}: not a bwa index .ann file: not text"
    )


def test_bwa_files_of_two_builds_are_refused(ref, bwa_copy, tmp_path):
    other = bwa_index(write_fasta(tmp_path / "other.fa", [*CONTIGS[:3], ("chrM", 62)]))
    rebuild = "rebuild it: `bwa index genome.fa`"
    for suffix, message in [
        (".amb", f"{bwa_copy}.amb does not match {bwa_copy}.ann (another genome's, or a damaged file)"),
        (".pac", f"{bwa_copy}.pac holds 1317 bytes, 1317 expected from {bwa_copy}.ann"),
        (".bwt", f"{bwa_copy}.bwt was not built from the genome in {bwa_copy}.ann (its sequence length differs)"),
        (".sa", f"{bwa_copy}.sa was not built from the genome in {bwa_copy}.ann (its sequence length differs)"),
    ]:
        saved = open(f"{bwa_copy}{suffix}", "rb").read()
        shutil.copy(f"{other}{suffix}", f"{bwa_copy}{suffix}")
        if suffix == ".pac":  # 5261 and 5262 bases pack into the same number of bytes: cut one
            with open(f"{bwa_copy}.pac", "r+b") as fh:
                fh.truncate(1316)
            message = message.replace("holds 1317", "holds 1316")
        assert refusal("bwa", bwa_copy, read_contigs(ref), "c.yaml: index.bwa") == (
            f"c.yaml: index.bwa: {message}; {rebuild}"
        )
        with open(f"{bwa_copy}{suffix}", "wb") as fh:
            fh.write(saved)
    assert check_index("bwa", bwa_copy, read_contigs(ref), "c.yaml: index.bwa") is None


def test_unknown_aligner_is_refused(ref):
    assert refusal("bowtie2", ref, read_contigs(ref)) == f"{WHERE}: aligner 'bowtie2' is not one of minimap2, bwa"
