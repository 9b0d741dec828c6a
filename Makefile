# fmwsss developer and demo entry points. `make help` lists them.
VENV ?= .venv
BIN := $(VENV)/bin
PYTHON ?= python3
CORES ?= all
# Where `make demo` copies the 24 VOC demo images from: a local copy of the sample (as on the CI machine), or
# the official VOC2012 trainval tar URL on a machine that is online.
VOC_SAMPLE_SOURCE ?= ../shared/data/voc_sample

.PHONY: help install data demo demo-pretrained test test-fast test-long test-slurm lint gpu-wheels gpu-suite

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

# The GPU suite's wheels (benchmarks/gpu_suite.sh): only what a CUDA PyTorch machine lacks. The default set is
# what the project's H200 image lacks (it has numpy, h5py, opencv, pillow, pyyaml, regex, timm, torchvision):
# 4 pure-Python or abi3 wheels, ~2.4 MB. Add others for a barer machine, e.g.
#   make gpu-wheels GPU_WHEEL_EXTRA="numpy==2.4.6 h5py==3.16.0 opencv-python-headless==5.0.0.93"
GPU_WHEELS ?= benchmarks/wheels
GPU_PYTHON_VERSION ?= 3.12
GPU_WHEEL_PKGS ?= segment-anything==1.0 open_clip_torch==3.3.0 ftfy==6.3.1 wcwidth==0.9.4
GPU_WHEEL_EXTRA ?=

gpu-wheels: $(BIN)/fmwsss  ## download the GPU suite's missing dependencies as wheels into benchmarks/wheels/ (git-ignored)
	$(BIN)/python -m pip download --no-deps --only-binary=:all: --python-version $(GPU_PYTHON_VERSION) \
		--implementation cp --platform manylinux_2_28_x86_64 --platform manylinux_2_27_x86_64 \
		--platform manylinux_2_17_x86_64 --platform manylinux2014_x86_64 --platform manylinux1_x86_64 \
		-d $(GPU_WHEELS) $(GPU_WHEEL_PKGS) $(GPU_WHEEL_EXTRA)

# The GPU machine's own python (the one holding its CUDA torch); SMOKE=1 runs the rows at tiny sizes anywhere.
GPU_PYTHON ?= python3
SMOKE ?= 0

gpu-suite:  ## the one-shot GPU suite (<= 5 min on one GPU); SMOKE=1 GPU_PYTHON=.venv/bin/python for tiny sizes here
	PYTHON=$(GPU_PYTHON) SMOKE=$(SMOKE) benchmarks/gpu_suite.sh
