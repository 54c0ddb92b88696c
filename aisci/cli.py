"""The `aisci` command line: one subcommand per pipeline stage, each a thin wrapper over a core function."""

from __future__ import annotations

import argparse
import importlib
import logging
import sys
from typing import Sequence

from aisci import __version__
from aisci.errors import AisciError
from aisci.options import renamed

# subcommand -> (module, one-line help). Each module provides
# `configure_parser(parser)` and `run(args) -> int`, and calls a core function with explicit
# arguments. Modules keep heavy imports (numpy, pysam) inside functions so the CLI starts fast.
SUBCOMMANDS: dict[str, tuple[str, str]] = {
    "init": ("aisci.pipelines.project", "write a project directory: config, sample sheet, profile, Snakefile"),
    "run": ("aisci.pipelines.launch", "run an installed pipeline with Snakemake in the working directory"),
    "provenance": ("aisci.pipelines.provenance", "record what a run is made of (pipeline_info); stamp VCF headers with aisci, reference and contigs"),
    "simulate": ("aisci.demo.germline", "simulate a reference, a diploid truth set and paired reads"),
    "evaluate": ("aisci.germline.evaluate", "compare a call VCF with a truth VCF (precision/recall/F1)"),
    "validate": ("aisci.pipelines.inputs", "validate config.yaml and the sample sheet without running anything"),
    "check-reads": ("aisci.germline.reads", "check a FASTQ pair end to end and write read statistics"),
    "regions": ("aisci.germline.regions", "write the calling scatter plan's regions files (checked against the start-up plan)"),
    "call": ("aisci.germline.calling", "call one group of chunks: bcftools mpileup | call per chunk on the job's threads, in order"),
    "align": ("aisci.germline.align", "align paired reads, fix mates, sort and mark duplicates"),
    "profile": ("aisci.slurm.profile", "write a Slurm profile from a short description of a site's partitions"),
    "usage": ("aisci.slurm.usage", "utilisation report of a run from Slurm accounting (sacct)"),
    "report": ("aisci.report.cli", "one self-contained HTML page of a run: QC, calls, accuracy, AI effects, cluster use"),
    "context": ("aisci.germline.context", "sequence-context features of variant calls, on the GPU when visible"),
    "gather": ("aisci.gather", "concatenate a callset's scattered VCF or Parquet parts in order"),
    "splice": ("aisci.splice.cli", "SpliceAI splice-effect scores (PyTorch port of the official models)"),
    "annotate": ("aisci.protein.annotate", "coding consequences of VCF variants on every overlapping transcript (HGVS p.)"),
    "plm": ("aisci.protein.cli", "ESM protein language model scores, embeddings and mutagenesis maps"),
    "models": ("aisci.protein.models", "the site's model store: list, pull, add, verify protein language models"),
    "plan": ("aisci.placement.cli", "place every rule on CPU nodes, GPU queues and partner centres; write the profile"),
    "simulate-cluster": ("aisci.placement.simcli", "simulate the sites running a workflow: static mapping vs the plan"),
    "reanalyze": ("aisci.cohort.reanalyze", "ingest a cohort's VCFs into the Parquet store and re-score new variants on Dask"),
    "cohort": ("aisci.cohort.cli", "the cohort store: ingest a shard, score, query, info, simulate"),
    "catalog": ("aisci.catalog.cli", "versioned pipeline releases: lint, publish, list, show, install, test"),
}


def subcommand(argv: Sequence[str]) -> str | None:
    """The subcommand ``argv`` names (its first word that is not an option), if it is one."""
    words = [a for a in argv if not a.startswith("-")][:1]
    return words[0] if words and words[0] in SUBCOMMANDS else None


def create_parser(argv: Sequence[str] | None = None) -> argparse.ArgumentParser:
    """Build the top-level parser with every subcommand registered.

    With ``argv`` naming a subcommand, only that subcommand's module is imported to configure its
    options (the others are listed with their help line): importing all of them costs ~0.25 s, paid by
    every job of a pipeline.
    """
    parser = argparse.ArgumentParser(prog="aisci", description=__doc__)
    parser.add_argument("--version", action="version", version=f"aisci {__version__}")
    parser.add_argument("-v", "--verbose", action="store_true", help="debug logging")
    # -v also after the subcommand (`aisci splice score -v ...`); SUPPRESS keeps a -v given before it
    verbose = argparse.ArgumentParser(add_help=False)
    verbose.add_argument("-v", "--verbose", action="store_true", default=argparse.SUPPRESS, help="debug logging")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)
    only = subcommand(argv or [])
    for name, (module, help_text) in SUBCOMMANDS.items():
        sp = sub.add_parser(name, help=help_text, description=help_text, parents=[verbose])
        sp.set_defaults(_module=module)
        if only in (None, name):
            importlib.import_module(module).configure_parser(sp)
            _describe_leaves(sp, verbose)
    return parser


def _describe_leaves(parser: argparse.ArgumentParser, verbose: argparse.ArgumentParser) -> None:
    """Give each nested subcommand (`aisci plm score`) its help line as description, and -v."""
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            helps = {a.dest: a.help for a in action._choices_actions}
            for name, leaf in action.choices.items():
                if leaf.description is None:
                    leaf.description = helps.get(name)
                if not any("--verbose" in a.option_strings for a in leaf._actions):
                    leaf.add_argument("-v", "--verbose", action="store_true", default=argparse.SUPPRESS,
                                      help="debug logging")
                _describe_leaves(leaf, verbose)


def run(args: argparse.Namespace) -> int:
    """Dispatch parsed arguments to the subcommand's module; return the exit status."""
    module = importlib.import_module(args._module)
    return int(module.run(args) or 0)


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of the `aisci` console script."""
    argv = sys.argv[1:] if argv is None else list(argv)
    command = subcommand(argv)
    if command and (problem := renamed(command, argv)):  # an old spelling: say the new one, run nothing
        print(f"aisci {command}: error: {problem}", file=sys.stderr)
        return 2
    args = create_parser(argv).parse_args(argv)
    logging.basicConfig(
        level=logging.DEBUG if args.verbose else logging.INFO,
        format="%(asctime)s aisci %(levelname)s %(message)s",
        stream=sys.stderr,
    )
    try:
        return run(args)
    except AisciError as exc:
        problems = str(exc).split("\n")
        if len(problems) > 1:  # every problem found at once (e.g. a config's), one per line
            print(f"aisci {args.command}: error: {len(problems)} problems:", *[f"  {p}" for p in problems],
                  sep="\n", file=sys.stderr)
        else:
            print(f"aisci {args.command}: error: {exc}", file=sys.stderr)
        return 1


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
