# rules/protein.smk — coding consequences (CPU) and protein language model scores (GPU class) of every call.
#
# Provides: annotate_coding, cache_missense, score_missense, gather_protein
# Inputs:   results/calls/{callset}.vcf.gz, the prepared reference, config protein.annotation (GFF3/GTF),
#           the model protein.model of the store protein.model_store (checked before any job is submitted),
#           the scoring groups' regions files (one job per callset and group, gathered in order),
#           the score cache (config score_cache: read and added to)
# Outputs:  results/protein/{callset}.consequences.parquet  one row per record x ALT x transcript (aisci annotate)
#           results/protein/{callset}.vcf.gz (+ .tbi)        + INFO/AISCI_CSQ and INFO/PLM_SCORE (on top of
#                                                            INFO/SpliceAI when splice.enabled)
#           results/protein/{callset}.parquet               consequences + model, strategy, score
#           results/protein/cache/{group}.json             protein changes read and newly scored per group
# Runtime:  annotate_coding, score_missense: CPU class. cache_missense: GPU class (resources: gpu=1): CUDA
#           when the job's CUDA_VISIBLE_DEVICES names a real device, else all CPU threads. Nothing is
#           downloaded in a job. Groups: annotate_coding joins 'calls'; score_missense and gather_protein
#           are 'protein', one Slurm job per callset.


rule annotate_coding:
    group:
        "calls"
    input:
        vcf="results/calls/{callset}.vcf.gz",
        tbi="results/calls/{callset}.vcf.gz.tbi",
        ref="resources/reference/genome.fa",
        fai="resources/reference/genome.fa.fai",
        annotation=pipeline.protein_annotation_file,
        regions="resources/reference/regions/score/{group}.tsv",
    output:
        parquet=temp("results/protein/groups/{callset}/{group}.consequences.parquet"),
    log:
        "logs/annotate_coding/{callset}/{group}.log",
    benchmark:
        "benchmarks/annotate_coding/{callset}/{group}.tsv"
    conda:
        "../envs/aisci.yaml"
    threads: 1
    resources:
        mem_mb=mem_per_attempt(2000),
        runtime=runtime_per_attempt(base_min=30),
    shell:
        "aisci annotate --vcf {input.vcf:q} --ref {input.ref:q} --annotation {input.annotation:q}"
        " --regions-file {input.regions:q} --out {output.parquet:q} > {log:q} 2>&1"


# Score once: one job per scoring group reads every callset's consequences in the group and scores
# the in-frame protein changes that the score cache (config score_cache; one store per model's files
# and strategy) lacks, each once: the cohort repeats the samples' changes, samples share theirs.
rule cache_missense:
    input:
        tables=pipeline.group_consequences,
        model=pipeline.protein_model_files,
        regions="resources/reference/regions/score/{group}.tsv",
    output:
        summary="results/protein/cache/{group}.json",
    log:
        "logs/cache_missense/{group}.log",
    benchmark:
        "benchmarks/cache_missense/{group}.tsv"
    conda:
        "../envs/esm.yaml"
    threads: 2
    resources:
        gpu=1,
        mem_mb=mem_per_attempt(8000),
        runtime=runtime_per_attempt(base_min=60),
    params:
        options=pipeline.protein_model_options,
        cache=pipeline.score_cache,
    shell:
        "aisci plm cache --cache {params.cache:q} {params.options} --regions-file {input.regions:q}"
        " --threads {threads} --summary {output.summary:q} {input.tables:q} > {log:q} 2>&1"


# Then per callset and group: consequences + scores from the cache into the VCF and Parquet (the bytes
# scoring would write); no model is loaded unless a change is missing from the cache.
rule score_missense:
    group:
        "protein"
    input:
        unpack(pipeline.protein_vcf),
        consequences="results/protein/groups/{callset}/{group}.consequences.parquet",
        model=pipeline.protein_model_files,
        regions="resources/reference/regions/score/{group}.tsv",
        cached="results/protein/cache/{group}.json",
    output:
        vcf=temp("results/protein/groups/{callset}/{group}.vcf.gz"),
        tbi=temp("results/protein/groups/{callset}/{group}.vcf.gz.tbi"),
        parquet=temp("results/protein/groups/{callset}/{group}.parquet"),
    log:
        "logs/score_missense/{callset}/{group}.log",
    benchmark:
        "benchmarks/score_missense/{callset}/{group}.tsv"
    conda:
        "../envs/esm.yaml"
    threads: 1
    resources:
        mem_mb=mem_per_attempt(4000),
        runtime=runtime_per_attempt(base_min=30),
    params:
        options=pipeline.protein_model_options,
        cache=pipeline.score_cache,
    shell:
        "aisci plm score --vcf {input.vcf:q} --consequences {input.consequences:q} {params.options}"
        " --regions-file {input.regions:q} --cache {params.cache:q} --threads {threads} --out {output.vcf:q}"
        " --parquet {output.parquet:q} > {log:q} 2>&1"


rule gather_protein:
    group:
        "protein"
    input:
        unpack(pipeline.protein_parts),
    output:
        vcf="results/protein/{callset}.vcf.gz",
        tbi="results/protein/{callset}.vcf.gz.tbi",
        parquet="results/protein/{callset}.parquet",
        consequences="results/protein/{callset}.consequences.parquet",
    log:
        "logs/gather_protein/{callset}.log",
    benchmark:
        "benchmarks/gather_protein/{callset}.tsv"
    conda:
        "../envs/aisci.yaml"
    threads: 1
    resources:
        mem_mb=mem_per_attempt(2000),
        runtime=VCF_PASS.per_attempt(inputs=("vcfs",)),
    shell:
        "(aisci gather vcf --out {output.vcf:q} {input.vcfs:q}"
        " && aisci gather parquet --out {output.parquet:q} {input.parquets:q}"
        " && aisci gather parquet --out {output.consequences:q} {input.consequences:q}) > {log:q} 2>&1"
