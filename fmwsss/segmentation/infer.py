"""Segmenter inference: single scale, or multi-scale + flip (softmax averaged), sliding window past the crop.

Each scale rescales the image (bilinear), predicts class probabilities (whole image, or crop-sized windows
with 2/3-crop stride whose logits are averaged where they overlap, as mmseg's ``slide`` mode does), and
resizes them back to the image size; probabilities of all scales and flips are summed and argmax-ed.
Cost: one forward pass per scale per flip (per window).
"""
from __future__ import annotations

from typing import Sequence

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from fmwsss.segmentation.dataset import normalize


def _logits(model: nn.Module, x: torch.Tensor) -> torch.Tensor:
    return model(x)["out"]


def window_starts(size: int, crop: int, stride: int) -> list[int]:
    """Window origins covering ``0..size`` with the last window flush with the far edge."""
    if size <= crop:
        return [0]
    n = (size - crop + stride - 1) // stride + 1
    return sorted({min(i * stride, size - crop) for i in range(n)})


def sliding_logits(model: nn.Module, x: torch.Tensor, crop: int) -> torch.Tensor:
    """Logits of ``x`` (1, 3, H, W) from crop×crop windows (stride 2/3 crop), averaged over overlaps."""
    _, _, h, w = x.shape
    stride = max(1, (2 * crop) // 3)
    total, count = None, torch.zeros(1, 1, h, w, device=x.device)
    for y0 in window_starts(h, crop, stride):
        for x0 in window_starts(w, crop, stride):
            out = _logits(model, x[:, :, y0:y0 + crop, x0:x0 + crop])
            if total is None:
                total = torch.zeros(1, out.shape[1], h, w, device=x.device, dtype=out.dtype)
            total[:, :, y0:y0 + crop, x0:x0 + crop] += out
            count[:, :, y0:y0 + crop, x0:x0 + crop] += 1
    return total / count


def _probs(model: nn.Module, x: torch.Tensor, crop: int | None) -> torch.Tensor:
    big = crop is not None and max(x.shape[-2:]) > crop
    return (sliding_logits(model, x, crop) if big else _logits(model, x)).float().softmax(dim=1)


@torch.no_grad()
def predict_probs(model: nn.Module, image: np.ndarray, scales: Sequence[float] = (1.0,), flip: bool = False,
                  crop: int | None = None) -> torch.Tensor:
    """Summed softmax probabilities (1, C, H, W) over ``scales`` and (if ``flip``) horizontal flips."""
    device = next(model.parameters()).device
    x = torch.from_numpy(normalize(np.asarray(image)))[None].to(device)
    h, w = x.shape[-2:]
    total = None
    for scale in scales:
        size = (max(1, round(h * scale)), max(1, round(w * scale)))
        xs = x if size == (h, w) else F.interpolate(x, size=size, mode="bilinear", align_corners=False)
        views = [(xs, False), (xs.flip(-1), True)] if flip else [(xs, False)]
        for view, flipped in views:
            p = _probs(model, view, crop)
            p = p.flip(-1) if flipped else p
            p = p if size == (h, w) else F.interpolate(p, size=(h, w), mode="bilinear", align_corners=False)
            total = p if total is None else total + p
    return total


INFERENCE_MODES = ("whole", "slide")


def window_for(inference: str, train_crop: int) -> int | None:
    """The window of ``segmenter_eval.inference``: None (whole image) or the training crop (slide)."""
    if inference not in INFERENCE_MODES:
        raise ValueError(f"segmenter_eval.inference: {inference!r} is not one of {', '.join(INFERENCE_MODES)}")
    return train_crop if inference == "slide" else None


def predict(model: nn.Module, image: np.ndarray, scales: Sequence[float] = (1.0,), flip: bool = False,
            crop: int | None = None) -> np.ndarray:
    """uint8 (H, W) label map of ``image`` (uint8 RGB H×W×3); ``model`` must be in eval mode.

    ``crop``: images (after scaling) with a side above it are predicted window by window, bounding memory
    at the training crop size; None predicts the whole image at once.
    """
    if not scales:
        raise ValueError("predict: scales must list at least one scale")
    return predict_probs(model, image, scales, flip, crop)[0].argmax(dim=0).to(torch.uint8).cpu().numpy()
