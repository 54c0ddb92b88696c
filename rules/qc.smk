# rules/qc.smk — alignment QC with samtools stats and flagstat.
#
# Provides: samtools_stats, samtools_flagstat
# Inputs:   results/align/{sample}.bam
# Outputs:  results/qc/{sample}.stats.txt, results/qc/{sample}.flagstat.txt
# Runtime:  CPU class; resources come from profiles/, never from config.yaml. Group 'align'.


rule samtools_stats:
    group:
        "align"
    input:
        bam="results/align/{sample}.bam",
        ref="resources/reference/genome.fa",
    output:
        stats=report("results/qc/{sample}.stats.txt", category="Alignment QC", labels={"sample": "{sample}", "file": "samtools stats"}),
    log:
        "logs/samtools_stats/{sample}.log",
    benchmark:
        "benchmarks/samtools_stats/{sample}.tsv"
    conda:
        "../envs/samtools.yaml"
    threads: 1
    resources:
        mem_mb=mem_per_attempt(1000),
        runtime=SCAN.per_attempt(inputs=("bam",), fallback_bytes=pipeline.read_bytes),
    shell:
        "samtools stats --reference {input.ref:q} {input.bam:q} > {output.stats:q} 2> {log:q}"


rule samtools_flagstat:
    group:
        "align"
    input:
        bam="results/align/{sample}.bam",
    output:
        flagstat="results/qc/{sample}.flagstat.txt",
    log:
        "logs/samtools_flagstat/{sample}.log",
    benchmark:
        "benchmarks/samtools_flagstat/{sample}.tsv"
    conda:
        "../envs/samtools.yaml"
    threads: 1
    resources:
        mem_mb=mem_per_attempt(500),
        runtime=SCAN.per_attempt(inputs=("bam",), fallback_bytes=pipeline.read_bytes),
    shell:
        "samtools flagstat {input.bam:q} > {output.flagstat:q} 2> {log:q}"
