"""Fixtures for the stage II tests: synthetic labelled images, tiny-model settings, the shared VOC sample."""
from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from fmwsss.data.palette import palette_for, save_label_png

NUM_CLASSES = 3  # background + 2 synthetic classes


@pytest.fixture(autouse=True)
def single_thread():
    """One intra-op thread: on the shared 2-core machine OpenMP's second thread mostly waits (10x slower)."""
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


def make_synthetic(root: Path, n: int, size: tuple[int, int] = (40, 56), seed: int = 0) -> list[tuple]:
    """``n`` noisy images with a red (class 1) and a green (class 2) rectangle; void 255 on their border."""
    rng = np.random.default_rng(seed)
    root.mkdir(parents=True, exist_ok=True)
    h, w = size
    items = []
    for i in range(n):
        rgb = rng.integers(60, 120, size=(h, w, 3), dtype=np.uint8)
        label = np.zeros((h, w), np.uint8)
        for cls, colour in ((1, (230, 30, 30)), (2, (30, 230, 30))):
            y, x = rng.integers(0, h - 14), rng.integers(0, w - 14)
            rh, rw = rng.integers(10, 15, size=2)
            label[y:y + rh, x:x + rw] = cls
            rgb[y:y + rh, x:x + rw] = colour
        label[0, :] = 255
        Image.fromarray(rgb).save(root / f"img{i}.png")
        save_label_png(root / f"img{i}_label.png", label, palette_for(NUM_CLASSES - 1))
        items.append((f"img{i}", root / f"img{i}.png", root / f"img{i}_label.png"))
    return items


@pytest.fixture
def synthetic_items(tmp_path) -> list[tuple]:
    return make_synthetic(tmp_path / "data", 6)


@pytest.fixture
def tiny_settings() -> dict:
    """A complete ``segmenter:`` section for the tiny model, small enough for CPU tests."""
    return {"arch": "tiny", "pretrained_backbone": False, "crop": 48, "scale_range": [0.5, 2.0], "flip": True,
            "color_jitter": 0.2, "batch_size": 2, "iterations": 6, "lr": 0.01, "backbone_lr_mult": 0.1,
            "momentum": 0.9, "weight_decay": 1e-4, "poly_power": 0.9, "seed": 0,
            "ms_scales": [0.5, 0.75, 1.0, 1.25, 1.5], "optimizer": "sgd", "grad_clip": None,
            "mask2former": {"num_queries": 8, "class_weight": 2.0, "mask_weight": 5.0, "dice_weight": 5.0,
                            "no_object_weight": 0.1, "train_points": 1024, "precision": "fp32"}}


@pytest.fixture(scope="module")
def twelve_items(tmp_path_factory) -> list[tuple]:
    """Three epochs' worth of distinct items at batch 4 (one module's data-parallel runs share them)."""
    return make_synthetic(tmp_path_factory.mktemp("items12"), 12, size=(32, 40))
