# fmwsss developer and demo entry points. `make help` lists them.
VENV ?= .venv
BIN := $(VENV)/bin
PYTHON ?= python3
CORES ?= all
# Where `make data` copies the samples from: by default the copies shipped in samples/ (no network needed);
# VOC_SAMPLE_SOURCE may also be another folder in the same layout, a VOC2012 trainval tar, or its URL.
VOC_SAMPLE_SOURCE ?= samples/voc_sample
COCO_SAMPLE_SOURCE ?= samples/coco_sample
# Snakemake 9 needs Python 3.11 or newer; `make install` checks $(PYTHON) first.
PYTHON_MIN := 3.11

.PHONY: help install install-browser data data-coco demo demo-coco demo-pretrained rehearsal test test-fast test-long test-faults test-slurm lint gpu-wheels gpu-suite

help:  ## list targets
	@grep -E '^[a-z-]+:.*##' $(MAKEFILE_LIST) | sed 's/:.*## /\t/'

$(BIN)/fmwsss: pyproject.toml
	@$(PYTHON) -c 'import sys; sys.exit(sys.version_info < tuple(map(int, "$(PYTHON_MIN)".split("."))))' 2>/dev/null || { \
	  echo "make install: fmwsss needs Python >= $(PYTHON_MIN) (Snakemake 9 does), but PYTHON=$(PYTHON) is" \
	       "$$($(PYTHON) --version 2>/dev/null || echo 'not found')." >&2; \
	  echo "Install Python $(PYTHON_MIN) or newer (e.g. apt-get install python3.11-venv, or conda/uv/pyenv)" \
	       "and run: make install PYTHON=python$(PYTHON_MIN)" >&2; \
	  exit 1; }
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --upgrade pip
	$(BIN)/pip install -e .
	touch $@

install: $(BIN)/fmwsss  ## create .venv and install fmwsss (direct dependencies pinned, Snakemake a 9.x range)

data/voc_sample/labels.json: | $(BIN)/fmwsss
	$(BIN)/fmwsss data voc-sample --source $(VOC_SAMPLE_SOURCE) --dest data/voc_sample

data/coco_sample/labels.json: | $(BIN)/fmwsss
	$(BIN)/fmwsss data coco-sample --source $(COCO_SAMPLE_SOURCE) --dest data/coco_sample

data: data/voc_sample/labels.json data/coco_sample/labels.json  ## copy the VOC and COCO samples into data/ (git-ignored)

data-coco: data/coco_sample/labels.json  ## copy only the 12-image COCO sample into data/ (git-ignored)

DEMO_IMAGE ?= 2007_000032
# When this make started (read once, at parse time): `make demo` ends with its wall time.
MAKE_START := $(shell date +%s)

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
	$(BIN)/fmwsss report demo
	@echo "== make demo: done in $$(( $$(date +%s) - $(MAKE_START) )) s wall"

demo-coco: data-coco  ## the coco preset on the COCO sample with TINY RANDOM TEST WEIGHTS (mechanics only)
	@echo "== make demo-coco: TINY RANDOM-WEIGHT test models on the 12 COCO demo images (coco preset, run to the seeds):"
	@echo "== this shows the mechanics, not the quality of the method (mIoU is near chance)"
	$(BIN)/snakemake --cores $(CORES) results/coco_demo/seeds
	$(BIN)/fmwsss status coco_demo
	@echo "== seeds: results/coco_demo/seeds/, scored on the painted COCO masks: results/coco_demo/seeds/metrics.json"
	$(BIN)/fmwsss report coco_demo

demo-pretrained: data  ## the same with the real CLIP ViT-B/16 and SAM ViT-H weights (downloads them once)
	$(BIN)/snakemake --cores $(CORES) results/demo_pretrained/seeds results/demo_pretrained/deeplab
	$(BIN)/fmwsss overlay data/voc_sample/JPEGImages/$(DEMO_IMAGE).jpg results/demo_pretrained/seeds/$(DEMO_IMAGE).png -o results/demo_pretrained/overlay_$(DEMO_IMAGE).png
	$(BIN)/fmwsss status demo_pretrained
	@echo "== seeds: results/demo_pretrained/seeds/, metrics: results/demo_pretrained/seeds/metrics.json"

# The full-size rehearsal (config.yaml `rehearsal`): full-size random-weight test models, the voc preset with
# iteration counts cut to 1/200, then what VOC and COCO would cost on this machine. SMOKE=1 rehearses the demo
# instead (tiny models, shrunk settings: the test suite runs it). SNAKEMAKE / FMWSSS let a machine without the venv (the GPU suite)
# run it with its own python: make rehearsal SNAKEMAKE="python3 -m snakemake" FMWSSS="python3 -m fmwsss".
REHEARSAL ?= $(if $(filter 1,$(SMOKE)),demo,rehearsal)
SNAKEMAKE ?= $(BIN)/snakemake
FMWSSS ?= $(BIN)/fmwsss

rehearsal:  ## full-size RANDOM-WEIGHT models through the voc settings at 1/200 of the iterations, then `fmwsss cost voc|coco` (<= 5 min on one H100; SMOKE=1: the demo's tiny models)
	@echo "== make rehearsal ($(REHEARSAL)): random-weight TEST models: it measures cost and memory, not quality"
	test -f data/voc_sample/labels.json || $(FMWSSS) data voc-sample --source $(VOC_SAMPLE_SOURCE) --dest data/voc_sample
	$(SNAKEMAKE) --cores $(CORES) results/$(REHEARSAL)/deeplab
	$(FMWSSS) cost voc --from $(REHEARSAL)
	$(FMWSSS) cost coco --from $(REHEARSAL)
	@echo "== make rehearsal: done in $$(( $$(date +%s) - $(MAKE_START) )) s wall"

# Test processes (pytest-xdist): the suite's subprocess-heavy tests overlap well on 2 cores; 0 runs them in one.
TEST_WORKERS ?= 2

test: $(BIN)/fmwsss  ## the test suite (unit, equivalence, oracle, end-to-end workflow) without the long tests
	$(BIN)/python -m pytest -q -n $(TEST_WORKERS) -m "not long" --durations=15

test-long: $(BIN)/fmwsss  ## the long tests only (the fast SAM generator at paper settings on all 24 demo images)
	$(BIN)/python -m pytest -q -m long

test-faults: $(BIN)/fmwsss  ## fault injection into a finished small run: every SQLite page and shard (long; CI runs it)
	$(BIN)/python -m pytest -q -n $(TEST_WORKERS) -m long tests/workflow/test_store_faults.py --durations=5

test-fast: $(BIN)/fmwsss  ## the suite without tests marked slow
	$(BIN)/python -m pytest -q -n $(TEST_WORKERS) -m "not slow and not long"

install-browser:  ## apt-install Debian's chromium + chromium-driver for the report's browser test (root)
	command -v chromedriver >/dev/null || { apt-get update -qq && apt-get install -y -qq --no-install-recommends chromium chromium-driver; }

test-slurm: $(BIN)/fmwsss  ## the tiny workflow on a real one-node SLURM cluster (root: installs slurm-wlm + munge)
	tests/slurm/run.sh

lint: $(BIN)/fmwsss  ## snakemake --lint
	$(BIN)/snakemake --lint

# The GPU suite's wheels (benchmarks/gpu_suite.sh): only what a CUDA PyTorch machine lacks, for its python
# (cp312, manylinux x86_64). GPU_WHEEL_PKGS: the project's own dependencies the GPU image lacks (it has numpy,
# h5py, opencv, pillow, pyyaml, regex, timm, torchvision, so safetensors and huggingface_hub): 6 pure-Python or
# abi3 wheels, ~20 MB with transformers and tokenizers (stage II's Mask2Former). Add others for a barer
# machine, e.g.
#   make gpu-wheels GPU_WHEEL_EXTRA="numpy==2.4.6 h5py==3.16.0 opencv-python-headless==5.0.0.93"
# scipy (Mask2Former's Hungarian matcher; 35 MB, whether the image has it is not known): GPU_WHEEL_EXTRA=
# "scipy==1.17.1" if the suite's mask2former row says it is missing (the carry to the machine holds 64 MiB).
# Snakemake (the machine has no venv): this venv's version (within pyproject.toml's range) with its whole
# dependency closure, resolved for that python in $(GPU_CLOSURE), minus GPU_IMAGE_HAS (the closure's
# distributions the image has, from the device machine's package list read 2026-11-17) and GPU_WHEEL_SKIP (pulp:
# 16 MB of bundled LP solvers; without it Snakemake warns and schedules greedily, as it does when no solver
# works): ~40 wheels, ~10 MB. GPU_SDIST_ONLY: pure-Python dependencies published only as source, built into
# wheels here first. GPU_CHECK_PYTHON, a torch-less python 3.12 (empty: no check), checks the closure
# (benchmarks/gpu_wheels.py): it installs, every requirement is met, `python -S -m snakemake` runs a workflow.
GPU_WHEELS ?= benchmarks/wheels
GPU_PYTHON_VERSION ?= 3.12
GPU_WHEEL_PKGS ?= segment-anything==1.0 open_clip_torch==3.3.0 ftfy==6.3.1 wcwidth==0.9.4 transformers==5.25.0 \
	tokenizers==0.23.3
GPU_WHEEL_EXTRA ?=
GPU_SNAKEMAKE = snakemake==$(shell $(BIN)/python -c 'import importlib.metadata as m; print(m.version("snakemake"))')
GPU_SDIST_ONLY ?= connection_pool==0.0.3
GPU_IMAGE_HAS ?= attrs certifi charset-normalizer idna jinja2 markupsafe packaging psutil pyyaml requests tabulate \
	typing-extensions urllib3 wrapt
GPU_WHEEL_SKIP ?= pulp
GPU_CLOSURE ?= build/gpu-closure
# A pyenv 3.12 where there is one (a pyenv shim fails unless that version is selected), else python3.12.
GPU_CHECK_PYTHON ?= $(firstword $(wildcard $(HOME)/.pyenv/versions/3.12*/bin/python3.12) python3.12)
GPU_PIP_TARGET := --only-binary=:all: --python-version $(GPU_PYTHON_VERSION) --implementation cp \
	--platform manylinux_2_28_x86_64 --platform manylinux_2_27_x86_64 --platform manylinux_2_24_x86_64 \
	--platform manylinux_2_17_x86_64 --platform manylinux2014_x86_64 --platform manylinux1_x86_64

gpu-wheels: $(BIN)/fmwsss  ## download the GPU suite's missing dependencies (Snakemake's closure too) into benchmarks/wheels/ (git-ignored)
	$(BIN)/python -m pip download --no-deps $(GPU_PIP_TARGET) -d $(GPU_WHEELS) $(GPU_WHEEL_PKGS) $(GPU_WHEEL_EXTRA)
	rm -rf $(GPU_CLOSURE)
	$(BIN)/python -m pip wheel -q --no-deps -w $(GPU_CLOSURE) $(GPU_SDIST_ONLY)
	$(BIN)/python -m pip download -q $(GPU_PIP_TARGET) --find-links $(GPU_CLOSURE) -d $(GPU_CLOSURE) $(GPU_SNAKEMAKE)
	$(BIN)/python benchmarks/gpu_wheels.py --closure $(GPU_CLOSURE) --dest $(GPU_WHEELS) \
		--image-has "$(GPU_IMAGE_HAS)" --skip "$(GPU_WHEEL_SKIP)" --check-python "$(GPU_CHECK_PYTHON)"

# The GPU machine's own python (the one holding its CUDA torch); SMOKE=1 runs the rows at tiny sizes anywhere.
GPU_PYTHON ?= python3
SMOKE ?= 0

gpu-suite:  ## the one-shot GPU suite (<= 9 min on one GPU); SMOKE=1 GPU_PYTHON=.venv/bin/python for tiny sizes here
	PYTHON=$(GPU_PYTHON) SMOKE=$(SMOKE) benchmarks/gpu_suite.sh
