"""`aisci run PIPELINE [snakemake args...]`: Snakemake on an installed pipeline, from the project directory."""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
from pathlib import Path

from aisci.share import DEFAULT_PIPELINE, PIPELINES, workflow_snakefile


def snakemake_command(pipeline: str, args: list[str], directory: Path) -> list[str]:
    """The Snakemake command `aisci run` executes.

    The germline pipeline runs the project's own Snakefile when there is one (what `aisci init`
    wrote, so that `aisci run germline` and plain `snakemake` are the same run); otherwise, and for
    the other pipelines, the installed pipeline's Snakefile runs in ``directory``.
    """
    own = directory / "Snakefile"
    snakefile = own if pipeline == DEFAULT_PIPELINE and own.is_file() else workflow_snakefile(pipeline)
    return [sys.executable, "-m", "snakemake", "--snakefile", str(snakefile), *args]


def configure_parser(parser: argparse.ArgumentParser) -> None:
    """Options of `aisci run`."""
    parser.add_argument("pipeline", choices=PIPELINES, help="which pipeline")
    parser.add_argument("snakemake_args", nargs=argparse.REMAINDER,
                        help="passed to snakemake as they are (e.g. --profile profile --dry-run)")


def run(args: argparse.Namespace) -> int:
    """Run Snakemake in the working directory; return its exit status."""
    cmd = snakemake_command(args.pipeline, list(args.snakemake_args), Path.cwd())
    print(" ".join(cmd), file=sys.stderr, flush=True)
    env = dict(os.environ)
    # jobs call `aisci` and the tools beside this Python: keep them first on PATH
    env["PATH"] = f"{Path(sys.executable).parent}{os.pathsep}{env.get('PATH', '')}"
    return subprocess.run(cmd, env=env).returncode
