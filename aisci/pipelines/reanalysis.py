"""Glue between workflows/reanalysis/Snakefile and aisci: the validated config and manifest, shards, targets, options.

Planning must stay cheap at cohort scale (10,000 manifest rows dry-run in seconds): it reads the
manifest and stats each VCF, but never opens a VCF, and hashes neither VCFs nor the reference; the
scoring models' content hashes are computed by the scoring job itself (`aisci cohort score`). The
staged protein model is verified as workflows/protein does it (hashed once, then by recorded stamps).
"""

from __future__ import annotations

import shlex
from pathlib import Path
from typing import Any

from aisci.cohort.manifest import n_shards, read_manifest, shard
from aisci.errors import InputError
from aisci.fileio import check_readable
from aisci.layers import Sources
from aisci.pipelines.glue import Glue, StagedModel, staged_model
from aisci.schema import validate_config
from aisci.splice.annotation import PACKAGED
from aisci.splice.weights import FILES

RESULTS = "results/reanalysis"
# Conda environments of the scoring stages, relative to rules/ (Snakemake reads a rule's conda: path
# relative to the file that defines the rule).
STAGE_ENVS = {"splice": "../envs/spliceai.yaml", "protein": "../envs/esm.yaml"}


class ReanalysisPipeline(Glue):
    """The reanalysis workflow's plan for one config: shards of the manifest, targets and command options."""

    def __init__(self, config: dict[str, Any], source: str | Sources = "config"):
        """Validate the config (schema, then the files and model it names), then every manifest row.

        Args:
            config: the parsed config (config.yaml merged with --config overrides).
            source: how to name the config in messages (its file name).

        Raises:
            InputError: naming the config key, or the manifest, its line and field.
        """
        self.config = validate_config(config, source, schema="reanalysis")
        self.configfiles = []
        self.source = source
        self.stages: list[str] = list(self.config["stages"])
        store = Path(self.config["store"])
        if store.exists() and not store.is_dir():
            raise InputError(f"{source}: store: {store} exists and is not a folder")
        self.model: StagedModel | None = None
        self._check_scoring()
        check_readable(self.config["manifest"], f"{source}: manifest")
        self.samples = read_manifest(self.config["manifest"])
        size = self.config["shard_size"]
        self.shards = [shard(self.samples, i, size) for i in range(n_shards(len(self.samples), size))]

    def _check_scoring(self) -> None:
        """The reference, annotations, weights and model of the enabled stages exist (nothing is read or hashed)."""
        source, cfg = self.source, self.config
        if not self.stages:
            return
        if cfg["reference"] is None:
            raise InputError(f"{source}: reference: required while stages is not empty ({', '.join(self.stages)})")
        check_readable(cfg["reference"], f"{source}: reference")
        if "splice" in self.stages:
            splice = cfg["splice"]
            if splice["annotation"] not in PACKAGED:
                check_readable(splice["annotation"], f"{source}: splice.annotation")
            weights = splice["weights"]
            if weights is not None:
                missing = [name for name in FILES if not (Path(weights) / name).is_file()]
                if missing:
                    raise InputError(f"{source}: splice.weights: {weights} has no {', '.join(missing)}")
        if "protein" in self.stages:
            protein = cfg["protein"]
            if protein["annotation"] is None:
                raise InputError(f"{source}: protein.annotation: required while stages holds protein "
                                 "(a GFF3 or GTF with CDS features)")
            check_readable(protein["annotation"], f"{source}: protein.annotation")
            # Hashes the model's files once, then trusts their recorded size and times (aisci.protein.store).
            self.model = staged_model(protein, f"{source}: protein.")

    # ------------------------------------------------------------------------------------- targets
    def targets(self) -> list[str]:
        """Every final output: the cohort summary (which needs every shard and every stage), the run report."""
        return [f"{RESULTS}/cohort.tsv", f"{RESULTS}/report.html"]

    def shard_reports(self, wildcards: Any = None) -> list[str]:
        """One report per shard: results/reanalysis/shards/{shard}.json."""
        return [f"{RESULTS}/shards/{i}.json" for i in range(len(self.shards))]

    def score_reports(self, wildcards: Any = None) -> list[str]:
        """One report per enabled stage: results/reanalysis/scores/{stage}.json."""
        return [f"{RESULTS}/scores/{stage}.json" for stage in self.stages]

    # ------------------------------------------------------------------------------------- ingest_shard
    def _shard(self, wildcards: Any) -> list[Any]:
        text = str(wildcards.shard)
        index = int(text)
        if str(index) != text or index >= len(self.shards):
            raise InputError(f"shard {text!r} does not exist: {len(self.samples)} samples make {len(self.shards)} "
                             f"shards of {self.config['shard_size']} (0 .. {len(self.shards) - 1})")
        return self.shards[index]

    def shard_vcfs(self, wildcards: Any) -> list[str]:
        """The shard's VCFs: a changed VCF (newer mtime) or a changed set of VCFs reruns its shard."""
        return [str(s.vcf) for s in self._shard(wildcards)]

    def shard_samples(self, wildcards: Any) -> str:
        """The shard's sample names, a params value: renaming a sample reruns its shard."""
        return ",".join(s.name for s in self._shard(wildcards))

    # ------------------------------------------------------------------------------------- score_variants
    def _stage(self, wildcards: Any) -> str:
        stage = str(wildcards.stage)
        if stage not in self.stages:
            raise InputError(f"stage {stage!r} is not in the config's stages ({', '.join(self.stages) or 'none'})")
        return stage

    def score_inputs(self, wildcards: Any) -> dict[str, Any]:
        """The files a stage's scores depend on, named; replacing one re-scores the stage."""
        stage = self._stage(wildcards)
        cfg = self.config[stage]
        inputs: dict[str, Any] = {"ref": str(self.config["reference"])}
        if cfg["annotation"] not in PACKAGED:
            inputs["annotation"] = str(cfg["annotation"])
        if stage == "splice" and cfg["weights"] is not None:
            inputs["weights"] = [str(Path(cfg["weights"]) / name) for name in FILES]
        if stage == "protein" and self.model is not None:
            inputs["model"] = self.model.config_json
        return inputs

    def score_options(self, wildcards: Any) -> str:
        """The model options of `aisci cohort score` for a stage, a params value: changing one re-scores."""
        stage = self._stage(wildcards)
        cfg = self.config[stage]
        options = ["--ref", str(self.config["reference"]), "--annotation", str(cfg["annotation"])]
        if stage == "splice":
            if cfg["weights"] is not None:
                options += ["--splice-weights", str(cfg["weights"])]
            options += ["--distance", str(cfg["distance"])] + (["--mask"] if cfg["mask"] else [])
        else:
            assert self.model is not None
            options += ["--model", self.model.name, "--model-store", str(self.model.store), "--strategy", cfg["strategy"]]
        return shlex.join(options)

    def score_env(self, wildcards: Any) -> str:
        """The stage's conda environment file (relative to rules/)."""
        return STAGE_ENVS[self._stage(wildcards)]
