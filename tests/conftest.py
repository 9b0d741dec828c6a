"""Shared fixtures: a tiny OpenAI-format CLIP and the real VOC demo sample (read from ../shared/data)."""
from __future__ import annotations

import json
import os
from pathlib import Path

import pytest


def _shared_data() -> Path:
    env = os.environ.get("FMWSSS_SHARED_DATA")
    return Path(env) if env else Path(__file__).resolve().parents[2] / "shared" / "data"


@pytest.fixture(scope="session")
def tiny_clip_path(tmp_path_factory) -> Path:
    from fmwsss.models.clip import create_tiny_clip

    return create_tiny_clip(tmp_path_factory.mktemp("clip") / "tiny-ViT-B-16.pt", seed=0)


@pytest.fixture(scope="session")
def clip_cam(tiny_clip_path):
    from fmwsss.cams.clip_wrapper import ClipCam
    from fmwsss.models.clip import load_clip

    return ClipCam(load_clip(tiny_clip_path, "cpu"))


def _sample(name: str) -> Path:
    path = _shared_data() / name
    if not (path / "labels.json").is_file():
        pytest.skip(f"{name} not found at {path} (set FMWSSS_SHARED_DATA)")
    return path.resolve()


@pytest.fixture(scope="session")
def voc_sample() -> Path:
    """The 24 real VOC 2012 demo images with masks and labels.json."""
    return _sample("voc_sample")


@pytest.fixture(scope="session")
def coco_sample() -> Path:
    """The 12 real COCO val2014 images with their instance annotations."""
    return _sample("coco_sample")


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
