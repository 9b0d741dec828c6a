"""Leveled automatic mask generation: SAM's grid-of-points generator that remembers each mask's level.

FMA-WSSS (docs/method.md §9) treats SAM's three multimask outputs per point as sub-part / part / whole (level
0 / 1 / 2) and biases the stock filters per level: a whole mask passes the quality filter more easily
(``level_iou_offsets``) and wins within-crop NMS (``level_nms_offsets``); the rock-sand-water filter then
drops parts already covered by a whole. With every offset 0 and ``rsw_thresh=None`` the output equals
segment-anything's ``SamAutomaticMaskGenerator`` mask for mask, in the same order.

Unlike the stock generator, masks stay boolean tensors between batches (no RLE round trip): faster, and
the only per-mask Python loop left is the stock cv2 small-region clean-up (:mod:`fmwsss.sam.postprocess`).
"""
from __future__ import annotations

from typing import Sequence

import numpy as np
import torch
from segment_anything import SamAutomaticMaskGenerator
from segment_anything.modeling import Sam
from segment_anything.utils.amg import (
    MaskData,
    batch_iterator,
    batched_mask_to_box,
    calculate_stability_score,
    generate_crop_boxes,
    is_box_near_crop_edge,
    uncrop_boxes_xyxy,
    uncrop_masks,
)
from torchvision.ops.boxes import box_area

from fmwsss.sam.postprocess import finish_masks, level_values, nms, per_level
from fmwsss.sam.types import ImageMasks

#: Settings that change the masks (they belong in the stage key); ``points_per_batch`` and ``rsw_chunk``
#: only trade memory for speed.
RESULT_SETTINGS = (
    "points_per_side",
    "pred_iou_thresh",
    "stability_score_thresh",
    "stability_score_offset",
    "box_nms_thresh",
    "crop_n_layers",
    "crop_nms_thresh",
    "crop_overlap_ratio",
    "crop_n_points_downscale_factor",
    "min_mask_region_area",
    "level_iou_offsets",
    "level_nms_offsets",
    "level_stability_bias",
    "rsw_thresh",
)


class LeveledMaskGenerator(SamAutomaticMaskGenerator):
    """``SamAutomaticMaskGenerator`` with per-level offsets and the RSW filter; returns :class:`ImageMasks`.

    Knobs beyond the stock ones: ``level_iou_offsets`` are added to the predicted IoU before the
    ``pred_iou_thresh`` test, ``level_stability_bias`` to the stability before the
    ``stability_score_thresh`` test, ``level_nms_offsets`` to the predicted IoU as within-crop NMS score;
    ``rsw_thresh`` (None = off) is the RSW cover ratio, ``rsw_chunk`` its matmul chunk (speed only).
    A threshold of 0 switches its filter off, as in the stock generator.
    """

    def __init__(
        self,
        model: Sam,
        *,
        points_per_side: int = 32,
        points_per_batch: int = 64,
        pred_iou_thresh: float = 0.88,
        stability_score_thresh: float = 0.95,
        stability_score_offset: float = 1.0,
        box_nms_thresh: float = 0.7,
        crop_n_layers: int = 0,
        crop_nms_thresh: float = 0.7,
        crop_overlap_ratio: float = 512 / 1500,
        crop_n_points_downscale_factor: int = 1,
        min_mask_region_area: int = 0,
        level_iou_offsets: Sequence[float] = (0.0, 0.0, 0.0),
        level_nms_offsets: Sequence[float] = (0.0, 0.0, 0.0),
        level_stability_bias: Sequence[float] = (0.0, 0.0, 0.0),
        rsw_thresh: float | None = None,
        rsw_chunk: int = 50,
    ) -> None:
        super().__init__(
            model,
            points_per_side=points_per_side,
            points_per_batch=points_per_batch,
            pred_iou_thresh=pred_iou_thresh,
            stability_score_thresh=stability_score_thresh,
            stability_score_offset=stability_score_offset,
            box_nms_thresh=box_nms_thresh,
            crop_n_layers=crop_n_layers,
            crop_nms_thresh=crop_nms_thresh,
            crop_overlap_ratio=crop_overlap_ratio,
            crop_n_points_downscale_factor=crop_n_points_downscale_factor,
            min_mask_region_area=min_mask_region_area,
            output_mode="binary_mask",
        )
        self.level_iou_offsets = per_level("level_iou_offsets", level_iou_offsets)
        self.level_nms_offsets = per_level("level_nms_offsets", level_nms_offsets)
        self.level_stability_bias = per_level("level_stability_bias", level_stability_bias)
        self.rsw_thresh = rsw_thresh
        self.rsw_chunk = rsw_chunk

    @torch.no_grad()
    def generate(self, image: np.ndarray) -> ImageMasks:  # type: ignore[override]
        """Masks of an RGB uint8 ``(H, W, 3)`` image; ``N = 0`` when nothing survives the filters."""
        data = self._generate_masks(image)
        return finish_masks(
            data["masks"], data["boxes"], data["iou_preds"], data["level"], data["stability_score"],
            min_mask_region_area=self.min_mask_region_area,
            cleanup_nms_thresh=max(self.box_nms_thresh, self.crop_nms_thresh),
            rsw_thresh=self.rsw_thresh,
            rsw_chunk=self.rsw_chunk,
        )

    def _generate_masks(self, image: np.ndarray) -> MaskData:
        orig_size = image.shape[:2]
        crop_boxes, layer_idxs = generate_crop_boxes(orig_size, self.crop_n_layers, self.crop_overlap_ratio)
        data = MaskData()
        for crop_box, layer_idx in zip(crop_boxes, layer_idxs):
            data.cat(self._process_crop(image, crop_box, layer_idx, orig_size))
        if len(crop_boxes) > 1:
            # Across crops prefer masks from smaller crops, as the stock generator does.
            scores = (1 / box_area(data["crop_boxes"])).to(data["boxes"].device)
            data.filter(nms(data["boxes"], scores, self.crop_nms_thresh))
        return data

    def _process_crop(
        self, image: np.ndarray, crop_box: list[int], crop_layer_idx: int, orig_size: tuple[int, ...]
    ) -> MaskData:
        x0, y0, x1, y1 = crop_box
        cropped_im = image[y0:y1, x0:x1, :]
        cropped_im_size = cropped_im.shape[:2]
        self.predictor.set_image(cropped_im)
        points_for_image = self.point_grids[crop_layer_idx] * np.array(cropped_im_size)[None, ::-1]
        data = MaskData()
        for (points,) in batch_iterator(self.points_per_batch, points_for_image):
            data.cat(self._process_batch(points, cropped_im_size, crop_box, orig_size))
        self.predictor.reset_image()

        scores = data["iou_preds"] + level_values(self.level_nms_offsets, data["level"])
        data.filter(nms(data["boxes"], scores, self.box_nms_thresh))
        data["boxes"] = uncrop_boxes_xyxy(data["boxes"], crop_box)
        # (n, 4) even for n = 0, where the stock generator's 1-D tensor makes cross-crop NMS raise.
        data["crop_boxes"] = torch.tensor([crop_box], dtype=torch.int64).expand(len(data["boxes"]), 4)
        return data

    def _process_batch(  # type: ignore[override]
        self, points: np.ndarray, im_size: tuple[int, ...], crop_box: list[int], orig_size: tuple[int, ...]
    ) -> MaskData:
        orig_h, orig_w = orig_size
        device = self.predictor.device
        in_points = torch.as_tensor(self.predictor.transform.apply_coords(points, im_size), device=device)
        in_labels = torch.ones(in_points.shape[0], dtype=torch.int, device=device)
        masks, iou_preds, _ = self.predictor.predict_torch(
            in_points[:, None, :], in_labels[:, None], multimask_output=True, return_logits=True
        )
        n_levels = masks.shape[1]
        data = MaskData(
            masks=masks.flatten(0, 1),
            iou_preds=iou_preds.flatten(0, 1),
            level=torch.arange(n_levels, device=device).repeat(len(points)),
        )
        del masks

        threshold = self.predictor.model.mask_threshold
        if self.pred_iou_thresh > 0.0:
            data.filter(data["iou_preds"] + level_values(self.level_iou_offsets, data["level"]) > self.pred_iou_thresh)
        data["stability_score"] = calculate_stability_score(data["masks"], threshold, self.stability_score_offset)
        if self.stability_score_thresh > 0.0:
            bias = level_values(self.level_stability_bias, data["level"])
            data.filter(data["stability_score"] + bias >= self.stability_score_thresh)

        data["masks"] = data["masks"] > threshold
        data["boxes"] = batched_mask_to_box(data["masks"])
        keep = ~is_box_near_crop_edge(data["boxes"], crop_box, [0, 0, orig_w, orig_h])
        if not torch.all(keep):
            data.filter(keep)
        data["masks"] = uncrop_masks(data["masks"], crop_box, orig_h, orig_w)
        return data
