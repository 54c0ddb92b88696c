# rules/splice.smk — GPU-class stage: SpliceAI delta scores of every call (official models in PyTorch).
#
# Provides: score_splicing
# Inputs:   results/calls/{callset}.vcf.gz (+ .tbi), the prepared reference, config splicing.annotation
# Outputs:  results/splice/{callset}.vcf.gz (+ .tbi)  input records + INFO/SpliceAI, official format
#           results/splice/{callset}.parquet          one row per ALT allele x gene
# Runtime:  GPU class (resources: gpu=1): the Slurm profile sends it to the GPU partition; it runs on
#           CUDA when the job's CUDA_VISIBLE_DEVICES names a real device, else on all CPU threads.
#           Weights: the spliceai package's .h5 files (GPL-3.0), checked before any job is submitted.


rule score_splicing:
    input:
        vcf="results/calls/{callset}.vcf.gz",
        tbi="results/calls/{callset}.vcf.gz.tbi",
        ref="resources/reference/genome.fa",
        fai="resources/reference/genome.fa.fai",
        annotation=pipeline.splice_annotation_file,
    output:
        vcf="results/splice/{callset}.vcf.gz",
        tbi="results/splice/{callset}.vcf.gz.tbi",
        parquet="results/splice/{callset}.parquet",
    log:
        "logs/score_splicing/{callset}.log",
    benchmark:
        "benchmarks/score_splicing/{callset}.tsv"
    conda:
        "../envs/spliceai.yaml"
    threads: 2
    resources:
        gpu=1,
        mem_mb=mem_per_attempt(6000),
        runtime=SPLICEAI_GPU.per_attempt(records=("tbi",)),
    params:
        options=pipeline.splice_options,
    shell:
        "aisci splice score --vcf {input.vcf:q} --ref {input.ref:q} {params.options} --threads {threads}"
        " --out {output.vcf:q} --parquet {output.parquet:q} > {log:q} 2>&1"
