# fmwsss developer and demo entry points. `make help` lists them.
VENV ?= .venv
BIN := $(VENV)/bin
PYTHON ?= python3
CORES ?= all
# Where `make demo` copies the 24 VOC demo images from: a local copy of the sample (as on the CI machine), or
# the official VOC2012 trainval tar URL on a machine that is online.
VOC_SAMPLE_SOURCE ?= ../shared/data/voc_sample

.PHONY: help install data demo demo-pretrained test test-fast lint clean-results

help:  ## list targets
	@grep -E '^[a-z-]+:.*##' $(MAKEFILE_LIST) | sed 's/:.*## /\t/'

$(BIN)/fmwsss: pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --upgrade pip
	$(BIN)/pip install -e .
	touch $@

install: $(BIN)/fmwsss  ## create .venv and install fmwsss with its pinned dependencies

data/voc_sample/labels.json: | $(BIN)/fmwsss
	$(BIN)/fmwsss data voc-sample --source $(VOC_SAMPLE_SOURCE) --dest data/voc_sample

data: data/voc_sample/labels.json  ## fetch the 24-image VOC demo sample into data/ (git-ignored)

demo: data  ## the pipeline on the VOC demo images with TINY RANDOM TEST WEIGHTS (not a real result)
	@echo "== make demo: tiny random-weight test models, 24 VOC demo images. For real results: make demo-pretrained =="
	$(BIN)/snakemake --cores $(CORES) results/demo/seeds
	$(BIN)/fmwsss status demo

demo-pretrained: data  ## the same with the real CLIP ViT-B/16 and SAM ViT-H weights (downloads them once)
	$(BIN)/snakemake --cores $(CORES) results/demo_pretrained/seeds
	$(BIN)/fmwsss status demo_pretrained

test: $(BIN)/fmwsss  ## the whole test suite (unit, equivalence, oracle, end-to-end workflow)
	$(BIN)/python -m pytest -q --durations=15

test-fast: $(BIN)/fmwsss  ## the suite without tests marked slow
	$(BIN)/python -m pytest -q -m "not slow"

lint: $(BIN)/fmwsss  ## snakemake --lint
	$(BIN)/snakemake --lint
