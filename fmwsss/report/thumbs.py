"""Gallery thumbnails as encoded bytes: pure functions on arrays, no file I/O.

Budget (issue 14): about 40 kB on disk and 50 ms of CPU per gallery row, so a VOC train_aug report stays
under ~450 MB. Hence label maps are nearest-neighbour subsampled palette PNGs (a few kB: flat colours
compress well), photos are small JPEGs, and CAM heatmaps are JPEGs of the colour-mapped CAM over a dimmed
grey photo. Full-resolution arrays are only indexed, never resized pixel by pixel.
"""
from __future__ import annotations

import io

import numpy as np
from PIL import Image

LONG_SIDE = 256
PHOTO_QUALITY = 70
HEATMAP_QUALITY = 60
SAM_SHADES = 80  # palette entries per SAM level: neighbouring masks of one level get different shades


def thumb_size(height: int, width: int, long_side: int = LONG_SIDE) -> tuple[int, int]:
    """(h, w) with the long side ``long_side`` (never upscaled) and the aspect ratio kept."""
    scale = min(1.0, long_side / max(height, width))
    return max(1, round(height * scale)), max(1, round(width * scale))


def _grid(height: int, width: int, size: tuple[int, int]) -> tuple[np.ndarray, np.ndarray]:
    """Nearest-neighbour source rows and columns (pixel centres) of a ``size`` thumbnail."""
    th, tw = size
    ys = np.minimum(((np.arange(th) + 0.5) * height / th).astype(np.int64), height - 1)
    xs = np.minimum(((np.arange(tw) + 0.5) * width / tw).astype(np.int64), width - 1)
    return ys, xs


def subsample(array: np.ndarray, size: tuple[int, int]) -> np.ndarray:
    """Nearest-neighbour resize of the last two axes (labels stay labels: no new values appear).

    Two ``np.take`` calls (rows, then columns) instead of one 2-D fancy index: 3-4x faster on mask stacks.
    """
    ys, xs = _grid(array.shape[-2], array.shape[-1], size)
    return np.take(np.take(array, ys, axis=-2), xs, axis=-1)


def resize_map(values: np.ndarray, size: tuple[int, int]) -> np.ndarray:
    """Bilinear resize of one float map (a patch-resolution CAM) to ``size``, for display only."""
    img = Image.fromarray(np.ascontiguousarray(values, dtype=np.float32), mode="F")
    return np.asarray(img.resize((size[1], size[0]), Image.Resampling.BILINEAR))


def photo_thumb(rgb: np.ndarray, size: tuple[int, int]) -> np.ndarray:
    """uint8 (h, w, 3) photo thumbnail (PIL's reducing resize: box filter, fast)."""
    img = Image.fromarray(np.ascontiguousarray(rgb))
    return np.asarray(img.resize((size[1], size[0]), Image.Resampling.BILINEAR, reducing_gap=2.0))


def encode_jpeg(rgb: np.ndarray, quality: int) -> bytes:
    buf = io.BytesIO()
    Image.fromarray(rgb).save(buf, format="JPEG", quality=quality)
    return buf.getvalue()


def encode_palette_png(labels: np.ndarray, palette: list[int]) -> bytes:
    """A mode-P PNG of uint8 ``labels`` (the raw values stay readable, the palette only colours them)."""
    img = Image.fromarray(np.ascontiguousarray(labels, dtype=np.uint8), mode="P")
    img.putpalette(palette)
    buf = io.BytesIO()
    img.save(buf, format="PNG", compress_level=6)
    return buf.getvalue()


def label_thumb(labels: np.ndarray, size: tuple[int, int], palette: list[int]) -> bytes:
    return encode_palette_png(subsample(labels, size), palette)


def foreground_share(label_png: bytes, void: int = 255) -> float:
    """Share of a label thumbnail's non-void pixels that hold an object class (not background 0): near 0 the
    thumbnail is a black square in the VOC palette, which the gallery captions instead of leaving
    unexplained. Decoding a cached thumbnail costs under a millisecond, less than keeping a record beside it."""
    labels = np.asarray(Image.open(io.BytesIO(label_png)))
    valid = labels != void
    return float((valid & (labels != 0)).sum() / max(int(valid.sum()), 1))


def jet(values: np.ndarray) -> np.ndarray:
    """uint8 RGB of ``values`` in [0, 1] on the jet colour map (blue low, red high); vectorised."""
    v = np.clip(values, 0.0, 1.0)[..., None]
    centres = np.array([0.75, 0.5, 0.25])  # red, green, blue peaks
    return (np.clip(1.5 - np.abs(4.0 * (v - centres)), 0.0, 1.0) * 255).astype(np.uint8)


def heatmap_thumb(cam: np.ndarray, photo: np.ndarray, alpha: float = 0.6) -> bytes:
    """One class's CAM (any resolution and scale) over the grey ``photo`` thumbnail, as a JPEG.

    The CAM is divided by its own maximum, so every heatmap uses the full colour range.
    """
    cam = resize_map(cam, photo.shape[:2])
    peak = float(cam.max()) if cam.size else 0.0
    norm = cam / peak if peak > 0 else np.zeros_like(cam)
    grey = photo.astype(np.float32).mean(axis=2, keepdims=True)
    mixed = alpha * jet(norm).astype(np.float32) + (1.0 - alpha) * grey
    return encode_jpeg(mixed.astype(np.uint8), HEATMAP_QUALITY)


def sam_palette() -> list[int]:
    """Entry 0 black (no mask); then SAM_SHADES shades each of blue (level 0, sub-part), green (level 1,
    part) and red (level 2, whole)."""
    shades = np.linspace(0.35, 1.0, SAM_SHADES)
    pal = np.zeros((256, 3), np.int64)
    for level, channel in enumerate((2, 1, 0)):
        rows = pal[1 + level * SAM_SHADES: 1 + (level + 1) * SAM_SHADES]
        rows[:, channel] = (255 * shades).astype(np.int64)
        rows[:, (channel + 1) % 3] = (70 * (1.0 - shades)).astype(np.int64)
    return pal.reshape(-1).tolist()


def sam_levels_map(masks: np.ndarray, level: np.ndarray, area: np.ndarray, size: tuple[int, int]) -> np.ndarray:
    """uint8 (h, w) palette indices: each pixel shows the smallest mask covering it, coloured by its level.

    Masks are subsampled first (cost N x h x w, not N x H x W), then the last covering mask in order of
    decreasing area is found with one argmax over the reversed stack.
    """
    out = np.zeros(size, np.uint8)
    if len(masks) == 0:
        return out
    order = np.argsort(-np.asarray(area), kind="stable")
    small = subsample(np.asarray(masks)[order], size)
    covered = small.any(axis=0)
    last = len(order) - 1 - np.argmax(small[::-1], axis=0)
    shade = (np.arange(len(order)) * 37) % SAM_SHADES  # 37 is coprime with 80: neighbours in the order differ
    index = 1 + np.asarray(level)[order].astype(np.int64) * SAM_SHADES + shade
    out[covered] = index[last[covered]].astype(np.uint8)
    return out
