"""A small fuzz test of every reader of user files: random bytes, truncations, flipped bytes, dropped or
doubled lines, and random names (shell metacharacters, non-ASCII, 300 characters) in the name fields.

Each reader must succeed or raise an `aisci` error naming the file — never another exception (a
traceback for the user), never hang, never write a file.
"""

from __future__ import annotations

import gzip
import random
import signal
from pathlib import Path
from typing import Callable

import pytest

from aisci.errors import AisciError

CASES = 60  # per reader; seeded, so a failure names a case that replays
NAME_CHARS = "abcXYZ019._-|:*#$()`;&<>'\" \t,=\\/{}[]~!?@^%+é\u00a0"


def random_name(rng: random.Random) -> str:
    kind = rng.randrange(6)
    if kind == 0:
        return "x" * rng.choice([64, 65, 255, 300])
    if kind == 1:
        return rng.choice(["-x", "--help", ".", "..", "", "cohort", "$(touch PWNED)", "HLA-A*01:01:01:01"])
    return "".join(rng.choice(NAME_CHARS) for _ in range(rng.randrange(1, 20)))


def mutate(seed_text: bytes, names: list[bytes], rng: random.Random) -> bytes:
    kind = rng.randrange(6)
    if kind == 0:
        return bytes(rng.randrange(256) for _ in range(rng.randrange(0, 3000)))
    if kind == 1:
        return seed_text[: rng.randrange(len(seed_text) + 1)]
    if kind == 2:
        data = bytearray(seed_text)
        for _ in range(rng.randrange(1, 8)):
            data[rng.randrange(len(data))] = rng.randrange(256)
        return bytes(data)
    if kind == 3:
        lines = seed_text.splitlines(keepends=True)
        i = rng.randrange(len(lines))
        return b"".join(lines[:i] + (lines[i:i + 1] * 2 if rng.random() < 0.5 else []) + lines[i + 1:])
    data = seed_text
    for name in rng.sample(names, k=min(len(names), rng.randrange(1, 3))):
        data = data.replace(name, random_name(rng).encode("utf-8"), 1)
    return data


def files(folder: Path) -> dict[str, int]:
    return {str(p.relative_to(folder)): p.stat().st_size for p in folder.rglob("*")}


def _timeout(signum, frame):
    raise TimeoutError("the reader hung")


def fuzz(tmp_path: Path, name: str, seed_text: bytes, names: list[bytes], read: Callable[[Path], object],
         gz: bool = False, extra: Callable[[Path], None] | None = None) -> None:
    problems = []
    for case in range(CASES):
        rng = random.Random(f"{name}-{case}")
        folder = tmp_path / f"case{case}"
        folder.mkdir()
        data = mutate(seed_text, names, rng)
        path = folder / name
        if gz and rng.random() < 0.5:
            data = gzip.compress(data)
            if rng.random() < 0.3:
                data = data[: rng.randrange(len(data) + 1)]
        path.write_bytes(data)
        if extra:
            extra(folder)
        before = files(folder)
        signal.signal(signal.SIGALRM, _timeout)
        signal.alarm(20)
        try:
            read(path)
        except AisciError as exc:
            if path.name not in str(exc) and name not in str(exc):
                problems.append(f"case {case}: the message does not name the file: {exc}")
        except Exception as exc:  # noqa: BLE001 - anything else is what this test is for
            problems.append(f"case {case}: {type(exc).__name__}: {exc}"[:300])
        finally:
            signal.alarm(0)
        if files(folder) != before:
            problems.append(f"case {case}: files written: {sorted(set(files(folder)) - set(before))}")
    assert not problems, "\n".join(problems)


def test_sample_sheet(tmp_path, sim_data):
    from aisci.pipelines.sheet import read_sample_sheet

    fq1, fq2 = sim_data.reads["S1"]
    text = f"sample\tfq1\tfq2\tbam\ttruth\n# a comment\nS1\t{fq1}\t{fq2}\t\t\nS2\t{fq1}\t{fq2}\t\t\n".encode()
    fuzz(tmp_path, "samples.tsv", text, [b"S1", b"S2", b"fq1", str(fq2).encode()], read_sample_sheet)


def test_config(tmp_path, sim_data):
    from aisci import yamlfile
    from aisci.schema import validate_config

    text = (f"samples: {sim_data.sample_sheet}\nreference: {sim_data.reference}\naligner: bwa\n"
            "calling:\n  chunk_size: 1000000\n  joint: true\nfilter: {min_qual: 20, min_depth: 3}\n"
            "protein:\n  model: esm2_t6_8M\n").encode()

    def read(path):
        validate_config(yamlfile.load(path) or {}, path.name)

    fuzz(tmp_path, "config.yaml", text, [b"bwa", b"esm2_t6_8M", b"1000000", b"20"], read)


def test_reference_fasta(tmp_path):
    from aisci.germline.reference import read_contigs

    rng = random.Random(0)
    seq = "".join(rng.choice("ACGTN") for _ in range(600))
    text = "".join(f">{n} desc\n" + "".join(seq[i:i + 60] + "\n" for i in range(0, 600, 60))
                   for n in ("chr1", "chr2", "chrM")).encode()
    fuzz(tmp_path, "genome.fa", text, [b"chr1", b"chr2", b"chrM"], read_contigs, gz=True)


def test_reference_with_an_index(tmp_path):
    """The same FASTA with its (then damaged) .fai beside it, newer than the FASTA."""
    import os

    import pysam

    from aisci.germline.reference import read_contigs

    good = tmp_path / "good.fa"
    rng = random.Random(1)
    good.write_text("".join(f">{n}\n" + "".join(rng.choice("ACGT") for _ in range(150)) + "\n" for n in ("a", "b")))
    pysam.faidx(str(good))
    fai_text = Path(f"{good}.fai").read_bytes()

    def beside(folder):
        fa = folder / "genome.fa"
        fa.write_bytes(good.read_bytes())
        later = fa.stat().st_mtime + 10
        os.utime(folder / "genome.fa.fai", (later, later))

    fuzz(tmp_path, "genome.fa.fai", fai_text, [b"a\t", b"b\t", b"150"], lambda fai: read_contigs(fai.with_suffix("")),
         extra=beside)


def test_cohort_vcf(tmp_path):
    from aisci.cohort.vcf import read_calls

    text = (b"##fileformat=VCFv4.2\n##contig=<ID=chr1,length=1000>\n"
            b"#CHROM\tPOS\tID\tREF\tALT\tQUAL\tFILTER\tINFO\tFORMAT\tS1\n"
            b"chr1\t10\t.\tA\tG\t50\tPASS\tDP=10\tGT:AD:DP:GQ\t0/1:5,5:10:40\n"
            b"chr1\t20\t.\tTCC\tT,TC\t60\tLowQual\t.\tGT:AD\t1/2:0,3,4\n"
            b"chr1\t30\t.\tC\tA\t.\t.\t.\tGT\t1|1\n")
    fuzz(tmp_path, "S1.vcf", text, [b"chr1", b"0/1", b"1/2", b"10", b"TCC"], lambda p: list(read_calls(p, "S1")),
         gz=True)


def test_cohort_manifest(tmp_path):
    from aisci.cohort.manifest import read_manifest

    text = b"sample\tvcf\nS1\ta.vcf.gz\nS2\tb.vcf.gz\n"
    fuzz(tmp_path, "manifest.tsv", text, [b"S1", b"S2", b"a.vcf.gz"], lambda p: read_manifest(p, check_files=False))


def test_protein_fasta(tmp_path):
    from aisci.protein.proteins import read_proteins

    text = b">sp|P01|ALPHA desc\nMKTAYIAKQRQISFVKSHFSRQ\nLEERLGLIEV*\n>beta\nMSDNGPQNQRNAPRITFGG\n"
    fuzz(tmp_path, "proteins.fa", text, [b"sp|P01|ALPHA", b"beta"], read_proteins, gz=True)


@pytest.mark.parametrize("loader", ["splice", "protein"])
def test_gene_annotation(tmp_path, sim_data, loader):
    from aisci.protein.transcripts import load_transcripts
    from aisci.splice.annotation import load_annotation

    text = b"".join(sim_data.annotation.read_bytes().splitlines(keepends=True)[:40])
    read = (lambda p: load_annotation(str(p))) if loader == "splice" else load_transcripts
    fuzz(tmp_path, "genes.gff3", text, [b"chr1", b"G00002", b"CDS", b"Parent="], read)
