"""Shared fixtures: a tiny OpenAI-format CLIP and the real VOC and COCO samples (``tests/samples.py`` finds them)."""
from __future__ import annotations

import json
import os
from pathlib import Path

import pytest

from tests.samples import sample_dir

if os.environ.get("PYTEST_XDIST_WORKER"):
    # Under pytest-xdist each worker gets one core's worth of torch threads (N workers on N cores), and
    # OpenMP threads sleep instead of spinning while they wait: a spinning OpenMP pool on an oversubscribed
    # machine (two workers, their Snakemake jobs, other work) slowed the SAM equivalence tests sevenfold.
    # Both are inherited by the subprocesses (jobs still set their own thread count); neither changes a result.
    os.environ.setdefault("OMP_NUM_THREADS", "1")
    os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")


@pytest.fixture(scope="session")
def tiny_clip_path(tmp_path_factory) -> Path:
    from fmwsss.models.clip import create_tiny_clip

    return create_tiny_clip(tmp_path_factory.mktemp("clip") / "tiny-ViT-B-16.pt", seed=0)


@pytest.fixture(scope="session")
def clip_cam(tiny_clip_path):
    from fmwsss.cams.clip_wrapper import ClipCam
    from fmwsss.models.clip import load_clip

    return ClipCam(load_clip(tiny_clip_path, "cpu"))


@pytest.fixture(scope="session")
def voc_sample() -> Path:
    """The 24 real VOC 2012 demo images with masks and labels.json."""
    return sample_dir("voc_sample")


@pytest.fixture(scope="session")
def coco_sample() -> Path:
    """The 12 real COCO val2014 images with their instance annotations."""
    return sample_dir("coco_sample")


@pytest.fixture(scope="session")
def voc_items(voc_sample) -> list[tuple[str, Path, list[int]]]:
    """(id, image path, tags 1..20) for the sample images, sorted by id."""
    labels = json.loads((voc_sample / "labels.json").read_text())
    return [(k, voc_sample / "JPEGImages" / f"{k}.jpg", sorted(v)) for k, v in sorted(labels.items())]


@pytest.fixture(scope="session")
def load_rgb():
    """The image loader every stage uses."""
    from fmwsss.data.images import load_rgb

    return load_rgb


@pytest.fixture(scope="session")
def demo_attempt(tmp_path_factory):
    """The suite's one end-to-end run of the tiny pipeline (tests/workflow/conftest.py), built once per test
    session, by the first pytest-xdist worker that needs it (the others wait for it and read the same
    folder); it never raises (tests/shared_run.py)."""
    from tests.shared_run import shared_attempt
    from tests.workflow.conftest import Workdir, run_demo

    return shared_attempt("demo run", tmp_path_factory, lambda: run_demo(tmp_path_factory).path, Workdir)


@pytest.fixture
def demo_run(demo_attempt):
    """The shared finished run, for every test that reads one (workflow tests, the benchmarks' smoke runs);
    if it failed, they are skipped naming the failure (tests/workflow/test_shared_run_builds.py fails with
    its last log lines). Module-scoped fixtures call ``demo_attempt.get()`` themselves."""
    return demo_attempt.get()


@pytest.fixture(scope="session")
def mini_attempt(tmp_path_factory):
    """The store-integrity tests' small finished run (4 images, two shard layouts: tests/workflow/conftest.py
    ``run_mini``), built once per session like ``demo_attempt``."""
    from tests.shared_run import shared_attempt
    from tests.workflow.conftest import Workdir, run_mini

    return shared_attempt("mini run", tmp_path_factory, lambda: run_mini(tmp_path_factory).path, Workdir)


@pytest.fixture
def mini_run(mini_attempt):
    return mini_attempt.get()
