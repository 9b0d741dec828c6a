"""Fixtures for the data tests: the shared real samples (skipped with a reason when absent)."""
from __future__ import annotations

import os
from pathlib import Path

import pytest


def _shared_data() -> Path:
    env = os.environ.get("FMWSSS_SHARED_DATA")
    return Path(env) if env else Path(__file__).resolve().parents[2] / "../shared/data"


@pytest.fixture(scope="session")
def voc_sample() -> Path:
    path = _shared_data() / "voc_sample"
    if not (path / "labels.json").is_file():
        pytest.skip(f"VOC sample not found at {path} (set FMWSSS_SHARED_DATA)")
    return path.resolve()


@pytest.fixture(scope="session")
def coco_sample() -> Path:
    path = _shared_data() / "coco_sample"
    if not (path / "labels.json").is_file():
        pytest.skip(f"COCO sample not found at {path} (set FMWSSS_SHARED_DATA)")
    return path.resolve()
