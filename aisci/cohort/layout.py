"""The cohort store's folders: what store.json may name, and staging folders held by their owners.

store.json is a file a user can edit, and a commit deletes the files it replaces: every path in it is checked,
when it is read, to have the form a commit writes and to stay inside the store (`check_state`). A staged sample's
folder holds an ``owner.lock`` flock'd by the process that staged it until it is committed or discarded, so a
commit can remove what killed ingests left (`sweep_staging`) and never what a live one holds.
"""

from __future__ import annotations

import fcntl
import os
import re
import shutil
import time
import uuid
from pathlib import Path
from typing import Any

from aisci.errors import InputError
from aisci.names import check_stored_name

STAGING_MAX_AGE = 6 * 3600.0
OWNER = "owner.lock"  # in a staging folder: flock held by the process that staged it
STAGING_NAME = re.compile(r"[0-9a-f]{32}")  # a staging folder's name (uuid4 hex)
FINGERPRINT = re.compile(r"[0-9a-f]{64}")  # sha256 of a VCF, in hex
LAYOUT = ("calls", "variants", ".staging")  # the store's folders: never links (a link would lead deletions out)

# The staging folders this process holds, by name -> the descriptor holding the flock of their OWNER file.
# Kept here, not in a CohortStore: a second CohortStore of the same root in this process must see them as held
# (on NFS, flock is a POSIX lock that never conflicts within one process).
_HELD: dict[str, int] = {}


def check_state(root: Path, state: dict[str, Any], path: Path) -> None:
    """Refuse a store.json whose paths are not of the forms a commit writes, or lead out of the store.

    A commit joins them to the root and deletes the ones it replaces, so an edited ``"variants":
    "../x"`` would remove a folder beside the store: every one is checked here, before any use.

    Raises:
        InputError: naming store.json and the field (``samples.S1.file``).
    """
    def bad(field: str, value: Any, what: str) -> None:
        shown = value if not isinstance(value, str) or len(value) <= 200 else value[:197] + "..."
        raise InputError(f"{path}: {field}: {shown!r} {what}")

    generation = state.get("generation")
    if type(generation) is not int or generation < 0:
        bad("generation", generation, "is not a whole number >= 0")
    variants = state.get("variants")
    if variants is not None and variants != f"variants/v{generation}":
        bad("variants", variants, outside(root, variants) or f"is not variants/v{generation} (of the generation)")
    samples = state.get("samples")
    if not isinstance(samples, dict):
        bad("samples", type(samples).__name__, "is not an object of sample entries")
    for name, entry in samples.items():
        check_stored_name(name, f"{path}: samples: sample")
        where = f"samples.{name}"
        if not isinstance(entry, dict):
            bad(where, entry, "is not an object")
        fp, file, chroms = entry.get("fingerprint"), entry.get("file"), entry.get("chroms")
        if not isinstance(fp, str) or not FINGERPRINT.fullmatch(fp):
            bad(f"{where}.fingerprint", fp, "is not a sha256 in hex")
        if not isinstance(entry.get("vcf"), str):
            bad(f"{where}.vcf", entry.get("vcf"), "is not a path")
        if not isinstance(chroms, list) or not all(isinstance(c, str) and c for c in chroms):
            bad(f"{where}.chroms", chroms, "is not a list of chromosome names")
        if file is None:
            if chroms:
                bad(f"{where}.file", file, f"but the sample has calls on {chroms[0]}")
        elif file not in (f"calls/{name}.{fp[:8]}.parquet", f"calls/{name}.{fp[:32]}.parquet"):
            bad(f"{where}.file", file, outside(root, file)
                or f"is not calls/{name}.<the first 8 hex digits of its fingerprint>.parquet")
    # the forms above admit no '..' and no '/' in a name: a path can only leave through a linked folder
    for folder in (*LAYOUT, *([variants] if variants else [])):
        check_folder(root, folder)

def outside(root: Path, value: Any) -> str | None:
    """'is outside the store' when the relative path ``value`` leads out of the root, else None."""
    if not isinstance(value, str):
        return None
    base = root.resolve()
    if os.path.isabs(value) or not (base / value).resolve().is_relative_to(base):
        return "is outside the store"
    return None

def check_folder(root: Path, folder: str) -> None:
    """Require ``root/folder`` to be missing or a real folder of the store (no link on the way).

    Raises:
        InputError: naming the folder and where it leads.
    """
    base = root.resolve()
    real = (base / folder).resolve()
    if real != base / folder:
        where = "outside the store" if not real.is_relative_to(base) else "elsewhere in the store"
        raise InputError(f"{root / folder}: a link to {real}, {where} (a store's folders are never links)")


def new_staging(root: Path) -> Path:
    """A new, empty staging folder whose owner lock this process holds (until `drop_staging`)."""
    check_folder(root, ".staging")
    top = root / ".staging"
    top.mkdir(exist_ok=True)
    staging = top / uuid.uuid4().hex
    staging.mkdir()
    part = staging / (OWNER + ".part")
    fd = os.open(part, os.O_RDWR | os.O_CREAT | os.O_EXCL, 0o666)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX)  # nobody else opens a .part: granted at once
        # the lock file gets its name only once locked, so a committer never sees it free while we live;
        # a folder without it (a kill before this line) is left to the age rule of `collect_garbage`
        os.rename(part, staging / OWNER)
    except BaseException:
        os.close(fd)
        shutil.rmtree(staging, ignore_errors=True)
        raise
    _HELD[staging.name] = fd
    return staging


def sweep_staging(root: Path, max_age: float | None) -> list[Path]:
    """Delete the staging folders of dead owners, and those (of this process or ownerless) older than
    ``max_age`` seconds (None: never by age). Call under the store lock, after `check_state` checked the layout.

    Returns:
        What was deleted.
    """
    top = root / ".staging"
    try:
        entries = list(os.scandir(top))
    except FileNotFoundError:
        return []
    removed = []
    now = time.time()
    for entry in entries:
        path = Path(entry.path)
        try:
            old = max_age is not None and now - entry.stat(follow_symlinks=False).st_mtime >= max_age
        except FileNotFoundError:  # removed meanwhile by its owner
            continue
        if entry.is_symlink() or not entry.is_dir(follow_symlinks=False) or not STAGING_NAME.fullmatch(
                entry.name):  # not a staging folder (a kill inside `new_staging`, or not ours)
            if old:
                remove(path)
                removed.append(path)
            continue
        if entry.name in _HELD:  # this process's own: the caller decides by age
            doomed = old
        else:  # None: no owner lock (staged by an older version, or killed while taking its lock)
            alive = owner_alive(path / OWNER)
            doomed = alive is False or (alive is None and old)
        if doomed:
            drop_staging(path)
            removed.append(path)
    return removed


def owner_alive(lock: Path) -> bool | None:
    """Whether the process that staged a folder still holds its owner lock; None when there is no lock file."""
    try:
        fd = os.open(lock, os.O_RDWR | os.O_NOFOLLOW)
    except OSError:  # missing, or a link: no lock a stager made
        return None
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except OSError:  # held (or the file system cannot tell: assume held)
        return True
    finally:
        os.close(fd)
    return False


def drop_staging(staging: Path) -> None:
    """Delete a staging folder, then release it if this process held it."""
    shutil.rmtree(staging, ignore_errors=True)
    fd = _HELD.pop(staging.name, None)
    if fd is not None:
        os.close(fd)


def remove(path: Path) -> None:
    """Delete a file, link or folder tree; a link is removed itself, never followed."""
    if path.is_symlink() or (path.exists() and not path.is_dir()):
        path.unlink()
    elif path.exists():
        shutil.rmtree(path, ignore_errors=True)
