"""The glue between each pipeline's Snakefile and the stages: config and sheet checks, plans, projects, provenance."""
