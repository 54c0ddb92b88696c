# rules/reference.smk — reference preparation: an uncompressed, indexed copy plus aligner indexes.
#
# Provides: prepare_reference, index_minimap2, index_bwa
# Inputs:   config["reference"] (FASTA, plain/gzip/bgzip)
# Outputs:  resources/reference/genome.fa (+ .fai), genome.mmi (minimap2), genome.fa.{amb,ann,bwt,pac,sa} (bwa)
# Runtime:  CPU class; resources come from profiles/, never from config.yaml. Group 'reference':
#           one Slurm job per run (on a compute node).


rule prepare_reference:
    group:
        "reference"
    input:
        fasta=config["reference"],
    output:
        fasta="resources/reference/genome.fa",
        fai="resources/reference/genome.fa.fai",
    log:
        "logs/prepare_reference/genome.log",
    benchmark:
        "benchmarks/prepare_reference/genome.tsv"
    conda:
        "../envs/samtools.yaml"
    threads: 1
    resources:
        mem_mb=mem_per_attempt(1000),
        runtime=PREPARE_REFERENCE.per_attempt(inputs=("fasta",)),
    shell:
        "(gzip -cdf {input.fasta:q} > {output.fasta:q} && samtools faidx {output.fasta:q}) > {log:q} 2>&1"


rule index_minimap2:
    group:
        "reference"
    input:
        fasta="resources/reference/genome.fa",
    output:
        mmi="resources/reference/genome.mmi",
    log:
        "logs/index_minimap2/genome.log",
    benchmark:
        "benchmarks/index_minimap2/genome.tsv"
    conda:
        "../envs/minimap2.yaml"
    threads: 2
    resources:
        mem_mb=mem_per_attempt(8000),
        runtime=INDEX_MINIMAP2.per_attempt(inputs=("fasta",)),
    shell:
        "minimap2 -x sr -t {threads} -d {output.mmi:q} {input.fasta:q} > {log:q} 2>&1"


rule index_bwa:
    group:
        "reference"
    input:
        fasta="resources/reference/genome.fa",
    output:
        multiext("resources/reference/genome.fa", ".amb", ".ann", ".bwt", ".pac", ".sa"),
    log:
        "logs/index_bwa/genome.log",
    benchmark:
        "benchmarks/index_bwa/genome.tsv"
    conda:
        "../envs/bwa.yaml"
    threads: 1
    resources:
        mem_mb=mem_per_attempt(8000),
        runtime=INDEX_BWA.per_attempt(inputs=("fasta",)),
    shell:
        "bwa index {input.fasta:q} > {log:q} 2>&1"
