"""Releases: a pipeline's files made immutable and content-addressed, published to a catalog, installed from one.

A catalog is a folder of plain files that any web server or shared file system serves, like a package index:

    <catalog>/index.json                      name -> version -> digest, summary, engine range, lint counts
    <catalog>/releases/<digest>/release.json  metadata, every file's SHA-256 and size, lint results, schemas
    <catalog>/releases/<digest>/files/...     the pipeline's files (workflows/<name>/, rules/, envs/)
    <catalog>/sites/<site>.yaml               site descriptions, for "where it can run" on the pages
    <catalog>/index.html, pipelines/<name>/<version>.html   the pages (aisci.catalog.pages)

The digest is the SHA-256 of the release's file list (paths, sizes and SHA-256s, canonical JSON), so a release's
name is its content: a version is published once, and the same version with other content is refused.
"""

from __future__ import annotations

import contextlib
import datetime
import fcntl
import hashlib
import json
import os
import re
import shutil
import urllib.error
import urllib.parse
import urllib.request
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path, PurePosixPath
from typing import Any

from aisci import __version__
from aisci.catalog.metadata import (
    NAME,
    PIPELINE_FILE,
    Pipeline,
    load_schema_file,
    metadata_of,
    newest,
    parse_ref,
    pipeline_files,
    semver_key,
)
from aisci.errors import InputError
from aisci.fileio import sha256 as file_sha256
from aisci.fileio import write_json

FORMAT = 1
INDEX, RELEASE, LOCK = "index.json", "release.json", ".lock"
CATALOGS_ENV = "AISCI_CATALOGS"  # catalogs searched when no --catalog is given (separated by spaces: URLs hold ':')
INSTALL_ENV = "AISCI_PIPELINES"  # where releases are installed (default: $XDG_DATA_HOME/aisci/pipelines)


def canonical_digest(files: dict[str, dict[str, Any]]) -> str:
    """SHA-256 of a release's file list (path -> sha256, size) as canonical JSON: the release's content address."""
    body = json.dumps({k: {"sha256": v["sha256"], "size": v["size"]} for k, v in sorted(files.items())},
                      sort_keys=True, separators=(",", ":"))
    return hashlib.sha256(body.encode()).hexdigest()


def content(pipeline: Pipeline) -> tuple[str, dict[str, Path], dict[str, dict[str, Any]]]:
    """(digest, relpath -> file, relpath -> {sha256, size}) of the pipeline's files as they are now."""
    paths = pipeline_files(pipeline)
    files = {rel: {"sha256": file_sha256(p), "size": p.stat().st_size} for rel, p in paths.items()}
    return canonical_digest(files), paths, files


def safe_relpath(rel: str, where: str) -> PurePosixPath:
    """A release's file path, refused if it is absolute or climbs out (``..``): it is joined to folders we write.

    Raises:
        InputError: naming ``where``.
    """
    path = PurePosixPath(rel)
    if not rel or path.is_absolute() or any(part in ("..", "") for part in rel.split("/")) or "\\" in rel:
        raise InputError(f"{where}: file path {rel!r} is absolute or leaves the release's folder")
    return path


# --- catalogs: a local folder, or a URL serving the same files ---------------------------------------------------
@dataclass(frozen=True)
class Catalog:
    """A catalog to read, by folder or URL."""

    location: str

    @property
    def is_url(self) -> bool:
        return urllib.parse.urlparse(self.location).scheme in ("http", "https", "file")

    def read(self, rel: str) -> bytes:
        """A file of the catalog.

        Raises:
            InputError: it cannot be read, naming it.
        """
        safe_relpath(rel, self.location)
        if self.is_url:
            url = urllib.parse.urljoin(self.location.rstrip("/") + "/", rel)
            try:
                with urllib.request.urlopen(url, timeout=60) as resp:  # noqa: S310 - http(s) or file only
                    return resp.read()
            except (urllib.error.URLError, OSError) as exc:
                raise InputError(f"catalog {self.location}: cannot read {rel} ({exc})") from None
        try:
            return (Path(self.location) / rel).read_bytes()
        except OSError as exc:
            raise InputError(f"catalog {self.location}: cannot read {rel} ({exc.strerror})") from None

    def json(self, rel: str) -> dict[str, Any]:
        """A JSON file of the catalog, refused when it is not an object (a corrupt or half-written file)."""
        try:
            data = json.loads(self.read(rel))
        except ValueError as exc:
            raise InputError(f"catalog {self.location}: {rel} is corrupt (not JSON: {exc})") from None
        if not isinstance(data, dict) or data.get("format") != FORMAT:
            raise InputError(f"catalog {self.location}: {rel} is not an aisci catalog file of format {FORMAT}")
        return data

    def index(self) -> dict[str, Any]:
        """The catalog's index, checked: every name and version path-safe, every digest 64 hex."""
        index = self.json(INDEX)
        pipelines = index.get("pipelines")
        if not isinstance(pipelines, dict):
            raise InputError(f"catalog {self.location}: {INDEX} has no 'pipelines' mapping")
        for name, entry in pipelines.items():
            versions = entry.get("versions") if isinstance(entry, dict) else None
            if not isinstance(versions, dict):
                raise InputError(f"catalog {self.location}: {INDEX}: pipelines.{name} has no 'versions' mapping")
            for version, rel in versions.items():
                parse_ref(f"{name}@{version}")
                digest = rel.get("digest", "") if isinstance(rel, dict) else ""
                if not isinstance(digest, str) or not re.fullmatch(r"[0-9a-f]{64}", digest):
                    raise InputError(f"catalog {self.location}: {INDEX}: {name}@{version} has no valid digest")
                for key in ("summary", "published"):
                    if not isinstance(rel.get(key), str):
                        raise InputError(f"catalog {self.location}: {INDEX}: {name}@{version} has no {key}")
        return index


def catalogs_from(locations: list[str] | None) -> list[Catalog]:
    """The catalogs given, or those of $AISCI_CATALOGS.

    Raises:
        InputError: none given and none set.
    """
    locations = locations or os.environ.get(CATALOGS_ENV, "").split()
    if not locations:
        raise InputError(f"no catalog: give --catalog DIR_OR_URL (several allowed) or set ${CATALOGS_ENV}")
    return [Catalog(str(c)) for c in locations]


@dataclass(frozen=True)
class Found:
    """A release found in a catalog."""

    catalog: Catalog
    name: str
    version: str
    digest: str

    @property
    def ref(self) -> str:
        return f"{self.name}@{self.version}"


def resolve(ref: str, catalogs: list[Catalog]) -> Found:
    """The release ``NAME@VERSION`` names (the first catalog holding it), or NAME's newest release in any catalog
    (a prerelease only when there is no release; the first catalog holding it).

    Raises:
        InputError: an unsafe name or version, or no catalog holds it (naming the versions there are).
    """
    name, version = parse_ref(ref)
    found: list[Found] = []
    for catalog in catalogs:
        versions = catalog.index()["pipelines"].get(name, {}).get("versions", {})
        if version is not None and version in versions:  # the first catalog holding it: the others are not read
            return Found(catalog, name, version, versions[version]["digest"])
        found += [Found(catalog, name, v, e["digest"]) for v, e in versions.items() if version is None]
    if not found:
        known = sorted({v for c in catalogs for v in c.index()["pipelines"].get(name, {}).get("versions", {})},
                       key=semver_key)
        where = ", ".join(c.location for c in catalogs)
        raise InputError(f"{ref}: not in the catalogs ({where})"
                         + (f"; versions there: {', '.join(known)}" if known else f"; no pipeline named {name}"))
    top = newest([f.version for f in found])
    return next(f for f in found if f.version == top)


def read_release(found: Found) -> dict[str, Any]:
    """A release's release.json, checked against its content address.

    Raises:
        InputError: release.json's digest or its file list's digest differs from the index's (tampered).
    """
    record = found.catalog.json(f"releases/{found.digest}/{RELEASE}")
    files = record.get("files")
    if not isinstance(files, dict) or record.get("digest") != found.digest or canonical_digest(files) != found.digest:
        raise InputError(f"catalog {found.catalog.location}: {found.ref}: releases/{found.digest}/{RELEASE} does not "
                         "match its content address (tampered with or corrupt): refused")
    for rel in files:
        safe_relpath(rel, f"{found.ref} {RELEASE}")
    if (record.get("name"), record.get("version")) != (found.name, found.version):
        raise InputError(f"catalog {found.catalog.location}: releases/{found.digest}/{RELEASE} is "
                         f"{record.get('name')}@{record.get('version')}, the index says {found.ref}: refused")
    # the metadata shown and checked (engine range) must be the pipeline.yaml the digest covers, not a copy
    meta_rel = f"workflows/{found.name}/{PIPELINE_FILE}"
    data = found.catalog.read(f"releases/{found.digest}/files/{meta_rel}") if meta_rel in files else b""
    if hashlib.sha256(data).hexdigest() != files.get(meta_rel, {}).get("sha256") or \
            record.get("metadata") != metadata_of(data.decode("utf-8", "replace"), meta_rel):
        raise InputError(f"catalog {found.catalog.location}: {found.ref}: the metadata in {RELEASE} is not that of its "
                         f"{meta_rel} (tampered with or corrupt): refused")
    return record


# --- publishing --------------------------------------------------------------------------------------------------
@contextlib.contextmanager
def locked(catalog: Path) -> Iterator[None]:
    """Hold the catalog's lock: one publisher at a time reads and rewrites its index and pages."""
    catalog.mkdir(parents=True, exist_ok=True)
    with open(catalog / LOCK, "a") as fh:
        fcntl.flock(fh, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(fh, fcntl.LOCK_UN)


def empty_index() -> dict[str, Any]:
    return {"format": FORMAT, "pipelines": {}}


def local_index(catalog: Path) -> dict[str, Any]:
    """A local catalog's index (an empty one for a new catalog)."""
    if not (catalog / INDEX).exists():
        return empty_index()
    return Catalog(str(catalog)).index()


@dataclass(frozen=True)
class Published:
    """The result of a publish."""

    ref: str
    digest: str
    folder: Path
    new: bool  # False: the same content was already published under this version


def _conflict(catalog: Path, name: str, version: str, digest: str, pipeline: Pipeline) -> None:
    """Refuse a version already published with other content."""
    versions = local_index(catalog)["pipelines"].get(name, {}).get("versions", {})
    if version in versions and versions[version]["digest"] != digest:
        raise InputError(f"{name}@{version} is already published in {catalog} with other content (release "
                         f"{versions[version]['digest'][:12]}, yours {digest[:12]}): a published version never "
                         f"changes; raise `version` in {pipeline.relative(pipeline.path)} and add its changelog entry")


def check_publishable(pipeline: Pipeline, catalog: Path) -> None:
    """Refuse, before lint runs anything, a version the catalog already holds with other content.

    Raises:
        InputError: naming the version, both digests and the fix.
    """
    _conflict(Path(catalog).resolve(), pipeline.name, pipeline.version, content(pipeline)[0], pipeline)


def publish(pipeline: Pipeline, catalog: Path, lint: dict[str, Any], *, digest: str | None = None,
            then: Callable[[], None] | None = None) -> Published:
    """Publish the pipeline as an immutable release (the caller has run lint and refuses a failed one).

    The release folder is written whole under a temporary name and renamed into place; the index is rewritten
    atomically under the catalog's lock, so concurrent publishers of different pipelines both land.

    Args:
        pipeline: the pipeline to publish.
        catalog: the catalog folder (created if missing).
        lint: the lint results recorded with the release (`aisci.catalog.lint.summary`).
        digest: the content digest that was linted: the files must still have it (an edit during lint is refused).
        then: called under the catalog's lock once the index is written (the CLI rewrites sites and pages there).

    Returns:
        What was published.

    Raises:
        InputError: the version is already published with different content.
    """
    catalog = Path(catalog).resolve()
    linted = digest
    digest, paths, files = content(pipeline)
    if linted is not None and linted != digest:
        raise InputError(f"{pipeline.relative(pipeline.folder)}: its files changed while lint ran (linted "
                         f"{linted[:12]}, now {digest[:12]}): not published; publish again")
    name, version = pipeline.name, pipeline.version
    parse_ref(f"{name}@{version}")
    folder = catalog / "releases" / digest
    with locked(catalog):
        _conflict(catalog, name, version, digest, pipeline)
        index = local_index(catalog)
        versions = index["pipelines"].setdefault(name, {"versions": {}})["versions"]
        if version in versions:
            if then is not None:
                then()
            return Published(f"{name}@{version}", digest, folder, new=False)
        now = datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds").replace("+00:00", "Z")
        record = {"format": FORMAT, "name": name, "version": version, "digest": digest, "published": now,
                  "publisher_engine": __version__, "metadata": pipeline.meta, "files": files, "lint": lint,
                  "config_schema": load_schema_file(pipeline, "config_schema"),
                  "samples_schema": load_schema_file(pipeline, "samples_schema")}
        if not (folder / RELEASE).is_file():
            _write_release(folder, paths, record)
        versions[version] = {"digest": digest, "published": now, "summary": pipeline.meta["summary"],
                             "engine": pipeline.meta["engine"], "resources": pipeline.meta["resources"],
                             "lint": {"passed": lint["passed"], "checks": lint["passed"] + lint["failed"]}}
        write_json(catalog / INDEX, index)
        if then is not None:
            then()
    return Published(f"{name}@{version}", digest, folder, new=True)


def _write_release(folder: Path, paths: dict[str, Path], record: dict[str, Any]) -> None:
    """Copy the files and release.json into a temporary folder beside ``folder``, check them, rename it into place."""
    tmp = folder.with_name(f".{folder.name}.{uuid.uuid4().hex}.tmp")
    try:
        for rel, src in paths.items():
            dst = tmp / "files" / rel
            dst.parent.mkdir(parents=True, exist_ok=True)
            shutil.copyfile(src, dst)
            if file_sha256(dst) != record["files"][rel]["sha256"]:
                raise InputError(f"{src}: changed while it was being published; publish again")
        (tmp / RELEASE).write_text(json.dumps(record, indent=2, sort_keys=True) + "\n")
        for path in tmp.rglob("*"):
            path.chmod(0o555 if path.is_dir() else 0o444)  # a release never changes
        os.replace(tmp, folder)
    finally:
        if tmp.exists():
            _remove(tmp)


def _remove(path: Path) -> None:
    for p in path.rglob("*"):
        if p.is_dir():
            p.chmod(0o755)
    shutil.rmtree(path)


# --- installing --------------------------------------------------------------------------------------------------
def install_root(explicit: str | os.PathLike[str] | None = None) -> Path:
    """Where releases are installed: ``explicit``, $AISCI_PIPELINES, or ``$XDG_DATA_HOME/aisci/pipelines``."""
    if explicit:
        return Path(explicit).resolve()
    if os.environ.get(INSTALL_ENV):
        return Path(os.environ[INSTALL_ENV]).resolve()
    base = os.environ.get("XDG_DATA_HOME", "")
    if not os.path.isabs(base):
        base = os.path.join(os.path.expanduser("~"), ".local", "share")
    return Path(base) / "aisci" / "pipelines"


def installed_folder(root: Path, name: str, version: str) -> Path:
    """``<root>/<name>/<version>``, the release's installed copy (its root: workflows/, rules/, envs/)."""
    parse_ref(f"{name}@{version}")
    return root / name / version


def verify_installed(folder: Path) -> list[str]:
    """Problems of an installed release: files missing, changed or added to what its release.json records."""
    try:
        record = json.loads((folder / RELEASE).read_text())
    except (OSError, ValueError):
        return [f"{folder}: no readable {RELEASE} (not an installed release)"]
    problems = []
    files = record.get("files", {})
    if canonical_digest(files) != record.get("digest"):
        problems.append(f"{folder / RELEASE}: its file list does not match its digest")
    for rel, meta in sorted(files.items()):
        path = folder / safe_relpath(rel, str(folder))
        if not path.is_file():
            problems.append(f"{path}: missing")
        elif path.stat().st_size != meta["size"] or file_sha256(path) != meta["sha256"]:
            problems.append(f"{path}: changed since install (SHA-256 differs from the release's)")
    for path in sorted(folder.rglob("*")):
        rel = path.relative_to(folder).as_posix()
        if (path.is_file() or path.is_symlink()) and rel not in files and rel != RELEASE and "__pycache__" not in rel:
            problems.append(f"{path}: added since install (not a file of the release)")
    return problems


def check_engine(spec: str, what: str) -> None:
    """Refuse an engine outside the pipeline's ``engine`` range.

    Raises:
        InputError: this aisci's version is not in ``spec``.
    """
    from packaging.specifiers import InvalidSpecifier, SpecifierSet

    try:
        ok = SpecifierSet(spec).contains(__version__, prereleases=True)
    except InvalidSpecifier:
        raise InputError(f"{what}: engine {spec!r} is not a version range") from None
    if not ok:
        raise InputError(f"{what} needs aisci {spec}; this is aisci {__version__}")


def install(found: Found, root: Path) -> tuple[Path, bool]:
    """Install a release under ``root/<name>/<version>``, every file checked against its SHA-256 first.

    Returns:
        (the installed folder, whether it was installed now: False when the same release was already there).

    Raises:
        InputError: a file whose size or SHA-256 differs from the release's (named), another release installed
            under the same name and version, or an engine outside the pipeline's range.
    """
    record = read_release(found)
    check_engine(record["metadata"]["engine"], found.ref)
    target = installed_folder(root, found.name, found.version)
    if target.exists():
        return target, _installed_already(target, found)
    target.parent.mkdir(parents=True, exist_ok=True)
    tmp = target.with_name(f".{target.name}.{uuid.uuid4().hex}.tmp")
    try:
        for rel, meta in sorted(record["files"].items()):
            data = found.catalog.read(f"releases/{found.digest}/files/{rel}")
            if len(data) != meta["size"] or hashlib.sha256(data).hexdigest() != meta["sha256"]:
                raise InputError(f"catalog {found.catalog.location}: {found.ref}: {rel} does not match its SHA-256 "
                                 "in release.json (tampered with or corrupt): install refused")
            dst = tmp / safe_relpath(rel, found.ref)
            dst.parent.mkdir(parents=True, exist_ok=True)
            dst.write_bytes(data)
            dst.chmod(0o444)
        record["installed_from"] = found.catalog.location
        (tmp / RELEASE).write_text(json.dumps(record, indent=2, sort_keys=True) + "\n")
        (tmp / RELEASE).chmod(0o444)
        try:
            os.rename(tmp, target)
        except OSError:  # another install of it landed first
            return target, _installed_already(target, found)
    finally:
        if tmp.exists():
            _remove(tmp)
    return target, True


def _installed_already(target: Path, found: Found) -> bool:
    """Check the release already in ``target`` is ``found``'s, intact; return False (nothing was installed now).

    Raises:
        InputError: another release, a folder that is no release, or changed files.
    """
    try:
        there = json.loads((target / RELEASE).read_text()).get("digest")
    except (OSError, ValueError, AttributeError):
        raise InputError(f"{target}: exists but holds no readable {RELEASE} (not an installed release, or a broken "
                         "one): remove it and install again") from None
    if there != found.digest:
        raise InputError(f"{target}: holds another release of {found.ref} ({str(there)[:12]}); remove it first")
    problems = verify_installed(target)
    if problems:
        raise InputError("\n".join(problems + [f"{target}: reinstall: remove the folder and install again"]))
    return False


def installed_release(snakefile: Path) -> dict[str, Any] | None:
    """The release a Snakefile belongs to when it runs from an installed copy (``<root>/workflows/<name>/Snakefile``
    beside ``<root>/release.json``): name, version, digest and catalog, for the run's provenance."""
    marker = Path(snakefile).resolve().parent.parent.parent / RELEASE
    try:
        record = json.loads(marker.read_text())
    except (OSError, ValueError):
        return None
    if not NAME.fullmatch(str(record.get("name", ""))):
        return None
    engine = (record.get("metadata") or {}).get("engine")
    return {**{k: record.get(k) for k in ("name", "version", "digest", "installed_from", "published")}, "engine": engine}


def obtain(ref: str, locations: list[str] | None, root: Path) -> tuple[Path, str]:
    """The installed folder of a release: ``NAME@VERSION`` already installed under ``root`` is used as it is (its
    files verified, no catalog needed); otherwise it is resolved in the catalogs and installed.

    Returns:
        (the folder, what was done, in words).

    Raises:
        InputError: an installed copy that fails verification, or as `resolve` and `install`.
    """
    name, version = parse_ref(ref)
    if version is not None and (installed_folder(root, name, version) / RELEASE).is_file():
        folder = installed_folder(root, name, version)
        problems = verify_installed(folder)
        if problems:
            raise InputError("\n".join(problems + [f"{folder}: reinstall: remove the folder and install again"]))
        return folder, f"{ref}: installed already in {folder}, files verified"
    found = resolve(ref, catalogs_from(locations))
    folder, new = install(found, root)
    return folder, f"{found.ref}: {'installed' if new else 'installed already, files verified'} in {folder}"
