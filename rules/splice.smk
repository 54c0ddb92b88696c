# rules/splice.smk — GPU-class stage: SpliceAI delta scores of every call (official models in PyTorch).
#
# Provides: score_splicing, gather_splicing
# Inputs:   results/calls/{callset}.vcf.gz (+ .tbi), the prepared reference, config splicing.annotation,
#           the scoring groups' regions files (resources/reference/regions/score/{group}.tsv)
# Outputs:  results/splice/{callset}.vcf.gz (+ .tbi)  input records + INFO/SpliceAI, official format
#           results/splice/{callset}.parquet          one row per ALT allele x gene
# Runtime:  GPU class (resources: gpu=1): the Slurm profile sends it to the GPU partition; it runs on
#           CUDA when the job's CUDA_VISIBLE_DEVICES names a real device, else on all CPU threads.
#           Weights: the spliceai package's .h5 files (GPL-3.0), checked before any job is submitted.


# One job per callset and scoring group (calling.scoring_groups): the records whose POS lies in the
# group's regions, each scored by exactly one job; gathered in order, byte for byte the unscattered result.
rule score_splicing:
    input:
        vcf="results/calls/{callset}.vcf.gz",
        tbi="results/calls/{callset}.vcf.gz.tbi",
        ref="resources/reference/genome.fa",
        fai="resources/reference/genome.fa.fai",
        annotation=pipeline.splice_annotation_file,
        regions="resources/reference/regions/score/{group}.tsv",
    output:
        vcf=temp("results/splice/groups/{callset}/{group}.vcf.gz"),
        tbi=temp("results/splice/groups/{callset}/{group}.vcf.gz.tbi"),
        parquet=temp("results/splice/groups/{callset}/{group}.parquet"),
    log:
        "logs/score_splicing/{callset}/{group}.log",
    benchmark:
        "benchmarks/score_splicing/{callset}/{group}.tsv"
    conda:
        "../envs/spliceai.yaml"
    threads: 2
    resources:
        gpu=1,
        mem_mb=mem_per_attempt(6000),
        runtime=SPLICEAI_GPU.per_attempt(records=("tbi",), share=pipeline.score_group_share),
    params:
        options=pipeline.splice_options,
    shell:
        "aisci splice score --vcf {input.vcf:q} --ref {input.ref:q} {params.options} --regions-file {input.regions:q}"
        " --threads {threads} --out {output.vcf:q} --parquet {output.parquet:q} > {log:q} 2>&1"


rule gather_splicing:
    input:
        unpack(pipeline.splice_parts),
    output:
        vcf="results/splice/{callset}.vcf.gz",
        tbi="results/splice/{callset}.vcf.gz.tbi",
        parquet="results/splice/{callset}.parquet",
    log:
        "logs/gather_splicing/{callset}.log",
    benchmark:
        "benchmarks/gather_splicing/{callset}.tsv"
    conda:
        "../envs/aisci.yaml"
    threads: 1
    resources:
        mem_mb=mem_per_attempt(2000),
        runtime=VCF_PASS.per_attempt(inputs=("vcfs",)),
    shell:
        "(aisci gather vcf --out {output.vcf:q} {input.vcfs:q}"
        " && aisci gather parquet --out {output.parquet:q} {input.parquets:q}) > {log:q} 2>&1"
