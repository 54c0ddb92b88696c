# rules/reanalysis.smk — batch reanalysis of a cohort: ingest VCFs into the cohort store, re-score, summarise.
#
# Provides: ingest_shard, score_variants, cohort_summary, report_cohort
# Inputs:   the VCFs of config manifest (one ingest job per shard of shard_size rows, never one per sample);
#           config reference, splice.annotation, protein.annotation and the model protein.model of
#           protein.model_store (all checked before any job is submitted)
# Outputs:  results/reanalysis/shards/{shard}.json, scores/{stage}.json, cohort.tsv: JSON/TSV reports;
#           results/reanalysis/report.html: the run on one page (samples, variants, AF spectrum, scores, ingest). The data
#           goes to the folder config store, no Snakemake output: it outlives runs and grows shard by shard,
#           each commit under the store's own lock, so shard jobs run in parallel safely.
# Reruns:   a shard whose VCFs changed (mtime) or whose sample set changed; a stage whose model options (params),
#           reference, annotation or model changed, or after any shard ran (it then scores only the variants
#           with no cached score for its model version).
# Runtime:  ingest_shard, cohort_summary, report_cohort: CPU class. score_variants: GPU class (resources: gpu=1): CUDA when the
#           job's CUDA_VISIBLE_DEVICES names a real device, else CPU threads. Nothing is downloaded in a job.


rule ingest_shard:
    input:
        vcfs=pipeline.shard_vcfs,
    output:
        report="results/reanalysis/shards/{shard}.json",
    log:
        "logs/ingest_shard/{shard}.log",
    benchmark:
        "benchmarks/ingest_shard/{shard}.tsv"
    conda:
        "../envs/aisci.yaml"
    threads: 1
    resources:
        mem_mb=mem_per_attempt(4000),
        runtime=runtime_per_attempt(base_min=10, min_per_gb=2, inputs=("vcfs",)),
    params:
        manifest=lookup(dpath="manifest", within=config),
        store=lookup(dpath="store", within=config),
        shard_size=lookup(dpath="shard_size", within=config),
        samples=pipeline.shard_samples,
    shell:
        "aisci cohort ingest --manifest {params.manifest:q} --store {params.store:q} --shard {wildcards.shard:q}"
        " --shard-size {params.shard_size:q} --report {output.report:q} > {log:q} 2>&1"


rule score_variants:
    input:
        unpack(pipeline.score_inputs),
        shards=pipeline.shard_reports,
    output:
        report="results/reanalysis/scores/{stage}.json",
    log:
        "logs/score_variants/{stage}.log",
    benchmark:
        "benchmarks/score_variants/{stage}.tsv"
    conda:
        pipeline.score_env
    threads: 2
    resources:
        gpu=1,
        mem_mb=mem_per_attempt(16000),
        runtime=runtime_per_attempt(base_min=120),
    params:
        store=lookup(dpath="store", within=config),
        options=pipeline.score_options,
    shell:
        "aisci cohort score --store {params.store:q} --stage {wildcards.stage:q} {params.options}"
        " --threads {threads} --report {output.report:q} > {log:q} 2>&1"


rule cohort_summary:
    input:
        shards=pipeline.shard_reports,
        scores=pipeline.score_reports,
    output:
        tsv="results/reanalysis/cohort.tsv",
    log:
        "logs/cohort_summary/cohort.log",
    benchmark:
        "benchmarks/cohort_summary/cohort.tsv"
    conda:
        "../envs/aisci.yaml"
    threads: 1
    resources:
        mem_mb=mem_per_attempt(2000),
        runtime=runtime_per_attempt(base_min=10),
    params:
        store=lookup(dpath="store", within=config),
    shell:
        "aisci cohort info --store {params.store:q} --out {output.tsv:q} > {log:q} 2>&1"


rule report_cohort:
    input:
        shards=pipeline.shard_reports,
        scores=pipeline.score_reports,
        summary="results/reanalysis/cohort.tsv",
    output:
        html=report("results/reanalysis/report.html", category="Run report", labels={"file": "report.html"}),
    log:
        "logs/report_cohort/report.log",
    benchmark:
        "benchmarks/report_cohort/report.tsv"
    conda:
        "../envs/aisci.yaml"
    threads: 1
    resources:
        mem_mb=mem_per_attempt(4000),
        runtime=runtime_per_attempt(base_min=30),
    params:
        store=lookup(dpath="store", within=config),
    shell:
        "aisci report cohort --store {params.store:q} --shards {input.shards:q} --scores {input.scores:q}"
        " --summary {input.summary:q} --out {output.html:q} > {log:q} 2>&1"
