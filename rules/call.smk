# rules/call.smk — small-variant calling on CPU nodes, scattered over reference chunks and gathered.
#
# Provides: write_regions, call_chunk, gather_calls, filter_calls
# Inputs:   results/align/{sample}.bam — one sample per callset, or every sample for "cohort"
# Outputs:  results/calls/{callset}.vcf.gz (+ .tbi): split multi-allelics, left-aligned, soft-filtered
# Runtime:  CPU class; resources come from profiles/, never from config.yaml.


# Each chunk's intervals travel in a regions file, never on the command line: bcftools splits a
# --regions value at ':' and ',' (GRCh38's HLA-A*01:01:01:01 would be called as nothing). The plan is
# made again from the index built here and must match the one made at start-up (a stale .fai beside
# the configured reference would otherwise drop regions without a word).
rule write_regions:
    input:
        ref="resources/reference/genome.fa",
        fai="resources/reference/genome.fa.fai",
    output:
        regions=pipeline.regions_files(),
    log:
        "logs/write_regions/genome.log",
    benchmark:
        "benchmarks/write_regions/genome.tsv"
    conda:
        "../envs/aisci.yaml"
    threads: 1
    params:
        chunk_size=lookup(dpath="calling/chunk_size", within=config),
        expect=pipeline.contigs_digest,
    shell:
        "aisci regions --ref {input.ref:q} --chunk-size {params.chunk_size:q} --expect {params.expect:q}"
        " --out-dir resources/reference/regions > {log:q} 2>&1"


rule call_chunk:
    input:
        bams=pipeline.callset_bams,
        bais=pipeline.callset_bais,
        ref="resources/reference/genome.fa",
        fai="resources/reference/genome.fa.fai",
        regions="resources/reference/regions/{chunk}.tsv",
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
        min_mapq=lookup(dpath="calling/min_mapq", within=config),
        min_baseq=lookup(dpath="calling/min_baseq", within=config),
        max_depth=lookup(dpath="calling/max_depth", within=config),
    shell:
        "(bcftools mpileup --fasta-ref {input.ref:q} --regions-file {input.regions:q} --annotate FORMAT/AD,FORMAT/DP"
        " --min-MQ {params.min_mapq:q} --min-BQ {params.min_baseq:q} --max-depth {params.max_depth:q}"
        " --output-type u {input.bams:q}"
        " | bcftools call --multiallelic-caller --variants-only --output-type b --output {output.bcf:q}) > {log:q} 2>&1"


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
        "(bcftools concat --output-type u {input.chunks:q}"
        " | bcftools norm --multiallelics -any --fasta-ref {input.ref:q} --output-type b --output {output.bcf:q})"
        " > {log:q} 2>&1"


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
        "(bcftools filter --soft-filter LowQual --exclude 'QUAL<{params.min_qual:q}' --output-type u {input.bcf:q}"
        " | bcftools filter --mode + --soft-filter LowDepth --exclude 'INFO/DP<{params.min_depth:q}'"
        " --output-type z --output {output.vcf:q}"
        " && tabix --preset vcf {output.vcf:q}) > {log:q} 2>&1"
