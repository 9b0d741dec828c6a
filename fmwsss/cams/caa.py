"""Class-aware attention affinity (CAA, docs/method.md §8, from CLIP-ES): refine CAMs with CLIP's own attention.

All work is on the patch grid (h x w, HW tokens); the HW x HW matrices live only in memory.
Coarse stage: propagate the score, box threshold 0.4. Fine stage: propagate the raw CAM, threshold 0.5.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

import cv2
import numpy as np
import torch


@dataclass(frozen=True)
class CaaSettings:
    sinkhorn_iters: int = 1
    power: int = 2
    box_thresh: float = 0.4
    propagate: Literal["score", "cam"] = "score"


def cam_score(cam: torch.Tensor) -> torch.Tensor:
    """ReLU, then min-max per class over the spatial dims: (P, h, w) -> [0, 1)."""
    x = cam.clamp(min=0).flatten(1)
    lo, hi = x.min(dim=1, keepdim=True).values, x.max(dim=1, keepdim=True).values
    return ((x - lo) / (hi - lo + 1e-7)).view_as(cam)


def affinity(attn: torch.Tensor, sinkhorn_iters: int = 1, power: int = 2) -> torch.Tensor:
    """Attention (HW, HW) -> T^power with T the symmetrised Sinkhorn-normalised attention.

    Each Sinkhorn step divides by the column sums, then by the row sums.
    """
    w = attn.double()
    for _ in range(sinkhorn_iters):
        w = w / w.sum(dim=0, keepdim=True)
        w = w / w.sum(dim=1, keepdim=True)
    t = (w + w.t()) / 2
    return torch.linalg.matrix_power(t, power).to(attn.dtype)


def box_mask(score: np.ndarray, thresh: float) -> np.ndarray:
    """Union of the bounding boxes of all contours of ``score`` > thresh * max, on a uint8 copy (h, w) bool.

    CLIP-ES quirks kept: the uint8 copy truncates, the threshold is ``int(thresh * max(uint8))`` with a strict
    ``>`` (cv2 THRESH_BINARY), contours come from RETR_TREE (nested ones too), and each box's exclusive end is
    clipped to W-1 / H-1, so the last row and column are never inside a box.
    """
    h, w = score.shape
    img = (score * 255).astype(np.uint8)
    _, binary = cv2.threshold(img, int(thresh * img.max()), 255, cv2.THRESH_BINARY)
    contours = cv2.findContours(binary, cv2.RETR_TREE, cv2.CHAIN_APPROX_SIMPLE)[-2]
    if not contours:
        return np.zeros((h, w), bool)
    boxes = np.array([cv2.boundingRect(c) for c in contours])  # x, y, w, h
    x0, y0 = boxes[:, 0], boxes[:, 1]
    x1, y1 = np.minimum(x0 + boxes[:, 2], w - 1), np.minimum(y0 + boxes[:, 3], h - 1)
    ys, xs = np.arange(h)[None, :, None], np.arange(w)[None, None, :]
    inside = (ys >= y0[:, None, None]) & (ys < y1[:, None, None]) & (xs >= x0[:, None, None]) & (xs < x1[:, None, None])
    return inside.any(axis=0)


def refine(cam: torch.Tensor, attn: torch.Tensor, settings: CaaSettings) -> torch.Tensor:
    """CAA-refined maps (P, h, w) from raw CAMs (P, h, w) and the patch attention (HW, HW).

    x'(i) = sum_j T'(i, j) M_j x(j): only source cells j inside the class's boxes propagate, the box mask is
    applied after the power, and nothing is renormalised afterwards.
    """
    p, h, w = cam.shape
    if p == 0:
        return cam.clone()
    score = cam_score(cam.float())
    masks = np.stack([box_mask(s, settings.box_thresh) for s in score.cpu().numpy()])
    source = (score if settings.propagate == "score" else cam.float()).reshape(p, h * w)
    trans = affinity(attn.float(), settings.sinkhorn_iters, settings.power)
    masked = source * torch.from_numpy(masks).to(source.device).reshape(p, h * w)
    return (masked @ trans.t()).reshape(p, h, w)


COARSE = CaaSettings(sinkhorn_iters=1, power=2, box_thresh=0.4, propagate="score")
FINE = CaaSettings(sinkhorn_iters=1, power=2, box_thresh=0.5, propagate="cam")
