"""End-to-end runs of the germline pipeline: simulated truth, real NA12878 truth, and bad read files."""

from __future__ import annotations

import gzip
import json
import re
import subprocess

import pyarrow.parquet as pq
import pysam
import pytest

from aisci.cli import main
from aisci.germline.context import COLUMNS

from tests.conftest import REPO, run_snakemake, write_config
from tests.workflows.scenarios import scenario_config

pytestmark = pytest.mark.slow


def metrics(path):
    return json.loads(path.read_text())


@pytest.fixture(scope="module")
def sim_run(sim_data, esm_store, tmp_path_factory):
    """The pipeline with joint calling and the protein stage on the simulated samples, run once for the module."""
    workdir = tmp_path_factory.mktemp("sim_run")
    cfg = scenario_config("joint", sim_data, workdir, esm_store)
    res = run_snakemake(workdir, "--cores", "2", "--configfile", str(cfg))
    assert res.returncode == 0, res.stderr[-5000:]
    return workdir


def test_simulated_calls_match_truth(sim_run, sim_data):
    for sample in sim_data.samples:
        m = metrics(sim_run / "results" / "eval" / f"{sample}.json")
        # 300 kb at 20x: a few hundred SNVs and ~50 indels per sample
        assert m["snv"]["tp"] + m["snv"]["fn"] > 200 and m["indel"]["tp"] + m["indel"]["fn"] > 30
        assert m["snv"]["recall"] >= 0.97 and m["snv"]["precision"] >= 0.98, m["snv"]
        assert m["indel"]["recall"] >= 0.85 and m["indel"]["precision"] >= 0.9, m["indel"]
        assert m["snv"]["gt_recall"] >= 0.95, m["snv"]


def test_outputs_are_complete_and_consistent(sim_run, sim_data):
    res = sim_run / "results"
    for sample in sim_data.samples:
        with pysam.AlignmentFile(str(res / "align" / f"{sample}.bam")) as bam:
            assert bam.header["RG"][0]["SM"] == sample and bam.check_index()
        reads = json.loads((res / "qc" / f"{sample}.reads.json").read_text())
        assert reads["pairs"] == sim_data.n_pairs[sample]
        flagstat = (res / "qc" / f"{sample}.flagstat.txt").read_text()
        assert f"{2 * reads['pairs']} + 0 primary" in flagstat
        assert "SN\traw total sequences:" in (res / "qc" / f"{sample}.stats.txt").read_text()
        with pysam.VariantFile(str(res / "calls" / f"{sample}.vcf.gz")) as vcf:
            assert list(vcf.header.samples) == [sample]
            recs = list(vcf)
            assert all(len(r.alts) == 1 for r in recs)  # multi-allelics split
            assert {f for r in recs for f in r.filter} <= {"PASS", "LowQual", "LowDepth"}
            keys = [(r.contig, r.pos) for r in recs]
            order = {c: i for i, c in enumerate(vcf.header.contigs)}
            assert keys == sorted(keys, key=lambda k: (order[k[0]], k[1]))
        # GPU-class stage: one row per call, exact schema, features in range
        table = pq.read_table(res / "context" / f"{sample}.context.parquet")
        assert tuple(table.column_names) == COLUMNS and table.num_rows == len(recs)
        assert table.column("pos").to_pylist() == [r.pos for r in recs]
        gc = table.column("gc").to_pylist()
        assert all(0 <= g <= 1 for g in gc) and 0.3 < sum(gc) / len(gc) < 0.65
        log = (sim_run / "logs" / "annotate_context" / f"{sample}.log").read_text()
        assert "device: cpu" in log or "device: cuda" in log
    with pysam.VariantFile(str(res / "calls" / "cohort.vcf.gz")) as cohort:
        assert list(cohort.header.samples) == sim_data.samples
        assert sum(1 for _ in cohort) > 0
    # SpliceAI stage: every call passes through, INFO/SpliceAI in the official format, Parquet agrees
    scored_total, alleles = 0, {}
    for callset in [*sim_data.samples, "cohort"]:
        with pysam.VariantFile(str(res / "calls" / f"{callset}.vcf.gz")) as calls:
            called = [(r.pos, r.ref, r.alts) for r in calls]
        with pysam.VariantFile(str(res / "splice" / f"{callset}.vcf.gz")) as vcf:
            assert "SpliceAI" in vcf.header.info and vcf.index is not None
            recs = list(vcf)
        assert [(r.pos, r.ref, r.alts) for r in recs] == called
        infos = []
        for r in recs:
            for entry in r.info.get("SpliceAI", ()):
                fields = entry.split("|")
                assert len(fields) == 10 and fields[0] in r.alts
                infos.append((r.pos, fields))
        table = pq.read_table(res / "splice" / f"{callset}.parquet")
        assert table.num_rows == len(infos)
        assert table.column("gene").to_pylist() == [f[1] for _, f in infos]
        assert set(table.column("gene").to_pylist()) <= genes_of(sim_data.annotation)
        scored_total += len(infos)
        # scattered over the 4 scoring groups of 100 kb chunks, gathered into one VCF and Parquet
        logs = sorted((sim_run / "logs" / "score_splicing" / callset).glob("*.log"))
        assert [p.name for p in logs] == ["0000.log", "0001.log", "0002.log", "0003.log"]
        # every allele came from the score cache: these jobs load no model
        assert all("0 not in the cache before" in p.read_text() and "allele x gene scored" in p.read_text()
                   for p in logs)
        with pysam.VariantFile(str(res / "calls" / f"{callset}.vcf.gz")) as calls:
            alleles[callset] = {f"{r.chrom}:{r.pos}:{r.ref}:{a}" for r in calls for a in r.alts}
    assert scored_total > 50  # the simulated genes hold a good share of the calls
    # score once: the cache_splicing jobs (one per scoring group) scored each distinct allele of the three
    # callsets once, though the cohort repeats most of the samples' alleles
    distinct = set().union(*alleles.values())
    summaries = [json.loads(p.read_text()) for p in sorted((res / "splice" / "cache").glob("*.json"))]
    assert len(summaries) == 4 and sum(s["scored"] for s in summaries) == len(distinct)
    assert sum(s["alleles"] for s in summaries) == sum(map(len, alleles.values())) > 1.5 * len(distinct)
    parts = sorted((sim_run / "resources" / "scores" / "splice").glob("spliceai-1.3.1@*/chrom=*/part-*.parquet"))
    assert {v for p in parts for v in pq.read_table(p, columns=["variant_id"]).column("variant_id").to_pylist()} \
        == distinct
    # temporary chunk files are gone; nothing half-written remains
    assert not (res / "calls" / "chunks").exists() or not any((res / "calls" / "chunks").rglob("*.bcf"))
    assert not list(res.rglob("*.tmp*"))


def test_protein_stage(sim_run, sim_data, esm_store):
    """Consequences of every call on the simulated genes, ESM scores of the in-frame changes, VCF and Parquet agree."""
    from aisci.protein.esm import load_esm
    from aisci.protein.plm import score_variants
    from aisci.protein.cached import pair_key
    from aisci.protein.consequence import scorable

    res = sim_run / "results" / "protein"
    bundle = load_esm(esm_store.path / esm_store.model, device="cpu", name=esm_store.model)
    missense = 0
    for callset in [*sim_data.samples, "cohort"]:
        with pysam.VariantFile(str(sim_run / "results" / "splice" / f"{callset}.vcf.gz")) as vcf:
            spliced = [(r.pos, r.ref, r.alts, r.info.get("SpliceAI")) for r in vcf]
        with pysam.VariantFile(str(res / f"{callset}.vcf.gz")) as vcf:
            assert {"AISCI_CSQ", "PLM_SCORE", "SpliceAI"} <= set(vcf.header.info) and vcf.index is not None
            recs = list(vcf)
        # every call passes through with its SpliceAI annotation kept
        assert [(r.pos, r.ref, r.alts, r.info.get("SpliceAI")) for r in recs] == spliced
        rows = pq.read_table(res / f"{callset}.parquet").to_pylist()
        entries = [(r.pos, e.split("|")) for r in recs for e in r.info.get("AISCI_CSQ", ())]
        assert len(entries) == len(rows) > 0
        assert [(pos, f[5]) for pos, f in entries] == [(r["pos"], r["transcript"]) for r in rows]
        scored = [r for r in rows if r["score"] is not None]
        assert scored and all(r["model"] == esm_store.model for r in scored)
        assert {r["strategy"] for r in scored} <= {"wt-marginals", "pseudo-ppl"}
        assert all("missense_variant" in r["consequence"] or "inframe" in r["consequence"] for r in scored)
        missense += sum("missense_variant" in r["consequence"] for r in rows)
        # PLM_SCORE is the lowest score over the transcripts of the allele
        for r in recs:
            best = min((x["score"] for x in scored if (x["pos"], x["alt"]) == (r.pos, r.alts[0])), default=None)
            got = r.info.get("PLM_SCORE")
            assert (got is None) if best is None else abs(got[0] - best) < 1e-3
    # the scores are the library's own, recomputed in this process on the last callset's rows
    consequences = pq.read_table(res / f"{callset}.consequences.parquet").to_pylist()
    pairs = {(r["wt_protein"], r["mut_protein"]) for r in consequences
             if "missense_variant" in r["consequence"] and r["wt_protein"] != r["mut_protein"]}
    expect = dict(zip(pairs, (s.score for s in score_variants(bundle, list(pairs), "wt-marginals"))))
    for row, c in zip(rows, consequences):
        if (c["wt_protein"], c["mut_protein"]) in expect and row["strategy"] == "wt-marginals":
            assert abs(row["score"] - expect[(c["wt_protein"], c["mut_protein"])]) < 1e-5
    assert missense > 5  # the simulated exons hold a few SNVs per sample
    # score once: the cache_missense jobs (one per scoring group) scored each distinct protein change of the
    # three callsets once; the score_missense jobs took every score from the cache and loaded no model
    logs = list((sim_run / "logs" / "score_missense" / "cohort").glob("*.log"))
    assert len(logs) == 4 and all("0 not in the cache before" in p.read_text() for p in logs)
    assert not any("device: cpu" in p.read_text() for p in logs)
    changes = set()
    for callset in [*sim_data.samples, "cohort"]:
        changes |= {(r["wt_protein"], r["mut_protein"])
                    for r in pq.read_table(res / f"{callset}.consequences.parquet").to_pylist() if scorable(r)}
    summaries = [json.loads(p.read_text()) for p in sorted((res / "cache").glob("*.json"))]
    assert len(summaries) == 4 and sum(s["scored"] for s in summaries) == len(changes)
    assert sum(s["rows"] for s in summaries) > len(changes)  # the cohort repeats the samples' changes
    parts = sorted((sim_run / "resources" / "scores" / "protein-pairs").glob(f"{esm_store.model}@*/part-*.parquet"))
    keys = [k for p in parts for k in pq.read_table(p).column("key").to_pylist()]
    assert sorted(keys) == sorted(pair_key(*c) for c in changes)


def genes_of(gff3):
    """Gene names of a GFF3 (the simulator names genes by their ID)."""
    names = set()
    for line in gff3.read_text().splitlines():
        f = line.split("\t")
        if len(f) == 9 and f[2] == "gene":
            names.add(dict(kv.split("=", 1) for kv in f[8].split(";"))["Name"])
    return names


def test_second_run_has_nothing_to_do(sim_run, sim_data, esm_store):
    cfg = scenario_config("joint", sim_data, sim_run, esm_store)
    res = run_snakemake(sim_run, "--dry-run", "--cores", "2", "--configfile", str(cfg))
    assert res.returncode == 0 and "Nothing to be done" in res.stdout + res.stderr


def _section(html: str, name: str) -> str:
    found = re.search(rf'<section id="{name}">(.*?)</section>', html, re.S)
    assert found, f"section {name} missing"
    return found.group(1)


def _cell(section: str, key: str, column: int) -> str:
    """The data value of a table row's ``column``-th cell (0: the key) in the row whose first cell is ``key``."""
    row = re.search(rf"<tr><td>{re.escape(key)}</td>(.*?)</tr>", section, re.S)
    assert row, key
    return re.findall(r'<td[^>]*?(?:data-v="([^"]*)")?>', row.group(1))[column - 1]


def test_report_holds_the_runs_own_numbers(sim_run, sim_data):
    """results/report.html: every section of a local run with truth and both AI stages, with the numbers the
    tools give (the browser test runs on the `make demo` run: tests/e2e/test_demo.py)."""
    res = sim_run / "results"
    html = (res / "report.html").read_text()
    assert re.findall(r'<section id="(\w+)">', html) == ["run", "qc", "calls", "accuracy", "splice", "protein"]
    qc, calls, accuracy = _section(html, "qc"), _section(html, "calls"), _section(html, "accuracy")
    for callset in [*sim_data.samples, "cohort"]:
        records = subprocess.run(["bcftools", "view", "-H", str(res / "calls" / f"{callset}.vcf.gz")],
                                 capture_output=True, text=True, check=True).stdout.count("\n")
        assert int(_cell(calls, callset, 1)) == records
        assert (res / "qc" / f"{callset}.bcftools_stats.txt").is_file()
    for sample in sim_data.samples:
        pairs = json.loads((res / "qc" / f"{sample}.reads.json").read_text())["pairs"]
        assert int(_cell(qc, sample, 1)) == pairs
        f1 = metrics(res / "eval" / f"{sample}.json")["snv"]["f1"]
        assert re.search(rf"<tr><td>{sample}</td><td>snv</td>(?:<td[^>]*>[^<]*</td>){{5}}<td class=\"n\" data-v=\"{f1!r}\">",
                         accuracy)
    assert "<svg" in _section(html, "splice") and "Lowest-scoring" in _section(html, "protein")
    assert len(html.encode()) < 5_000_000


def test_multiqc_picks_up_every_module(sim_run, sim_data):
    """The `multiqc` rule (report.multiqc: true in this scenario) ran MultiQC over the run's QC files: samtools
    stats and flagstat per sample, bcftools stats per callset, the hap.py-style summaries, aisci's custom content."""
    res = sim_run / "results"
    assert (res / "multiqc" / "multiqc_report.html").stat().st_size > 100_000
    raw = json.loads((res / "multiqc" / "multiqc_data" / "multiqc_data.json").read_text())["report_saved_raw_data"]
    samples, callsets = set(sim_data.samples), {*sim_data.samples, "cohort"}
    assert set(raw["multiqc_samtools_stats"]) == set(raw["multiqc_samtools_flagstat"]) == samples
    assert set(raw["multiqc_bcftools_stats"]) == callsets
    assert {v["sample_id"] for v in raw["multiqc_happy_snp_data"].values()} == samples
    assert set(raw["multiqc_aisci_splice_table"]) == set(raw["multiqc_aisci_protein_table"]) == callsets
    assert {"align_reads", "call_group"} <= set(raw["multiqc_aisci_usage_table"])  # a local run: benchmark files
    for sample in samples:
        truth = metrics(res / "eval" / f"{sample}.json")["snv"]
        assert raw["multiqc_happy_snp_data"][f"{sample}_SNP_PASS"]["TRUTH.TP_snp"] == str(truth["gt_tp"])
        pairs = json.loads((res / "qc" / f"{sample}.reads.json").read_text())["pairs"]
        assert raw["multiqc_samtools_stats"][sample]["raw_total_sequences"] == 2 * pairs


def test_snakemakes_own_report_lists_the_key_outputs_by_category(sim_run, sim_data, esm_store, tmp_path):
    cfg = scenario_config("joint", sim_data, sim_run, esm_store)
    out = tmp_path / "snakemake-report.html"
    res = run_snakemake(sim_run, "--configfile", str(cfg), "--report", str(out))
    assert res.returncode == 0, res.stderr[-3000:]
    categories = json.loads(re.search(r"var categories = (\{.*?\});\n", out.read_text()).group(1))
    callsets = [*sim_data.samples, "cohort"]
    assert categories == {
        "Alignment QC": {"Other": [f"results/qc/{s}.stats.txt" for s in sim_data.samples]},
        "Accuracy": {"Other": [f"results/eval/{s}.tsv" for s in sim_data.samples]},
        "Calls": {"Other": [f"results/qc/{c}.bcftools_stats.txt" for c in callsets]},
        "Run report": {"Other": ["results/multiqc/multiqc_report.html", "results/report.html"]},
    }


def test_report_leaves_out_what_a_run_did_not_make_and_names_a_broken_input(sim_run, sim_data, tmp_path, capsys):
    res = sim_run / "results"
    base = ["report", "germline", "--pipeline-info", str(res / "pipeline_info"), "--slurm-run", "none",
            "--bcftools-stats", *[str(p) for p in sorted((res / "qc").glob("*.bcftools_stats.txt"))]]
    stats = [str(res / "qc" / f"{s}.stats.txt") for s in sim_data.samples]
    out = tmp_path / "report.html"
    # no truth set, AI stages off, not on Slurm: those sections are left out, the rest is there
    assert main([*base, "--stats", *stats, "--out", str(out)]) == 0
    assert re.findall(r'<section id="(\w+)">', out.read_text()) == ["run", "qc", "calls"]
    # a broken stats file stops the report with the file named, and writes no page
    bad = tmp_path / "S1.stats.txt"
    bad.write_text("# samtools stats, cut off\n")
    out.unlink()
    assert main([*base, "--stats", str(bad), "--out", str(out)]) == 1
    assert f"{bad}: not `samtools stats` output" in capsys.readouterr().err and not out.exists()
    assert main([*base, "--stats", str(tmp_path / "gone.stats.txt"), "--out", str(out)]) == 1
    assert "gone.stats.txt" in capsys.readouterr().err and not out.exists()


def _truncate(src, dst):
    data = src.read_bytes()
    dst.write_bytes(data[: len(data) // 2])


def _short_quality(src, dst):
    with gzip.open(src, "rt") as fh, gzip.open(dst, "wt") as out:
        for i, line in enumerate(fh):
            out.write(line[:-2] + "\n" if i == 4 * 99 + 3 else line)  # record 100's quality


def _drop_reads(src, dst):
    with gzip.open(src, "rt") as fh:
        lines = fh.readlines()
    with gzip.open(dst, "wt") as out:
        out.writelines(lines[: -4 * 10])  # the last 10 reads are missing from this mate file


@pytest.mark.parametrize(
    "damage, message",
    [
        (_truncate, "corrupt or truncated gzip"),
        (_short_quality, "record 100 (line 400): quality length"),
        (_drop_reads, "paired files have different read counts"),
    ],
    ids=["truncated-gzip", "quality-length", "read-count"],
)
def test_bad_reads_fail_their_job_and_leave_no_partial_output(damage, message, sim_data, tmp_path):
    fq1, fq2 = sim_data.reads["S1"]
    bad = tmp_path / "bad_R2.fastq.gz"
    damage(fq2, bad)
    sheet = tmp_path / "samples.tsv"
    sheet.write_text(f"sample\tfq1\tfq2\nS1\t{fq1}\t{bad}\n")
    cfg = write_config(tmp_path / "c.yaml", samples=str(sheet), reference=str(sim_data.reference))
    workdir = tmp_path / "run"
    res = run_snakemake(workdir, "--cores", "2", "--configfile", str(cfg))
    assert res.returncode != 0
    log = (workdir / "logs" / "check_reads" / "S1.log").read_text()
    assert message in log and "Traceback" not in log
    assert "bad_R2.fastq.gz" in log or "different read counts" in log
    assert not (workdir / "results" / "qc" / "S1.reads.json").exists()
    assert not (workdir / "results" / "align").exists()
    # nothing but the run's record (results/pipeline_info, written first: a failed run is recorded too)
    assert not [p for p in (workdir / "results").rglob("*") if p.is_file() and "pipeline_info" not in p.parts]


@pytest.mark.parametrize("fmt", ["bam", "cram"])
def test_real_na12878(fmt, na12878, sim_data, tmp_path):
    """Real reads re-aligned from BAM (or CRAM): in the NIST confident regions, recall 1.0 and <= 1 FP."""
    cfg = scenario_config("na12878", sim_data, tmp_path)
    if fmt == "cram":
        import yaml

        cram = tmp_path / "NA12878.cram"
        pysam.view("-C", "-T", str(na12878 / "ucsc.hg19.chr20.unittest.fasta.gz"), "-o", str(cram),
                   str(na12878 / "NA12878_S1.chr20.10_10p1mb.bam"), catch_stdout=False)
        sheet = tmp_path / "cram.tsv"
        sheet.write_text(f"sample\tbam\ttruth\nNA12878\t{cram}\t{na12878 / 'test_nist.b37_chr20_100kbp_at_10mb.vcf.gz'}\n")
        values = yaml.safe_load(cfg.read_text())
        values["samples"] = str(sheet)
        cfg.write_text(yaml.safe_dump(values))
    res = run_snakemake(tmp_path, "--cores", "2", "--configfile", str(cfg))
    assert res.returncode == 0, res.stderr[-5000:]
    m = metrics(tmp_path / "results" / "eval" / "NA12878.json")
    assert m["all"]["tp"] == 49 and m["all"]["fn"] == 0 and m["all"]["recall"] == 1.0, m["all"]
    assert m["snv"]["recall"] == 1.0 and m["indel"]["recall"] == 1.0
    assert m["all"]["fp"] <= 1, m["all"]
    # SpliceAI on the real calls (grch37 table): where a call is a NIST truth variant, its INFO
    # entry is exactly what the official CLI printed for that variant (fixture of tests/unit)
    official = {}
    for line in (REPO / "tests/unit/data/splice/official.grch37.D50.vcf").read_text().splitlines():
        f = line.split("\t")
        if not line.startswith("#") and "SpliceAI=" in f[7]:
            official[int(f[1]), f[3], f[4]] = f[7].split("SpliceAI=")[1]
    with pysam.VariantFile(str(tmp_path / "results" / "splice" / "NA12878.vcf.gz")) as vcf:
        ours = {(r.pos, r.ref, r.alts[0]): ",".join(r.info["SpliceAI"]) for r in vcf if "SpliceAI" in r.info}
    shared = set(ours) & set(official)
    assert len(shared) >= 20, (len(ours), len(official))  # 23 calls in ANKEF1 are NIST truth variants
    assert all(ours[k] == official[k] for k in shared)
    reads = json.loads((tmp_path / "results" / "qc" / "NA12878.reads.json").read_text())
    # every primary read whose mate is in the file too (secondary/supplementary and singletons dropped)
    with pysam.AlignmentFile(str(na12878 / "NA12878_S1.chr20.10_10p1mb.bam")) as bam:
        mates = {}
        for r in bam.fetch(until_eof=True):
            if not (r.is_secondary or r.is_supplementary):
                mates.setdefault(r.query_name, set()).add(r.is_read1)
    assert reads["pairs"] == sum(1 for m in mates.values() if m == {True, False})
    assert not (tmp_path / "results" / "reads").exists() or not any((tmp_path / "results" / "reads").iterdir())
