"""Verification stamps of staged models, kept in the user's own cache: they spare `check_model` re-hashing
gigabytes on every Snakefile parse, and live outside the store so that whoever can alter the weights cannot
forge one."""

from __future__ import annotations

import contextlib
import hashlib
import json
import logging
import os
import stat
from pathlib import Path
from typing import Any

from aisci.fileio import atomic_output, user_cache_dir

log = logging.getLogger(__name__)

STAMPS = "model-checks"  # folder of the stamps in the user's cache (see `stamp_dir`)
FORMAT = 1


def stamp_dir() -> Path:
    """This user's folder of verification stamps: ``$XDG_CACHE_HOME/aisci/model-checks`` (``~/.cache/...``).

    A stamp records, per file of one model, the SHA-256 the manifest expects and the file's device, inode, size,
    mtime_ns and ctime_ns when aisci last hashed it and found that SHA-256; `check_model` skips re-hashing a file
    only while all of them are unchanged. Stamps live here, not in the store, because a stamp in the store could
    be rewritten by whoever alters the weights. A stamp is used only when this user owns it and its folder and
    nobody else can write them. Residual trust: the user's own cache (the user can forge a stamp for themselves),
    the manifest (see the module docstring) and the file system's ctime; `aisci models verify` never uses stamps.
    """
    return user_cache_dir() / STAMPS


def stamp_path(model_dir: Path, files: dict[str, Any]) -> Path:
    """The stamp of one model folder and manifest record (``files``): another record means another stamp."""
    key = json.dumps([str(model_dir.resolve()), files], sort_keys=True)
    return stamp_dir() / f"{hashlib.sha256(key.encode()).hexdigest()}.json"


def read_stamp(path: Path) -> dict[str, Any]:
    """The files a stamp vouches for; {} when there is none, or when it or its folder is not this user's alone."""
    try:
        folder, st = os.stat(path.parent), os.lstat(path)
    except OSError:
        return {}
    uid = os.getuid()
    if not stat.S_ISREG(st.st_mode) or {folder.st_uid, st.st_uid} != {uid} or (folder.st_mode | st.st_mode) & 0o022:
        log.warning("ignoring the verification stamp %s: it or its folder is not yours alone (writable by others "
                    "or owned by someone else); every check re-hashes the model", path)
        return {}
    with contextlib.suppress(OSError, ValueError):
        data = json.loads(path.read_bytes())
        if isinstance(data, dict) and data.get("format") == FORMAT and isinstance(data.get("files"), dict):
            return data["files"]
    return {}


def write_stamp(path: Path, model_dir: Path, files: dict[str, Any]) -> None:
    """Record that aisci hashed ``files`` of ``model_dir`` and found the manifest's SHA-256 (0600, folder 0700)."""
    try:
        path.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
        with atomic_output(path) as tmp:
            tmp.write_text(json.dumps({"format": FORMAT, "model": str(model_dir), "files": files}, indent=1,
                                      sort_keys=True))
            tmp.chmod(0o600)
    except OSError as exc:  # no writable cache: every check re-hashes
        log.debug("cannot write the verification stamp %s (%s)", path, exc)
