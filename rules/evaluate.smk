# rules/evaluate.smk — accuracy of a sample's calls against its truth VCF (samples with a `truth` column).
#
# Provides: evaluate_calls
# Inputs:   results/calls/{sample}.vcf.gz, the sheet's truth VCF, optional evaluation.bed
# Outputs:  results/eval/{sample}.json, results/eval/{sample}.tsv, results/eval/{sample}.summary.csv (hap.py's form)
# Runtime:  CPU class; resources come from profiles/, never from config.yaml. Group 'calls'.


rule evaluate_calls:
    group:
        "calls"
    input:
        vcf="results/calls/{sample}.vcf.gz",
        tbi="results/calls/{sample}.vcf.gz.tbi",
        truth=pipeline.truth,
        ref="resources/reference/genome.fa",
    output:
        json="results/eval/{sample}.json",
        # report(): listed by `snakemake --report` (docs/report.md), as the outputs below
        tsv=report("results/eval/{sample}.tsv", category="Accuracy", labels={"sample": "{sample}", "file": "precision, recall, F1"}),
        # hap.py's summary.csv columns: MultiQC's hap.py module shows it (docs/report.md)
        summary="results/eval/{sample}.summary.csv",
    log:
        "logs/evaluate_calls/{sample}.log",
    benchmark:
        "benchmarks/evaluate_calls/{sample}.tsv"
    conda:
        "../envs/aisci.yaml"
    threads: 1
    resources:
        mem_mb=mem_per_attempt(1000),
        runtime=runtime_per_attempt(base_min=30),
    params:
        bed=pipeline.bed_option,
    shell:
        "aisci evaluate --calls {input.vcf:q} --truth {input.truth:q} --ref {input.ref:q} {params.bed}"
        " --sample {wildcards.sample:q} --json {output.json:q} --tsv {output.tsv:q}"
        " --summary-csv {output.summary:q} > {log:q} 2>&1"
