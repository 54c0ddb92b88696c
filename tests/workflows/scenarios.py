"""Scenario configs of tests/configs/, resolved into configs Snakemake can run."""

from __future__ import annotations

from pathlib import Path

import yaml

from tests.conftest import REPO

CONFIGS = REPO / "tests" / "configs"
SCENARIOS = sorted(p.name for p in CONFIGS.iterdir() if (p / "config.yaml").is_file())
PATH_KEYS = ("samples", "reference")


def scenario_config(name: str, sim_data, out_dir: Path, esm_store=None) -> Path:
    """Write the scenario's config with absolute paths (and the simulated data where none is given).

    A scenario with the protein stage on scores the simulated genome's genes with the test session's
    model store (``esm_store``: the ``esm_store`` fixture), unless it names its own.
    """
    base = CONFIGS / name
    cfg = yaml.safe_load((base / "config.yaml").read_text()) or {}
    for key in PATH_KEYS:
        if key in cfg:
            cfg[key] = str((base / cfg[key]).resolve())
    cfg.setdefault("samples", str(sim_data.sample_sheet))
    cfg.setdefault("reference", str(sim_data.reference))
    splicing = cfg.setdefault("splice", {})
    if "annotation" not in splicing:  # score the simulated genome's own genes
        splicing["annotation"] = str(sim_data.annotation)
    elif splicing["annotation"] not in ("grch37", "grch38"):
        splicing["annotation"] = str((base / splicing["annotation"]).resolve())
    protein = cfg.get("protein", {})
    if protein.get("enabled"):
        protein.setdefault("annotation", str(sim_data.annotation))
        if "model_store" not in protein:
            assert esm_store is not None, f"scenario {name} runs the protein stage: pass the esm_store fixture"
            protein["model_store"], protein["model"] = str(esm_store.path), esm_store.model
    bed = cfg.get("evaluation", {}).get("bed")
    if bed:
        cfg["evaluation"]["bed"] = str((base / bed).resolve())
    path = out_dir / f"{name}.yaml"
    path.write_text(yaml.safe_dump(cfg))
    return path
