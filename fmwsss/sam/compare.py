"""How far two generators' masks of one image are apart: the equivalence measure of the fast generator.

Masks are matched one to one, greedily by IoU; a matched pair counts as the same mask when its IoU reaches
the threshold and its level agrees. Identical outputs (the usual case) are recognised without the IoU
matrix, which costs ``N x M x H x W`` multiply-adds.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch

from fmwsss.sam.types import ImageMasks


@dataclass(frozen=True)
class MaskComparison:
    n_reference: int
    n_other: int
    matched_iou: np.ndarray  # (n_reference,) IoU of each reference mask's partner, 0 if unmatched
    same_level: np.ndarray  # (n_reference,) bool: the partner has the same level
    identical: bool  # same masks, levels, boxes and scores, in the same order

    @property
    def same_count(self) -> bool:
        return self.n_reference == self.n_other

    def all_matched(self, min_iou: float = 0.99) -> bool:
        """Same number of masks, every reference mask matched at ``min_iou`` with the same level."""
        return self.same_count and bool(np.all((self.matched_iou >= min_iou) & self.same_level))


def from_stock_records(records: list[dict], height: int, width: int) -> ImageMasks:
    """segment-anything's ``SamAutomaticMaskGenerator`` output (``output_mode="binary_mask"``) as
    :class:`ImageMasks`, to compare with: every level 0 (the stock generator does not report levels)."""
    if not records:
        return ImageMasks.empty(height, width)
    return ImageMasks(
        masks=np.stack([r["segmentation"] for r in records]).reshape(len(records), height, width),
        level=np.zeros(len(records)),
        predicted_iou=[r["predicted_iou"] for r in records],
        stability=[r["stability_score"] for r in records],
        bbox=[r["bbox"] for r in records],
        area=[r["area"] for r in records],
    )


def _identical(a: ImageMasks, b: ImageMasks) -> bool:
    return len(a) == len(b) and all(
        np.array_equal(getattr(a, name), getattr(b, name))
        for name in ("masks", "level", "bbox", "area", "predicted_iou", "stability")
    )


def compare_masks(reference: ImageMasks, other: ImageMasks) -> MaskComparison:
    """Match ``other``'s masks to ``reference``'s (same image size required)."""
    if (reference.height, reference.width) != (other.height, other.width):
        raise ValueError(
            f"masks of different image sizes: {reference.height}x{reference.width} vs {other.height}x{other.width}"
        )
    n, m = len(reference), len(other)
    if _identical(reference, other):
        return MaskComparison(n, m, np.ones(n), np.ones(n, bool), True)
    matched_iou, same_level = np.zeros(n), np.zeros(n, bool)
    if n and m:
        a = torch.from_numpy(reference.masks.reshape(n, -1)).float()
        b = torch.from_numpy(other.masks.reshape(m, -1)).float()
        inter = a @ b.T
        union = a.sum(1)[:, None] + b.sum(1)[None, :] - inter
        iou = (inter / union.clamp(min=1)).numpy()
        order = np.dstack(np.unravel_index(np.argsort(-iou, axis=None), iou.shape))[0]
        used_a, used_b = np.zeros(n, bool), np.zeros(m, bool)
        for i, j in order:
            if iou[i, j] <= 0:
                break
            if used_a[i] or used_b[j]:
                continue
            used_a[i] = used_b[j] = True
            matched_iou[i] = iou[i, j]
            same_level[i] = reference.level[i] == other.level[j]
    return MaskComparison(n, m, matched_iou, same_level, False)
