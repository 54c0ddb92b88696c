# rules/splice.smk — GPU-class stage: SpliceAI delta scores of every call (official models in PyTorch).
#
# Provides: cache_splicing, score_splicing, gather_splicing
# Inputs:   results/calls/{callset}.vcf.gz (+ .tbi), the prepared reference, config splice.annotation,
#           the scoring groups' regions files (resources/reference/regions/score/{group}.tsv),
#           the score cache (config score_cache: read and added to)
# Outputs:  results/splice/{callset}.vcf.gz (+ .tbi)  input records + INFO/SpliceAI, official format
#           results/splice/{callset}.parquet          one row per ALT allele x gene
#           results/splice/cache/{group}.json         alleles read and newly scored by each cache_splicing job
# Runtime:  cache_splicing is GPU class (resources: gpu=1): the Slurm profile sends it to the GPU
#           partition; it runs on CUDA when the job's CUDA_VISIBLE_DEVICES names a real device, else on
#           all CPU threads. score_splicing and gather_splicing read and write files only (CPU class),
#           one Slurm job per callset (group 'splice').
#           Weights: the spliceai package's .h5 files (GPL-3.0), checked before any job is submitted.


# Score once: one job per scoring group reads every callset's records in the group's regions and
# scores the alleles that the score cache (config score_cache, one store per model version) lacks, each
# once — an allele of several samples and of the cohort is scored for the first only, and a rerun
# that adds a sample scores only its new alleles. Several groups write the cache at once safely
# (each part is written whole under its own name).
rule cache_splicing:
    input:
        unpack(pipeline.callset_vcfs),
        ref="resources/reference/genome.fa",
        fai="resources/reference/genome.fa.fai",
        annotation=pipeline.splice_annotation_file,
        regions="resources/reference/regions/score/{group}.tsv",
    output:
        summary="results/splice/cache/{group}.json",
    log:
        "logs/cache_splicing/{group}.log",
    benchmark:
        "benchmarks/cache_splicing/{group}.tsv"
    conda:
        "../envs/spliceai.yaml"
    threads: 2
    resources:
        gpu=1,
        mem_mb=mem_per_attempt(6000),
        runtime=SPLICEAI_GPU.per_attempt(records=("tbis",), share=pipeline.score_group_share),
    params:
        options=pipeline.splice_options,
        cache=pipeline.score_cache,
    shell:
        "aisci splice cache --cache {params.cache:q} --ref {input.ref:q} {params.options} --regions-file {input.regions:q}"
        " --threads {threads} --summary {output.summary:q} {input.vcfs:q} > {log:q} 2>&1"


# Then per callset and scoring group, the records whose POS lies in the group's regions get their
# scores from the cache (byte for byte what scoring them would write); gathered in order, byte for
# byte the unscattered result. Nothing is left to score: a CPU job without the model.
rule score_splicing:
    group:
        "splice"
    input:
        vcf="results/calls/{callset}.vcf.gz",
        tbi="results/calls/{callset}.vcf.gz.tbi",
        ref="resources/reference/genome.fa",
        fai="resources/reference/genome.fa.fai",
        annotation=pipeline.splice_annotation_file,
        regions="resources/reference/regions/score/{group}.tsv",
        cached="results/splice/cache/{group}.json",
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
    threads: 1
    resources:
        mem_mb=mem_per_attempt(4000),
        runtime=VCF_PASS.per_attempt(inputs=("vcf",)),
    params:
        options=pipeline.splice_options,
        cache=pipeline.score_cache,
    shell:
        "aisci splice score --vcf {input.vcf:q} --ref {input.ref:q} {params.options} --regions-file {input.regions:q}"
        " --cache {params.cache:q} --threads {threads} --out {output.vcf:q} --parquet {output.parquet:q}"
        " > {log:q} 2>&1"


rule gather_splicing:
    group:
        "splice"
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
