"""Where a pipeline can run: for each centre of a site description, whether its partitions, staged models and
reference data meet the pipeline's needs, and what is missing."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from aisci.errors import InputError
from aisci.slurm.site import Site


def _store_models(store: str | None) -> tuple[dict[str, Any] | None, str]:
    """(manifest models or None, why not) of a centre's model store, read by the store's own checked reader
    (plain JSON: the pages never load torch)."""
    from aisci.protein.store import MANIFEST, read_manifest

    if store is None:
        return None, "the centre names no model_store in the site description"
    if not (Path(store) / MANIFEST).is_file():
        return None, f"model store {store}: no readable {MANIFEST}"
    try:
        return read_manifest(Path(store))["models"], ""
    except InputError as exc:
        return None, str(exc)


def _model_problem(model: dict[str, Any], store: str | None) -> str | None:
    """Why a store model is not usable at a centre (missing, or a file whose SHA-256 differs), or None."""
    models, why = _store_models(store)
    if models is None:
        return f"model {model['name']}: {why}"
    entry = models.get(model["name"])
    if not isinstance(entry, dict):
        return f"model {model['name']}: not staged in {store} (`aisci models add/pull ... --model-store {store}`)"
    staged = entry.get("files", {})
    for rel, want in sorted(model["files"].items()):
        have = staged.get(rel)
        if not isinstance(have, dict) or have.get("sha256") != want["sha256"]:
            return (f"model {model['name']}: {rel} in {store} differs from the pipeline's (SHA-256 "
                    f"{str((have or {}).get('sha256', 'missing'))[:12]} != {want['sha256'][:12]}): another version")
    return None


def centre_fit(meta: dict[str, Any], site: Site, centre: str) -> dict[str, Any]:
    """Whether one centre meets a pipeline's needs.

    Args:
        meta: the pipeline's metadata (pipeline.yaml, defaults filled).
        site: the site description holding the centre.
        centre: the centre's name.

    Returns:
        ``{"site", "centre", "ok", "met": [...], "missing": [...]}``: each need met or missing, in words.
    """
    met: list[str] = []
    missing: list[str] = []
    parts = [p for p in site.partitions if p.centre == centre]
    if "cpu" in meta["resources"]:
        cpu = [p.name for p in parts]
        (met if cpu else missing).append(f"CPU partition {', '.join(cpu)}" if cpu else "a CPU partition")
    if "gpu" in meta["resources"]:
        gpu = [p.name for p in parts if p.gpus > 0]
        if gpu:
            met.append(f"GPU partition {', '.join(gpu)}")
        else:
            missing.append("a GPU partition (the GPU-class rules would run on CPUs, much slower)")
    store = site.model_stores.get(centre)
    for model in meta["models"]:
        if model["when"] == "test":  # the test profile's commands make it in the scratch folder
            continue
        if model["kind"] == "package":
            met.append(f"model {model['name']}: ships with the engine's Python packages")
            continue
        problem = _model_problem(model, store)
        label = "" if model["when"] == "always" else f" (when {model['when']})"
        if problem is None:
            met.append(f"model {model['name']} staged in {store}, SHA-256 match{label}")
        else:
            missing.append(problem + label)
    held = site.references.get(centre, {})
    for ref in meta["references"]:
        label = "" if ref["when"] == "always" else f" (when {ref['when']})"
        path = held.get(ref["name"])
        if path is None:
            missing.append(f"reference {ref['name']}: not listed under the centre's references{label}")
        elif not Path(path).exists():
            missing.append(f"reference {ref['name']}: {path} does not exist{label}")
        else:
            met.append(f"reference {ref['name']} at {path}{label}")
    return {"site": site.name, "centre": centre, "ok": not missing, "met": met, "missing": missing}


def site_fits(meta: dict[str, Any], site: Site) -> list[dict[str, Any]]:
    """`centre_fit` of every centre of the site, home first."""
    return [centre_fit(meta, site, centre) for centre in site.centres]
