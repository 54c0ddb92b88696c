"""Tests for aisci.config: the config and sample-sheet schemas and the input-file checks."""

import shutil

import pysam
import pytest

from aisci.pipelines.inputs import validate_inputs

from aisci.pipelines.sheet import read_sample_sheet

from aisci.schema import validate_config
from aisci.errors import InputError


@pytest.fixture
def files(tmp_path):
    """A reference and two FASTQ pairs, enough for the sheet checks (contents are checked later)."""
    ref = tmp_path / "ref.fa"
    ref.write_text(">chr1\n" + "ACGT" * 50 + "\n>chr2\n" + "GATTACA" * 20 + "\n")
    for name in ("a_1.fq", "a_2.fq", "b_1.fq", "b_2.fq"):
        (tmp_path / name).write_text("@r\nACGT\n+\nIIII\n")
    return tmp_path


def sheet(tmp_path, text, name="samples.tsv"):
    path = tmp_path / name
    path.write_text(text)
    return path


def config(files, sheet_path, **extra):
    return {"samples": str(sheet_path), "reference": str(files / "ref.fa"), **extra}


# --- config.yaml schema -------------------------------------------------------------------
def test_minimal_config_gets_defaults():
    cfg = validate_config({"samples": "s.tsv", "reference": "r.fa"})
    assert cfg["aligner"] == "minimap2"
    assert cfg["calling"] == {"chunk_size": 2000000, "min_mapq": 20, "min_baseq": 13, "max_depth": 500, "joint": "auto", "groups": 24, "scoring_groups": 8}
    assert cfg["filter"] == {"min_qual": 20, "min_depth": 3}
    assert cfg["evaluation"] == {"bed": None}


def test_repo_config_yaml_is_the_template_and_the_demo_completes_it():
    """config.yaml is the real-use template (what `aisci init` writes, unfilled): it names no sample
    sheet or reference, and says so; the demo's settings are layered over it."""
    import yaml

    from aisci.pipelines.project import render_config
    from tests.conftest import REPO

    text = (REPO / "config.yaml").read_text()
    assert text == render_config(), "regenerate: python -c 'from aisci.pipelines.project import render_config; print(render_config(), end=\"\")' > config.yaml"
    # the germline pipeline's default config in its own folder (what a catalog release carries) is the same file
    assert (REPO / "workflows" / "germline" / "config.yaml").read_text() == text, "cp config.yaml workflows/germline/"
    template = yaml.safe_load(text)
    with pytest.raises(InputError) as err:
        validate_config(template, "config.yaml")
    assert str(err.value).splitlines() == ["config.yaml: samples: required, not set", "config.yaml: reference: required, not set"]
    demo = yaml.safe_load((REPO / "workflows" / "germline" / "demo.yaml").read_text())
    cfg = validate_config({**template, **demo, "calling": {**template["calling"], **demo["calling"]}})
    assert cfg["genome"] == "custom" and cfg["protein"]["enabled"] and cfg["calling"]["joint"] is True
    # real-genome defaults: SpliceAI on the genome's packaged table, no protein model, joint only with >= 2 samples
    assert template["genome"] == "grch38" and template["splice"] == {"enabled": True, "annotation": None, "distance": 50, "mask": False,
                                                                 "weights": None}
    assert template["protein"]["enabled"] is False and template["calling"]["joint"] == "auto"


def test_layered_configs_name_the_file_that_set_each_key(tmp_path, monkeypatch):
    from aisci.layers import Sources

    monkeypatch.chdir(tmp_path)
    (tmp_path / "config.yaml").write_text("samples: s.tsv\nreference: r.fa\ncalling: {joint: auto, chunk_size: 100000}\n")
    (tmp_path / "mine.yaml").write_text("calling: {joint: maybe}\nsplice: {annotaton: x}\n")
    sources = Sources.from_files([tmp_path / "config.yaml", tmp_path / "mine.yaml"], {"aligner": "bowtie"})
    merged = {"samples": "s.tsv", "reference": "r.fa", "calling": {"joint": "maybe", "chunk_size": 100000},
              "splice": {"annotaton": "x"}, "aligner": "bowtie"}
    with pytest.raises(InputError) as err:
        validate_config(merged, sources)
    lines = str(err.value).splitlines()
    # every problem at once, each naming the file (or --config) that set the key, no doubled prefix
    assert lines == [
        "--config: aligner: 'bowtie' is not one of minimap2, bwa",
        "mine.yaml: calling.joint: 'maybe' is not one of true, false, auto",
        "mine.yaml: unknown key 'splice.annotaton' (allowed: annotation, distance, enabled, mask, weights)",
    ]
    assert sources.of("calling.chunk_size") == "config.yaml" and sources.of("evaluation.bed") == "config.yaml, mine.yaml, --config"


def test_nested_string_overrides_are_coerced():
    cfg = validate_config({"samples": "s", "reference": "r", "calling": {"chunk_size": "200000", "joint": "true"}})
    assert cfg["calling"]["chunk_size"] == 200000 and cfg["calling"]["joint"] is True


@pytest.mark.parametrize(
    "cfg, message",
    [
        ({"samples": "s", "reference": "r", "refrence": "x"}, "config.yaml: unknown key 'refrence'"),
        ({"samples": "s", "reference": "r", "calling": {"chunk_sise": 1}}, "unknown key 'calling.chunk_sise'"),
        ({"reference": "r"}, "samples: required, not set"),
        ({"samples": "s", "reference": "r", "aligner": "bowtie"}, "aligner: 'bowtie' is not one of minimap2, bwa"),
        ({"samples": "s", "reference": "r", "calling": {"min_mapq": -1}}, "calling.min_mapq: -1 is less than the minimum"),
        ({"samples": "s", "reference": "r", "calling": {"chunk_size": "lots"}}, "calling.chunk_size: 'lots' is not of type 'integer'"),
        ({"samples": "", "reference": "r"}, "samples: '' should be non-empty"),
    ],
)
def test_config_errors_name_the_key(cfg, message):
    with pytest.raises(InputError) as err:
        validate_config(cfg, "config.yaml")
    assert message in str(err.value)


# --- sample sheet -----------------------------------------------------------------------
def test_good_sheet_resolves_paths_relative_to_sheet(files):
    sub = files / "sheets"
    sub.mkdir()
    path = sheet(sub, "# comment\nsample\tfq1\tfq2\nA\t../a_1.fq\t../a_2.fq\n\nB.2-x_y\t../b_1.fq\t../b_2.fq\n")
    samples = read_sample_sheet(path)
    assert [s.name for s in samples] == ["A", "B.2-x_y"]
    assert samples[0].fq1 == files / "a_1.fq" and samples[1].line == 5


@pytest.mark.parametrize(
    "text, message",
    [
        ("sample\tfq1\tfq2\nA\ta_1.fq\ta_2.fq\nA\tb_1.fq\tb_2.fq\n", "samples.tsv line 3: duplicate sample 'A' (first on line 2)"),
        ("sample\tfq1\tfq2\na b\ta_1.fq\ta_2.fq\n", "samples.tsv line 2: sample 'a b' must match ^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$"),
        ("sample\tfq1\tfq2\nx;rm -rf\ta_1.fq\ta_2.fq\n", "line 2: sample 'x;rm -rf' must match"),
        ("sample\tfq1\tfq2\ncohort\ta_1.fq\ta_2.fq\n", "line 2: sample name 'cohort' is reserved"),
        ("sample\tfq1\tfq2\tbam\nA\ta_1.fq\ta_2.fq\ta_1.fq\n", "line 2: give either fq1 and fq2, or bam (given: fq1, fq2, bam)"),
        ("sample\tfq1\tfq2\tbam\nA\t\t\t\n", "line 2: give either fq1 and fq2, or bam (given: none)"),
        ("sample\tfq1\nA\ta_1.fq\n", "line 2: give either fq1 and fq2, or bam (given: fq1)"),
        ("sample\tfq1\tfq2\tfq3\nA\ta_1.fq\ta_2.fq\tx\n", "samples.tsv line 1: unknown column 'fq3' (allowed: sample, lane, fq1, fq2, bam, truth)"),
        ("name\tfq1\tfq2\nA\ta_1.fq\ta_2.fq\n", "line 1: unknown column 'name'"),
        ("fq1\tfq2\na_1.fq\ta_2.fq\n", "line 1: the header has no 'sample' column"),
        ("sample\tfq1\tfq2\nA\ta_1.fq\tmissing.fq\n", "samples.tsv line 2: fq2: file not found:"),
        ("sample\tfq1\tfq2\nA\ta_1.fq\ta_1.fq\n", "line 2: fq1 and fq2 name the same file"),
        ("sample\tfq1\tfq2\nA\ta_1.fq\ta_2.fq\textra\n", "line 2: 4 fields but the header has 3"),
        ("sample\tfq1\tfq2\n", "no samples"),
        ("", "empty sample sheet"),
    ],
)
def test_sheet_errors_name_line_and_field(files, text, message):
    with pytest.raises(InputError) as err:
        read_sample_sheet(sheet(files, text))
    assert message in str(err.value)


def test_unreadable_file(files):
    import os

    if os.geteuid() == 0:  # root reads anything; use a directory instead of a file
        (files / "dir.fq").mkdir()
        msg = "not a regular file"
        target = "dir.fq"
    else:  # pragma: no cover
        (files / "a_1.fq").chmod(0)
        msg = "not readable"
        target = "a_1.fq"
    with pytest.raises(InputError, match=f"line 2: fq1: {msg}"):
        read_sample_sheet(sheet(files, f"sample\tfq1\tfq2\nA\t{target}\ta_2.fq\n"))


# --- whole-input validation -----------------------------------------------------------------
def test_config_is_validated_before_the_sheet(files):
    cfg = config(files, files / "missing.tsv", typo=1)
    with pytest.raises(InputError, match="unknown key 'typo'"):
        validate_inputs(cfg, "config.yaml")


def test_missing_sheet_and_reference(files):
    with pytest.raises(InputError, match="^config.yaml: samples: file not found: .*missing.tsv$"):
        validate_inputs(config(files, files / "missing.tsv"), "config.yaml")
    path = sheet(files, "sample\tfq1\tfq2\nA\ta_1.fq\ta_2.fq\n")
    with pytest.raises(InputError, match="config: reference: file not found: .*nope.fa"):
        validate_inputs({"samples": str(path), "reference": str(files / "nope.fa")})


def test_every_problem_is_reported_at_once(files):
    """A run that stops should list all it found: the sheet, the reference and the annotation together."""
    cfg = {"samples": str(files / "missing.tsv"), "reference": str(files / "nope.fa"),
           "genome": "custom", "evaluation": {"bed": str(files / "no.bed")}}
    with pytest.raises(InputError) as err:
        validate_inputs(cfg, "my.yaml")
    assert [line.split(":")[:2] for line in str(err.value).splitlines()] == [
        ["my.yaml", " reference"], ["my.yaml", " samples"], ["my.yaml", " evaluation.bed"], ["my.yaml", " splice.annotation"]]
    assert "required with genome: custom" in str(err.value)


def test_reference_without_sequences(files):
    (files / "empty.fa").write_text("")
    path = sheet(files, "sample\tfq1\tfq2\nA\ta_1.fq\ta_2.fq\n")
    with pytest.raises(InputError, match="empty.fa: contains no sequences"):
        validate_inputs({"samples": str(path), "reference": str(files / "empty.fa")})


def test_missing_evaluation_bed(files):
    path = sheet(files, "sample\tfq1\tfq2\nA\ta_1.fq\ta_2.fq\n")
    with pytest.raises(InputError, match="evaluation.bed: file not found"):
        validate_inputs(config(files, path, evaluation={"bed": str(files / "x.bed")}), "config.yaml")


def test_real_bam_matches_its_reference(na12878, tmp_path):
    path = sheet(tmp_path, f"sample\tbam\nNA12878\t{na12878 / 'NA12878_S1.chr20.10_10p1mb.bam'}\n")
    inputs = validate_inputs({"samples": str(path), "reference": str(na12878 / "ucsc.hg19.chr20.unittest.fasta.gz")})
    assert inputs.samples[0].from_bam and [c.name for c in inputs.contigs] == ["chr20"]


def test_bam_with_reads_on_contigs_not_in_reference(na12878, files):
    """The real BAM has reads on chr20 only; a reference without chr20 must be refused."""
    path = sheet(files, f"sample\tbam\nNA12878\t{na12878 / 'NA12878_S1.chr20.10_10p1mb.bam'}\n")
    with pytest.raises(InputError, match=r"samples.tsv line 2: bam: .* has reads on contigs not in the reference: chr20"):
        validate_inputs(config(files, path))


def _bam(path, contigs, with_index):
    header = {"HD": {"VN": "1.6", "SO": "coordinate"}, "SQ": [{"SN": n, "LN": ln} for n, ln in contigs]}
    with pysam.AlignmentFile(str(path), "wb", header=header) as out:
        seg = pysam.AlignedSegment(out.header)
        seg.query_name, seg.reference_id, seg.reference_start = "r1", 0, 10
        seg.query_sequence, seg.cigarstring, seg.query_qualities = "ACGT", "4M", pysam.qualitystring_to_array("IIII")
        out.write(seg)
    if with_index:
        pysam.index(str(path))
    return path


def test_unindexed_bam_from_another_assembly(files):
    bam = _bam(files / "other.bam", [("1", 1000), ("2", 500)], with_index=False)
    path = sheet(files, f"sample\tbam\nX\t{bam}\n")
    with pytest.raises(InputError, match="has contigs not in the reference: 1, 2"):
        validate_inputs(config(files, path))


def test_bam_contig_length_mismatch(files):
    bam = _bam(files / "len.bam", [("chr1", 999)], with_index=True)
    path = sheet(files, f"sample\tbam\nX\t{bam}\n")
    with pytest.raises(InputError, match="contig chr1 has length 999 in .*len.bam but 200 in the reference"):
        validate_inputs(config(files, path))


def test_cram_input_checked_by_header(na12878, files):
    cram = files / "na12878.cram"
    ref = na12878 / "ucsc.hg19.chr20.unittest.fasta.gz"
    pysam.view("-C", "-T", str(ref), "-o", str(cram), str(na12878 / "NA12878_S1.chr20.10_10p1mb.bam"),
               "chr20:10000000-10001000", catch_stdout=False)
    path = sheet(files, f"sample\tbam\nNA12878\t{cram}\n")
    inputs = validate_inputs({"samples": str(path), "reference": str(ref)})
    assert inputs.samples[0].bam == cram
    # the header lists hg19's chr1..chrY too; without read counts only a total mismatch is an error
    with pytest.raises(InputError, match="contig chr1 has length 249250621 in .*na12878.cram but 200"):
        validate_inputs(config(files, path))


def test_not_a_bam(files):
    shutil.copy(files / "a_1.fq", files / "fake.bam")
    path = sheet(files, "sample\tbam\nX\tfake.bam\n")
    with pytest.raises(InputError, match="line 2: bam: cannot read .*fake.bam as BAM/CRAM"):
        validate_inputs(config(files, path))


def test_protein_pipeline_schema():
    """workflows/protein's schema: defaults filled, typos and disallowed strategies named."""
    cfg = validate_config({"proteins": "p.fa"}, "protein.yaml", schema="protein")
    assert cfg["model"] == "esm2_t33_650M" and cfg["model_store"] is None and cfg["embeddings"] is True
    assert cfg["mutagenesis"] == {"enabled": True, "strategy": "wt-marginals"}
    with pytest.raises(InputError, match="protein.yaml: mutagenesis.strategy: 'pseudo-ppl' is not one of "
                                         "wt-marginals, masked-marginals"):
        validate_config({"proteins": "p.fa", "mutagenesis": {"strategy": "pseudo-ppl"}}, "protein.yaml", schema="protein")
    with pytest.raises(InputError, match="protein.yaml: unknown key 'mutagensis'"):
        validate_config({"proteins": "p.fa", "mutagensis": {}}, "protein.yaml", schema="protein")
    with pytest.raises(InputError, match="protein.yaml: proteins: required, not set"):
        validate_config({}, "protein.yaml", schema="protein")


def test_germline_protein_section_defaults_off():
    cfg = validate_config({"samples": "s.tsv", "reference": "r.fa"})
    assert cfg["protein"] == {"enabled": False, "annotation": None, "model": "esm2_t33_650M", "model_store": None,
                              "strategy": "masked-marginals"}
    with pytest.raises(InputError, match=r"protein.model: 'a b' must match"):
        validate_config({"samples": "s.tsv", "reference": "r.fa", "protein": {"model": "a b"}})


def test_sheet_with_a_byte_order_mark_reads_like_without(files):
    """Excel's 'UTF-8 CSV' starts with a BOM; it used to make the header 'unknown column \\ufeffsample'."""
    path = files / "bom.tsv"
    path.write_bytes(b"\xef\xbb\xbfsample\tfq1\tfq2\nA\ta_1.fq\ta_2.fq\n")
    assert [s.name for s in read_sample_sheet(path)] == ["A"]


def test_sheet_that_is_not_utf8_names_the_line(files):
    path = files / "latin1.tsv"
    path.write_bytes(b"sample\tfq1\tfq2\nA\ta_1.fq\ta_2.fq\nB\tb_1\xe9.fq\tb_2.fq\n")
    with pytest.raises(InputError, match=r"^latin1.tsv line 3: not UTF-8 text \(byte 36: invalid continuation byte\)$"):
        read_sample_sheet(path)


# --- lanes: several FASTQ pairs of one sample -----------------------------------------------
def test_lane_rows_make_one_sample(files):
    path = sheet(files, "sample\tlane\tfq1\tfq2\nA\tL001\ta_1.fq\ta_2.fq\nA\tL002\tb_1.fq\tb_2.fq\n")
    (a,) = read_sample_sheet(path)
    assert a.name == "A" and a.multi_lane and [lane.name for lane in a.lanes] == ["L001", "L002"]
    assert [lane.fq1.name for lane in a.lanes] == ["a_1.fq", "b_1.fq"] and [lane.line for lane in a.lanes] == [2, 3]


@pytest.mark.parametrize("text, message", [
    ("sample\tfq1\tfq2\nA\ta_1.fq\ta_2.fq\nA\tb_1.fq\tb_2.fq\n",
     r"samples.tsv line 3: duplicate sample 'A' \(first on line 2\); several FASTQ pairs of one sample need a `lane` column"),
    ("sample\tlane\tfq1\tfq2\nA\tL1\ta_1.fq\ta_2.fq\nA\tL1\tb_1.fq\tb_2.fq\n",
     r"samples.tsv line 3: lane 'L1' of sample 'A' is already on line 2"),
    ("sample\tlane\tfq1\tfq2\nA\tL1\ta_1.fq\ta_2.fq\nB\tL1\ta_1.fq\tb_2.fq\n",
     r"samples.tsv line 3: fq1 a_1.fq is already on line 2 \(a read file belongs to one sample and one lane\)"),
    ("sample\tlane\tfq1\tfq2\tbam\nA\tL1\ta_1.fq\ta_2.fq\t\nA\tL2\t\t\tb_1.fq\n",
     r"samples.tsv line 3: sample 'A' has several rows \(from line 2\): each must be a FASTQ pair of one lane"),
    ("sample\tlane\tfq1\tfq2\nA\tL 1\ta_1.fq\ta_2.fq\n", r"samples.tsv line 2: lane 'L 1' must match"),
])
def test_bad_lane_rows(files, text, message):
    with pytest.raises(InputError, match=message):
        read_sample_sheet(sheet(files, text))
