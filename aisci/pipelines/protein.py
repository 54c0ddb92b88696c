"""Glue between workflows/protein/Snakefile and aisci: the validated protein FASTA, model and targets."""

from __future__ import annotations

from typing import Any

from aisci.errors import InputError
from aisci.layers import Sources
from aisci.pipelines.glue import Glue, staged_model
from aisci.protein.proteins import read_proteins
from aisci.schema import validate_config

EMBEDDINGS = "results/plm/embeddings.parquet"
REPORT = "results/plm/report.html"  # not results/report.html: the germline run's, in a shared project


class ProteinPipeline(Glue):
    """The protein pipeline's plan for one config: proteins (by file-name-safe key), the model, targets."""

    def __init__(self, config: dict[str, Any], source: str | Sources = "config"):
        self.config = validate_config(config, source, schema="protein")
        self.configfiles = []
        try:
            self.proteins = {p.key: p for p in read_proteins(self.config["proteins"])}
        except InputError as exc:
            raise InputError(f"{source}: proteins: {exc}") from None
        self.model = staged_model(self.config, f"{source}: ")
        self.store = self.model.store

    def targets(self) -> list[str]:
        """Every final output, the run report last."""
        return [*self.report_files(), REPORT]

    def report_files(self) -> list[str]:
        """Every final output but the report."""
        out = [EMBEDDINGS] if self.config["embeddings"] else []
        if self.config["mutagenesis"]["enabled"]:
            for key in self.proteins:
                out += [f"results/plm/mutagenesis/{key}.parquet", f"results/plm/mutagenesis/{key}.png"]
        return out

    def report_inputs(self, wildcards: Any = None) -> dict[str, list[str]]:
        """The files the run report reads, by `aisci report protein` option (the report rule's named inputs)."""
        files = self.report_files()
        return {"mutagenesis": [f for f in files if f.endswith(".parquet") and f != EMBEDDINGS],
                "heatmaps": [f for f in files if f.endswith(".png")],
                "embeddings": [f for f in files if f == EMBEDDINGS]}

    def model_files(self, wildcards: Any = None) -> list[str]:
        """The staged model's config.json: replacing the model recomputes every output."""
        return self.model.files

    def model_options(self, wildcards: Any = None) -> str:
        """``--model NAME --model-store ABS`` for `aisci plm`."""
        return self.model.options()
