# rules/align.smk — alignment: minimap2 -ax sr (default) or bwa mem, then fixmate, sort, markdup, index.
#
# Provides: align_reads
# Inputs:   the sample's FASTQ pairs, one per lane (checked by check_reads), the aligner index;
#           a BAM/CRAM sample's pair keeps the read groups of the sheet's file (duplicates marked per LB)
# Outputs:  results/align/{sample}.bam (+ .bai), results/qc/{sample}.markdup.txt
# Runtime:  CPU class; resources come from profiles/, never from config.yaml. Group 'align': on Slurm
#           one job per sample with its read checks and QC (rules/reads.smk, rules/qc.smk).


rule align_reads:
    group:
        "align"
    input:
        reads=pipeline.read_files,
        checked="results/qc/{sample}.reads.json",
        index=pipeline.aligner_index,
    output:
        bam="results/align/{sample}.bam",
        bai="results/align/{sample}.bam.bai",
        dup_stats="results/qc/{sample}.markdup.txt",
    log:
        "logs/align_reads/{sample}.log",
    benchmark:
        "benchmarks/align_reads/{sample}.tsv"
    conda:
        "../envs/align.yaml"
    threads: 2
    resources:
        mem_mb=mem_per_attempt(8000),
        runtime=ALIGN_MODELS[config["aligner"]].per_attempt(inputs=("reads",), fallback_bytes=pipeline.read_bytes),
    params:
        aligner=lookup(dpath="aligner", within=config),
        index=pipeline.aligner_index_arg,
        # --fq1 A --fq2 B, or --lane L A B for each lane: lanes get their own read groups and are
        # merged before duplicate marking, in this one job. A BAM/CRAM sample adds --read-groups-from
        # BAM: its reads keep their read groups and the BAM's @RG lines (SM set to the sample)
        pairs=pipeline.read_pairs,
    shell:
        "aisci align --aligner {params.aligner:q} --index {params.index:q} {params.pairs:q}"
        " --sample {wildcards.sample:q} --threads {threads} --out {output.bam:q} --dup-stats {output.dup_stats:q}"
        " > {log:q} 2>&1"
