"""Glue between workflows/protein/Snakefile and aisci: the validated protein FASTA, model and targets."""

from __future__ import annotations

import shlex
from typing import Any

from aisci.errors import InputError


class ProteinPipeline:
    """The protein pipeline's plan for one config: proteins (by file-name-safe key) and targets."""

    def __init__(self, config: dict[str, Any], source: str = "config"):
        from aisci.config import validate_config
        from aisci.protein.proteins import read_proteins
        from aisci.protein.store import check_model, store_dir

        self.config = validate_config(config, source, schema="protein")
        try:
            self.proteins = {p.key: p for p in read_proteins(self.config["proteins"])}
        except InputError as exc:
            raise InputError(f"{source}: proteins: {exc}") from None
        try:
            self.store = store_dir(self.config["model_store"]).resolve()
        except InputError as exc:
            raise InputError(f"{source}: model_store: {exc}") from None
        check_model(self.store, self.config["model"], where=f"{source}: model")

    @classmethod
    def from_snakemake(cls, config: dict[str, Any], workflow: Any) -> "ProteinPipeline":
        """Validate before any job is planned; errors become a WorkflowError Snakemake prints without a traceback."""
        from aisci.config import for_snakemake

        return for_snakemake(lambda sources: cls(config, sources), workflow)

    def targets(self) -> list[str]:
        """Every final output."""
        out = ["results/plm/embeddings.parquet"] if self.config["embeddings"] else []
        if self.config["mutagenesis"]["enabled"]:
            for key in self.proteins:
                out += [f"results/plm/mutagenesis/{key}.parquet", f"results/plm/mutagenesis/{key}.png"]
        return out

    def model_files(self, wildcards: Any = None) -> list[str]:
        """The staged model's config.json: replacing the model recomputes every output."""
        return [str(self.store / self.config["model"] / "config.json")]

    def model_options(self, wildcards: Any = None) -> str:
        """``--model NAME --store ABS`` for `aisci plm`."""
        return f"--model {self.config['model']} --store {shlex.quote(str(self.store))}"
