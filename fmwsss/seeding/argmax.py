"""CAM -> per-pixel score, and the argmax seed used to monitor CAM quality (method.md §3).

The score is the reference's: resize the CAM bilinearly to the image (``align_corners=False``, as
``F.interpolate``), clamp at 0, then min-max normalise each class over space with a ``1e-7`` epsilon, so a
class whose clamped CAM is constant (e.g. all negative) scores 0 everywhere instead of dividing by zero.
"""
from __future__ import annotations

import numpy as np
import torch
import torch.nn.functional as F

from fmwsss.devices import resolve_device

#: Epsilon of the reference's min-max normalisation (``(x - min) / (max - min + EPS)``), §3 and §10 alike.
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


def cam_to_score(cams: ArrayLike, image_size: tuple[int, int], device: torch.device) -> torch.Tensor:
    """float32 ``(P, H, W)`` scores in [0, 1): resize, clamp at 0, per-class spatial min-max (+EPS)."""
    x = torch.as_tensor(cams, dtype=torch.float32, device=device)
    if x.shape[0] == 0:
        return x.new_zeros((0, *image_size))
    x = F.interpolate(x[None], size=tuple(image_size), mode="bilinear", align_corners=False)[0]
    x = x.clamp_min(0)
    lo = x.amin(dim=(1, 2), keepdim=True)
    hi = x.amax(dim=(1, 2), keepdim=True)
    return (x - lo) / (hi - lo + EPS)


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
    maximum (background before classes, then class order), as ``torch.argmax`` does.
    """
    device = resolve_device(device)
    p, class_ids = check_cams(cams, classes)
    if p == 0:
        return np.zeros(tuple(image_size), np.uint8)
    score = cam_to_score(cams, image_size, device)
    bg = (1 - score.amax(dim=0, keepdim=True)).pow(bg_power)
    idx = torch.argmax(torch.cat([bg, score]), dim=0)
    lut = torch.as_tensor(np.concatenate([[0], class_ids]), dtype=torch.uint8, device=device)
    return lut[idx].cpu().numpy()
