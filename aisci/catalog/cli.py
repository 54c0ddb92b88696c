"""`aisci catalog`: lint, publish, list, show, install and test versioned pipeline releases."""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Any

from aisci.errors import InputError


def configure_parser(parser: argparse.ArgumentParser) -> None:
    """Subcommands of `aisci catalog`."""
    sub = parser.add_subparsers(dest="action", metavar="ACTION", required=True)

    def pipeline_arg(p: argparse.ArgumentParser) -> None:
        p.add_argument("pipeline", help="a packaged pipeline's name (germline, protein, reanalysis) or a pipeline "
                                        "folder holding pipeline.yaml")

    def catalogs(p: argparse.ArgumentParser) -> None:
        p.add_argument("--catalog", action="append", metavar="DIR_OR_URL",
                       help="a catalog folder or URL; repeat to search several in order (default: $AISCI_CATALOGS)")

    p = sub.add_parser("lint", help="check a pipeline before publishing: metadata, schemas, rules, envs, test profile")
    pipeline_arg(p)
    p.add_argument("--fix", action="store_true", help="apply the mechanical fixes (name, whitespace, closed schemas)")
    p.add_argument("--no-test-run", action="store_true",
                   help="skip running the test profile and `snakemake --lint` (lint cannot then pass for publish)")
    p.add_argument("--json", type=Path, help="also write the results as JSON here")

    p = sub.add_parser("publish", help="lint, then publish an immutable release to a catalog folder and its pages")
    pipeline_arg(p)
    p.add_argument("--catalog", required=True, type=Path, help="the catalog folder (created if missing)")
    p.add_argument("--site", action="append", type=Path, default=[],
                   help="a site description (site.yaml) to register in the catalog: the pages say where it can run")

    p = sub.add_parser("list", help="the pipelines and versions of one or several catalogs")
    catalogs(p)

    p = sub.add_parser("show", help="one release: metadata, files, lint status, and where it can run")
    p.add_argument("ref", metavar="NAME[@VERSION]")
    catalogs(p)
    p.add_argument("--site", action="append", type=Path, default=[], help="site description(s) to check it against")

    p = sub.add_parser("install", help="install a release, every file checked against its SHA-256")
    p.add_argument("ref", metavar="NAME[@VERSION]")
    catalogs(p)
    p.add_argument("--into", type=Path, help="install root (default: $AISCI_PIPELINES or ~/.local/share/aisci/pipelines)")

    p = sub.add_parser("test", help="install a release if needed and run its test profile from the installed copy")
    p.add_argument("ref", metavar="NAME[@VERSION]")
    p.add_argument("--catalog", action="append", metavar="DIR_OR_URL",
                   help="catalog(s) to install it from when NAME@VERSION is not installed yet (default: $AISCI_CATALOGS)")
    p.add_argument("--into", type=Path, help="install root (as for install)")
    p.add_argument("--dir", type=Path, help="scratch folder of the run (new or empty; default: a temporary folder)")


def pipeline_folder(arg: str) -> Path:
    """The folder of a packaged pipeline's name, or the folder given."""
    from aisci.share import PIPELINES, root

    if arg in PIPELINES:
        return root() / "workflows" / arg
    folder = Path(arg)
    if not (folder / "pipeline.yaml").is_file():
        raise InputError(f"{arg}: neither a packaged pipeline ({', '.join(PIPELINES)}) nor a folder with pipeline.yaml")
    return folder


def run(args: argparse.Namespace) -> int:
    """Dispatch `aisci catalog ACTION`."""
    return {"lint": _lint, "publish": _publish, "list": _list, "show": _show, "install": _install,
            "test": _test}[args.action](args)


def _lint(args: argparse.Namespace) -> int:
    from aisci.catalog.lint import lint, report, summary
    from aisci.catalog.metadata import read_pipeline

    pipeline = read_pipeline(pipeline_folder(args.pipeline))
    results, fixed = lint(pipeline, fix=args.fix, run_test=not args.no_test_run)
    for line in fixed:
        print(f"fixed {line}")
    report(results)
    result = summary(results)
    if args.json:
        args.json.write_text(json.dumps({"pipeline": f"{pipeline.name}@{pipeline.version}", **result,
                                         "findings": [str(f) for fs in results.values() for f in fs or []]}, indent=2))
    print(f"\n{pipeline.name}@{pipeline.version}: {result['passed']} checks passed, {result['failed']} failed or skipped")
    return 0 if result["failed"] == 0 else 1


def regenerate_pages(catalog: Path) -> list[Path]:
    """Rewrite the catalog's pages from its index, releases and registered sites (call under the catalog's lock).

    Raises:
        InputError: a release of the index that is missing, corrupt or tampered with, or a site file that is not one.
    """
    from aisci.catalog.pages import write_pages
    from aisci.catalog.release import Catalog, Found, read_release
    from aisci.catalog.where import site_fits
    from aisci.slurm.site import load_site

    source = Catalog(str(catalog))
    index = source.index()
    sites = [load_site(p) for p in sorted((catalog / "sites").glob("*.yaml"))]
    releases: dict[str, dict[str, Any]] = {}
    fits: dict[str, list[dict[str, Any]]] = {}
    for name, entry in index["pipelines"].items():
        for version, rel in entry["versions"].items():
            record = read_release(Found(source, name, version, rel["digest"]))
            releases[rel["digest"]] = record
            fits[rel["digest"]] = [fit for site in sites for fit in site_fits(record["metadata"], site)]
    try:
        return write_pages(catalog, index, releases, fits)
    except ValueError as exc:
        raise InputError(f"catalog {catalog}: cannot write its pages: {exc}") from None


def register_sites(catalog: Path, sites: list[tuple[Path, Any]]) -> None:
    """Copy site descriptions into ``catalog/sites/<name>.yaml`` (under the catalog's lock).

    Raises:
        InputError: a site with no `name`, or another site already registered under its name.
    """
    from aisci.fileio import atomic_output

    for path, site in sites:
        data = path.read_bytes()
        target = catalog / "sites" / f"{site.name}.yaml"
        if target.is_file() and target.read_bytes() != data:
            raise InputError(f"--site {path}: another site is registered as '{site.name}' in {catalog} "
                             f"({target}); give yours its own `name:`, or replace that file by hand")
        with atomic_output(target) as tmp:
            tmp.write_bytes(data)


def _publish(args: argparse.Namespace) -> int:
    from aisci import yamlfile
    from aisci.catalog.lint import lint, report, summary
    from aisci.catalog.metadata import read_pipeline
    from aisci.catalog.release import check_publishable, content, publish
    from aisci.slurm.site import load_site

    pipeline = read_pipeline(pipeline_folder(args.pipeline))
    sites = []
    for path in args.site:  # every site checked before anything is written
        if "name" not in (yamlfile.load(path) or {}):
            raise InputError(f"--site {path}: name: required to register a site in a catalog (its pages name it)")
        sites.append((path, load_site(path)))
    check_publishable(pipeline, args.catalog)  # a changed published version is refused before lint runs it
    digest = content(pipeline)[0]
    results, _ = lint(pipeline)
    result = summary(results)
    if result["failed"]:
        report(results, out=sys.stderr)
        raise InputError(f"{pipeline.name}@{pipeline.version}: lint failed ({result['failed']} checks): not published. "
                         "Fix the findings above (`aisci catalog lint` shows them with their fixes)")
    catalog = args.catalog.resolve()
    pages: list[Path] = []

    def then() -> None:  # under the lock, right after the index: the sites and every page
        register_sites(catalog, sites)
        pages.extend(regenerate_pages(catalog))

    done = publish(pipeline, catalog, result, digest=digest, then=then)
    state = "published" if done.new else "already published with the same content"
    print(f"{done.ref} {state}: release {done.digest[:12]} in {done.folder}")
    print(f"catalog page: {catalog / 'pipelines' / pipeline.name / (pipeline.version + '.html')} "
          f"({len(pages)} pages rewritten)")
    return 0


def _list(args: argparse.Namespace) -> int:
    from aisci.catalog.metadata import semver_key
    from aisci.catalog.release import catalogs_from

    for catalog in catalogs_from(args.catalog):
        print(f"# {catalog.location}")
        for name, entry in sorted(catalog.index()["pipelines"].items()):
            for version in sorted(entry["versions"], key=semver_key, reverse=True):
                rel = entry["versions"][version]
                print(f"{name}@{version}\t{rel['published']}\t{','.join(rel.get('resources') or [])}\t{rel['summary']}")
    return 0


def _show(args: argparse.Namespace) -> int:
    from aisci.catalog.release import catalogs_from, read_release, resolve
    from aisci.catalog.where import site_fits
    from aisci.slurm.site import load_site

    found = resolve(args.ref, catalogs_from(args.catalog))
    record = read_release(found)
    meta = record["metadata"]
    print(f"{found.ref}  ({found.catalog.location})\n  {meta['summary']}")
    print(f"  release {found.digest}, published {record['published']}, engine aisci {meta['engine']}")
    print(f"  licence {meta['licence']}; authors {', '.join(a['name'] for a in meta['authors'])}")
    lint = record.get("lint") if isinstance(record.get("lint"), dict) else {}
    print(f"  resources: {', '.join(meta['resources'])}; lint: {lint.get('passed', '?')} checks passed, "
          f"{lint.get('failed', '?')} failed")
    print("  outputs:", *[f"    {o['path']}  {o['description']}" for o in meta["outputs"]], sep="\n")
    if meta["models"]:
        print("  models:", *[f"    {m['name']} ({m['kind']}, when {m['when']}): {len(m['files'])} files"
                             for m in meta["models"]], sep="\n")
    print(f"  files: {len(record['files'])}, {sum(f['size'] for f in record['files'].values()):,} bytes")
    fits = [fit for path in args.site for fit in site_fits(meta, load_site(path))]
    for fit in fits:
        print(f"  {fit['site']}/{fit['centre']}: {'can run it' if fit['ok'] else 'cannot run it yet'}")
        for line in fit["met"]:
            print(f"    + {line}")
        for line in fit["missing"]:
            print(f"    - missing: {line}")
    if fits and not any(fit["ok"] for fit in fits):
        for model in meta["models"]:
            label = f"model {model['name']}:"
            if model["kind"] == "store" and all(any(m.startswith(label) for m in fit["missing"]) for fit in fits):
                print(f"  model {model['name']} (when {model['when']}) is staged at no centre: stage it with "
                      f"`aisci models add|pull ... --model-store STORE` where a centre's model_store points")
        print(f"{found.ref}: no centre of {', '.join(str(p) for p in args.site)} can run it yet")
        return 1
    return 0


def _install(args: argparse.Namespace) -> int:
    from aisci.catalog.release import catalogs_from, install, install_root, resolve

    found = resolve(args.ref, catalogs_from(args.catalog))
    folder, new = install(found, install_root(args.into))
    print(f"{found.ref} {'installed' if new else 'already installed, files verified'}: {folder}")
    print(f"  run it: aisci init DIR --pipeline {found.ref}; or test it: aisci catalog test {found.ref}")
    return 0


def _test(args: argparse.Namespace) -> int:
    import tempfile

    from aisci.catalog.metadata import read_pipeline
    from aisci.catalog.release import install_root, obtain
    from aisci.catalog.testrun import run_test_profile

    folder, done = obtain(args.ref, args.catalog, install_root(args.into))
    print(done)
    name, version = folder.parent.name, folder.name
    pipeline = read_pipeline(folder / "workflows" / name)
    workdir = args.dir or Path(tempfile.mkdtemp(prefix=f"aisci-test-{name}-"))
    print(f"{name}@{version}: test profile from {folder}, in {workdir}", flush=True)
    run = run_test_profile(pipeline, workdir)
    for rel, size in run.outputs.items():
        print(f"  {rel}: {size:,} bytes")
    print(f"{name}@{version}: test profile passed in {run.seconds:.0f} s")
    return 0
