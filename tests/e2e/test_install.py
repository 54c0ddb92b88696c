"""The installed engine: a wheel in a fresh venv outside the repository runs the README's own-data recipe as written.

One run covers both: the wheel is built from this checkout, installed into a new venv, and the
recipe's commands (`aisci init …`, `cd`, `snakemake --profile profile`) run in a directory outside
the checkout, on the small simulated data. The venv borrows the test environment's third-party
packages through a path entry (a full dependency install would take minutes); aisci itself, its
workflows, rules, envs, schemas and profiles come from the wheel only (asserted).
"""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
import sysconfig
from pathlib import Path

import pysam
import pytest

from tests.conftest import REPO

pytestmark = pytest.mark.slow

RECIPE_MARK = "<!-- own-data recipe:"


def readme_recipe() -> str:
    """The README's own-data recipe: the fenced block after its marker."""
    text = (REPO / "README.md").read_text()
    after = text.split(RECIPE_MARK, 1)[1]
    block = re.search(r"```bash\n(.*?)```", after, re.S)
    assert block, "README.md: the own-data recipe block is missing"
    return block.group(1)


def _setuptools_ok() -> bool:
    try:
        from importlib.metadata import version

        return int(version("setuptools").split(".")[0]) >= 77
    except Exception:  # noqa: BLE001
        return False


@pytest.fixture(scope="module")
def wheel_venv(tmp_path_factory) -> Path:
    """A fresh venv holding aisci from a wheel built from this checkout."""
    base = tmp_path_factory.mktemp("wheel")
    # without build isolation when this environment's setuptools can build it (no index needed)
    isolation = ["--no-build-isolation"] if _setuptools_ok() else []
    build = subprocess.run([sys.executable, "-m", "pip", "wheel", "--no-deps", *isolation, "-w", str(base / "dist"),
                            str(REPO)], capture_output=True, text=True)
    assert build.returncode == 0, build.stdout[-3000:] + build.stderr[-3000:]
    wheel = next((base / "dist").glob("aisci-*.whl"))
    venv = base / "venv"
    subprocess.run([sys.executable, "-m", "venv", "--without-pip", str(venv)], check=True)
    py = venv / "bin" / "python"
    inst = subprocess.run([sys.executable, "-m", "pip", "--python", str(py), "install", "--no-deps", "-q", str(wheel)],
                          capture_output=True, text=True)
    assert inst.returncode == 0, inst.stderr[-3000:]
    site = Path(subprocess.run([str(py), "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])"],
                               capture_output=True, text=True, check=True).stdout.strip())
    # third-party packages from the test environment, after the venv's own (so its aisci wins); a
    # plain path entry runs none of that folder's .pth files, so the checkout's editable aisci stays out
    (site / "zz_test_dependencies.pth").write_text(sysconfig.get_paths()["purelib"] + "\n")
    # the console script pip would have installed with snakemake itself
    snakemake = venv / "bin" / "snakemake"
    snakemake.write_text(f"#!{py}\nimport sys\nfrom snakemake.cli import main\nsys.exit(main())\n")
    snakemake.chmod(0o755)
    return venv


def venv_env(venv: Path) -> dict[str, str]:
    env = dict(os.environ)
    env["PATH"] = f"{venv / 'bin'}{os.pathsep}{env['PATH'].replace(str(Path(sys.executable).parent) + os.pathsep, '')}"
    env.pop("PYTHONPATH", None)
    return env


def test_wheel_carries_the_pipelines_and_uses_no_checkout(wheel_venv, tmp_path):
    probe = ("import aisci, aisci.share as s; print(aisci.__file__); print(s.root()); "
             "print(s.workflow_snakefile('protein')); print(s.profile_template('slurm'))")
    out = subprocess.run([str(wheel_venv / "bin" / "python"), "-c", probe], capture_output=True, text=True,
                         cwd=tmp_path, env=venv_env(wheel_venv), check=True).stdout.split()
    for path in out:
        assert Path(path).resolve().is_relative_to(wheel_venv.resolve()), path
    root = Path(out[1])
    for rel in ("rules/call.smk", "envs/bcftools.yaml", "schemas/config.schema.yaml", "profiles/local/config.yaml",
                "workflows/reanalysis/Snakefile", "workflows/germline/demo.yaml", "schemas/pipeline.schema.yaml",
                *(f"workflows/{p}/{f}" for p in ("germline", "protein", "reanalysis") for f in ("pipeline.yaml", "test.yaml"))):
        assert (root / rel).is_file(), rel
    # a platform team lints (and publishes) the installed pipelines, not a checkout's
    lint = subprocess.run([str(wheel_venv / "bin" / "python"), "-m", "aisci.cli", "catalog", "lint", "germline",
                           "--no-test-run"], capture_output=True, text=True, cwd=tmp_path, env=venv_env(wheel_venv))
    assert "germline@1.0.0: 27 checks passed, 2 failed or skipped" in lint.stdout, lint.stdout + lint.stderr
    assert "FAIL" not in lint.stdout


def test_readme_recipe_runs_from_the_wheel(wheel_venv, sim_data, tmp_path):
    """`aisci init` + `snakemake --profile profile` in a project outside the checkout, as the README says."""
    work = tmp_path / "work"
    work.mkdir()
    # the files the recipe names: the reference (with its indexes) and a sample sheet
    for suffix in ("", ".fai", ".gzi"):
        shutil.copy(f"{sim_data.reference}{suffix}", work / f"GRCh38.fa.gz{suffix}")
    sheet = Path(sim_data.sample_sheet)
    rows = [line.split("\t") for line in sheet.read_text().splitlines()]
    rows = [rows[0]] + [[row[0], *(str(sheet.parent / cell) for cell in row[1:])] for row in rows[1:]]
    (work / "samples.tsv").write_text("".join("\t".join(row) + "\n" for row in rows))
    res = subprocess.run(["bash", "-euo", "pipefail", "-c", readme_recipe()], cwd=work, env=venv_env(wheel_venv),
                         capture_output=True, text=True, timeout=1200)
    assert res.returncode == 0, res.stdout[-4000:] + res.stderr[-6000:]
    project = work / "my-project"
    results = project / "results"
    # everything under the project directory, nothing in the checkout's working folders
    assert (project / "logs").is_dir() and (project / "resources" / "reference" / "genome.fa").is_file()
    # the packaged Snakefile of the wheel ran, not the checkout's
    assert str(REPO / "workflows") not in res.stderr and str(REPO / "rules") not in res.stderr
    # two samples: joint calling by default (auto); SpliceAI on the packaged GRCh38 table
    for callset in ("S1", "S2", "cohort"):
        assert (results / "calls" / f"{callset}.vcf.gz.tbi").is_file() and (results / "splice" / f"{callset}.parquet").is_file()
    assert not (results / "protein").exists()  # off until a model is staged
    for sample in ("S1", "S2"):
        metrics = json.loads((results / "eval" / f"{sample}.json").read_text())
        assert metrics["snv"]["recall"] >= 0.95 and metrics["snv"]["precision"] >= 0.98, metrics["snv"]
    # provenance: the VCF header and results/pipeline_info
    with pysam.VariantFile(str(results / "calls" / "S1.vcf.gz")) as vcf:
        header = str(vcf.header)
    assert "##source=aisci " in header and "##reference=GRCh38.fa.gz\n" in header
    contigs = re.findall(r"##contig=<ID=(\w+),length=(\d+),md5=([0-9a-f]{32})>", header)
    fai = [line.split("\t")[:2] for line in (work / "GRCh38.fa.gz.fai").read_text().splitlines()]
    assert [(c, n) for c, n, _ in contigs] == [tuple(x) for x in fai]
    info = results / "pipeline_info"
    versions = json.loads((info / "versions.json").read_text())
    assert re.match(r"\d+\.\d+", versions["tools"]["bcftools"]) and versions["python"]["snakemake"]
    assert (info / "samples.tsv").read_bytes() == (work / "samples.tsv").read_bytes()
    assert "snakemake --profile profile" in (info / "command.txt").read_text()
    assert json.loads((info / "run.json").read_text())["run_id"]
    resolved = (info / "config.yaml").read_text()
    assert "annotation: grch38" in resolved and "joint: auto" in resolved
    splice = json.loads((info / "models.json").read_text())["spliceai"]
    assert len(splice["sha256"]) == 5 and splice["official"]
