# fmwsss developer and demo entry points. `make help` lists them.
VENV ?= .venv
BIN := $(VENV)/bin
PYTHON ?= python3
CORES ?= all
# Where `make demo` copies the 24 VOC demo images from: a local copy of the sample (as on the CI machine), or
# the official VOC2012 trainval tar URL on a machine that is online.
VOC_SAMPLE_SOURCE ?= ../shared/data/voc_sample
# Where `make demo-coco` copies the 12 COCO val2014 sample images and their instances JSON from (a local copy).
COCO_SAMPLE_SOURCE ?= ../shared/data/coco_sample

.PHONY: help install data data-coco demo demo-coco demo-pretrained test test-fast test-long test-slurm lint

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

data/coco_sample/labels.json: | $(BIN)/fmwsss
	$(BIN)/fmwsss data coco-sample --source $(COCO_SAMPLE_SOURCE) --dest data/coco_sample

data-coco: data/coco_sample/labels.json  ## fetch the 12-image COCO demo sample into data/ (git-ignored)

DEMO_IMAGE ?= 2007_000032

demo: data  ## the pipeline on the VOC demo images with TINY RANDOM TEST WEIGHTS (not a real result)
	@echo "== make demo: TINY RANDOM-WEIGHT test models on the 24 VOC demo images: this shows the mechanics, not the"
	@echo "== quality of the method (mIoU is near chance). For real results: make demo-pretrained"
	$(BIN)/snakemake --cores $(CORES) results/demo/seeds results/demo/deeplab
	$(BIN)/fmwsss overlay data/voc_sample/JPEGImages/$(DEMO_IMAGE).jpg results/demo/seeds/$(DEMO_IMAGE).png -o results/demo/overlay_$(DEMO_IMAGE).png
	$(BIN)/fmwsss status demo
	@echo "== seeds (pseudo labels, VOC-palette PNGs): results/demo/seeds/"
	@echo "== metrics against the ground truth: results/demo/seeds/metrics.json (also results/demo/cams_*/metrics.json)"
	@echo "== segmenter trained on the seeds, scored on the 8 val images: results/demo/deeplab/metrics.json"
	@echo "== an overlay picture: results/demo/overlay_$(DEMO_IMAGE).png"

demo-coco: data-coco  ## the coco preset on the COCO sample with TINY RANDOM TEST WEIGHTS (mechanics only)
	$(BIN)/snakemake --cores $(CORES) results/coco_demo/seeds
	$(BIN)/fmwsss status coco_demo
	@echo "== seeds: results/coco_demo/seeds/, scored on the painted COCO masks: results/coco_demo/seeds/metrics.json"

demo-pretrained: data  ## the same with the real CLIP ViT-B/16 and SAM ViT-H weights (downloads them once)
	$(BIN)/snakemake --cores $(CORES) results/demo_pretrained/seeds results/demo_pretrained/deeplab
	$(BIN)/fmwsss overlay data/voc_sample/JPEGImages/$(DEMO_IMAGE).jpg results/demo_pretrained/seeds/$(DEMO_IMAGE).png -o results/demo_pretrained/overlay_$(DEMO_IMAGE).png
	$(BIN)/fmwsss status demo_pretrained
	@echo "== seeds: results/demo_pretrained/seeds/, metrics: results/demo_pretrained/seeds/metrics.json"

test: $(BIN)/fmwsss  ## the test suite (unit, equivalence, oracle, end-to-end workflow) without the long tests
	$(BIN)/python -m pytest -q -m "not long" --durations=15

test-long: $(BIN)/fmwsss  ## the long tests only (the fast SAM generator at paper settings on all 24 demo images)
	$(BIN)/python -m pytest -q -m long

test-fast: $(BIN)/fmwsss  ## the suite without tests marked slow
	$(BIN)/python -m pytest -q -m "not slow and not long"

test-slurm: $(BIN)/fmwsss  ## the tiny workflow on a real one-node SLURM cluster (root: installs slurm-wlm + munge)
	tests/slurm/run.sh

lint: $(BIN)/fmwsss  ## snakemake --lint
	$(BIN)/snakemake --lint
