"""aisci.scorecache (with the stages' runners): content-addressed score caches; cached values equal `aisci splice score` / `aisci plm score`."""

from __future__ import annotations

import json
import pickle
import re
import shutil

import pyarrow as pa
import pyarrow.parquet as pq
import pysam
import pytest

from aisci.cli import main
from aisci.cohort.scorers import RUNNERS
from aisci.protein.runner import protein_model
from aisci.scorecache import PROTEIN_SCORES, ScoreCache, ScoreModel, score_chunk, variant_id
from aisci.splice.runner import splice_model
from aisci.errors import InputError

MISMATCH = ("chr1", 10223, "A", "T")  # the reference has C at chr1:10223 (an exon of G00001)


@pytest.fixture(scope="module")
def truth(sim_data):
    """(chrom, pos, ref, alt) of both simulated samples, and which lie inside a gene."""
    from aisci.splice.annotation import load_annotation

    genes = load_annotation(str(sim_data.annotation))
    per_sample = {}
    for sample, vcf in sim_data.truth_vcfs.items():
        with pysam.VariantFile(str(vcf)) as fh:
            per_sample[sample] = [(r.chrom, r.pos, r.ref, r.alts[0]) for r in fh]
    s1 = per_sample["S1"]
    in_gene = [v for v in s1 if genes.genes_at(v[0], v[1])]
    outside = [v for v in s1 if not genes.genes_at(v[0], v[1])]
    return per_sample, in_gene, outside, genes


def write_vcf(path, header_from, variants):
    with pysam.VariantFile(str(header_from)) as src:
        header = src.header
    lines = [str(header).rstrip("\n")]
    lines += [f"{c}\t{p}\t.\t{r}\t{a}\t.\tPASS\t.\tGT\t0/1" for c, p, r, a in sorted(variants)]
    path.write_text("\n".join(lines) + "\n")
    return path


def batch(variants):
    """A store-like batch: chrom, variant_id, pos, ref, alt."""
    c, p, r, a = zip(*variants) if variants else ((), (), (), ())
    return pa.record_batch({"chrom": pa.array(c, pa.string()),
                            "variant_id": pa.array([variant_id(*v) for v in variants], pa.string()),
                            "pos": pa.array(p, pa.int64()), "ref": pa.array(r, pa.string()),
                            "alt": pa.array(a, pa.string())})


def score_all(cache, model, batches):
    """What `aisci cohort score` does without Dask: every missing table through score_chunk."""
    done = 0
    for table in cache.missing(model, batches):
        done += score_chunk(model, table.column("chrom")[0].as_py(), table, str(cache.root), RUNNERS[model.stage])
    return done


@pytest.fixture(scope="module")
def splice_run(sim_data, truth, tmp_path_factory):
    """2 variants in genes, 2 outside and a REF mismatch, scored into a cache; the same VCF through the CLI."""
    _, in_gene, outside, genes = truth
    # SpliceAI on the CPU costs ~1 s per 10 kb window: two scored variants, one per strand, an SNV and an indel
    minus_snv = min((v for v in in_gene if len(v[2]) == len(v[3]) == 1 and genes.genes_at(v[0], v[1])[0].strand == "-"),
                    key=lambda v: abs(genes.genes_at(v[0], v[1])[0].nearest_boundary(v[1])))  # near a splice site
    plus_indel = next(v for v in in_gene if len(v[2]) != len(v[3]) and genes.genes_at(v[0], v[1])[0].strand == "+")
    chosen = [minus_snv, plus_indel] + [v for v in outside if v[0] == "chr1"][:2] + [MISMATCH]
    tmp = tmp_path_factory.mktemp("splice")
    model = splice_model(sim_data.reference, sim_data.annotation, threads=2)
    cache = ScoreCache(tmp / "scores")
    # three "samples" sharing variants: each distinct variant must be scored once
    batches = [batch(chosen[:4]), batch(chosen[1:]), batch(chosen[::2])]
    first = score_all(cache, model, batches)
    vcf = write_vcf(tmp / "splice.vcf", sim_data.truth_vcfs["S1"], chosen)
    assert main(["splice", "score", "--vcf", str(vcf), "--ref", str(sim_data.reference), "--annotation",
                 str(sim_data.annotation), "--skip-mismatch", "--threads", "2", "--out", str(tmp / "cli.vcf.gz"),
                 "--parquet", str(tmp / "cli.parquet")]) == 0
    return model, cache, chosen, batches, first, pq.read_table(tmp / "cli.parquet")


def test_splice_scores_once_then_hits_the_cache(splice_run):
    model, cache, chosen, batches, first, _ = splice_run
    assert first == len(chosen) == cache.count(model)
    assert list(cache.missing(model, batches)) == []
    assert score_all(cache, model, batches) == 0
    assert len(cache.parts(model)) == 1  # one chunk, one part
    rows = cache.read(model)
    assert set(rows.column("variant_id").to_pylist()) == {variant_id(*v) for v in chosen}
    status = dict(zip(rows.column("variant_id").to_pylist(), rows.column("status").to_pylist()))
    assert status[variant_id(*MISMATCH)] == "ref mismatch"
    assert [status[variant_id(*v)] for v in chosen] == ["scored"] * 2 + ["not in a gene"] * 2 + ["ref mismatch"]


def test_splice_cache_equals_aisci_splice_score(splice_run):
    model, cache, chosen, _, _, cli = splice_run
    values = ["gene", "strand", "ds_ag", "ds_al", "ds_dg", "ds_dl", "dp_ag", "dp_al", "dp_dg", "dp_dl"]
    rows = cache.read(model)
    rows = rows.filter(pa.compute.equal(rows.column("status"), "scored"))
    cached = sorted(zip(rows.column("variant_id").to_pylist(), *(rows.column(c).to_pylist() for c in values)))
    ids = [variant_id(c, p, r, a) for c, p, r, a in zip(*(cli.column(n).to_pylist()
                                                                 for n in ("chrom", "pos", "ref", "alt")))]
    official = sorted(zip(ids, *(cli.column(c).to_pylist() for c in values)))
    assert cached == official and len(official) == 2
    assert all(None not in r[3:] for r in official)  # scored values, not the "." of an MNV
    best = cache.best(model).to_pylist()
    assert [b["variant_id"] for b in best] == sorted(variant_id(*v) for v in chosen)  # one row per variant
    assert {b["variant_id"] for b in best if b["splice_gene"] is not None} == {r[0] for r in cached}
    for b in best:
        if b["splice_gene"] is None:
            assert b["ds_max"] is None
        else:
            assert b["ds_max"] == max(b["ds_ag"], b["ds_al"], b["ds_dg"], b["ds_dl"])
        assert (b["splice_model"], b["splice_model_version"]) == ("spliceai-1.3.1", model.version)


def test_version_is_a_content_hash_of_every_input(splice_run, sim_data, tmp_path):
    model, cache, _, batches, _, _ = splice_run
    assert re.fullmatch(r"[0-9a-f]{12}", model.version) and model.model_id == f"spliceai-1.3.1@{model.version}"
    sent = pickle.loads(pickle.dumps(model))  # as Dask ships it to a worker
    assert sent == model and sent.options == model.options and hash(sent) == hash(model)
    assert json.loads((cache.model_dir(model) / "model.json").read_text())["options"]["content"] == (
        model.options["content"])
    # same content under other paths, other runtime options: same version, everything cached
    ref = tmp_path / "copy.fa.gz"
    for suffix in ("", ".fai", ".gzi"):
        shutil.copy(f"{sim_data.reference}{suffix}", f"{ref}{suffix}")
    same = splice_model(ref, sim_data.annotation, device="cpu", threads=1, batch_size=8)
    assert same == model and same.options["ref"] == str(ref)
    assert list(cache.missing(same, batches)) == []
    # any change of weights-independent science -> a new version, every variant missing again
    gff = tmp_path / "genes.gff3"
    gff.write_text(sim_data.annotation.read_text().replace("ID=G00001;Name=G00001", "ID=G00001;Name=GENE1"))
    changed = [splice_model(sim_data.reference, sim_data.annotation, distance=40),
               splice_model(sim_data.reference, sim_data.annotation, mask=True),
               splice_model(sim_data.reference, gff)]
    assert len({m.version for m in changed} | {model.version}) == 4
    n = cache.count(model)
    for other in changed:
        assert sum(t.num_rows for t in cache.missing(other, batches)) == n and cache.count(other) == 0


def test_bad_inputs_fail_before_any_model_loads(sim_data, esm_store, tmp_path, monkeypatch):
    def no_loading(*args, **kwargs):
        raise AssertionError("a model was loaded")

    monkeypatch.setattr("aisci.splice.weights.load_ensemble", no_loading)
    monkeypatch.setattr("aisci.protein.esm.load_esm", no_loading)
    ref, gff = sim_data.reference, sim_data.annotation
    bad_gff = tmp_path / "bad.gff3"
    bad_gff.write_text("##gff-version 3\nchr1\taisci\tgene\tten\t20\t.\t+\t.\tID=g\n")
    weights = tmp_path / "weights"
    weights.mkdir()
    cases = [
        (lambda: splice_model(tmp_path / "nope.fa", gff), r"--ref: file not found: .*nope\.fa"),
        (lambda: splice_model(gff, gff), r"--ref .*genes\.gff3: cannot open as an indexed FASTA"),
        (lambda: splice_model(ref, tmp_path / "none.gff3"), r"--annotation: file not found: .*none\.gff3"),
        (lambda: splice_model(ref, bad_gff), r"bad\.gff3.* line 2"),
        (lambda: splice_model(ref, gff, distance=6000), r"--distance"),
        (lambda: splice_model(ref, gff, device="gpu"), r"--device 'gpu'"),
        (lambda: splice_model(ref, gff, batch_size=0), r"--batch-size 0"),
        (lambda: splice_model(ref, gff, weights=weights), r"--splice-weights .*spliceai1\.h5 missing"),
        (lambda: protein_model(ref, gff, "nope", esm_store.path), r"--model: model 'nope' is not in the model store"),
        (lambda: protein_model(ref, gff, esm_store.model, tmp_path / "empty"), r"model store .*empty does not exist"),
        (lambda: protein_model(ref, gff, esm_store.model, esm_store.path, strategy="best"), r"--strategy 'best'"),
        (lambda: protein_model(ref, bad_gff, esm_store.model, esm_store.path), r"bad\.gff3.* line 2"),
        (lambda: protein_model(ref, gff, esm_store.model, esm_store.path, threads=-1), r"--threads -1"),
    ]
    for make, message in cases:
        with pytest.raises(InputError, match=message):
            make()
    # an annotation edited after the version was computed is refused by the worker, before its model loads
    gff2 = tmp_path / "copy.gff3"
    shutil.copy(gff, gff2)
    model = protein_model(ref, gff2, esm_store.model, esm_store.path)
    gff2.write_text(gff2.read_text() + "# edited\n")
    with pytest.raises(InputError, match=r"copy\.gff3: the annotation changed since the model version"):
        score_chunk(model, "chr1", pa.Table.from_batches([batch([MISMATCH])]), str(tmp_path), RUNNERS["splice"])
    # a model named only by its cache directory (as `cohort query` rebuilds it) cannot score
    bare = ScoreModel("splice", "spliceai-1.3.1", "0123456789ab")
    with pytest.raises(InputError, match="no scoring options"):
        score_chunk(bare, "chr1", pa.Table.from_batches([batch([MISMATCH])]), str(tmp_path), RUNNERS["splice"])


@pytest.fixture(scope="module")
def protein_run(sim_data, truth, esm_store, tmp_path_factory):
    """Every variant of S1 in a gene, 3 outside and a REF mismatch: the cache and `aisci annotate` + `plm score`."""
    _, in_gene, outside, _ = truth
    chosen = in_gene + outside[:3] + [MISMATCH]
    tmp = tmp_path_factory.mktemp("protein")
    model = protein_model(sim_data.reference, sim_data.annotation, esm_store.model, esm_store.path, batch_size=4,
                          device="cpu")
    cache = ScoreCache(tmp / "scores")
    vcf = write_vcf(tmp / "protein.vcf", sim_data.truth_vcfs["S1"], chosen)
    ref, gff = str(sim_data.reference), str(sim_data.annotation)
    assert main(["annotate", "--vcf", str(vcf), "--ref", ref, "--annotation", gff, "--skip-mismatch",
                 "--out", str(tmp / "csq.parquet")]) == 0
    assert main(["plm", "score", "--vcf", str(vcf), "--consequences", str(tmp / "csq.parquet"), "--model",
                 esm_store.model, "--model-store", str(esm_store.path), "--device", "cpu", "--out",
                 str(tmp / "plm.vcf.gz"), "--parquet", str(tmp / "plm.parquet")]) == 0
    return model, cache, chosen, pq.read_table(tmp / "plm.parquet")


def test_protein_cache_equals_aisci_plm_score(protein_run):
    model, cache, chosen, cli = protein_run
    assert score_all(cache, model, [batch(chosen)]) == len(chosen)
    rows = cache.read(model).to_pylist()
    assert {r["variant_id"] for r in rows} == {variant_id(*v) for v in chosen}
    status = {r["variant_id"]: r["status"] for r in rows}
    assert status[variant_id(*MISMATCH)] == "ref mismatch"
    assert {status[variant_id(*v)] for v in chosen[-4:-1]} == {"intergenic"}
    cached = {(r["variant_id"], r["transcript"]): r for r in rows if r["transcript"] is not None}
    official = {(r["variant"], r["transcript"]): r for r in cli.to_pylist()}
    assert cached.keys() == official.keys()
    for key, r in official.items():
        c = cached[key]
        assert (c["gene"], c["consequence"], c["hgvs_p"], c["strategy"]) == (
            r["gene"], r["consequence"], r["hgvs_p"], r["strategy"])
        assert c["status"] == ("scored" if r["score"] is not None else "not scored")
        if r["score"] is not None:
            assert c["score"] == pytest.approx(r["score"], abs=1e-5)
    n_scored = sum(r["score"] is not None for r in official.values())
    assert n_scored >= 5
    best = {b["variant_id"]: b for b in cache.best(model).to_pylist()}
    assert len(best) == len(chosen)
    for (vid, _), r in official.items():
        scored = [o["score"] for (v, _), o in official.items() if v == vid and o["score"] is not None]
        if scored:
            assert best[vid]["protein_score"] == pytest.approx(min(scored), abs=1e-5)
            assert best[vid]["protein_model"] == model.name and best[vid]["protein_model_version"] == model.version


def test_a_variant_in_many_samples_is_scored_once(protein_run, truth, tmp_path):
    model, _, _, _ = protein_run
    per_sample, _, _, _ = truth
    samples = [per_sample["S1"], per_sample["S2"], per_sample["S1"][::3], per_sample["S2"][100:]]
    # as a scan of the calls (calls/chrom=<c>/<sample>.parquet) yields them: per chromosome, each sample in turn
    per_chrom = [[v for v in s if v[0] == chrom] for chrom in ("chr1", "chr2") for s in samples]
    batches = [batch(s[i:i + 40]) for s in per_chrom for i in range(0, len(s), 40)]
    distinct = {variant_id(*v) for s in samples for v in s}
    cache = ScoreCache(tmp_path / "scores")
    todo = list(cache.missing(model, batches))
    ids = [v for t in todo for v in t.column("variant_id").to_pylist()]
    assert len(ids) == len(set(ids)) == len(distinct) and set(ids) == distinct
    assert score_all(cache, model, batches) == len(distinct) == cache.count(model)
    assert score_all(cache, model, batches) == 0
    # two tasks racing on the same chunk both write it: readers keep one part's rows per variant
    again = todo[0].slice(0, 25)
    assert score_chunk(model, again.column("chrom")[0].as_py(), again, str(cache.root), RUNNERS[model.stage]) == 25
    assert cache.count(model) == len(distinct)
    rows = cache.read(model)
    best = cache.best(model)
    assert best.num_rows == len(distinct) and best.column("variant_id").to_pylist() == sorted(distinct)
    per_variant = {}
    for vid, tx in zip(rows.column("variant_id").to_pylist(), rows.column("transcript").to_pylist()):
        per_variant.setdefault(vid, []).append(tx)
    assert all(len(txs) == len(set(txs)) for txs in per_variant.values())


def test_cache_layout_is_append_only_and_never_shows_a_partial_parquet(tmp_path, monkeypatch):
    model = ScoreModel("protein", "m", "0123456789ab", {"note": "no scorer needed"})
    cache = ScoreCache(tmp_path)
    odd = "chrUn/x%1"  # a contig name that is not a plain directory name
    rows = pa.table({"variant_id": [f"{odd}:5:A:C", "chr2:7:G:T"], "pos": [5, 7], "ref": ["A", "G"],
                     "alt": ["C", "T"], "status": ["intergenic", "intergenic"]})
    temporaries = []
    real = pq.write_table

    def spy(table, where, *args, **kwargs):
        temporaries.append(str(where))
        return real(table, where, *args, **kwargs)

    monkeypatch.setattr(pq, "write_table", spy)
    paths = [cache.write(model, odd, rows.slice(0, 1).cast(rows.schema)), cache.write(model, "chr2", rows.slice(1))]
    assert temporaries and not any(t.endswith(".parquet") for t in temporaries)
    with pytest.raises(ValueError, match="missing column 'status'"):
        cache.write(model, "chr2", rows.drop_columns(["status"]))
    files = sorted(p.relative_to(tmp_path).as_posix() for p in tmp_path.rglob("*") if p.is_file())
    assert files == sorted([f"protein/m@0123456789ab/{p.parent.name}/{p.name}" for p in paths]
                           + ["protein/m@0123456789ab/model.json"])
    assert all(re.fullmatch(r"part-[0-9a-f]{32}\.parquet", p.name) for p in paths)
    assert paths[0].parent.name == "chrom=chrUn%2Fx%251"
    for p in paths:
        assert pq.read_schema(p).remove_metadata() == PROTEIN_SCORES
    assert cache.keys(model, odd).to_pylist() == [f"{odd}:5:A:C"] and cache.count(model) == 2
    assert cache.best(model, "chr2").to_pylist() == [{
        "variant_id": "chr2:7:G:T", "protein_gene": None, "protein_transcript": None, "hgvs_p": None,
        "protein_score": None, "protein_model": "m", "protein_model_version": "0123456789ab"}]
    empty = cache.best(ScoreModel("splice", "other", "0123456789ab"))
    assert empty.num_rows == 0 and empty.column_names[-3:] == ["ds_max", "splice_model", "splice_model_version"]
    got = list(cache.missing(model, [batch([(odd, 5, "A", "C"), ("chr2", 7, "G", "T"), ("chr2", 9, "A", "G")])]))
    assert [t.to_pylist() for t in got] == [[{"chrom": "chr2", "variant_id": "chr2:9:A:G", "pos": 9, "ref": "A",
                                              "alt": "G"}]]


def test_missing_streams_one_chromosome_at_a_time(tmp_path, monkeypatch):
    model = ScoreModel("splice", "m", "0123456789ab")
    cache = ScoreCache(tmp_path)
    consumed, loaded = [], []

    def batches():
        for chrom in ("chr1", "chr2", "chr3"):
            for i in range(3):
                consumed.append(chrom)
                yield batch([(chrom, 10 * i + 1, "A", "C"), (chrom, 10 * i + 2, "A", "G"), (chrom, 1, "A", "C")])

    real = cache.keys
    monkeypatch.setattr(cache, "keys", lambda m, chrom: loaded.append(chrom) or real(m, chrom))
    stream = cache.missing(model, batches())
    first = next(stream)
    assert first.column("chrom").to_pylist() == ["chr1"] * 6 and first.column("pos").to_pylist() == sorted(
        first.column("pos").to_pylist())
    assert consumed == ["chr1"] * 3 + ["chr2"] and loaded == ["chr1"]  # lazily: chr2 keys once chr1 is taken
    assert [t.num_rows for t in stream] == [6, 6] and loaded == ["chr1", "chr2", "chr3"]
