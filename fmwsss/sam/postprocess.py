"""The steps both SAM generators share once candidate masks exist: NMS, the small-region clean-up, RSW.

One implementation keeps the reference and the fast generator from drifting apart after the decoder.
"""
from __future__ import annotations

from typing import Sequence

import numpy as np
import torch
from segment_anything.utils.amg import batched_mask_to_box
from torchvision.ops.boxes import batched_nms

from fmwsss.sam.regions import clean_mask
from fmwsss.sam.rsw import rock_sand_water
from fmwsss.sam.types import ImageMasks


def per_level(name: str, values: Sequence[float]) -> tuple[float, float, float]:
    """Validate a per-level knob: one value each for sub-part, part and whole."""
    values = tuple(float(v) for v in values)
    if len(values) != 3:
        raise ValueError(f"{name} needs 3 values (sub-part, part, whole), got {values}")
    return values  # type: ignore[return-value]


def level_values(values: tuple[float, float, float], level: torch.Tensor) -> torch.Tensor:
    """The per-level knob's value for each mask (float32, on the levels' device)."""
    return torch.tensor(values, dtype=torch.float32, device=level.device)[level]


def nms(boxes: torch.Tensor, scores: torch.Tensor, iou_threshold: float) -> torch.Tensor:
    """Indices kept by box NMS, best score first (the stock generator's single-category batched_nms)."""
    categories = torch.zeros(len(boxes), dtype=torch.int64, device=boxes.device)
    return batched_nms(boxes.float(), scores, categories, iou_threshold=iou_threshold)


def clean_small_regions(
    masks: torch.Tensor, boxes: torch.Tensor, min_area: int, nms_thresh: float
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """The stock clean-up: fill holes / drop islands under ``min_area`` px, then NMS preferring masks the
    clean-up left unchanged. Returns (all cleaned masks, their boxes, kept indices in NMS order).

    cv2 labels one mask at a time on the CPU, hence the loop; :func:`~fmwsss.sam.regions.clean_mask` labels
    only a window around each mask (bit-exact, ~3x faster than the stock full-image calls).
    """
    cpu_masks = masks.cpu().numpy()
    cleaned = np.empty_like(cpu_masks)
    changed = np.zeros(len(cpu_masks), dtype=bool)
    for i, mask in enumerate(cpu_masks):
        cleaned[i], changed[i] = clean_mask(mask, min_area)
    new_masks = torch.from_numpy(cleaned).to(masks.device)
    new_boxes = batched_mask_to_box(new_masks)
    changed_t = torch.from_numpy(changed).to(masks.device)
    keep = nms(new_boxes, (~changed_t).float(), nms_thresh)
    return new_masks, torch.where(changed_t[:, None], new_boxes, boxes.to(masks.device)), keep


def finish_masks(
    masks: torch.Tensor,
    boxes: torch.Tensor,
    predicted_iou: torch.Tensor,
    level: torch.Tensor,
    stability: torch.Tensor,
    *,
    min_mask_region_area: int,
    cleanup_nms_thresh: float,
    rsw_thresh: float | None,
    rsw_chunk: int,
) -> ImageMasks:
    """Clean-up (if ``min_mask_region_area > 0``) and RSW (if ``rsw_thresh`` is set) on the final
    candidates of one image (bool ``(N, H, W)`` masks, xyxy boxes), then the :class:`ImageMasks`."""
    if min_mask_region_area > 0 and len(masks):
        masks, boxes, keep = clean_small_regions(masks, boxes, min_mask_region_area, cleanup_nms_thresh)
        masks, boxes, predicted_iou, level, stability = (
            t[keep.to(t.device)] for t in (masks, boxes, predicted_iou, level, stability)
        )
    if rsw_thresh is not None and len(masks):
        keep_np = rock_sand_water(masks, level, rsw_thresh, rsw_chunk)
        keep = torch.from_numpy(keep_np).to(masks.device)
        masks, boxes, predicted_iou, level, stability = (
            t[keep.to(t.device)] for t in (masks, boxes, predicted_iou, level, stability)
        )
    boxes_np = boxes.cpu().numpy()
    masks_np = masks.cpu().numpy()
    return ImageMasks(
        masks=masks_np,
        level=level.cpu().numpy(),
        predicted_iou=predicted_iou.cpu().numpy(),
        stability=stability.cpu().numpy(),
        bbox=np.concatenate([boxes_np[:, :2], boxes_np[:, 2:] - boxes_np[:, :2]], axis=1),
        area=masks_np.sum(axis=(1, 2)),
    )
