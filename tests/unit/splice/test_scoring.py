"""`aisci splice score` against the official spliceai 1.3.1 CLI's own output (fixtures: data/splice/make_fixtures.py)."""

from __future__ import annotations

import gzip
import json
import subprocess
import sys

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pysam
import pytest

from aisci.splice.scoring import INFO_HEADER, delta_scores, info_text
from tests.conftest import REPO

DATA = REPO / "tests" / "unit" / "data" / "splice"
FASTA = "ucsc.hg19.chr20.unittest.fasta.gz"
FIELDS = ("ALLELE", "SYMBOL", "DS_AG", "DS_AL", "DS_DG", "DS_DL", "DP_AG", "DP_AL", "DP_DG", "DP_DL")


def score(tmp_path, vcf, ref, *options, name="out"):
    out = tmp_path / f"{name}.vcf.gz"
    cmd = [sys.executable, "-m", "aisci.cli", "splice", "score", "--vcf", str(vcf), "--ref", str(ref),
           "--out", str(out), "--parquet", str(tmp_path / f"{name}.parquet"), *options]
    return subprocess.run(cmd, capture_output=True, text=True), out


def text(path):
    opener = gzip.open if str(path).endswith(".gz") else open
    with opener(path, "rt") as fh:
        return fh.read()


def entries(vcf_text):
    """{(pos, allele, gene): fields} of every SpliceAI INFO entry."""
    out = {}
    for line in vcf_text.splitlines():
        if line.startswith("#"):
            continue
        f = line.split("\t")
        info = dict(kv.split("=", 1) for kv in f[7].split(";") if "=" in kv)
        for entry in info.get("SpliceAI", "").split(",") if "SpliceAI" in info else []:
            parts = entry.split("|")
            out[int(f[1]), parts[0], parts[1]] = parts
    return out


@pytest.fixture(scope="module")
def grch37_run(na12878, tmp_path_factory):
    tmp = tmp_path_factory.mktemp("grch37")
    res, out = score(tmp, DATA / "variants.vcf", na12878 / FASTA, "--annotation", "grch37", "--skip-mismatch")
    assert res.returncode == 0, res.stderr
    return res, out, tmp


def test_output_is_byte_for_byte_the_official_vcf(grch37_run):
    """330 records (the NIST truth of the slice + designed cases): header, records, INFO text identical."""
    res, out, _ = grch37_run
    official = text(DATA / "official.grch37.D50.vcf")
    assert INFO_HEADER in official.splitlines()
    assert text(out) == official
    assert len(entries(official)) > 100
    # skipped records are counted in the log with the official tool's reasons
    assert "330 records" in res.stderr and "1 ref mismatch" in res.stderr and "1 ref too long" in res.stderr
    assert "199 not in a gene" in res.stderr and "2 unscorable allele" in res.stderr
    assert pysam.TabixFile(str(out)).contigs == ["chr20"]


def test_both_strands_indels_and_strong_effects_are_covered(grch37_run):
    """The fixture is not all zeros: strong gains/losses on + and - strand genes, SNVs and indels alike."""
    e = entries(text(DATA / "official.grch37.D50.vcf"))
    strong = {k: v for k, v in e.items() if v[2] != "." and max(map(float, v[2:6])) >= 0.5}
    genes = {g for (_, _, g) in strong}
    assert {"ANKEF1", "SNAP25"} & genes and {"MKKS", "JAG1"} & genes  # + and - strand
    assert any(len(a) > 1 for (_, a, _) in strong)  # an insertion with a strong effect
    assert any(v[2] == "." for v in e.values())  # MNVs are listed with '.' scores, as the official tool does


def test_parquet_equals_the_info_field_parsed_back(grch37_run):
    _, out, tmp = grch37_run
    table = pq.read_table(tmp / "out.parquet")
    assert table.column_names == ["chrom", "pos", "id", "ref", "alt", "gene", "strand", "ds_ag", "ds_al", "ds_dg",
                                  "ds_dl", "dp_ag", "dp_al", "dp_dg", "dp_dl"]
    assert str(table.schema.field("ds_ag").type) == "float" and str(table.schema.field("dp_ag").type) == "int32"
    rows = table.to_pylist()
    parsed = []
    with pysam.VariantFile(str(out)) as vcf:
        assert vcf.header.info["SpliceAI"].number == "." and vcf.header.info["SpliceAI"].type == "String"
        for rec in vcf:
            for entry in rec.info.get("SpliceAI", ()):
                parts = entry.split("|")
                assert len(parts) == len(FIELDS)
                parsed.append((rec.pos, parts))
    assert len(rows) == len(parsed)
    for row, (pos, parts) in zip(rows, parsed):
        assert (row["pos"], row["alt"], row["gene"]) == (pos, parts[0], parts[1])
        if parts[2] == ".":
            assert row["ds_ag"] is None and row["dp_dl"] is None
        else:
            assert [round(row[k], 2) for k in ("ds_ag", "ds_al", "ds_dg", "ds_dl")] == [float(x) for x in parts[2:6]]
            assert [row[k] for k in ("dp_ag", "dp_al", "dp_dg", "dp_dl")] == [int(x) for x in parts[6:]]
    assert {r["strand"] for r in rows} == {"+", "-"}


def test_custom_annotation_with_mask_equals_official(na12878, tmp_path):
    """The official ran on custom.txt (four real genes + a made-up antisense gene overlapping ANKEF1), -M 1.

    We read the same genes from the GFF3 (test_splice_annotation checks the table, GFF3 and GTF
    forms load to equal genes).
    """
    res, out = score(tmp_path, DATA / "designed.vcf", na12878 / FASTA, "--annotation", str(DATA / "custom.gff3"),
                     "--mask", "--skip-mismatch")
    assert res.returncode == 0, res.stderr
    official = text(DATA / "official.custom.D50.M1.vcf")
    assert text(out) == official
    both = [k for k in entries(official) if k[2] == "ANKEF1-AS"]
    assert both  # variants in two genes get one entry per gene


def test_distance_500_equals_official(na12878, tmp_path):
    res, out = score(tmp_path, DATA / "distance.vcf", na12878 / FASTA, "--annotation", "grch37", "--distance", "500",
                     "--skip-mismatch")
    assert res.returncode == 0, res.stderr
    assert text(out) == text(DATA / "official.grch37.D500.vcf")


def test_rescoring_a_scored_vcf_replaces_the_field(na12878, tmp_path):
    """Batch reanalysis: scoring our own output again keeps one SpliceAI header line and the same values."""
    res, first = score(tmp_path, DATA / "distance.vcf", na12878 / FASTA, "--annotation", "grch37", "--skip-mismatch",
                       name="first")
    assert res.returncode == 0, res.stderr
    res, again = score(tmp_path, first, na12878 / FASTA, "--annotation", "grch37", "--skip-mismatch", name="again")
    assert res.returncode == 0, res.stderr
    assert "already has a SpliceAI INFO field" in res.stderr
    assert text(again) == text(first) and text(first).count("##INFO=<ID=SpliceAI") == 1
    assert len(entries(text(first))) == 9  # ten SNVs, one with a REF that disagrees


def test_ref_mismatch_is_an_error_naming_the_variant(na12878, tmp_path):
    res, out = score(tmp_path, DATA / "designed.vcf", na12878 / FASTA, "--annotation", "grch37")
    assert res.returncode == 1
    assert "designed.vcf: chr20:" in res.stderr and "REF disagrees with the reference" in res.stderr
    assert "--skip-mismatch" in res.stderr
    assert not out.exists() and not list(tmp_path.glob("*.parquet")) and not list(tmp_path.glob(".*tmp*"))


def test_lower_case_alleles_score_as_upper_case(na12878, tmp_path):
    """VCF bases are case-insensitive (spec 1.6.1): a lower-case REF is no mismatch, as in `aisci annotate`.

    The official tool skips such a record as a REF mismatch; we score it, and the values equal the
    official ones for the upper-case spelling (SNVs, an insertion, deletions, two ALTs, both strands).
    Records are written as read, so the INFO ALLELE keeps the input's case, as the official prints it.
    """
    picked = {10016224, 10016226, 10016293, 10026343, 10388261, 10388263, 10388372}
    official = text(DATA / "official.grch37.D50.vcf").splitlines()
    header = [ln for ln in text(DATA / "variants.vcf").splitlines() if ln.startswith("#")]
    records = [ln.split("\t") for ln in official if not ln.startswith("#") and int(ln.split("\t")[1]) in picked]
    lower = [[*f[:3], f[3].lower(), f[4].lower(), *f[5:7], "."] for f in records]
    vcf = tmp_path / "lower.vcf"
    vcf.write_text("\n".join(header + ["\t".join(f) for f in lower]) + "\n")
    res, out = score(tmp_path, vcf, na12878 / FASTA, "--annotation", "grch37")  # no --skip-mismatch: none may fail
    assert res.returncode == 0, res.stderr
    got = entries(text(out))
    want = {(pos, allele.lower(), gene): [parts[0].lower(), *parts[1:]]
            for (pos, allele, gene), parts in entries("\n".join(official)).items() if pos in picked}
    assert len(want) == 10 and got == want
    assert [ln.split("\t")[3] for ln in text(out).splitlines() if not ln.startswith("#")] == [f[3] for f in lower]


def test_bad_arguments_fail_before_loading_anything(na12878, tmp_path):
    vcf = DATA / "distance.vcf"
    res, _ = score(tmp_path, vcf, na12878 / FASTA, "--annotation", "grch37", "--distance", "5000")
    assert res.returncode == 1 and "--distance must be in [0, 5000)" in res.stderr
    res = subprocess.run([sys.executable, "-m", "aisci.cli", "splice", "score", "--vcf", str(vcf), "--ref",
                          str(na12878 / FASTA), "--annotation", "grch37", "--out", str(tmp_path / "x.vcf")],
                         capture_output=True, text=True)
    assert res.returncode == 1 and "must end in .vcf.gz" in res.stderr
    res, _ = score(tmp_path, vcf, na12878 / FASTA, "--annotation", str(tmp_path / "nope.gff3"))
    assert res.returncode == 1 and "nope.gff3" in res.stderr
    res, _ = score(tmp_path, vcf, DATA / "windows.fa", "--annotation", "grch37")
    assert res.returncode == 1 and "distance.vcf: chr20:" in res.stderr and "is not in the reference" in res.stderr
    other = tmp_path / "chrX.vcf"
    other.write_text(text(vcf).replace("chr20\t", "chrX\t").replace("ID=chr20", "ID=chrX"))
    res, _ = score(tmp_path, other, na12878 / FASTA, "--annotation", str(DATA / "custom.gff3"))
    assert res.returncode == 0, res.stderr  # no genes on chrX here: every record passes through unscored
    assert "10 records" in res.stderr and "10 not in a gene" in res.stderr


# --- the delta-score arithmetic on hand-made outputs -----------------------------------------


def _flat(n, value=0.1):
    y = np.full((n, 3), value, dtype=np.float32)
    y[:, 0] = 1 - 2 * value
    return y


def test_deletion_pads_zeros_and_insertion_max_pools():
    d = 5  # cov 11, variant at index 5
    ref = _flat(11)
    # deletion of 3 bases (REF 4, ALT 1): the alternative has 8 outputs; 3 zero rows go after the anchor
    alt = _flat(8)
    alt[7, 1] = 0.9  # last output = reference index 10 after padding
    ds, dp = delta_scores(ref, alt, 4, 1, d, False, 99)
    assert dp[0] == 5 and abs(ds[0] - 0.8) < 1e-6  # acceptor gain at +5
    assert abs(ds[1] - 0.1) < 1e-6 and dp[1] == 1  # loss where zeros were padded: first padded row, +1
    # insertion of 2 bases (REF 1, ALT 3): 13 outputs, rows 5..7 max-pooled into one
    alt = _flat(13)
    alt[6, 2] = 0.7
    ds, dp = delta_scores(ref, alt, 1, 3, d, False, 99)
    assert dp[2] == 0 and abs(ds[2] - 0.6) < 1e-6


def test_mask_zeroes_annotated_gains_and_unannotated_losses():
    ref, alt = _flat(11), _flat(11)
    alt[7, 1] = 0.5  # acceptor gain at +2
    alt[3, 2] = 0.0  # donor loss at -2
    unmasked, dp = delta_scores(ref, alt, 1, 1, 5, False, 2)
    assert dp[0] == 2 and dp[3] == -2 and float(unmasked[0]) > 0.3 and float(unmasked[3]) > 0.05
    masked, _ = delta_scores(ref, alt, 1, 1, 5, True, 2)  # the boundary is at +2
    assert float(masked[0]) == 0.0  # gain of an annotated site: masked
    assert float(masked[3]) == 0.0  # loss at -2, not the annotated +2: masked
    masked, _ = delta_scores(ref, alt, 1, 1, 5, True, -2)
    assert float(masked[0]) > 0.3 and float(masked[3]) > 0.05


def test_info_text_format():
    assert info_text("A", "G1", (np.float32(0.125), 0.0, -0.0001, 1), (1, -2, 0, 50)) == "A|G1|0.12|0.00|-0.00|1.00|1|-2|0|50"


def test_summary_lists_the_strongest_effects_first(grch37_run, tmp_path):
    _, _, tmp = grch37_run
    res = subprocess.run([sys.executable, "-m", "aisci.cli", "splice", "summary", str(tmp / "out.parquet"),
                          "--min-ds", "0.5", "--top", "3"], capture_output=True, text=True)
    assert res.returncode == 0, res.stderr
    lines = res.stdout.splitlines()
    rows = [r for r in pq.read_table(tmp / "out.parquet").to_pylist() if r["ds_ag"] is not None]
    strong = sorted(max(r["ds_ag"], r["ds_al"], r["ds_dg"], r["ds_dl"]) for r in rows)
    assert lines[0] == f"{sum(s >= 0.5 for s in strong)} of {len(rows)} scored allele x gene entries have a delta score >= 0.5"
    assert len(lines) == 4 and all(ln.startswith("  out ") for ln in lines[1:])
    assert f"{strong[-1]:.2f}" in lines[1]
    bad = tmp_path / "x.parquet"
    bad.write_text("no")
    res = subprocess.run([sys.executable, "-m", "aisci.cli", "splice", "summary", str(bad)], capture_output=True, text=True)
    assert res.returncode == 1 and "x.parquet: not a Parquet table" in res.stderr


# --- scattered over groups of regions, gathered ----------------------------------------------


def test_scattered_over_three_groups_gathers_to_the_unscattered_output(na12878, tmp_path):
    """Designed records of ANKEF1 + one outside any gene, tabix-indexed; one boundary inside the deletion d8
    (10016288-10016292: scored by the group of its POS only), one at d30 (POS == BEG), a contig the VCF lacks.
    The gathered VCF's text is the unscattered one's (itself the official tool's) and the Parquet file the same."""
    from aisci.cli import main
    from aisci.gather import gather_parquet, gather_vcfs

    lines = text(DATA / "designed.vcf").splitlines(keepends=True)
    picked = {f"d{i}" for i in range(14)} | {"d30"}
    keep = [ln for ln in lines if ln.startswith("#") or ln.split("\t")[2] in picked]
    (tmp_path / "in.vcf").write_text("".join(keep))
    vcf = pysam.tabix_index(str(tmp_path / "in.vcf"), preset="vcf", force=True)
    groups = [["chr20\t1\t10016290"], ["chr20\t10016291\t10169999"],
              ["chr20\t10170000\t63025520", "HLA-A*01:01:01:01\t1\t3000"]]
    common = ["--vcf", vcf, "--ref", str(na12878 / FASTA), "--annotation", str(DATA / "custom.gff3"), "--mask",
              "--skip-mismatch"]
    assert main(["splice", "score", *common, "--out", str(tmp_path / "whole.vcf.gz"),
                 "--parquet", str(tmp_path / "whole.parquet")]) == 0
    official = text(DATA / "official.custom.D50.M1.vcf").splitlines(keepends=True)
    assert text(tmp_path / "whole.vcf.gz") == "".join(
        ln for ln in official if ln.startswith("#") or ln.split("\t")[2] in picked)
    for n, group in enumerate(groups):
        (tmp_path / f"{n}.tsv").write_text("".join(f"{line}\t{n:04d}\n" for line in group))
        assert main(["splice", "score", *common, "--regions-file", str(tmp_path / f"{n}.tsv"),
                     "--out", str(tmp_path / f"{n}.vcf.gz"), "--parquet", str(tmp_path / f"{n}.parquet")]) == 0
    ids = [[ln.split("\t")[2] for ln in text(tmp_path / f"{n}.vcf.gz").splitlines() if not ln.startswith("#")]
           for n in range(3)]
    assert ids == [[f"d{i}" for i in range(9)], [f"d{i}" for i in range(9, 14)], ["d30"]]
    gather_vcfs([tmp_path / f"{n}.vcf.gz" for n in range(3)], tmp_path / "gathered.vcf.gz")
    gather_parquet([tmp_path / f"{n}.parquet" for n in range(3)], tmp_path / "gathered.parquet")
    assert gzip.open(tmp_path / "gathered.vcf.gz").read() == gzip.open(tmp_path / "whole.vcf.gz").read()
    with pysam.VariantFile(str(tmp_path / "gathered.vcf.gz")) as out:  # the .tbi works
        assert [r.id for r in out.fetch("chr20", 10016290, 10016291)] == ["d8", "d9"]
    whole, gathered = pq.read_table(tmp_path / "whole.parquet"), pq.read_table(tmp_path / "gathered.parquet")
    assert whole.num_rows == 14 and gathered.equals(whole, check_metadata=True)
    assert (tmp_path / "gathered.parquet").read_bytes() == (tmp_path / "whole.parquet").read_bytes()


# --- score once: `aisci splice cache` and `aisci splice score --cache` (shares grch37_run) ---------------


def alleles(vcf):
    """The distinct chrom:pos:ref:alt of a VCF's ALT alleles."""
    with pysam.VariantFile(str(vcf)) as fh:
        return {f"{r.chrom}:{r.pos}:{r.ref}:{a}" for r in fh for a in (r.alts or ())}


def split(src, dest, keep):
    """A copy of ``src`` with the header and the records whose index ``keep`` accepts."""
    lines = text(src).splitlines(keepends=True)
    body = [ln for ln in lines if not ln.startswith("#")]
    dest.write_text("".join(ln for ln in lines if ln.startswith("#"))
                    + "".join(ln for i, ln in enumerate(body) if keep(i)))
    return dest


@pytest.fixture(scope="module")
def filled(na12878, tmp_path_factory):
    """A cache filled from two overlapping thirds-and-halves of the official fixture's 330 records."""
    from aisci.cli import main

    tmp = tmp_path_factory.mktemp("cache")
    first = split(DATA / "variants.vcf", tmp / "first.vcf", lambda i: i < 200)
    second = split(DATA / "variants.vcf", tmp / "second.vcf", lambda i: i >= 100)
    cache = tmp / "scores"
    summary = tmp / "fill.json"
    code = main(["splice", "cache", "--cache", str(cache), "--ref", str(na12878 / FASTA), "--annotation", "grch37",
                 "--summary", str(summary), str(first), str(second)])
    assert code == 0
    return tmp, cache, json.loads(summary.read_text()), first, second


def test_fill_scores_each_distinct_allele_once(filled):
    tmp, cache, summary, first, second = filled
    distinct = alleles(first) | alleles(second)
    assert summary["scored"] == len(distinct) == len(alleles(DATA / "variants.vcf"))
    assert summary["alleles"] == len(alleles(first)) + len(alleles(second)) > summary["scored"]  # overlap read twice
    assert summary["vcfs"] == 2 and summary["model"] == "spliceai-1.3.1" and len(summary["version"]) == 12
    parts = sorted((cache / "splice" / f"spliceai-1.3.1@{summary['version']}").glob("chrom=*/part-*.parquet"))
    rows = pa.concat_tables(pq.read_table(p) for p in parts)
    assert set(rows.column("variant_id").to_pylist()) == distinct
    statuses = set(rows.column("status").to_pylist())
    assert {"scored", "not in a gene", "ref mismatch", "ref too long", "unscorable allele"} <= statuses


def test_scores_from_the_cache_are_byte_for_byte_the_official(filled, grch37_run, na12878):
    """Every allele already cached: nothing is scored, the VCF is the official tool's, the Parquet the uncached one's."""
    tmp, cache, summary, _, _ = filled
    res, out = score(tmp, DATA / "variants.vcf", na12878 / FASTA, "--annotation", "grch37", "--skip-mismatch",
                     "--cache", str(cache), name="cached")
    assert res.returncode == 0, res.stderr
    assert text(out) == text(DATA / "official.grch37.D50.vcf")
    assert "0 not in the cache before" in res.stderr and "330 records" in res.stderr
    assert "1 ref mismatch" in res.stderr and "199 not in a gene" in res.stderr
    assert (tmp / "cached.parquet").read_bytes() == (grch37_run[2] / "out.parquet").read_bytes()


def test_a_new_allele_is_scored_and_added(filled, na12878, tmp_path):
    """A VCF with one allele the cache lacks scores that one only, and its output equals the uncached one."""
    _, cache, _, _, _ = filled
    lines = text(DATA / "distance.vcf").splitlines(keepends=True)
    rec = next(i for i, ln in enumerate(lines) if not ln.startswith("#"))
    f = lines[rec].split("\t")
    alt = next(b for b in "ACGT" if b not in (f[3].upper(), f[4].upper()))
    lines[rec] = "\t".join([*f[:4], f"{f[4]},{alt}", *f[5:]])
    (tmp_path / "new.vcf").write_text("".join(lines))
    res, out = score(tmp_path, tmp_path / "new.vcf", na12878 / FASTA, "--annotation", "grch37", "--skip-mismatch",
                     "--cache", str(cache), name="cached")
    assert res.returncode == 0, res.stderr
    assert "1 not in the cache before" in res.stderr
    res, plain = score(tmp_path, tmp_path / "new.vcf", na12878 / FASTA, "--annotation", "grch37", "--skip-mismatch",
                       name="plain")
    assert text(out) == text(plain) and f"{alt}|" in text(out)


def test_a_ref_mismatch_from_the_cache_is_still_an_error(filled, na12878):
    tmp, cache, _, _, _ = filled
    res, out = score(tmp, DATA / "designed.vcf", na12878 / FASTA, "--annotation", "grch37", "--cache", str(cache),
                     name="mismatch")
    assert res.returncode == 1
    assert "designed.vcf: chr20:" in res.stderr and "REF disagrees with the reference" in res.stderr
    assert not out.exists()


def test_another_model_version_starts_its_own_cache(filled, na12878, tmp_path):
    """--distance is part of the version: the same alleles are scored again, into a second model folder."""
    _, cache, _, _, _ = filled
    vcf = DATA / "distance.vcf"
    res, out = score(tmp_path, vcf, na12878 / FASTA, "--annotation", "grch37", "--skip-mismatch",
                     "--distance", "500", "--cache", str(cache))
    assert res.returncode == 0, res.stderr
    assert f"{len(alleles(vcf))} not in the cache before" in res.stderr
    assert len(list((cache / "splice").iterdir())) == 2


def test_half_precision_is_refused_with_a_cache(na12878, tmp_path):
    res, _ = score(tmp_path, DATA / "distance.vcf", na12878 / FASTA, "--annotation", "grch37", "--precision", "bf16",
                   "--cache", str(tmp_path / "scores"))
    assert res.returncode == 1 and "--precision bf16: the score cache holds fp32 scores only" in res.stderr
    assert not (tmp_path / "scores").exists()
