"""CAM -> per-pixel score, and the argmax seed used to monitor CAM quality (docs/method.md §3).

The score is the reference's: resize the CAM bilinearly to the image (``align_corners=False``, as
``F.interpolate``), clamp at 0, then min-max normalise each class over space with a ``1e-7`` epsilon, so a
class whose clamped CAM is constant (e.g. all negative) scores 0 everywhere instead of dividing by zero.

Determinism: one stage key must mean the same seed on any thread count and device. ``F.interpolate`` in
float32 is not bitwise stable across CPU thread counts (the split into vectorised and scalar parts moves), and
the min-max normalisations amplify the last-bit differences into flipped labels. :func:`resize_bilinear`
therefore computes the same bilinear weights in float64 on the host and applies them with separate
elementwise multiplies and adds (each correctly rounded, so the same bits on any thread count and on CUDA);
min, max and comparisons are exact. The argmax seed's background test ``(1 - M)^p >= M`` uses a threshold on
``M`` found once on the host, so no transcendental function runs per pixel (vectorised and scalar ``pow``
may differ in the last bit).
"""
from __future__ import annotations

import math

import numpy as np
import torch

from fmwsss.devices import resolve_device

#: Epsilon of the reference's min-max normalisation (``(x - min) / (max - min + EPS)``), docs/method.md §3 and §10
#: alike.
EPS = 1e-7

ArrayLike = np.ndarray | torch.Tensor


def check_cams(cams: ArrayLike, classes: ArrayLike) -> tuple[int, np.ndarray]:
    """Validate ``cams`` (P, h, w) against ``classes`` (P,) dataset ids 1..255; return P and the ids."""
    classes = np.asarray(classes).reshape(-1)
    if len(cams.shape) != 3 or cams.shape[0] != classes.shape[0]:
        raise ValueError(f"cams must be (P, h, w) with P = len(classes) = {classes.shape[0]}, got {tuple(cams.shape)}")
    if classes.size and (classes.min() < 1 or classes.max() > 255):
        raise ValueError(f"class ids must be in 1..255 (0 is background), got {classes.tolist()}")
    return classes.shape[0], classes.astype(np.int64)


def _bilinear_taps(n_in: int, n_out: int) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Source indices and float64 weights of ``F.interpolate(mode="bilinear", align_corners=False)`` on one axis."""
    src = np.maximum((np.arange(n_out) + 0.5) * (n_in / n_out) - 0.5, 0.0)
    i0 = np.floor(src).astype(np.int64)
    i1 = np.minimum(i0 + 1, n_in - 1)
    w1 = src - i0
    return i0, i1, 1.0 - w1, w1


def resize_bilinear(cams: ArrayLike, size: tuple[int, int], device: torch.device) -> torch.Tensor:
    """float64 ``(P, H, W)``: ``F.interpolate`` bilinear (``align_corners=False``) in an order-fixed form.

    Same formula as torch (width first, then height: ``w0y*(w0x*a + w1x*b) + w1y*(w0x*c + w1x*d)``), every
    step a separate elementwise float64 op, so the result does not depend on the thread count or the device.
    Costs ~3 float64 copies of the output at the peak.
    """
    x = torch.as_tensor(cams, device=device).to(torch.float64)
    (h, w), (height, width) = x.shape[1:], (int(size[0]), int(size[1]))
    x0, x1, wx0, wx1 = (torch.as_tensor(v, device=device) for v in _bilinear_taps(w, width))
    y0, y1, wy0, wy1 = (torch.as_tensor(v, device=device)[:, None] for v in _bilinear_taps(h, height))
    rows = x.index_select(2, x0).mul_(wx0).add_(x.index_select(2, x1).mul_(wx1))  # (P, h, W)
    return rows.index_select(1, y0[:, 0]).mul_(wy0).add_(rows.index_select(1, y1[:, 0]).mul_(wy1))


def cam_to_score(cams: ArrayLike, image_size: tuple[int, int], device: torch.device) -> torch.Tensor:
    """float64 ``(P, H, W)`` scores in [0, 1): resize, clamp at 0, per-class spatial min-max (+EPS)."""
    if cams.shape[0] == 0:
        return torch.zeros((0, *image_size), dtype=torch.float64, device=device)
    x = resize_bilinear(cams, image_size, device).clamp_min_(0)
    lo = x.amin(dim=(1, 2), keepdim=True)
    hi = x.amax(dim=(1, 2), keepdim=True)
    return x.sub_(lo).div_(hi - lo + EPS)


def background_threshold(power: float) -> float:
    """Largest float64 ``t`` in [0, 1] with ``(1 - t)^power >= t``: the background wins a pixel iff its best
    class score is ``<= t`` (bisection; ``(1 - t)^power - t`` is decreasing for ``power > 0``)."""
    lo, hi = 0.0, 1.0
    while True:
        mid = (lo + hi) / 2
        if mid in (lo, hi):
            return lo
        if math.pow(1.0 - mid, power) >= mid:
            lo = mid
        else:
            hi = mid


def argmax_seed(
    cams: ArrayLike,
    classes: ArrayLike,
    image_size: tuple[int, int],
    bg_power: float,
    device: str | torch.device | None = None,
) -> np.ndarray:
    """Dense uint8 ``(H, W)`` seed: argmax over ``[(1 - max_c score)^bg_power, score_1..score_P]``.

    ``bg_power`` is fixed by the caller (no sweep here): larger values shrink the background score, so more
    pixels go to a foreground class. The reference sweeps 1..10 after CAM inference and 1..3 after CAA and
    keeps the best by GT mIoU; for honest monitoring pick one value in the config. Ties go to the first
    maximum: background before classes (a pixel whose best score M has ``(1 - M)^p == M`` is background, via
    :func:`background_threshold`), then the lower class id. Bitwise the same on any thread count and device.
    """
    device = resolve_device(device)
    p, class_ids = check_cams(cams, classes)
    if p == 0:
        return np.zeros(tuple(image_size), np.uint8)
    score = cam_to_score(cams, image_size, device)
    best, idx = score.amax(dim=0), score.argmax(dim=0)  # argmax: first maximum
    lut = torch.as_tensor(class_ids, dtype=torch.uint8, device=device)
    labels = torch.where(best <= background_threshold(bg_power), 0, lut[idx])
    return labels.cpu().numpy()
