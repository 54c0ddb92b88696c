"""Glue of workflows/germline/Snakefile: validated inputs, the scatter plan, and the input functions its rules call."""

from __future__ import annotations

import shlex
from pathlib import Path
from typing import Any

from aisci.errors import InputError
from aisci.germline.reference import contigs_digest
from aisci.germline.regions import Chunk, Group, plan_chunks, plan_groups
from aisci.layers import Sources
from aisci.pipelines.glue import Glue, StagedModel
from aisci.pipelines.inputs import validate_inputs
from aisci.pipelines.sheet import Sample

REFERENCE = "resources/reference/genome.fa"
MINIMAP2_INDEX = "resources/reference/genome.mmi"
REGIONS = "resources/reference/regions"
SCORE_REGIONS = f"{REGIONS}/score"
COHORT = "cohort"
PIPELINE_INFO = "results/pipeline_info"
REPORT = "results/report.html"
MULTIQC = "results/multiqc/multiqc_report.html"
# the report rule's MultiQC custom content (aisci.report.multiqc), by `aisci report germline` option
CUSTOM_CONTENT = {"usage": "results/qc/usage_mqc.tsv", "splice": "results/qc/splice_mqc.tsv",
                  "protein": "results/qc/protein_mqc.tsv"}


class GermlinePipeline(Glue):
    """The germline pipeline's plan for one config: samples, scatter chunks and targets.

    Methods taking ``wildcards`` are Snakemake input/params functions.
    """

    def __init__(self, config: dict[str, Any], source: str | Sources = "config"):
        """Validate the config, the sample sheet, the reference and every input file (`validate_inputs`)."""
        inputs = validate_inputs(config, source)
        self.config: dict[str, Any] = inputs.config
        self.samples: dict[str, Sample] = {s.name: s for s in inputs.samples}
        self.chunks: list[Chunk] = plan_chunks(inputs.contigs, self.config["calling"]["chunk_size"])
        self.groups: list[Group] = plan_groups(self.chunks, self.config["calling"]["groups"])
        self.score_groups: list[Group] = plan_groups(self.chunks, self.config["calling"]["scoring_groups"])
        self.contigs_digest = contigs_digest(inputs.contigs)
        # the run's config files (set by from_snakemake; recorded in results/pipeline_info)
        self.configfiles: list[str] = []
        self.model: StagedModel | None = None
        if self.config["protein"]["enabled"]:  # validate_inputs checked the model staged and intact
            from aisci.protein.store import store_dir

            protein = self.config["protein"]
            self.model = StagedModel(protein["model"], store_dir(protein["model_store"]).resolve())

    def parse_files(self) -> list[str]:
        """The sample sheet and the reference (with its .fai, which makes reading its contigs fast)."""
        reference = self.config["reference"]
        return [self.config["samples"], reference, *([f"{reference}.fai"] if Path(f"{reference}.fai").is_file() else [])]

    # --- targets -------------------------------------------------------------------------
    def callsets(self) -> list[str]:
        """Per-sample callsets, plus the cohort when joint calling is on."""
        names = list(self.samples)
        return names + [COHORT] if self.joint else names

    @property
    def joint(self) -> bool:
        """Whether the samples are also called together: ``calling.joint`` true, or auto with >= 2 samples
        (a one-sample "cohort" would call the same sample twice)."""
        joint = self.config["calling"]["joint"]
        return len(self.samples) >= 2 if joint == "auto" else bool(joint)

    def targets(self) -> list[str]:
        """Every final output of the pipeline, the run report (and MultiQC's, when on) last."""
        return [*self.report_files(), REPORT, *([MULTIQC] if self.multiqc else [])]

    @property
    def multiqc(self) -> bool:
        """Whether MultiQC runs: ``report.multiqc`` true, or auto when a `multiqc` command is on the PATH."""
        import shutil

        wanted = self.config["report"]["multiqc"]
        return shutil.which("multiqc") is not None if wanted == "auto" else bool(wanted)

    def custom_content(self, wildcards: Any = None) -> dict[str, str]:
        """The MultiQC custom content the report rule also writes, by kind: cluster use (always: empty off
        Slurm), and the summaries of the AI stages that are on."""
        kinds = ["usage"] + [k for k in ("splice", "protein") if self.config[k]["enabled"]]
        return {k: CUSTOM_CONTENT[k] for k in kinds}

    def custom_content_options(self, wildcards: Any = None) -> str:
        """`aisci report germline` options naming the custom content files (--mqc-usage F ...)."""
        return " ".join(f"--mqc-{k} {shlex.quote(v)}" for k, v in self.custom_content().items())

    def multiqc_inputs(self, wildcards: Any = None) -> list[str]:
        """Every file of the run MultiQC has a module for: samtools stats/flagstat, bcftools stats, hap.py
        summaries, and the custom content."""
        qc = (".stats.txt", ".flagstat.txt", ".bcftools_stats.txt", ".summary.csv")
        return [f for f in self.report_files() if f.endswith(qc)] + list(self.custom_content().values())

    def report_inputs(self, wildcards: Any = None) -> dict[str, list[str]]:
        """The files the run report reads, by `aisci report germline` option (the report rule's named inputs)."""
        files = self.report_files()

        def ending(suffix: str, folder: str) -> list[str]:
            return [f for f in files if f.startswith(f"results/{folder}/") and f.endswith(suffix)]

        return {
            "info": [PIPELINE_INFO],
            "stats": ending(".stats.txt", "qc"),
            "bcftools_stats": ending(".bcftools_stats.txt", "qc"),
            "calls": ending(".vcf.gz", "calls"),
            "eval": ending(".json", "eval"),
            "splice": ending(".parquet", "splice"),
            "protein": [f for f in ending(".parquet", "protein") if not f.endswith(".consequences.parquet")],
            # the rest of the run: the report comes last, after every output it does not read too
            "rest": [f for f in files if f != PIPELINE_INFO],
        }

    def report_files(self) -> list[str]:
        """Every final output but the report."""
        out: list[str] = [PIPELINE_INFO]
        for name, sample in self.samples.items():
            out += [
                f"results/align/{name}.bam",
                f"results/qc/{name}.stats.txt",
                f"results/qc/{name}.flagstat.txt",
                f"results/context/{name}.context.parquet",
            ]
            if sample.truth is not None:
                out += [f"results/eval/{name}.json", f"results/eval/{name}.summary.csv"]
        for callset in self.callsets():
            out += [f"results/calls/{callset}.vcf.gz", f"results/calls/{callset}.vcf.gz.tbi",
                    f"results/qc/{callset}.bcftools_stats.txt"]
            if self.config["splice"]["enabled"]:
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
        return {"fq1": str(s.lanes[0].fq1), "fq2": str(s.lanes[0].fq2)}

    def read_files(self, wildcards: Any) -> list[str]:
        """Every FASTQ of a sample, all lanes (rule inputs)."""
        s = self._sample(wildcards)
        if not s.multi_lane:
            return list(self.reads(wildcards).values())
        return [str(f) for lane in s.lanes for f in (lane.fq1, lane.fq2)]

    def read_pairs(self, wildcards: Any) -> list[str]:
        """The read arguments of `aisci check-reads` and `aisci align`: ``--fq1 A --fq2 B``, or
        ``--lane L A B`` per lane when the sheet names lanes (each then gets its own read group).
        A BAM/CRAM sample's pair adds ``--read-groups-from BAM``: its reads keep their read groups."""
        s = self._sample(wildcards)
        if not s.multi_lane:
            pair = self.reads(wildcards)
            keep = ["--read-groups-from", str(s.bam)] if s.from_bam else []
            return ["--fq1", pair["fq1"], "--fq2", pair["fq2"], *keep]
        return [arg for lane in s.lanes for arg in ("--lane", lane.name, str(lane.fq1), str(lane.fq2))]

    def input_bam(self, wildcards: Any) -> str:
        """The sheet's BAM/CRAM of a sample given as ``bam``."""
        s = self._sample(wildcards)
        if s.bam is None:
            raise InputError(f"sample {s.name} has FASTQ input, not a BAM")
        return str(s.bam)

    def read_bytes(self, wildcards: Any) -> float | None:
        """Bytes of FASTQ.gz a sample's jobs will read, known before any job ran (a BAM/CRAM sample's
        FASTQ is extracted later): what their runtime is planned on in a Slurm group job."""
        from aisci.resources import CRAM_AS_BAM, FASTQ_GZ_PER_BAM_BYTE, bytes_of

        s = self._sample(wildcards)
        if s.from_bam:
            size = bytes_of([s.bam])
            factor = FASTQ_GZ_PER_BAM_BYTE * (CRAM_AS_BAM if str(s.bam).endswith(".cram") else 1)
            return None if size is None else size * factor
        return bytes_of([f for lane in s.lanes for f in (lane.fq1, lane.fq2)])

    # --- alignment -----------------------------------------------------------------------
    def aligner_index(self, wildcards: Any = None) -> list[str]:
        """The files of the configured aligner's index: the prebuilt one (config ``index``) or the one built here."""
        prefix = self.aligner_index_arg()
        if self.config["aligner"] == "bwa":
            return [f"{prefix}.{ext}" for ext in ("amb", "ann", "bwt", "pac", "sa")]
        return [prefix]

    def aligner_index_arg(self, wildcards: Any = None) -> str:
        """What the aligner's command line names as its index (bwa: the FASTA prefix)."""
        aligner = self.config["aligner"]
        prebuilt = self.config["index"][aligner]
        if prebuilt is not None:
            return str(Path(prebuilt).resolve())
        return REFERENCE if aligner == "bwa" else MINIMAP2_INDEX

    # --- calling -------------------------------------------------------------------------
    def callset_bams(self, wildcards: Any) -> list[str]:
        """BAMs called together: one sample's, or every sample's for the cohort."""
        names = list(self.samples) if wildcards.callset == COHORT else [wildcards.callset]
        return [f"results/align/{n}.bam" for n in names]

    def callset_bais(self, wildcards: Any) -> list[str]:
        """Indexes of :meth:`callset_bams` (region queries need them)."""
        return [f"{bam}.bai" for bam in self.callset_bams(wildcards)]

    def regions_files(self, wildcards: Any = None) -> list[str]:
        """Every calling and scoring group's regions file (its chunks' intervals), in reference order
        (written by `aisci regions`)."""
        return [f"{REGIONS}/{g.name}.tsv" for g in self.groups] + [f"{SCORE_REGIONS}/{g.name}.tsv" for g in self.score_groups]

    def score_group_share(self, wildcards: Any) -> float:
        """A scoring group's share of the genome (of the callset's records, for its runtime)."""
        return _share(self.score_groups, wildcards.group)

    def group_share(self, wildcards: Any) -> float:
        """A calling group's share of the genome: the share of the BAMs' reads its job works through."""
        return _share(self.groups, wildcards.group)

    def group_calls(self, wildcards: Any) -> list[str]:
        """Per-group call files of a callset, in reference order (ready for `bcftools concat`)."""
        return [f"results/calls/groups/{wildcards.callset}/{g.name}.bcf" for g in self.groups]

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

        annotation = self.config["splice"]["annotation"]
        return [] if annotation in PACKAGED else [annotation]

    def splice_options(self, wildcards: Any = None) -> str:
        """``--annotation ... --distance N [--mask] [--splice-weights DIR]`` for `aisci splice score` and `cache`."""
        s = self.config["splice"]
        annotation = s["annotation"] if not self.splice_annotation_file() else str(Path(s["annotation"]).resolve())
        mask = " --mask" if s["mask"] else ""
        weights = f" --splice-weights {shlex.quote(str(Path(s['weights']).resolve()))}" if s["weights"] else ""
        return f"--annotation {shlex.quote(annotation)} --distance {int(s['distance'])}{mask}{weights}"

    # --- protein ---------------------------------------------------------------------------
    def protein_annotation_file(self, wildcards: Any = None) -> list[str]:
        """The GFF3/GTF of the protein stage (none while the stage is off)."""
        annotation = self.config["protein"]["annotation"]
        return [annotation] if annotation else []

    def callset_vcfs(self, wildcards: Any = None) -> dict[str, list[str]]:
        """Every callset's VCF and index, samples first (cache_splicing scores what the cohort adds last)."""
        vcfs = [f"results/calls/{c}.vcf.gz" for c in self.callsets()]
        return {"vcfs": vcfs, "tbis": [f"{v}.tbi" for v in vcfs]}

    def score_cache(self, wildcards: Any = None) -> str:
        """The score cache folder (config score_cache), absolute."""
        return str(Path(self.config["score_cache"]).resolve())

    def splice_parts(self, wildcards: Any) -> dict[str, list[str]]:
        """The scoring groups' SpliceAI outputs of a callset, in reference order (gather_splicing)."""
        base = f"results/splice/groups/{wildcards.callset}"
        return {"vcfs": [f"{base}/{g.name}.vcf.gz" for g in self.score_groups],
                "parquets": [f"{base}/{g.name}.parquet" for g in self.score_groups]}

    def protein_parts(self, wildcards: Any) -> dict[str, list[str]]:
        """The scoring groups' protein outputs of a callset, in reference order (gather_protein)."""
        base = f"results/protein/groups/{wildcards.callset}"
        return {"vcfs": [f"{base}/{g.name}.vcf.gz" for g in self.score_groups],
                "parquets": [f"{base}/{g.name}.parquet" for g in self.score_groups],
                "consequences": [f"{base}/{g.name}.consequences.parquet" for g in self.score_groups]}

    def group_consequences(self, wildcards: Any) -> list[str]:
        """Every callset's consequence table of a scoring group, samples first (cache_missense)."""
        return [f"results/protein/groups/{c}/{wildcards.group}.consequences.parquet" for c in self.callsets()]

    def protein_vcf(self, wildcards: Any) -> dict[str, str]:
        """The VCF a score_missense job annotates: its group's SpliceAI part when that stage runs (so that
        results/protein/{callset}.vcf.gz carries every annotation, and no job waits for the splice
        gather), else the calls."""
        if self.config["splice"]["enabled"]:
            part = f"results/splice/groups/{wildcards.callset}/{wildcards.group}.vcf.gz"
            return {"vcf": part, "tbi": f"{part}.tbi"}
        return {"vcf": f"results/calls/{wildcards.callset}.vcf.gz", "tbi": f"results/calls/{wildcards.callset}.vcf.gz.tbi"}

    def protein_model_files(self, wildcards: Any = None) -> list[str]:
        """The staged model's config.json: re-adding (replacing) a model re-scores every callset."""
        assert self.model is not None, "protein.enabled is false"
        return self.model.files

    def protein_model_options(self, wildcards: Any = None) -> str:
        """``--model NAME --model-store ABS --strategy S`` for `aisci plm score`."""
        assert self.model is not None, "protein.enabled is false"
        return f"{self.model.options()} --strategy {shlex.quote(self.config['protein']['strategy'])}"

    # --- provenance ------------------------------------------------------------------------
    def resolved_config(self, wildcards: Any = None) -> str:
        """The validated config with every default filled in, as JSON (recorded in results/pipeline_info)."""
        import json

        return json.dumps(self.config, sort_keys=True)

    def provenance_options(self, wildcards: Any = None) -> list[str]:
        """What `aisci provenance info` records besides the config: the models the run uses, the catalog release."""
        options: list[str] = []
        if self.config["splice"]["enabled"]:
            weights = self.config["splice"]["weights"]  # the weights the stage loads (default: the spliceai package's)
            options += ["--splice-weights", str(Path(weights).resolve())] if weights else ["--splice-weights"]
        if self.model is not None:
            options += ["--model-manifest", str(self.model.store)]
        release = self.release_file()
        if release is not None:  # run from an installed catalog release: record which
            options += ["--release", str(release)]
        return options

    def reference_name(self, wildcards: Any = None) -> str:
        """The configured reference's file name, for ``##reference`` in the VCFs (never the working copy's)."""
        return Path(self.config["reference"]).name


def _share(groups: list[Group], name: str) -> float:
    """The named group's bases over all groups' (a runtime estimate's share of the job's inputs)."""
    return next(g.length for g in groups if g.name == name) / sum(g.length for g in groups)
