"""Unit tests of aisci.demo.germline / aisci.demo.reads: determinism, file formats, truth sets, reads, realism."""

from __future__ import annotations

import argparse
import gzip
import itertools
import shutil
import subprocess
from collections import Counter
from pathlib import Path

import pysam
import pytest

from aisci.demo import reads as simreads
from aisci.errors import InputError
from aisci.demo.germline import SimulationResult, configure_parser, run, simulate

GENOME, DEPTH = 200_000, 10.0
TOOLS = all(shutil.which(t) for t in ("minimap2", "samtools", "bcftools"))
needs_tools = pytest.mark.skipif(not TOOLS, reason="minimap2/samtools/bcftools not installed")


@pytest.fixture(scope="module")
def sim(tmp_path_factory: pytest.TempPathFactory) -> SimulationResult:
    """A small two-sample simulation shared by the tests."""
    return simulate(tmp_path_factory.mktemp("sim"), genome_size=GENOME, n_samples=2, depth=DEPTH, seed=5)


def records(vcf: Path) -> list[tuple[str, int, str, str, tuple[int, ...]]]:
    """(chrom, pos, ref, alt, GT) of every record."""
    with pysam.VariantFile(str(vcf)) as fh:
        return [(r.chrom, r.pos, r.ref, r.alts[0], r.samples[0]["GT"]) for r in fh]


def fastq(path: Path, limit: int | None = None) -> list[tuple[str, str, str]]:
    """(name, sequence, quality) of the first `limit` records."""
    with gzip.open(path, "rt") as fh:
        lines = [line.rstrip("\n") for line in itertools.islice(fh, None if limit is None else 4 * limit)]
    assert all(plus == "+" for plus in lines[2::4])
    return list(zip(lines[0::4], lines[1::4], lines[3::4]))


def all_files(root: Path) -> dict[str, bytes]:
    return {p.relative_to(root).as_posix(): p.read_bytes() for p in sorted(root.rglob("*")) if p.is_file()}


def test_layout_and_sample_sheet(sim: SimulationResult) -> None:
    out = sim.sample_sheet.parent
    assert sim.samples == ["S1", "S2"]
    assert sim.reference == out / "reference.fa.gz" and sim.annotation == out / "genes.gff3"
    for suffix in (".fai", ".gzi"):
        assert Path(f"{sim.reference}{suffix}").is_file()
    rows = [line.split("\t") for line in sim.sample_sheet.read_text().splitlines()]
    assert rows[0] == ["sample", "fq1", "fq2", "truth"]
    assert rows[1] == ["S1", "reads/S1_R1.fastq.gz", "reads/S1_R2.fastq.gz", "truth/S1.vcf.gz"]
    for sample, fq1, fq2, truth in rows[1:]:
        assert (out / fq1, out / fq2) == sim.reads[sample] and out / truth == sim.truth_vcfs[sample]
        assert Path(f"{out / truth}.tbi").is_file()
    # No temporary files left behind.
    assert not [p for p in out.rglob(".*") if p.is_file()]


def test_same_seed_same_bytes_other_seed_differs(tmp_path: Path) -> None:
    kwargs = dict(genome_size=40_000, n_samples=2, depth=4)
    a, b, c = (simulate(tmp_path / name, seed=seed, **kwargs) for name, seed in (("a", 3), ("b", 3), ("c", 4)))
    files_a, files_b, files_c = (all_files(r.sample_sheet.parent) for r in (a, b, c))
    assert len(files_a) == 13 and files_a == files_b
    assert files_a.keys() == files_c.keys()
    for name in ("reference.fa.gz", "reads/S1_R1.fastq.gz", "truth/S2.vcf.gz", "genes.gff3"):
        assert files_a[name] != files_c[name], name


def test_reference_is_indexed_bgzip_fasta(sim: SimulationResult) -> None:
    with pysam.FastaFile(str(sim.reference)) as fa:
        assert list(fa.references) == ["chr1", "chr2"]
        assert sum(fa.lengths) == GENOME and max(fa.lengths) - min(fa.lengths) <= 1
        seq = fa.fetch("chr1")
    assert set(seq) == set("ACGT")
    out = subprocess.run(["samtools", "faidx", str(sim.reference), "chr2:1001-1010"], check=True,
                         capture_output=True, text=True).stdout.split()
    assert len(out[1]) == 10
    with gzip.open(sim.reference, "rt") as fh:
        widths = Counter(len(line.rstrip("\n")) for line in fh if not line.startswith(">"))
    assert widths.most_common(1)[0][0] == 60 and max(widths) == 60


def test_reference_realism(sim: SimulationResult) -> None:
    with pysam.FastaFile(str(sim.reference)) as fa:
        seqs = [fa.fetch(name) for name in fa.references]
    # Isochores: GC of 10 kb windows spreads over a range of values.
    gc = [sum(map(s[i:i + 10_000].count, "GC")) / 10_000 for s in seqs for i in range(0, len(s), 10_000)]
    assert 0.35 < min(gc) and max(gc) < 0.65 and max(gc) - min(gc) > 0.05
    # Homopolymers and microsatellites.
    genome = "".join(seqs)
    assert sum(genome.count(b * 10) for b in "ACGT") > 20
    assert any(genome.count(unit * 6) for unit in ("CA", "TG", "AT", "AG", "CT"))
    # Near-identical interspersed copies: some 100-mers occur more than once.
    seen: set[str] = set()
    repeated = 0
    for s in seqs:
        for i in range(len(s) - 100):
            kmer = s[i:i + 100]
            repeated += kmer in seen
            seen.add(kmer)
    assert repeated > 100


def parse_gff3(path: Path) -> list[tuple[str, str, int, int, str, str, dict[str, str]]]:
    lines = path.read_text().splitlines()
    assert lines[0] == "##gff-version 3"
    feats = []
    for line in lines:
        if line.startswith("#"):
            continue
        cols = line.split("\t")
        assert len(cols) == 9, line
        attrs = dict(kv.split("=", 1) for kv in cols[8].split(";"))
        feats.append((cols[0], cols[2], int(cols[3]), int(cols[4]), cols[6], cols[7], attrs))
    return feats


def test_gff3_genes(sim: SimulationResult) -> None:
    feats = parse_gff3(sim.annotation)
    by_id = {f[6]["ID"]: f for f in feats if f[1] != "CDS"}
    assert {f[1] for f in feats} == {"gene", "mRNA", "exon", "CDS"}
    genes = [f for f in feats if f[1] == "gene"]
    assert len(genes) >= 3 and {g[4] for g in genes} == {"+", "-"}
    with pysam.FastaFile(str(sim.reference)) as fa:
        exon_seq = intron_seq = ""
        for chrom, kind, start, end, strand, phase, attrs in feats:
            assert 1 <= start <= end
            if kind == "gene":
                continue
            parent = by_id[attrs["Parent"]]
            assert parent[0] == chrom and parent[2] <= start and end <= parent[3] and parent[4] == strand
        for tx in (f for f in feats if f[1] == "mRNA"):
            tx_id = tx[6]["ID"]
            exons = sorted((f[2], f[3]) for f in feats if f[1] == "exon" and f[6]["Parent"] == tx_id)
            cds = sorted((f[2], f[3]) for f in feats if f[1] == "CDS" and f[6]["Parent"] == tx_id)
            assert (exons[0][0], exons[-1][1]) == (tx[2], tx[3])
            assert all(any(s >= es and e <= ee for es, ee in exons) for s, e in cds)
            coding = "".join(fa.fetch(tx[0], s - 1, e) for s, e in cds)
            if tx[4] == "-":
                coding = coding[::-1].translate(str.maketrans("ACGT", "TGCA"))
            # A real open reading frame: ATG ... stop, no stop codon inside.
            codons = [coding[i:i + 3] for i in range(0, len(coding), 3)]
            assert len(coding) % 3 == 0 and codons[0] == "ATG" and codons[-1] in ("TAA", "TAG", "TGA")
            assert not {"TAA", "TAG", "TGA"} & set(codons[:-1])
            exon_seq += "".join(fa.fetch(tx[0], s - 1, e) for s, e in exons)
            intron_seq += "".join(fa.fetch(tx[0], a, b - 1) for (_, a), (b, _) in zip(exons, exons[1:]))
    gc = [sum(map(s.count, "GC")) / len(s) for s in (exon_seq, intron_seq)]
    assert gc[0] > gc[1] + 0.05


def test_truth_vcf_matches_reference(sim: SimulationResult) -> None:
    with pysam.FastaFile(str(sim.reference)) as fa:
        lengths = dict(zip(fa.references, fa.lengths))
        for sample, vcf in sim.truth_vcfs.items():
            with pysam.VariantFile(str(vcf)) as fh:
                assert list(fh.header.samples) == [sample]
                assert {c: fh.header.contigs[c].length for c in fh.header.contigs} == lengths
                assert "GT" in fh.header.formats and fh.header.version == "VCFv4.2"
            recs = records(vcf)
            assert recs == sorted(recs, key=lambda r: (r[0], r[1]))
            for (chrom, pos, ref, alt, gt), nxt in zip(recs, recs[1:] + [None]):
                assert fa.fetch(chrom, pos - 1, pos - 1 + len(ref)) == ref
                assert ref != alt and (len(ref) == len(alt) == 1 or ref[0] == alt[0])
                assert gt in ((0, 1), (1, 1))
                if nxt and nxt[0] == chrom:
                    assert nxt[1] - (pos + len(ref) - 1) >= 10  # variants kept apart


@needs_tools
def test_truth_vcf_is_normalised(sim: SimulationResult, tmp_path: Path) -> None:
    for sample, vcf in sim.truth_vcfs.items():
        normed = tmp_path / f"{sample}.norm.vcf.gz"
        proc = subprocess.run(["bcftools", "norm", "-f", str(sim.reference), "-c", "e", "-Oz",
                               "-o", str(normed), str(vcf)], capture_output=True, text=True, check=True)
        assert proc.stderr.rstrip().endswith("/0/0/0"), proc.stderr  # nothing split/realigned/skipped
        assert records(normed) == records(vcf)


def test_variant_mix(sim: SimulationResult) -> None:
    kinds: Counter[str] = Counter()
    ti = tv = 0
    indel_len: Counter[int] = Counter()
    per_sample = {}
    for sample, vcf in sim.truth_vcfs.items():
        recs = records(vcf)
        per_sample[sample] = {r[:4] for r in recs}
        for chrom, pos, ref, alt, gt in recs:
            kind = "SNV" if len(ref) == len(alt) else ("INS" if len(alt) > len(ref) else "DEL")
            kinds[kind, "hom" if gt == (1, 1) else "het"] += 1
            if kind == "SNV":
                ti += {ref, alt} in ({"A", "G"}, {"C", "T"})
                tv += {ref, alt} not in ({"A", "G"}, {"C", "T"})
            else:
                indel_len[abs(len(alt) - len(ref))] += 1
        snvs = sum(len(r[2]) == len(r[3]) for r in recs)
        assert 0.7 * 1e-3 * GENOME < snvs < 1.3 * 1e-3 * GENOME
    assert all(kinds[k, z] > 0 for k in ("SNV", "INS", "DEL") for z in ("het", "hom"))
    assert 1.5 < ti / tv < 2.5
    het = sum(v for (k, z), v in kinds.items() if z == "het") / sum(kinds.values())
    assert 0.5 < het < 0.7
    assert max(indel_len) <= 15 and (indel_len[1] + indel_len[2]) / sum(indel_len.values()) > 0.5
    shared = per_sample["S1"] & per_sample["S2"]
    assert 0 < len(shared) < min(len(v) for v in per_sample.values())


def test_reads(sim: SimulationResult) -> None:
    expected = round(DEPTH * GENOME / (2 * 150))
    for sample, (fq1, fq2) in sim.reads.items():
        r1, r2 = fastq(fq1), fastq(fq2)
        assert len(r1) == len(r2) == expected == sim.n_pairs[sample]
        for (n1, s1, q1), (n2, s2, q2) in zip(r1, r2):
            assert n1.startswith(f"@{sample}:") and n1.endswith("/1") and n2 == n1[:-1] + "2"
            assert len(s1) == len(q1) == len(s2) == len(q2) == 150
        assert len({n for n, _, _ in r1}) == expected
        bases = Counter(itertools.chain.from_iterable(s for _, s, _ in r1[:2000]))
        quals = Counter(itertools.chain.from_iterable(q for _, _, q in r1[:2000]))
        assert set(bases) == set("ACGT")
        assert min(quals) >= "#" and max(quals) <= "J"


def test_error_profile_and_qualities() -> None:
    profile = simreads._error_profile(150, 0.002)
    assert abs(profile.mean() - 0.002) < 1e-6 and profile[0, -1] > 3 * profile[0, 0]
    import numpy as np

    rng = np.random.default_rng(0)
    reads = np.zeros((20_000, 150), np.uint8)
    q = simreads._add_errors(rng, reads, profile[0], True)
    err = reads != 0
    # Qualities are calibrated: the error rate of the Q20-29 bases matches their Phred value.
    band = (q >= 20) & (q < 30)
    expected = (10.0 ** (-q[band].astype(float) / 10)).mean()
    assert abs(err[band].mean() - expected) < 0.2 * expected
    assert err[:, 100:].mean() > err[:, :50].mean()


@needs_tools
def test_reads_align_with_expected_error_rate(tmp_path: Path) -> None:
    res = simulate(tmp_path / "s", genome_size=60_000, n_contigs=1, depth=8, snv_rate=0, indel_rate=0,
                   error_rate=0.005, seed=2)
    sam = subprocess.run(["minimap2", "-ax", "sr", str(res.reference), *map(str, res.reads["S1"])],
                         capture_output=True, text=True, check=True).stdout
    mismatches = aligned = proper = primary = 0
    for line in sam.splitlines():
        if line.startswith("@"):
            continue
        cols = line.split("\t")
        flag = int(cols[1])
        if flag & 0x904 or flag & 0x4:
            continue
        primary += 1
        proper += bool(flag & 0x2)
        if int(cols[4]) >= 20:
            mismatches += next(int(c[5:]) for c in cols[11:] if c.startswith("NM:i:"))
            aligned += len(cols[9])
    assert primary == 2 * res.n_pairs["S1"]
    assert proper / primary > 0.97
    assert 0.6 * 0.005 < mismatches / aligned < 1.4 * 0.005


@needs_tools
def test_standard_pipeline_recovers_truth(tmp_path: Path) -> None:
    res = simulate(tmp_path / "s", genome_size=100_000, depth=25, seed=11)
    ref, bam = str(res.reference), str(tmp_path / "S1.bam")
    calls = tmp_path / "calls.vcf.gz"
    script = (f"minimap2 -ax sr {ref} {res.reads['S1'][0]} {res.reads['S1'][1]} | samtools sort -o {bam} - "
              f"&& samtools index {bam} && bcftools mpileup -f {ref} {bam} | bcftools call -mv "
              f"| bcftools norm -f {ref} -Oz -o {calls}")
    subprocess.run(["bash", "-o", "pipefail", "-c", script], check=True, capture_output=True)
    truth = {r[:4] for r in records(res.truth_vcfs["S1"])}
    called = {r[:4] for r in records(calls)}
    for is_snv in (True, False):
        t = {v for v in truth if (len(v[2]) == len(v[3])) == is_snv}
        c = {v for v in called if (len(v[2]) == len(v[3])) == is_snv}
        f1 = 2 * len(t & c) / (len(t) + len(c))
        assert f1 > (0.98 if is_snv else 0.9), (is_snv, len(t), len(c), len(t & c))


@pytest.mark.parametrize(("kwargs", "option"), [
    ({"genome_size": 5_000}, "--genome-size"),
    ({"genome_size": 30_000, "n_contigs": 4}, "--genome-size"),
    ({"n_contigs": 0}, "--contigs"),
    ({"n_samples": 0}, "--samples"),
    ({"depth": 0}, "--depth"),
    ({"read_length": 400}, "--read-length"),
    ({"fragment_sd": -1}, "--fragment-sd"),
    ({"error_rate": 0.5}, "--error-rate"),
    ({"snv_rate": -1e-3}, "--snv-rate"),
    ({"indel_rate": 0.1}, "--indel-rate"),
    ({"seed": -1}, "--seed"),
])
def test_invalid_arguments(tmp_path: Path, kwargs: dict, option: str) -> None:
    with pytest.raises(InputError, match=option):
        simulate(tmp_path / "x", **{"genome_size": 100_000, **kwargs})
    assert not (tmp_path / "x").exists()


def test_failure_leaves_no_final_files(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    def boom(*args: object, **kwargs: object) -> None:
        raise RuntimeError("interrupted")

    monkeypatch.setattr(simreads, "simulate_reads", boom)
    with pytest.raises(RuntimeError):
        simulate(tmp_path, genome_size=20_000, depth=1)
    assert not (tmp_path / "samples.tsv").exists()
    assert list((tmp_path / "reads").iterdir()) == []


def test_cli(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    parser = argparse.ArgumentParser()
    configure_parser(parser)
    args = parser.parse_args(["--out", str(tmp_path / "cli"), "--genome-size", "30k", "--contigs", "1",
                              "--depth", "2", "--seed", "9", "--read-length", "100"])
    assert run(args) == 0
    out = capsys.readouterr().out
    assert "samples.tsv" in out and "S1_R1.fastq.gz" in out
    assert len(fastq(tmp_path / "cli" / "reads" / "S1_R1.fastq.gz")) == 300
    with pytest.raises(SystemExit):
        parser.parse_args(["--genome-size", "5M"])  # --out is required
