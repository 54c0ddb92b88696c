# rules/context.smk — GPU-class stage: sequence-context features of every call, computed in torch.
#
# Provides: annotate_context
# Inputs:   results/calls/{sample}.vcf.gz
# Outputs:  results/context/{sample}.context.parquet (chrom, pos, ref, alt, gc, cpg, homopolymer, entropy, n_fraction)
# Runtime:  GPU class (resources: gpu=1): the Slurm profile sends it to the GPU partition; it runs on
#           CUDA when the job's CUDA_VISIBLE_DEVICES names a real device, else on the CPU, and logs which.


rule annotate_context:
    input:
        vcf="results/calls/{sample}.vcf.gz",
        ref="resources/reference/genome.fa",
    output:
        parquet="results/context/{sample}.context.parquet",
    log:
        "logs/annotate_context/{sample}.log",
    benchmark:
        "benchmarks/annotate_context/{sample}.tsv"
    conda:
        "../envs/aisci.yaml"
    threads: 1
    resources:
        gpu=1,
        mem_mb=mem_per_attempt(4000),
        runtime=runtime_per_attempt(base_min=10, min_per_k_records=0.002, records=("vcf",), efficiency=0),
    shell:
        "aisci context --vcf {input.vcf:q} --ref {input.ref:q} --out {output.parquet:q} > {log:q} 2>&1"
