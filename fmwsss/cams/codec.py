"""How CAMs are stored: float16 maps scaled per map, plus one float32 scale each (any magnitude, ~3 digits).

Softmax-Grad-CAMs have no bounded magnitude (with the tiny test models the fine maps peak near 1e-7, under
float16's normal range, and a plain float16 cast flattens them to a handful of values, which makes SAMS
ties). So each map (one class of one image) is divided by its largest magnitude ``s`` and multiplied by
``2**15``: the stored float16 values lie in [-32768, 32768] and the map's largest value is stored exactly.
Decoding is ``f16 * (s / 2**15)``. Every value down to ~2e-9 of its map's largest keeps float16's 11
significant bits (relative error <= 2**-11 ~ 4.9e-4, plus float32 rounding); smaller ones fall into float16's
subnormals (absolute error <= ~1e-12 of the map's largest). Zeros stay zeros; an all-zero map stores ``s = 0``.
Cost: 4 bytes per map beside the 2 bytes per patch of plain float16.

The pipeline stores CAMs this way and the single-image chain (:mod:`fmwsss.cli.single_image`) passes its
CAMs through :func:`round_trip`, so both seed from the same numbers.
"""
from __future__ import annotations

import numpy as np

#: The stored float16 value of a map's largest magnitude (a power of two: scaling by it is exact).
PEAK = 2.0**15


def encode(cams: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """``cams`` float (P, h, w) -> (float16 (P, h, w) scaled maps, float32 (P,) per-map largest magnitude).

    ``ValueError`` on a non-finite value (a NaN or inf CAM would seed garbage without a word).
    """
    x = np.asarray(cams, dtype=np.float32)
    if x.ndim != 3:
        raise ValueError(f"CAMs must be (P, h, w), got shape {x.shape}")
    if not np.isfinite(x).all():
        raise ValueError("CAMs hold NaN or inf values")
    scale = np.abs(x).max(axis=(1, 2), initial=0.0).astype(np.float32)
    safe = np.where(scale > 0, scale, 1.0).astype(np.float64)[:, None, None]
    maps = (x.astype(np.float64) / safe * PEAK).astype(np.float16)
    return maps, scale


def decode(maps: np.ndarray, scale: np.ndarray) -> np.ndarray:
    """Inverse of :func:`encode`: float32 (P, h, w)."""
    maps, scale = np.asarray(maps), np.asarray(scale, dtype=np.float32).reshape(-1)
    if maps.ndim != 3 or maps.shape[0] != scale.shape[0]:
        raise ValueError(f"maps {maps.shape} and scales {scale.shape} disagree")
    return (maps.astype(np.float64) * (scale.astype(np.float64) / PEAK)[:, None, None]).astype(np.float32)


def round_trip(cams: np.ndarray) -> np.ndarray:
    """The float32 CAMs a reader of a stored copy of ``cams`` gets back."""
    return decode(*encode(cams))
