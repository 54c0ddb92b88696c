"""aisci.protein.variants: scores of annotated variants joined into the VCF (INFO/AISCI_CSQ, PLM_SCORE) and Parquet."""

from __future__ import annotations

import pyarrow.parquet as pq
import pysam
import pytest

from aisci.errors import InputError
from aisci.protein.variants import COLUMNS, CSQ_FIELDS, csq_entry, score_vcf, summary


@pytest.fixture(scope="module")
def bundle(tmp_path_factory):
    from aisci.protein.demo_model import write_random_esm
    from aisci.protein.esm import load_esm

    path = write_random_esm(tmp_path_factory.mktemp("esm") / "m", layers=2, hidden=32, heads=4, intermediate=64, seed=5)
    return load_esm(path, device="cpu", name="tiny")


@pytest.fixture(scope="module")
def annotated(sim_data, tmp_path_factory):
    """The simulated truth of one sample (SNVs and indels, many in exons) through `aisci annotate`."""
    from aisci.protein.annotate import annotate_vcf

    out = tmp_path_factory.mktemp("annot") / "S1.consequences.parquet"
    annotate_vcf(sim_data.truth_vcfs["S1"], sim_data.reference, sim_data.annotation, out)
    return sim_data.truth_vcfs["S1"], out


@pytest.mark.parametrize("strategy", ["masked-marginals", "wt-marginals"])
def test_scores_vcf_and_parquet_agree(annotated, bundle, strategy, tmp_path):
    from aisci.protein.plm import score_variants

    vcf, consequences = annotated
    counts = score_vcf(str(vcf), str(consequences), bundle, strategy, str(tmp_path / "o.vcf.gz"),
                       str(tmp_path / "o.parquet"), batch_size=5)
    rows = pq.read_table(tmp_path / "o.parquet").to_pylist()
    source = pq.read_table(consequences).to_pylist()
    assert tuple(pq.read_table(tmp_path / "o.parquet").column_names) == COLUMNS and len(rows) == len(source)
    scored = [(r, c) for r, c in zip(rows, source) if r["score"] is not None]
    assert counts["scored rows"] == len(scored) > 3
    # exactly the in-frame protein changes are scored; indels with pseudo-ppl, substitutions with `strategy`
    for r, c in zip(rows, source):
        inframe = any(t in c["consequence"] for t in ("missense", "inframe", "protein_altering"))
        assert (r["score"] is not None) == (inframe and c["mut_protein"] not in (None, c["wt_protein"]))
    for r, c in scored:
        same_length = len(c["wt_protein"]) == len(c["mut_protein"])
        assert r["strategy"] == (strategy if same_length else "pseudo-ppl") and r["model"] == "tiny"
    expect = score_variants(bundle, [(c["wt_protein"], c["mut_protein"]) for _, c in scored], strategy)
    assert [r["score"] for r, _ in scored] == pytest.approx([e.score for e in expect], abs=1e-6)
    # the VCF: every record kept, one AISCI_CSQ entry per row, PLM_SCORE = lowest over transcripts
    with pysam.VariantFile(str(tmp_path / "o.vcf.gz")) as out, pysam.VariantFile(str(vcf)) as src:
        assert out.header.info["AISCI_CSQ"].description.endswith("|".join(CSQ_FIELDS))
        recs, before = list(out), list(src)
    assert [(r.pos, r.ref, r.alts) for r in recs] == [(r.pos, r.ref, r.alts) for r in before]
    entries = [e for r in recs for e in r.info.get("AISCI_CSQ", ())]
    assert entries == [csq_entry(r | {"ref_aa": c["ref_aa"], "alt_aa": c["alt_aa"]}) for r, c in zip(rows, source)]
    for rec in recs:
        mine = [r["score"] for r in rows if (r["pos"], r["alt"]) == (rec.pos, rec.alts[0]) and r["score"] is not None]
        assert rec.info.get("PLM_SCORE") == ((pytest.approx(min(mine), abs=1e-4),) if mine else None)
    assert (tmp_path / "o.vcf.gz.tbi").exists()


def test_csq_entry_escapes_and_formats():
    row = dict(alt="T", consequence="missense_variant&splice_region_variant", impact="MODERATE", gene="G 1",
               gene_id="g1", transcript="t1", hgvs_c="c.4G>T", hgvs_p="p.Ala2Ser", protein_pos=2, ref_aa="A",
               alt_aa="S", score=-1.23456, strategy="wt-marginals")
    assert csq_entry(row) == "T|missense_variant&splice_region_variant|MODERATE|G_1|g1|t1|c.4G>T|p.Ala2Ser|2|A/S|-1.2346|wt-marginals"
    row.update(consequence="intron_variant", impact="MODIFIER", hgvs_c=None, hgvs_p=None, protein_pos=None,
               ref_aa=None, alt_aa=None, score=None, strategy=None)
    assert csq_entry(row) == "T|intron_variant|MODIFIER|G_1|g1|t1||||||"  # six empty fields


def test_a_table_of_another_vcf_is_refused_and_nothing_written(annotated, bundle, sim_data, tmp_path):
    _, consequences = annotated
    other = sim_data.truth_vcfs["S2"]
    with pytest.raises(InputError, match=r"has no record chr\d:\d+ \w+>\w+ that the consequence table names"):
        score_vcf(str(other), str(consequences), bundle, "wt-marginals", str(tmp_path / "o.vcf.gz"), None)
    assert list(tmp_path.iterdir()) == []
    with pytest.raises(InputError, match="must end in .vcf.gz"):
        score_vcf(str(other), str(consequences), bundle, "wt-marginals", str(tmp_path / "o.vcf"), None)
    import pyarrow as pa

    pq.write_table(pa.table({"chrom": ["chr1"], "pos": [1]}), tmp_path / "x.parquet")
    with pytest.raises(InputError, match="not a table of `aisci annotate` \\(missing columns alt, alt_aa, consequence"):
        score_vcf(str(other), str(tmp_path / "x.parquet"), bundle, "wt-marginals", str(tmp_path / "o.vcf.gz"), None)


def _rewrite(vcf, path, change):
    """A plain-text copy of ``vcf`` with its record lines (split into fields) passed through ``change``."""
    from aisci.fileio import open_text

    with open_text(vcf) as fh:
        lines = fh.read().splitlines()
    head = [ln for ln in lines if ln.startswith("#")]
    body = change([ln.split("\t") for ln in lines if not ln.startswith("#")])
    path.write_text("\n".join(head + ["\t".join(f) for f in body]) + "\n")
    return path


def test_lower_case_alleles_join_the_table_of_the_upper_case_vcf(annotated, bundle, tmp_path):
    """`aisci annotate` writes REF/ALT upper-cased (VCF bases are case-insensitive): a lower-case VCF joins its table."""
    vcf, consequences = annotated
    lower = _rewrite(vcf, tmp_path / "lower.vcf", lambda recs: [[*f[:3], f[3].lower(), f[4].lower(), *f[5:]] for f in recs])
    score_vcf(str(vcf), str(consequences), bundle, "wt-marginals", str(tmp_path / "upper.vcf.gz"), None)
    score_vcf(str(lower), str(consequences), bundle, "wt-marginals", str(tmp_path / "lower.vcf.gz"), None)
    with pysam.VariantFile(str(tmp_path / "upper.vcf.gz")) as a, pysam.VariantFile(str(tmp_path / "lower.vcf.gz")) as b:
        upper_recs, lower_recs = list(a), list(b)
    assert [r.ref.lower() for r in upper_recs] == [r.ref for r in lower_recs]  # written as read
    csq = [(r.info.get("AISCI_CSQ"), r.info.get("PLM_SCORE")) for r in upper_recs]
    assert sum(c is not None for c, _ in csq) > 3
    assert [(r.info.get("AISCI_CSQ"), r.info.get("PLM_SCORE")) for r in lower_recs] == csq


def test_unsorted_vcf_is_refused_before_any_protein_is_scored(annotated, bundle, tmp_path, caplog):
    """The output is tabix-indexed: an unsorted VCF fails up front, naming the line, not at indexing."""
    vcf, consequences = annotated
    swapped = _rewrite(vcf, tmp_path / "swapped.vcf", lambda recs: [recs[1], recs[0], *recs[2:]])
    out = tmp_path / "out"
    with pytest.raises(InputError, match=r"swapped\.vcf line \d+: (\S+):(\d+) comes after \1:\d+: the VCF is not sorted"):
        score_vcf(str(swapped), str(consequences), bundle, "wt-marginals", str(out / "o.vcf.gz"), str(out / "o.parquet"))
    assert not out.exists() and "protein changes" not in caplog.text


def test_summary_prints_lowest_scores(annotated, bundle, tmp_path, capsys):
    vcf, consequences = annotated
    score_vcf(str(vcf), str(consequences), bundle, "wt-marginals", str(tmp_path / "o.vcf.gz"), str(tmp_path / "o.parquet"))
    summary([str(tmp_path / "o.parquet")], top=3)
    lines = capsys.readouterr().out.splitlines()
    assert lines[0].startswith("o.parquet: ") and "scored" in lines[0] and len(lines) == 4
    values = [float(line.split()[-2]) for line in lines[1:]]
    assert values == sorted(values)
    with pytest.raises(InputError, match="not a table of `aisci plm score`"):
        summary([str(consequences)], top=3)


# --- score once: `aisci plm cache` and `aisci plm score --cache` ------------------------------------------


def _plm(*args):
    from aisci.cli import main

    return main(["plm", *args])


def test_cache_scores_each_protein_change_once_and_outputs_stay_the_same(annotated, esm_store, tmp_path, capsys):
    """Two tables that share rows: each distinct change is scored once; VCF and Parquet from the cache are the
    bytes that scoring writes; a second fill scores nothing; another strategy is another version."""
    import json

    import pyarrow.parquet as pq

    from aisci.protein.consequence import scorable

    vcf, consequences = annotated
    table = pq.read_table(consequences)
    half = tmp_path / "half.parquet"
    pq.write_table(table.slice(0, table.num_rows // 2), half)
    model = ["--model", esm_store.model, "--model-store", str(esm_store.path), "--device", "cpu", "--batch-size", "5"]
    cache = tmp_path / "scores"
    assert _plm("cache", str(half), str(consequences), "--cache", str(cache), "--summary", str(tmp_path / "s.json"),
                *model) == 0
    summary = json.loads((tmp_path / "s.json").read_text())
    rows = [r for r in table.to_pylist() if scorable(r)]
    assert summary["pairs"] == summary["scored"] == len({(r["wt_protein"], r["mut_protein"]) for r in rows}) > 3
    assert summary["rows"] == len(rows) + sum(scorable(r) for r in table.slice(0, table.num_rows // 2).to_pylist())
    assert _plm("cache", str(consequences), "--cache", str(cache), *model) == 0
    assert "0 scored now" in capsys.readouterr().out
    out = {}
    for name, extra in (("plain", []), ("cached", ["--cache", str(cache)])):
        assert _plm("score", "--vcf", str(vcf), "--consequences", str(consequences), "--out",
                    str(tmp_path / f"{name}.vcf.gz"), "--parquet", str(tmp_path / f"{name}.parquet"),
                    *model, *extra) == 0
        out[name] = (pysam.BGZFile(str(tmp_path / f"{name}.vcf.gz")).read(), (tmp_path / f"{name}.parquet").read_bytes())
    assert out["cached"] == out["plain"]
    (folder,) = (cache / "protein-pairs").iterdir()
    assert folder.name.startswith(f"{esm_store.model}@") and len(list(folder.glob("part-*.parquet"))) == 1
    assert _plm("cache", str(consequences), "--cache", str(cache), "--strategy", "wt-marginals", *model) == 0
    assert len(list((cache / "protein-pairs").iterdir())) == 2


def test_cache_refuses_half_precision_and_a_bare_model_dir(annotated, esm_store, tmp_path, capsys):
    vcf, consequences = annotated
    common = ["score", "--vcf", str(vcf), "--consequences", str(consequences), "--out", str(tmp_path / "o.vcf.gz"),
              "--cache", str(tmp_path / "scores")]
    assert _plm(*common, "--model", esm_store.model, "--model-store", str(esm_store.path), "--precision", "fp16") == 1
    assert "--precision fp16: the score cache holds fp32 scores only" in capsys.readouterr().err
    assert _plm(*common, "--model-dir", str(esm_store.path / esm_store.model)) == 1
    assert "--cache needs --model NAME of a model store" in capsys.readouterr().err
    assert not (tmp_path / "scores").exists() and not (tmp_path / "o.vcf.gz").exists()
