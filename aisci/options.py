"""One spelling per concept on the command line: the options several subcommands share, defined once.

Every subcommand that runs a model takes ``--device``, ``--threads``, ``--batch-size`` and
``--precision`` from here; every one that reads the site's model store takes ``--model-store``, and
every one that loads SpliceAI takes ``--splice-weights``. ``--store`` is the cohort store only, and
``--config`` is always Snakemake's: ``KEY=VALUE`` overrides (files go with ``--configfile``).
An old spelling gets a one-line error naming the new one (`renamed`), before anything runs.
"""

from __future__ import annotations

import argparse
import re

DEVICE = re.compile(r"auto|cpu|cuda(:\d+)?")
MODEL_STORE_HELP = "the site's model store (default: $AISCI_MODELS)"

# subcommand -> {old option: what to write instead}; checked before the arguments are parsed.
RENAMED: dict[str, dict[str, str]] = {
    "plm": {"--store": "--model-store", "--half": "--precision fp16"},
    "models": {"--store": "--model-store"},
    "splice": {"--weights": "--splice-weights"},
    "context": {"--batch": "--batch-size"},
    "validate": {"--set": "--config KEY=VALUE"},
    "provenance": {"--config-json": "--resolved-config-json"},
    "profile": {"--partitions": "--site"},
    "plan": {"--sites": "--site"},
    "simulate-cluster": {"--sites": "--site"},
}


def renamed(command: str, argv: list[str]) -> str | None:
    """The message for the first old spelling in ``argv`` of ``command``, or None."""
    old = RENAMED.get(command, {})
    for arg in argv:
        name = arg.split("=", 1)[0]
        if name in old:
            return f"{name} is now {old[name]}"
    return None


def device(text: str) -> str:
    """argparse type of ``--device``: auto, cpu, cuda or cuda:N."""
    if not DEVICE.fullmatch(text):
        raise argparse.ArgumentTypeError(f"{text!r}: expected auto, cpu, cuda or cuda:N")
    return text


def add_device(parser: argparse.ArgumentParser) -> None:
    """``--device`` (default auto: CUDA when torch sees one, else the CPU)."""
    parser.add_argument("--device", type=device, default="auto",
                        help="auto (CUDA when visible, else CPU), cpu, cuda, cuda:N (default auto)")


def add_threads(parser: argparse.ArgumentParser, what: str = "CPU threads") -> None:
    """``--threads`` (default 1, as samtools and bcftools: a job uses what its rule was given)."""
    parser.add_argument("--threads", type=int, default=1, help=f"{what} (default 1)")


def add_batch_size(parser: argparse.ArgumentParser, default: int, what: str) -> None:
    """``--batch-size``: ``what`` per forward pass (or device batch)."""
    parser.add_argument("--batch-size", type=int, default=default, help=f"{what} (default {default})")


def add_precision(parser: argparse.ArgumentParser, choices: tuple[str, ...] = ("fp32", "bf16", "fp16")) -> None:
    """``--precision``: fp32 everywhere; reduced precisions only on CUDA."""
    parser.add_argument("--precision", choices=choices, default="fp32",
                        help=f"{', '.join(choices)}: fp32 everywhere, the others only on CUDA (default fp32)")


def add_model_store(parser: argparse.ArgumentParser) -> None:
    """``--model-store``: the site's store of protein language models."""
    parser.add_argument("--model-store", help=MODEL_STORE_HELP)


def add_splice_weights(parser: argparse.ArgumentParser) -> None:
    """``--splice-weights``: the folder holding spliceai1..5.h5."""
    parser.add_argument("--splice-weights", metavar="DIR",
                        help="folder with spliceai1..5.h5 (default: $AISCI_SPLICEAI_WEIGHTS, else the spliceai package's)")
