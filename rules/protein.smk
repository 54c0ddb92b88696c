# rules/protein.smk — coding consequences (CPU) and protein language model scores (GPU class) of every call.
#
# Provides: annotate_coding, score_missense
# Inputs:   results/calls/{callset}.vcf.gz, the prepared reference, config protein.annotation (GFF3/GTF),
#           the model protein.model of the store protein.model_store (checked before any job is submitted)
# Outputs:  results/protein/{callset}.consequences.parquet  one row per record x ALT x transcript (aisci annotate)
#           results/protein/{callset}.vcf.gz (+ .tbi)        + INFO/AISCI_CSQ and INFO/PLM_SCORE (on top of
#                                                            INFO/SpliceAI when splicing.enabled)
#           results/protein/{callset}.parquet               consequences + model, strategy, score
# Runtime:  annotate_coding: CPU class. score_missense: GPU class (resources: gpu=1): CUDA when the job's
#           CUDA_VISIBLE_DEVICES names a real device, else all CPU threads. Nothing is downloaded in a job.


rule annotate_coding:
    input:
        vcf="results/calls/{callset}.vcf.gz",
        ref="resources/reference/genome.fa",
        fai="resources/reference/genome.fa.fai",
        annotation=pipeline.protein_annotation_file,
    output:
        parquet="results/protein/{callset}.consequences.parquet",
    log:
        "logs/annotate_coding/{callset}.log",
    benchmark:
        "benchmarks/annotate_coding/{callset}.tsv"
    conda:
        "../envs/aisci.yaml"
    threads: 1
    resources:
        mem_mb=mem_per_attempt(2000),
        runtime=runtime_per_attempt(base_min=30),
    shell:
        "aisci annotate --vcf {input.vcf:q} --ref {input.ref:q} --annotation {input.annotation:q}"
        " --out {output.parquet:q} > {log:q} 2>&1"


rule score_missense:
    input:
        unpack(pipeline.protein_vcf),
        consequences="results/protein/{callset}.consequences.parquet",
        model=pipeline.protein_model_files,
    output:
        vcf="results/protein/{callset}.vcf.gz",
        tbi="results/protein/{callset}.vcf.gz.tbi",
        parquet="results/protein/{callset}.parquet",
    log:
        "logs/score_missense/{callset}.log",
    benchmark:
        "benchmarks/score_missense/{callset}.tsv"
    conda:
        "../envs/esm.yaml"
    threads: 2
    resources:
        gpu=1,
        mem_mb=mem_per_attempt(8000),
        runtime=runtime_per_attempt(base_min=60),
    params:
        options=pipeline.protein_model_options,
    shell:
        "aisci plm score --vcf {input.vcf:q} --consequences {input.consequences:q} {params.options}"
        " --threads {threads} --out {output.vcf:q} --parquet {output.parquet:q} > {log:q} 2>&1"
