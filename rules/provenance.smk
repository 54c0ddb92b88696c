# rules/provenance.smk — what a run is made of, recorded beside its results.
#
# Provides: pipeline_info
# Inputs:   the validated config, the sample sheet, the model store and SpliceAI weights in use
# Outputs:  results/pipeline_info/ — versions.json (tool binaries, Python packages, aisci), config.yaml
#           (resolved, defaults filled), the sample sheet, command.txt, run.json (run id, time, host, config
#           files' SHA-256), models.json (model store manifests, SpliceAI weight hashes)
# Runtime:  local: a few seconds, no data read.


# Re-run whenever what defines the results changes (Snakemake's params rerun trigger): the resolved
# config, the config files, the models. A run that changes nothing leaves the record of the run that
# made the results.
rule pipeline_info:
    input:
        samples=lookup(dpath="samples", within=config),
    output:
        info=directory("results/pipeline_info"),
    log:
        "logs/pipeline_info/run.log",
    conda:
        "../envs/aisci.yaml"
    threads: 1
    params:
        config=pipeline.resolved_config,
        configfiles=pipeline.configfiles,
        models=pipeline.provenance_options,
    shell:
        # the command line is read from the Snakemake process (a param would re-run this rule on `-n`)
        "aisci provenance info --out {output.info:q} --resolved-config-json {params.config:q} --samples {input.samples:q}"
        " --configfile {params.configfiles:q} {params.models:q} > {log:q} 2>&1"
