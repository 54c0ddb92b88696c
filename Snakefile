# Snakefile — the default (germline) pipeline, so that `snakemake --profile profiles/<site>` works
# from the repository root; it is the same file `aisci init` writes into a project directory: the
# workflow is used through Snakemake's `module` directive. Other pipelines: workflows/<name>/Snakefile
# (use --snakefile).

from aisci.share import workflow_snakefile


configfile: "config.yaml"


module germline:
    snakefile:
        workflow_snakefile("germline")
    config:
        config


use rule * from germline
