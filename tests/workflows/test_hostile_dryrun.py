"""Hostile and unusual input to the germline workflow: refused with file, line and field before any job,
with no command run from the data and nothing written."""

from __future__ import annotations

import gzip
import os

import pytest

from tests.conftest import run_snakemake, write_config


def _reference(sim_data, tmp_path, rename=None, fai=None):
    """The simulated reference, plain, with chr1 renamed; optionally a (newer) .fai beside it."""
    ref = tmp_path / "genome.fa"
    with gzip.open(sim_data.reference, "rt") as fh:
        text = fh.read()
    ref.write_text(text.replace(">chr1\n", f">{rename}\n") if rename else text)
    if fai is not None:
        (tmp_path / "genome.fa.fai").write_text(fai)
        later = ref.stat().st_mtime + 10
        os.utime(tmp_path / "genome.fa.fai", (later, later))
    return ref


def _refused(tmp_path, cfg, *args):
    workdir = tmp_path / "run"
    workdir.mkdir()
    res = run_snakemake(workdir, "--cores", "1", "--configfile", str(cfg), *args, timeout=120)
    assert res.returncode != 0
    assert "Traceback" not in res.stderr, res.stderr
    assert not (workdir / "results").exists() and not (workdir / "resources").exists()
    assert not list(tmp_path.rglob("PWNED")) and not list(tmp_path.rglob("pwned"))
    return res.stderr


@pytest.mark.parametrize(
    "contig, message",
    [
        ("chr1$(touch${IFS}PWNED)", "genome.fa line 1: sequence name 'chr1$(touch${IFS}PWNED)' breaks the SAM "
                                    "specification's rule for reference names"),
        ("chr1,alt", "genome.fa line 1: sequence name 'chr1,alt' breaks the SAM specification's rule"),
        ("chr1|`touch${IFS}PWNED`", "genome.fa line 1: sequence name 'chr1|`touch${IFS}PWNED`' breaks"),
    ],
)
def test_contig_names_outside_the_sam_rule(contig, message, sim_data, tmp_path):
    ref = _reference(sim_data, tmp_path, rename=contig)
    cfg = write_config(tmp_path / "c.yaml", samples=str(sim_data.sample_sheet), reference=str(ref))
    assert message in _refused(tmp_path, cfg)


def test_stale_index_beside_the_reference(sim_data, tmp_path):
    """A .fai newer than its FASTA but from another version of it (rsync -a, cp -p, tar x) used to cut chr1
    to 1,000 bp in the scatter plan: 2 of 57 calls, exit 0."""
    ref = _reference(sim_data, tmp_path, fai="chr1\t1000\t6\t60\t61\nchr2\t150000\t152529\t60\t61\n")
    cfg = write_config(tmp_path / "c.yaml", samples=str(sim_data.sample_sheet), reference=str(ref))
    stderr = _refused(tmp_path, cfg)
    assert "genome.fa.fai line 1: does not match genome.fa: sequence 'chr1': its sequence does not end where the " \
           "index says (1,000 bases) (a stale index? delete it or re-run samtools faidx)" in stderr


def test_nan_threshold_given_on_the_command_line(sim_data, tmp_path):
    cfg = write_config(tmp_path / "c.yaml", samples=str(sim_data.sample_sheet), reference=str(sim_data.reference))
    stderr = _refused(tmp_path, cfg, "--config", "filter={min_qual: .nan}")
    assert "filter.min_qual: nan is not a finite number" in stderr


def test_alias_bomb_in_the_config_file(sim_data, tmp_path):
    """Nine levels of ten aliases: 10**9 values if anything walks it expanded (it took 32 s and 2.2 GB, then
    ran out of memory)."""
    cfg = tmp_path / "c.yaml"
    lines = [f"samples: {sim_data.sample_sheet}", f"reference: {sim_data.reference}", "a: &a [x, x, x, x, x, x, x, x, x, x]"]
    lines += [f"{chr(98 + i)}: &{chr(98 + i)} [{', '.join(['*' + chr(97 + i)] * 10)}]" for i in range(8)]
    lines += ["evaluation: {bed: *i}"]
    cfg.write_text("\n".join(lines) + "\n")
    assert "YAML aliases (&anchor / *alias) are not allowed" in _refused(tmp_path, cfg)


@pytest.mark.parametrize("name", ["-x", "--help", "..", ".", "x" * 65, "S" * 250])
def test_sample_names_that_would_break_jobs(name, sim_data, tmp_path):
    fq1, fq2 = sim_data.reads["S1"]
    sheet = tmp_path / "s.tsv"
    sheet.write_text(f"sample\tfq1\tfq2\n{name}\t{fq1}\t{fq2}\n")
    cfg = write_config(tmp_path / "c.yaml", samples=str(sheet), reference=str(sim_data.reference))
    stderr = _refused(tmp_path, cfg)
    assert "s.tsv line 2: sample " in stderr
    assert ("must match" in stderr) if len(name) <= 64 else (f"{len(name)} characters long (at most 64)" in stderr)
