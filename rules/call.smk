# rules/call.smk — small-variant calling on CPU nodes, scattered over reference chunks and gathered.
#
# Provides: write_regions, call_group, gather_calls, filter_calls, stamp_calls
# Inputs:   results/align/{sample}.bam — one sample per callset, or every sample for "cohort"
# Outputs:  results/calls/{callset}.vcf.gz (+ .tbi): split multi-allelics, left-aligned, soft-filtered,
#           the header naming aisci's version, the reference file and its contigs
# Runtime:  CPU class; resources come from profiles/, never from config.yaml. Group 'calls': on Slurm
#           a callset's calling groups, gather, filter and stamp (with evaluate_calls, annotate_coding) are one job.


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
        groups=lookup(dpath="calling/groups", within=config),
        score_groups=lookup(dpath="calling/scoring_groups", within=config),
        expect=pipeline.contigs_digest,
    shell:
        "aisci regions --ref {input.ref:q} --chunk-size {params.chunk_size:q} --groups {params.groups:q}"
        " --score-groups {params.score_groups:q} --expect {params.expect:q}"
        " --out-dir resources/reference/regions > {log:q} 2>&1"


# One job per callset and group: the group's chunks are called `threads` at a time inside the job and
# concatenated in order, so the DAG grows with samples, not with genome size / chunk_size (a whole
# genome at 300 kb is ~10,000 chunks but calling.groups jobs per callset).
rule call_group:
    group:
        "calls"
    input:
        bams=pipeline.callset_bams,
        bais=pipeline.callset_bais,
        ref="resources/reference/genome.fa",
        fai="resources/reference/genome.fa.fai",
        regions="resources/reference/regions/{group}.tsv",
    output:
        bcf=temp("results/calls/groups/{callset}/{group}.bcf"),
    log:
        "logs/call_group/{callset}/{group}.log",
    benchmark:
        "benchmarks/call_group/{callset}/{group}.tsv"
    conda:
        "../envs/bcftools.yaml"
    threads: 2
    resources:
        mem_mb=mem_per_attempt(2000),
        runtime=CALL.per_attempt(inputs=("bams",), share=pipeline.group_share),
    params:
        min_mapq=lookup(dpath="calling/min_mapq", within=config),
        min_baseq=lookup(dpath="calling/min_baseq", within=config),
        max_depth=lookup(dpath="calling/max_depth", within=config),
    shell:
        "aisci call --bams {input.bams:q} --ref {input.ref:q} --regions-file {input.regions:q} --threads {threads}"
        " --min-mapq {params.min_mapq:q} --min-baseq {params.min_baseq:q} --max-depth {params.max_depth:q}"
        " --out {output.bcf:q} > {log:q} 2>&1"


rule gather_calls:
    group:
        "calls"
    input:
        groups=pipeline.group_calls,
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
        runtime=VCF_PASS.per_attempt(inputs=("groups",)),
    shell:
        # groups are disjoint and in reference order, so a plain concat gives a sorted file
        "(bcftools concat --output-type u {input.groups:q}"
        " | bcftools norm --multiallelics -any --fasta-ref {input.ref:q} --output-type b --output {output.bcf:q})"
        " > {log:q} 2>&1"


rule filter_calls:
    group:
        "calls"
    input:
        bcf="results/calls/{callset}.norm.bcf",
    output:
        vcf=temp("results/calls/filtered/{callset}.vcf.gz"),
    log:
        "logs/filter_calls/{callset}.log",
    benchmark:
        "benchmarks/filter_calls/{callset}.tsv"
    conda:
        "../envs/bcftools.yaml"
    threads: 1
    resources:
        mem_mb=mem_per_attempt(1000),
        runtime=VCF_PASS.per_attempt(inputs=("bcf",)),
    params:
        min_qual=lookup(dpath="filter/min_qual", within=config),
        min_depth=lookup(dpath="filter/min_depth", within=config),
    shell:
        "(bcftools filter --soft-filter LowQual --exclude 'QUAL<{params.min_qual:q}' --output-type u {input.bcf:q}"
        " | bcftools filter --mode + --soft-filter LowDepth --exclude 'INFO/DP<{params.min_depth:q}'"
        " --output-type z --output {output.vcf:q}) > {log:q} 2>&1"


# The published VCF's header says what made it: ##source=aisci <version>, ##reference= the configured
# file's name (not the working copy resources/reference/genome.fa), and every contig with its length
# (and MD5 for genomes up to 200 Mb, where reading them is cheap).
rule stamp_calls:
    group:
        "calls"
    input:
        vcf="results/calls/filtered/{callset}.vcf.gz",
        ref="resources/reference/genome.fa",
        fai="resources/reference/genome.fa.fai",
    output:
        vcf="results/calls/{callset}.vcf.gz",
        tbi="results/calls/{callset}.vcf.gz.tbi",
    log:
        "logs/stamp_calls/{callset}.log",
    benchmark:
        "benchmarks/stamp_calls/{callset}.tsv"
    conda:
        "../envs/aisci.yaml"
    threads: 1
    resources:
        mem_mb=mem_per_attempt(1000),
        runtime=VCF_PASS.per_attempt(inputs=("vcf",)),
    params:
        reference=pipeline.reference_name,
    shell:
        "aisci provenance header --vcf {input.vcf:q} --out {output.vcf:q} --fai {input.fai:q} --ref {input.ref:q}"
        " --reference-name {params.reference:q} > {log:q} 2>&1"
