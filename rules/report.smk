# rules/report.smk — one page per run: the run, QC, calls, accuracy, AI effects and cluster use.
#
# Provides: bcftools_stats, report, multiqc
# Inputs:   results/calls/{callset}.vcf.gz; for the report every final output of the run
# Outputs:  results/qc/{callset}.bcftools_stats.txt, results/report.html (self-contained: no network),
#           results/qc/{usage,splice,protein}_mqc.tsv (MultiQC custom content),
#           results/multiqc/multiqc_report.html (config report.multiqc)
# Runtime:  CPU class; resources come from profiles/, never from config.yaml. bcftools_stats in group
#           'calls'; the report is one job at the end (on Slurm it also reads the run's jobs from sacct).


rule bcftools_stats:
    group:
        "calls"
    input:
        vcf="results/calls/{callset}.vcf.gz",
        tbi="results/calls/{callset}.vcf.gz.tbi",
    output:
        stats=report("results/qc/{callset}.bcftools_stats.txt", category="Calls", labels={"callset": "{callset}", "file": "bcftools stats"}),
    log:
        "logs/bcftools_stats/{callset}.log",
    benchmark:
        "benchmarks/bcftools_stats/{callset}.tsv"
    conda:
        "../envs/bcftools.yaml"
    threads: 1
    resources:
        mem_mb=mem_per_attempt(1000),
        runtime=VCF_PASS.per_attempt(inputs=("vcf",)),
    shell:
        "bcftools stats {input.vcf:q} > {output.stats:q} 2> {log:q}"


rule report:
    input:
        unpack(pipeline.report_inputs),
    output:
        html=report("results/report.html", category="Run report", labels={"file": "report.html"}),
        # MultiQC custom content: cluster use, and the SpliceAI and protein summaries when those stages are on
        mqc=list(pipeline.custom_content().values()),
    log:
        "logs/report/report.log",
    benchmark:
        "benchmarks/report/report.tsv"
    conda:
        "../envs/aisci.yaml"
    threads: 1
    resources:
        mem_mb=mem_per_attempt(2000),
        runtime=runtime_per_attempt(base_min=30),
    params:
        mqc=pipeline.custom_content_options,
    shell:
        "aisci report germline --pipeline-info {input.info:q} --stats {input.stats:q}"
        " --bcftools-stats {input.bcftools_stats:q} --calls {input.calls:q} --eval {input.eval:q}"
        " --splice {input.splice:q} --protein {input.protein:q} {params.mqc} --out {output.html:q} > {log:q} 2>&1"


rule multiqc:
    input:
        pipeline.multiqc_inputs,
    output:
        html=report("results/multiqc/multiqc_report.html", category="Run report", labels={"file": "MultiQC"}),
        data=directory("results/multiqc/multiqc_data"),
    log:
        "logs/multiqc/multiqc.log",
    benchmark:
        "benchmarks/multiqc/multiqc.tsv"
    conda:
        "../envs/multiqc.yaml"
    threads: 1
    resources:
        mem_mb=mem_per_attempt(2000),
        runtime=runtime_per_attempt(base_min=30),
    shell:
        # --no-version-check: compute nodes are offline; explicit files: only this run's, never a stale one
        # the names given: --title would otherwise name the files after it
        "multiqc --no-version-check --force --no-ai --title 'aisci germline run' --outdir results/multiqc"
        " --filename multiqc_report.html --cl-config 'data_dir_name: multiqc_data' {input:q} > {log:q} 2>&1"
