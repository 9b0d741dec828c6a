"""Fixtures for the SAM tests: the tiny SAM, real VOC demo images (skipped with a reason when absent)."""
from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from PIL import Image
from segment_anything.modeling import Sam

from fmwsss.models.sam import load_sam
from fmwsss.models.tiny_sam import create_tiny_sam

#: The method's generator settings (docs/method.md §9) with the demo's small point grid and no crops.
DEMO_SETTINGS = dict(
    points_per_side=8,
    pred_iou_thresh=0.86,
    stability_score_thresh=0.92,
    stability_score_offset=1.0,
    box_nms_thresh=0.7,
    crop_n_layers=0,
    crop_nms_thresh=0.7,
    crop_overlap_ratio=512 / 1500,
    crop_n_points_downscale_factor=2,
    min_mask_region_area=100,
    level_iou_offsets=(0.0, 0.0, 0.1),
    level_nms_offsets=(0.0, 0.0, 1.0),
    level_stability_bias=(0.0, 0.0, 0.0),
    rsw_thresh=0.3,
)


def load_image(path: Path) -> np.ndarray:
    with Image.open(path) as image:
        return np.asarray(image.convert("RGB"))


@pytest.fixture(scope="session")
def voc_jpegs(voc_sample: Path) -> list[Path]:
    return sorted((voc_sample / "JPEGImages").glob("*.jpg"))


@pytest.fixture(scope="session")
def tiny_sam_path(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return create_tiny_sam(tmp_path_factory.mktemp("tiny_sam") / "tiny_sam.pt", seed=0)


@pytest.fixture(scope="session")
def tiny_sam(tiny_sam_path: Path) -> Sam:
    return load_sam(tiny_sam_path, "tiny", "cpu")


@pytest.fixture
def blocks_image() -> np.ndarray:
    """A 96x128 image of flat colour blocks with mild noise: many small distinct regions, no real data."""
    rng = np.random.default_rng(0)
    palette = rng.integers(0, 256, size=(12, 3))
    labels = np.kron(rng.integers(0, 12, size=(6, 8)), np.ones((16, 16), int))
    image = palette[labels] + rng.integers(-4, 5, size=(96, 128, 3))
    return np.clip(image, 0, 255).astype(np.uint8)
