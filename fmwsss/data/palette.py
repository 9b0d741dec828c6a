"""Label PNGs: the VOC colour palette, and writing/reading single-channel label maps as mode-P PNGs.

Label values are the class ids (0 = background, 1..C, 255 = void); the palette only colours them for
viewing, so any tool that reads the raw indices (VOC devkit, mmseg, ``load_label_png``) gets the labels.
"""
from __future__ import annotations

import io
import os
from pathlib import Path

import numpy as np
from PIL import Image

from fmwsss.io.atomic import atomic_write_bytes

VOID_LABEL = 255
MAX_CLASSES = 254
"""Largest C whose labels 0..C fit in uint8 without touching the void value 255."""


def voc_palette() -> list[int]:
    """The standard 256-colour PASCAL VOC bitmap palette as a flat ``[r0, g0, b0, r1, ...]`` list.

    Entry ``i`` spreads the bits of ``i`` over the channels' high bits (bit 0 -> red, 1 -> green, 2 -> blue,
    then the next lower bit of each channel), so all 256 colours are distinct and 255 = (224, 224, 192).
    """
    idx = np.arange(256)
    rgb = np.zeros((256, 3), dtype=np.int64)
    for j in range(8):  # 8 bit positions, not pixels
        for c in range(3):
            rgb[:, c] |= ((idx >> (3 * j + c)) & 1) << (7 - j)
    return rgb.reshape(-1).tolist()


def palette_for(num_classes: int) -> list[int]:
    """Palette for labels 0..``num_classes`` plus void 255.

    The VOC bitmap palette already is a deterministic extension beyond VOC's 21 colours: its first 21
    entries are VOC's, entry 255 is (224, 224, 192), and every entry is distinct, so COCO's labels 21..80 get
    distinct colours too. Raises ``ValueError`` when the labels would not fit in uint8 below 255.
    """
    if not 1 <= num_classes <= MAX_CLASSES:
        raise ValueError(f"num_classes={num_classes}: label PNGs hold 1..{MAX_CLASSES} classes (255 is void)")
    return voc_palette()


def save_label_png(path: str | os.PathLike, labels: np.ndarray, palette: list[int]) -> None:
    """Write ``labels`` (uint8 H x W) as a mode-P PNG with ``palette``, atomically (temp name, rename)."""
    labels = np.asarray(labels)
    if labels.dtype != np.uint8 or labels.ndim != 2:
        raise ValueError(f"{path}: labels must be a uint8 H x W array, got {labels.dtype} {labels.shape}")
    if len(palette) != 768:
        raise ValueError(f"{path}: palette must hold 256 RGB triplets (768 ints), got {len(palette)}")
    img = Image.fromarray(labels, mode="P")
    img.putpalette(palette)
    buf = io.BytesIO()
    img.save(buf, format="PNG")
    atomic_write_bytes(path, buf.getvalue())


def load_label_png(path: str | os.PathLike) -> np.ndarray:
    """Read a label PNG (mode P or L) as uint8 H x W label values; ``ValueError`` naming the file otherwise."""
    path = Path(path)
    try:
        with Image.open(path) as img:
            img.load()
            if img.mode not in ("P", "L"):
                raise ValueError(f"{path}: label PNG must be mode P or L, got mode {img.mode}")
            return np.array(img, dtype=np.uint8)
    except OSError as exc:
        raise ValueError(f"{path}: cannot read label PNG ({exc})") from exc
