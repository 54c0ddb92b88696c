"""Small file helpers: atomic outputs, gzip/bgzip reading, the one readable-file check and SHA-256."""

from __future__ import annotations

import contextlib
import glob
import gzip
import os
import tempfile
from pathlib import Path
from typing import IO, Iterator

from aisci.errors import InputError

GZIP_MAGIC = b"\x1f\x8b"


def is_gzipped(path: str | os.PathLike) -> bool:
    """Return True when the file starts with the gzip magic bytes (gzip or bgzip)."""
    with open(path, "rb") as fh:
        return fh.read(2) == GZIP_MAGIC


def read_utf8(path: str | os.PathLike, name: str | None = None) -> str:
    """A user's small text file (sample sheet, manifest) as text; a byte-order mark is dropped.

    Args:
        path: the file.
        name: how messages name it (default: the path).

    Raises:
        InputError: unreadable, or not UTF-8 (naming the line and the byte).
    """
    name = name or str(path)
    try:
        raw = Path(path).read_bytes()
    except OSError as exc:
        raise InputError(f"{name}: cannot read ({exc.strerror or exc})") from None
    try:
        return raw.decode("utf-8-sig")  # Excel's 'UTF-8' export starts with a byte-order mark
    except UnicodeDecodeError as exc:
        line = raw.count(b"\n", 0, exc.start) + 1
        raise InputError(f"{name} line {line}: not UTF-8 text (byte {exc.start}: {exc.reason})") from None


def check_readable(path: str | os.PathLike, where: str) -> Path:
    """Return ``path`` when it is a readable regular file; the one check every input file goes through.

    Args:
        path: the file, as the user gave it.
        where: what names it in the message: the config key, sheet line and column, or option.

    Raises:
        InputError: '{where}: file not found: {path}' (or not a regular file, or not readable).
    """
    p = Path(path)
    if not p.exists():
        raise InputError(f"{where}: file not found: {path}")
    if not p.is_file():
        raise InputError(f"{where}: not a regular file: {path}")
    if not os.access(p, os.R_OK):
        raise InputError(f"{where}: file not readable: {path}")
    return p


def sha256(path: str | os.PathLike) -> str:
    """Hex SHA-256 of a file, read in 1 MiB blocks."""
    import hashlib

    h = hashlib.sha256()
    with open(path, "rb") as fh:
        for block in iter(lambda: fh.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


def open_text(path: str | os.PathLike) -> IO[str]:
    """Open a plain or gzip/bgzip-compressed text file for reading."""
    if is_gzipped(path):
        return gzip.open(path, "rt")
    return open(path, "rt")


@contextlib.contextmanager
def atomic_output(path: str | os.PathLike, suffix: str | None = None) -> Iterator[Path]:
    """Yield a temporary path next to ``path``; move it into place only on success.

    Nothing half-written is ever left at ``path``: on an exception the temporary file is
    removed and the exception propagates. A temporary file of ``path`` that a killed earlier
    attempt left (SIGKILL, scancel: no cleanup runs) is removed first; an output has one writer at
    a time (Snakemake runs one job per output).

    Args:
        path: final output path.
        suffix: suffix of the temporary file (defaults to the final file's own suffixes,
            so that tools which sniff the extension, such as bgzip/tabix, still work).

    Yields:
        The temporary path to write to.
    """
    final = Path(path)
    final.parent.mkdir(parents=True, exist_ok=True)
    if suffix is None:
        suffix = "".join(final.suffixes)
    for stale in final.parent.glob(f".{glob.escape(final.name)}.*.tmp{glob.escape(suffix)}"):
        stale.unlink(missing_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{final.name}.", suffix=f".tmp{suffix}", dir=final.parent)
    os.close(fd)
    tmp_path = Path(tmp)
    # mkstemp creates 0600 files; give the output the permissions an ordinary open() would
    umask = os.umask(0)
    os.umask(umask)
    tmp_path.chmod(0o666 & ~umask)
    try:
        yield tmp_path
        os.replace(tmp_path, final)
    finally:
        if tmp_path.exists():
            tmp_path.unlink()


def user_cache_dir() -> Path:
    """This user's aisci cache folder: ``$XDG_CACHE_HOME/aisci``, or ``~/.cache/aisci`` (a relative
    $XDG_CACHE_HOME is ignored, as the XDG rule says)."""
    base = os.environ.get("XDG_CACHE_HOME", "")
    if not os.path.isabs(base):
        base = os.path.join(os.path.expanduser("~"), ".cache")
    return Path(base) / "aisci"


def write_json(path: str | os.PathLike, body: object) -> None:
    """Write ``body`` as indented, key-sorted JSON to ``path``, atomically (`atomic_output`)."""
    import json

    with atomic_output(path) as tmp:
        tmp.write_text(json.dumps(body, indent=2, sort_keys=True) + "\n")
