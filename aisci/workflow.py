"""Glue between the Snakefiles and aisci: validated inputs plus the input functions rules call."""

from __future__ import annotations

import shlex
from pathlib import Path
from typing import Any, Iterable

from aisci.config import Inputs, Sample, validate_inputs
from aisci.errors import InputError
from aisci.reference import contigs_digest
from aisci.regions import Chunk, plan_chunks

REFERENCE = "resources/reference/genome.fa"
MINIMAP2_INDEX = "resources/reference/genome.mmi"
REGIONS = "resources/reference/regions"
COHORT = "cohort"


class Pipeline:
    """The germline pipeline's plan for one config: samples, scatter chunks and targets.

    Methods taking ``wildcards`` are Snakemake input/params functions.
    """

    def __init__(self, inputs: Inputs):
        self.config: dict[str, Any] = inputs.config
        self.samples: dict[str, Sample] = {s.name: s for s in inputs.samples}
        self.chunks: list[Chunk] = plan_chunks(inputs.contigs, self.config["calling"]["chunk_size"])
        self.contigs_digest = contigs_digest(inputs.contigs)
        self._chunks_by_name = {c.name: c for c in self.chunks}

    @classmethod
    def from_snakemake(cls, config: dict[str, Any], configfiles: Iterable[str | Path]) -> "Pipeline":
        """Validate ``config`` (as loaded by Snakemake) before any job is planned.

        Raises:
            snakemake.exceptions.WorkflowError: with the file, line and field at fault, so that
                Snakemake prints the message without a traceback and submits nothing.
        """
        from aisci.config import for_snakemake

        return for_snakemake(lambda source: cls(validate_inputs(config, source)), configfiles)

    # --- targets -------------------------------------------------------------------------
    def callsets(self) -> list[str]:
        """Per-sample callsets, plus the cohort when joint calling is on."""
        names = list(self.samples)
        return names + [COHORT] if self.config["calling"]["joint"] else names

    def targets(self) -> list[str]:
        """Every final output of the pipeline."""
        out: list[str] = []
        for name, sample in self.samples.items():
            out += [
                f"results/align/{name}.bam",
                f"results/qc/{name}.stats.txt",
                f"results/qc/{name}.flagstat.txt",
                f"results/annotate/{name}.context.parquet",
            ]
            if sample.truth is not None:
                out.append(f"results/eval/{name}.json")
        for callset in self.callsets():
            out += [f"results/calls/{callset}.vcf.gz", f"results/calls/{callset}.vcf.gz.tbi"]
            if self.config["splicing"]["enabled"]:
                out += [f"results/splice/{callset}.vcf.gz", f"results/splice/{callset}.vcf.gz.tbi",
                        f"results/splice/{callset}.parquet"]
            if self.config["protein"]["enabled"]:
                out += [f"results/protein/{callset}.vcf.gz", f"results/protein/{callset}.vcf.gz.tbi",
                        f"results/protein/{callset}.parquet"]
        return out

    # --- reads ---------------------------------------------------------------------------
    def _sample(self, wildcards: Any) -> Sample:
        return self.samples[wildcards.sample]

    def reads(self, wildcards: Any) -> dict[str, str]:
        """The FASTQ pair to align: the sheet's, or the one extracted from its BAM/CRAM."""
        s = self._sample(wildcards)
        if s.from_bam:
            return {"fq1": f"results/reads/{s.name}_R1.fastq.gz", "fq2": f"results/reads/{s.name}_R2.fastq.gz"}
        return {"fq1": str(s.fq1), "fq2": str(s.fq2)}

    def input_bam(self, wildcards: Any) -> str:
        """The sheet's BAM/CRAM of a sample given as ``bam``."""
        s = self._sample(wildcards)
        if s.bam is None:
            raise InputError(f"sample {s.name} has FASTQ input, not a BAM")
        return str(s.bam)

    # --- alignment -----------------------------------------------------------------------
    def aligner_index(self, wildcards: Any = None) -> list[str]:
        """The files of the configured aligner's index."""
        if self.config["aligner"] == "bwa":
            return [f"{REFERENCE}.{ext}" for ext in ("amb", "ann", "bwt", "pac", "sa")]
        return [MINIMAP2_INDEX]

    def aligner_index_arg(self, wildcards: Any = None) -> str:
        """What the aligner's command line names as its index (bwa: the FASTA prefix)."""
        return REFERENCE if self.config["aligner"] == "bwa" else MINIMAP2_INDEX

    # --- calling -------------------------------------------------------------------------
    def callset_bams(self, wildcards: Any) -> list[str]:
        """BAMs called together: one sample's, or every sample's for the cohort."""
        names = list(self.samples) if wildcards.callset == COHORT else [wildcards.callset]
        return [f"results/align/{n}.bam" for n in names]

    def callset_bais(self, wildcards: Any) -> list[str]:
        """Indexes of :meth:`callset_bams` (region queries need them)."""
        return [f"{bam}.bai" for bam in self.callset_bams(wildcards)]

    def regions_files(self, wildcards: Any = None) -> list[str]:
        """Every chunk's bcftools regions file, in reference order (written by `aisci regions`)."""
        return [f"{REGIONS}/{c.name}.tsv" for c in self.chunks]

    def chunk_calls(self, wildcards: Any) -> list[str]:
        """Per-chunk call files of a callset, in reference order (ready for `bcftools concat`)."""
        return [f"results/calls/chunks/{wildcards.callset}/{c.name}.bcf" for c in self.chunks]

    # --- evaluation ----------------------------------------------------------------------
    def truth(self, wildcards: Any) -> str:
        """The truth VCF of a sample."""
        s = self._sample(wildcards)
        if s.truth is None:
            raise InputError(f"sample {s.name} has no truth VCF")
        return str(s.truth)

    def bed_option(self, wildcards: Any = None) -> str:
        """``--bed PATH`` when a confident-region BED is configured, else nothing."""
        bed = self.config["evaluation"]["bed"]
        return f"--bed {shlex.quote(str(Path(bed).resolve()))}" if bed else ""

    # --- splicing ------------------------------------------------------------------------
    def splice_annotation_file(self, wildcards: Any = None) -> list[str]:
        """The gene annotation file as a rule input (none for the packaged grch37/grch38 tables)."""
        from aisci.splice.annotation import PACKAGED

        annotation = self.config["splicing"]["annotation"]
        return [] if annotation in PACKAGED else [annotation]

    def splice_options(self, wildcards: Any = None) -> str:
        """``--annotation ... --distance N [--mask]`` for `aisci splice score`."""
        s = self.config["splicing"]
        annotation = s["annotation"] if not self.splice_annotation_file() else str(Path(s["annotation"]).resolve())
        mask = " --mask" if s["mask"] else ""
        return f"--annotation {shlex.quote(annotation)} --distance {int(s['distance'])}{mask}"

    # --- protein ---------------------------------------------------------------------------
    def protein_annotation_file(self, wildcards: Any = None) -> list[str]:
        """The GFF3/GTF of the protein stage (none while the stage is off)."""
        annotation = self.config["protein"]["annotation"]
        return [annotation] if annotation else []

    def protein_vcf(self, wildcards: Any) -> dict[str, str]:
        """The VCF score_missense annotates: the SpliceAI-scored one when that stage runs, so that
        results/protein/{callset}.vcf.gz carries every annotation; else the calls."""
        base = "results/splice" if self.config["splicing"]["enabled"] else "results/calls"
        return {"vcf": f"{base}/{wildcards.callset}.vcf.gz", "tbi": f"{base}/{wildcards.callset}.vcf.gz.tbi"}

    def protein_model_files(self, wildcards: Any = None) -> list[str]:
        """The staged model's config.json: re-adding (replacing) a model re-scores every callset."""
        from aisci.protein.store import store_dir

        p = self.config["protein"]
        return [str(store_dir(p["model_store"]).resolve() / p["model"] / "config.json")]

    def protein_model_options(self, wildcards: Any = None) -> str:
        """``--model NAME --store ABS --strategy S`` for `aisci plm score`."""
        from aisci.protein.store import store_dir

        p = self.config["protein"]
        store = shlex.quote(str(store_dir(p["model_store"]).resolve()))
        return f"--model {p['model']} --store {store} --strategy {p['strategy']}"
