# rules/plm.smk — protein language model stages of workflows/protein: embeddings and mutagenesis maps.
#
# Provides: embed_proteins, saturate_protein, plot_mutagenesis, report_proteins
# Inputs:   config proteins (FASTA), the model `model` of the store `model_store` (checked before any job)
# Outputs:  results/plm/embeddings.parquet, results/plm/mutagenesis/{protein}.parquet and .png,
#           results/plm/report.html (the run on one page: model, maps and heatmaps, embeddings, cluster use;
#           under plm/, not results/report.html, which is the germline run's in a shared project folder)
# Runtime:  embed_proteins, saturate_protein: GPU class (resources: gpu=1), CUDA when the job's
#           CUDA_VISIBLE_DEVICES names a real device, else all CPU threads. plot_mutagenesis, report_proteins: CPU class.


rule embed_proteins:
    input:
        fasta=lookup(dpath="proteins", within=config),
        model=pipeline.model_files,
    output:
        parquet="results/plm/embeddings.parquet",
    log:
        "logs/embed_proteins/embeddings.log",
    benchmark:
        "benchmarks/embed_proteins/embeddings.tsv"
    conda:
        "../envs/esm.yaml"
    threads: 2
    resources:
        gpu=1,
        mem_mb=mem_per_attempt(8000),
        runtime=runtime_per_attempt(base_min=60),
    params:
        options=pipeline.model_options,
    shell:
        "aisci plm embed --fasta {input.fasta:q} {params.options} --threads {threads}"
        " --out {output.parquet:q} > {log:q} 2>&1"


rule saturate_protein:
    input:
        fasta=lookup(dpath="proteins", within=config),
        model=pipeline.model_files,
    output:
        parquet="results/plm/mutagenesis/{protein}.parquet",
    log:
        "logs/saturate_protein/{protein}.log",
    benchmark:
        "benchmarks/saturate_protein/{protein}.tsv"
    conda:
        "../envs/esm.yaml"
    threads: 2
    resources:
        gpu=1,
        mem_mb=mem_per_attempt(8000),
        runtime=runtime_per_attempt(base_min=60),
    params:
        options=pipeline.model_options,
        strategy=lookup(dpath="mutagenesis/strategy", within=config),
    shell:
        "aisci plm mutagenesis --fasta {input.fasta:q} --protein {wildcards.protein:q} {params.options}"
        " --strategy {params.strategy:q} --threads {threads} --out {output.parquet:q} > {log:q} 2>&1"


rule plot_mutagenesis:
    input:
        parquet="results/plm/mutagenesis/{protein}.parquet",
    output:
        png=report("results/plm/mutagenesis/{protein}.png", category="Protein mutagenesis", labels={"protein": "{protein}"}),
    log:
        "logs/plot_mutagenesis/{protein}.log",
    benchmark:
        "benchmarks/plot_mutagenesis/{protein}.tsv"
    conda:
        "../envs/aisci.yaml"
    threads: 1
    resources:
        mem_mb=mem_per_attempt(2000),
        runtime=runtime_per_attempt(base_min=10),
    shell:
        "aisci plm heatmap {input.parquet:q} --out {output.png:q} > {log:q} 2>&1"


rule report_proteins:
    input:
        unpack(pipeline.report_inputs),
    output:
        html=report("results/plm/report.html", category="Run report", labels={"file": "report.html"}),
    log:
        "logs/report_proteins/report.log",
    benchmark:
        "benchmarks/report_proteins/report.tsv"
    conda:
        "../envs/aisci.yaml"
    threads: 1
    resources:
        mem_mb=mem_per_attempt(2000),
        runtime=runtime_per_attempt(base_min=30),
    params:
        options=pipeline.model_options,
    shell:
        "aisci report protein --mutagenesis {input.mutagenesis:q} --heatmaps {input.heatmaps:q}"
        " --embeddings {input.embeddings:q} {params.options} --out {output.html:q} > {log:q} 2>&1"
