# Snakefile — the default pipeline, so that `snakemake --profile profiles/<site>` works from the
# repository root. Other pipelines: workflows/<name>/Snakefile (use --snakefile).


include: "workflows/germline/Snakefile"


# The target must be defined here: Snakemake ignores `default_target` in included files
# (https://github.com/snakemake/snakemake/issues/2773).
localrules:
    default,


rule default:
    input:
        rules.all.input,
    default_target: True
