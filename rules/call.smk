# rules/call.smk — small-variant calling on CPU nodes, scattered over reference chunks and gathered.
#
# Provides: call_chunk, gather_calls, filter_calls
# Inputs:   results/align/{sample}.bam — one sample per callset, or every sample for "cohort"
# Outputs:  results/calls/{callset}.vcf.gz (+ .tbi): split multi-allelics, left-aligned, soft-filtered
# Runtime:  CPU class; resources come from profiles/, never from config.yaml.


rule call_chunk:
    input:
        bams=pipeline.callset_bams,
        bais=pipeline.callset_bais,
        ref="resources/reference/genome.fa",
        fai="resources/reference/genome.fa.fai",
    output:
        bcf=temp("results/calls/chunks/{callset}/{chunk}.bcf"),
    log:
        "logs/call_chunk/{callset}/{chunk}.log",
    benchmark:
        "benchmarks/call_chunk/{callset}/{chunk}.tsv"
    conda:
        "../envs/bcftools.yaml"
    threads: 1
    resources:
        mem_mb=mem_per_attempt(2000),
    params:
        region=pipeline.chunk_region,
        min_mapq=lookup(dpath="calling/min_mapq", within=config),
        min_baseq=lookup(dpath="calling/min_baseq", within=config),
        max_depth=lookup(dpath="calling/max_depth", within=config),
    shell:
        "(bcftools mpileup --fasta-ref {input.ref} --regions {params.region} --annotate FORMAT/AD,FORMAT/DP"
        " --min-MQ {params.min_mapq} --min-BQ {params.min_baseq} --max-depth {params.max_depth}"
        " --output-type u {input.bams}"
        " | bcftools call --multiallelic-caller --variants-only --output-type b --output {output.bcf}) > {log} 2>&1"


rule gather_calls:
    input:
        chunks=pipeline.chunk_calls,
        ref="resources/reference/genome.fa",
    output:
        bcf=temp("results/calls/{callset}.norm.bcf"),
    log:
        "logs/gather_calls/{callset}.log",
    benchmark:
        "benchmarks/gather_calls/{callset}.tsv"
    conda:
        "../envs/bcftools.yaml"
    threads: 1
    resources:
        mem_mb=mem_per_attempt(1000),
    shell:
        # chunks are disjoint and in reference order, so a plain concat gives a sorted file
        "(bcftools concat --output-type u {input.chunks}"
        " | bcftools norm --multiallelics -any --fasta-ref {input.ref} --output-type b --output {output.bcf})"
        " > {log} 2>&1"


rule filter_calls:
    input:
        bcf="results/calls/{callset}.norm.bcf",
    output:
        vcf="results/calls/{callset}.vcf.gz",
        tbi="results/calls/{callset}.vcf.gz.tbi",
    log:
        "logs/filter_calls/{callset}.log",
    benchmark:
        "benchmarks/filter_calls/{callset}.tsv"
    conda:
        "../envs/bcftools.yaml"
    threads: 1
    resources:
        mem_mb=mem_per_attempt(1000),
    params:
        min_qual=lookup(dpath="filter/min_qual", within=config),
        min_depth=lookup(dpath="filter/min_depth", within=config),
    shell:
        "(bcftools filter --soft-filter LowQual --exclude 'QUAL<{params.min_qual}' --output-type u {input.bcf}"
        " | bcftools filter --mode + --soft-filter LowDepth --exclude 'INFO/DP<{params.min_depth}'"
        " --output-type z --output {output.vcf}"
        " && tabix --preset vcf {output.vcf}) > {log} 2>&1"
