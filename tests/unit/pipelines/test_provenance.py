"""Tests for aisci.pipelines.provenance: versions, pipeline_info files, contig MD5s (vs `samtools dict`), VCF reheadering."""

from __future__ import annotations

import argparse
import gzip
import hashlib
import json
import re
import shlex
import subprocess
from pathlib import Path

import pysam
import pytest
import yaml

from aisci import __version__
from aisci.errors import InputError
from aisci.pipelines.provenance import (
    configure_parser,
    contig_md5s,
    python_versions,
    reheader_vcf,
    run,
    tool_versions,
    vcf_header_lines,
    write_pipeline_info,
)

VERSION = re.compile(r"\d+\.\d+")
SEQS = {"chrA": "ACGTacgtNNACGTTTGACCA" * 7 + "ac", "chrB": "ggccTTAAggccttaaNNNN" * 5}


@pytest.fixture()
def genome(tmp_path):
    """A two-contig FASTA (mixed case, 60-column lines) indexed with the real samtools faidx."""
    fasta = tmp_path / "genome.fa"
    with open(fasta, "w") as fh:
        for name, seq in SEQS.items():
            fh.write(f">{name} some description\n")
            fh.writelines(seq[i:i + 60] + "\n" for i in range(0, len(seq), 60))
    subprocess.run(["samtools", "faidx", str(fasta)], check=True)
    return fasta


def test_tool_versions_are_parsed():
    found = tool_versions()
    assert set(found) == {"minimap2", "bwa", "samtools", "bcftools", "tabix", "bgzip"}
    for tool, version in found.items():
        assert version and VERSION.match(version), (tool, version)
    assert tool_versions(["no-such-tool-aisci"]) == {"no-such-tool-aisci": None}


def test_python_versions_cover_declared_dependencies():
    found = python_versions()
    assert found["aisci"] == __version__ and VERSION.match(found["python"])
    assert found["pysam"] == pysam.__version__ and VERSION.match(found["pyyaml"])
    assert "pytest" not in found  # only the `test` extra asks for it


def test_write_pipeline_info(tmp_path):
    cfg = tmp_path / "config.yaml"
    cfg.write_text("samples: samples.tsv\nreference: genome.fa\n")
    extra = tmp_path / "site.yaml"
    extra.write_text("aligner: bwa\n")
    sheet = tmp_path / "samples.tsv"
    sheet.write_bytes(b"sample\tfq1\tfq2\r\nS1\ta b.fq.gz\tx\xc3\xa9.fq.gz\n")
    store = tmp_path / "store"
    store.mkdir()
    manifest = {"format": 1, "models": {}}
    (store / "manifest.json").write_text(json.dumps(manifest))
    weights = tmp_path / "weights"
    weights.mkdir()
    (weights / "spliceai1.h5").write_bytes(b"not really hdf5")
    config = {"samples": "samples.tsv", "reference": "genome.fa", "aligner": "bwa",
              "calling": {"min_mapq": 20, "regions": ["chr1", "chr2"]}}
    command = ["snakemake", "--profile", "profiles/local", "--config", "note=two words"]
    out = write_pipeline_info(tmp_path / "info", config=config, configfiles=[str(cfg), str(extra)],
                              samples_sheet=sheet, command=command, model_manifests=[store],
                              splice_weights=weights)
    assert out == tmp_path / "info"
    assert sorted(p.name for p in out.iterdir()) == ["command.txt", "config.yaml", "models.json", "run.json",
                                                     "samples.tsv", "versions.json"]
    assert yaml.safe_load((out / "config.yaml").read_text()) == config
    assert list(yaml.safe_load((out / "config.yaml").read_text())) == list(config)  # keys kept in order
    assert (out / "samples.tsv").read_bytes() == sheet.read_bytes()
    assert shlex.split((out / "command.txt").read_text()) == command
    run = json.loads((out / "run.json").read_text())
    assert re.fullmatch(r"[0-9a-f]{32}", run["run_id"]) and run["time_utc"].endswith("+00:00")
    assert run["configfiles"] == [{"path": str(p), "sha256": hashlib.sha256(p.read_bytes()).hexdigest()}
                                  for p in (cfg, extra)]
    versions = json.loads((out / "versions.json").read_text())
    assert versions["aisci"] == __version__ and VERSION.match(versions["tools"]["samtools"])
    assert versions["python"]["pysam"] == pysam.__version__
    models = json.loads((out / "models.json").read_text())
    assert models["model_stores"] == [{"manifest": str((store / "manifest.json").resolve()), "content": manifest}]
    assert models["spliceai"]["sha256"] == {"spliceai1.h5": hashlib.sha256(b"not really hdf5").hexdigest()}
    assert models["spliceai"]["official"] is False
    assert not [p for p in out.iterdir() if p.name.startswith(".")]  # no temporary left behind

    again = write_pipeline_info(tmp_path / "info", config={}, configfiles=[], samples_sheet=None, command=[],
                                run_id="run-7")
    assert json.loads((again / "run.json").read_text())["run_id"] == "run-7"
    assert not (again / "release.json").exists()  # not run from a catalog release


def test_pipeline_info_records_the_catalog_release(tmp_path):
    record = {"format": 1, "name": "germline", "version": "1.2.0", "digest": "d" * 64, "published": "2026-12-07T15:00:00Z",
              "installed_from": "/shared/catalog", "files": {"a": {}, "b": {}}, "metadata": {"large": "not copied"}}
    (tmp_path / "release.json").write_text(json.dumps(record))
    out = write_pipeline_info(tmp_path / "info", config={}, configfiles=[], samples_sheet=None, command=["x"],
                              release=tmp_path / "release.json")
    assert json.loads((out / "release.json").read_text()) == {
        "name": "germline", "version": "1.2.0", "digest": "d" * 64, "published": "2026-12-07T15:00:00Z",
        "installed_from": "/shared/catalog", "files": 2, "release_json": str(tmp_path / "release.json")}
    with pytest.raises(InputError, match="missing.yaml: file not found"):
        write_pipeline_info(tmp_path / "x", config={}, configfiles=[tmp_path / "missing.yaml"],
                            samples_sheet=None, command=[])


def test_contig_md5s_match_samtools_dict(genome):
    md5s = contig_md5s(genome)
    dict_out = subprocess.run(["samtools", "dict", str(genome)], capture_output=True, text=True, check=True).stdout
    expected = {}
    for line in dict_out.splitlines():
        if line.startswith("@SQ"):
            tags = dict(f.split(":", 1) for f in line.split("\t")[1:])
            expected[tags["SN"]] = tags["M5"]
    assert md5s == expected and list(md5s) == list(SEQS)
    assert md5s["chrA"] == hashlib.md5(SEQS["chrA"].upper().encode()).hexdigest()
    assert contig_md5s(genome, max_bases=100) == {}  # not cheap: skipped


def test_vcf_header_lines(genome):
    lines = vcf_header_lines(f"{genome}.fai", f"file://{genome}", md5={"chrB": "0" * 32})
    assert lines == [
        f"##source=aisci {__version__}",
        "##reference=genome.fa",
        f"##contig=<ID=chrA,length={len(SEQS['chrA'])}>",
        f"##contig=<ID=chrB,length={len(SEQS['chrB'])},md5={'0' * 32}>",
    ]


def _vcf(path: Path, genome: Path, chrom: str = "chrB") -> Path:
    path.write_text(
        "##fileformat=VCFv4.2\n"
        "##source=bcftools\n"
        f"##reference=file://{genome}\n"
        "##contig=<ID=chrA,length=150>\n"
        "##contig=<ID=chrB,length=100>\n"
        '##INFO=<ID=DP,Number=1,Type=Integer,Description="Depth">\n'
        '##FORMAT=<ID=GT,Number=1,Type=String,Description="Genotype">\n'
        "#CHROM\tPOS\tID\tREF\tALT\tQUAL\tFILTER\tINFO\tFORMAT\tS1\n"
        "chrA\t5\t.\tA\tG\t50.5\tPASS\tDP=12\tGT\t0/1\n"
        "chrA\t30\trs1\tG\tT,C\t.\t.\tDP=3\tGT\t1/2\n"
        f"{chrom}\t7\t.\tA\tAT\t99\tPASS\tDP=20\tGT\t1|1\n"
    )
    return path


def _records(vcf: Path) -> str:
    return subprocess.run(["bcftools", "view", "-H", str(vcf)], capture_output=True, text=True, check=True).stdout


@pytest.mark.parametrize("compressed", [False, True])
def test_reheader_vcf(tmp_path, genome, compressed):
    vcf = _vcf(tmp_path / "in.vcf", genome)
    if compressed:
        subprocess.run(["bgzip", str(vcf)], check=True)
        vcf = tmp_path / "in.vcf.gz"
    md5s = contig_md5s(genome)
    out = reheader_vcf(vcf, tmp_path / "out" / "calls.vcf.gz", f"{genome}.fai", str(genome), md5s)
    with gzip.open(out, "rt") as fh:
        header = [line.rstrip("\n") for line in fh if line.startswith("#")]
    assert header == [
        "##fileformat=VCFv4.2",
        f"##source=aisci {__version__}",
        "##reference=genome.fa",
        f"##contig=<ID=chrA,length={len(SEQS['chrA'])},md5={md5s['chrA']}>",
        f"##contig=<ID=chrB,length={len(SEQS['chrB'])},md5={md5s['chrB']}>",
        '##INFO=<ID=DP,Number=1,Type=Integer,Description="Depth">',
        '##FORMAT=<ID=GT,Number=1,Type=String,Description="Genotype">',
        "#CHROM\tPOS\tID\tREF\tALT\tQUAL\tFILTER\tINFO\tFORMAT\tS1",
    ]
    assert str(tmp_path) not in "\n".join(header)
    assert _records(out) == _records(vcf) and _records(out).count("\n") == 3
    assert Path(f"{out}.tbi").is_file()
    with pysam.VariantFile(str(out)) as vf:
        assert [r.pos for r in vf.fetch("chrA", 10, 40)] == [30]
        assert [(r.pos, r.alts) for r in vf.fetch("chrB")] == [(7, ("AT",))]
    assert not [p.name for p in out.parent.iterdir() if p.name.startswith(".")]


def test_reheader_refuses_a_record_off_the_reference(tmp_path, genome):
    vcf = _vcf(tmp_path / "in.vcf", genome, chrom="chrZ")
    out = tmp_path / "calls.vcf.gz"
    with pytest.raises(InputError, match="contig 'chrZ'"):
        reheader_vcf(vcf, out, f"{genome}.fai", "genome.fa")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["genome.fa", "genome.fa.fai", "in.vcf"]


def test_reheader_adds_missing_lines_before_chrom(tmp_path, genome):
    vcf = tmp_path / "bare.vcf"
    vcf.write_text("##fileformat=VCFv4.2\n#CHROM\tPOS\tID\tREF\tALT\tQUAL\tFILTER\tINFO\nchrA\t1\t.\tA\tC\t.\t.\t.\n")
    out = reheader_vcf(vcf, tmp_path / "o.vcf.gz", f"{genome}.fai", "genome.fa")
    with gzip.open(out, "rt") as fh:
        lines = fh.read().splitlines()
    assert lines[1:5] == vcf_header_lines(f"{genome}.fai", "genome.fa") and lines[5].startswith("#CHROM")


def main(argv: list[str]) -> int:
    """`aisci provenance ARGV` without the top-level CLI (the subcommand is registered there)."""
    parser = argparse.ArgumentParser(prog="aisci provenance")
    configure_parser(parser)
    return run(parser.parse_args(argv))


def test_cli(tmp_path, genome, capsys):
    cfg = tmp_path / "resolved.json"
    cfg.write_text(json.dumps({"reference": "genome.fa", "threads": 2}))
    sheet = tmp_path / "sheet.csv"
    sheet.write_text("sample,fq1\nS1,a.fq\n")
    info = tmp_path / "pipeline_info"
    assert main(["info", "--out", str(info), "--resolved-config", str(cfg), "--configfile", str(cfg),
                 "--samples", str(sheet), "--run-id", "abc", "--command", "snakemake", "-n", "--cores", "2"]) == 0
    assert (info / "command.txt").read_text() == "snakemake -n --cores 2\n"
    assert (info / "sheet.csv").read_bytes() == sheet.read_bytes()
    assert yaml.safe_load((info / "config.yaml").read_text()) == {"reference": "genome.fa", "threads": 2}
    vcf = _vcf(tmp_path / "in.vcf", genome)
    out = tmp_path / "out.vcf.gz"
    assert main(["header", "--vcf", str(vcf), "--out", str(out), "--fai", f"{genome}.fai"]) == 0
    assert "2 contigs (2 with MD5), reference genome.fa" in capsys.readouterr().out
    assert main(["header", "--vcf", str(vcf), "--out", str(out), "--fai", f"{genome}.fai",
                 "--md5-max-bases", "0", "--reference-name", "GRCh38.fa"]) == 0
    with pysam.VariantFile(str(out)) as vf:
        assert "md5" not in str(vf.header) and "##reference=GRCh38.fa" in str(vf.header)


def test_command_line_read_from_the_snakemake_process(tmp_path):
    """A local rule's job runs under the Snakemake process: its argv is recorded, not passed as a param
    (which would re-run the rule on every new command line, a dry run included)."""
    import subprocess
    import sys

    script = tmp_path / "snakemake"
    script.write_text("import subprocess, sys\n"
                      "code = 'import json; from aisci.pipelines.provenance import snakemake_command; print(json.dumps(snakemake_command()))'\n"
                      "sys.exit(subprocess.run(['bash', '-c', f'{sys.executable} -c \"{code}\"']).returncode)\n")
    out = subprocess.run([sys.executable, str(script), "--profile", "my profile", "-j", "4"], capture_output=True,
                         text=True, check=True).stdout
    assert json.loads(out) == [sys.executable, str(script), "--profile", "my profile", "-j", "4"]
    from aisci.pipelines.provenance import snakemake_command

    assert snakemake_command() == []  # pytest runs under no Snakemake
