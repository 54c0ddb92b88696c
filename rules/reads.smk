# rules/reads.smk — read input: extract pairs from a BAM/CRAM, and check every FASTQ pair end to end.
#
# Provides: bam_to_fastq, check_reads
# Inputs:   the sample sheet's fq1/fq2 or bam
# Outputs:  results/reads/{sample}_R{1,2}.fastq.gz (temp, BAM samples; RG:Z comments), results/qc/{sample}.reads.json
# Runtime:  CPU class; resources come from profiles/, never from config.yaml. Group 'align'.


rule bam_to_fastq:
    group:
        "align"
    input:
        bam=pipeline.input_bam,
        ref="resources/reference/genome.fa",
    output:
        fq1=temp("results/reads/{sample}_R1.fastq.gz"),
        fq2=temp("results/reads/{sample}_R2.fastq.gz"),
    log:
        "logs/bam_to_fastq/{sample}.log",
    benchmark:
        "benchmarks/bam_to_fastq/{sample}.tsv"
    conda:
        "../envs/samtools.yaml"
    threads: 2
    resources:
        mem_mb=mem_per_attempt(2000),
        runtime=EXTRACT_READS.per_attempt(inputs=("bam",)),
    shell:
        # collate groups mates; fastq drops secondary/supplementary alignments (its default -F 0x900)
        # and writes each read's RG tag as a FASTQ comment (-T RG): check_reads checks it against the
        # input's @RG lines and align_reads keeps it (aisci --read-groups-from, from pipeline.read_pairs)
        "(samtools collate -u -O -@ {threads} --reference {input.ref:q} {input.bam:q} {resources.tmpdir}/{wildcards.sample:q}.collate"
        " | samtools fastq -n -T RG -1 {output.fq1:q} -2 {output.fq2:q} -0 /dev/null -s /dev/null -) > {log:q} 2>&1"


rule check_reads:
    group:
        "align"
    input:
        reads=pipeline.read_files,
    output:
        json="results/qc/{sample}.reads.json",
    log:
        "logs/check_reads/{sample}.log",
    benchmark:
        "benchmarks/check_reads/{sample}.tsv"
    conda:
        "../envs/aisci.yaml"
    threads: 1
    resources:
        mem_mb=mem_per_attempt(500),
        runtime=SCAN.per_attempt(inputs=("reads",), fallback_bytes=pipeline.read_bytes),
    params:
        # --fq1 A --fq2 B (+ --read-groups-from BAM for a BAM/CRAM sample: each read's RG is checked
        # against its @RG lines), or --lane L A B for each lane the sheet names
        pairs=pipeline.read_pairs,
    shell:
        "aisci check-reads --sample {wildcards.sample:q} {params.pairs:q} --out {output.json:q} > {log:q} 2>&1"
