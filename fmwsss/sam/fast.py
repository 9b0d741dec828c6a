"""Fast automatic mask generation: the reference generator's masks with the work batched and trimmed.

:class:`FastMaskGenerator` follows :class:`~fmwsss.sam.generator.LeveledMaskGenerator` step for step (same
point grids, crops, filters, NMS order, clean-up and RSW), so for the same model, image and settings it
returns the same masks in the same order. What it changes is how much work each step does:

* the image encoder runs on several crops (of several images) per forward (``encoder_batch``);
* the decoder takes ``points_per_batch`` point prompts per call (the stock default is 64);
* the predicted-IoU filter runs on the low-resolution logits, before any upsampling (exact: it does not
  look at the mask), so rejected masks are never upsampled; survivors are upsampled in chunks of
  ``postprocess_chunk`` (bounded memory), and the stability filter runs on the full-resolution logits
  exactly as in the stock generator;
* candidates wait for NMS bit-packed at crop resolution on the model's device, and only NMS survivors are
  unpacked and pasted into the full image;
* NMS, boxes and RSW run in torch on the device;
* ``prepare_image`` (crop + resize, CPU only) can run in data-loader workers while the device works.

``autocast`` (``none``, ``bf16``, ``fp16``) runs encoder and decoder under ``torch.autocast``. On a GPU with
tensor cores that should roughly halve the encoder's time and activation memory (not measured: no GPU was
lent when this was written); on the CPU it is slower. It changes masks near the thresholds: with the tiny
test SAM, bf16 at 16 x 16 points changed the mask count on 1 of 4 VOC demo images (156 vs 158 masks, 94 %
matched at IoU >= 0.99). It is therefore part of the stage key and off by default.

Floating point: the decoder's matmuls are not bitwise batch-invariant on every backend (a full-size decoder
on CPU moves logits by ~5e-7 between batch sizes), so masks can differ from the reference at isolated
pixels whose logit sits on the threshold; ``tests/sam/test_fast.py`` bounds this on real images.
"""
from __future__ import annotations

import contextlib
from dataclasses import dataclass, field
from typing import Iterator, Sequence

import numpy as np
import torch
from segment_anything.modeling import Sam
from segment_anything.utils.amg import (
    batched_mask_to_box,
    build_all_layer_point_grids,
    calculate_stability_score,
    generate_crop_boxes,
    is_box_near_crop_edge,
    uncrop_boxes_xyxy,
)
from segment_anything.utils.transforms import ResizeLongestSide
from torchvision.ops.boxes import box_area

from fmwsss.sam.encoding import pack_masks_torch, unpack_masks_torch
from fmwsss.sam.postprocess import finish_masks, level_values, nms, per_level
from fmwsss.sam.types import ImageMasks

AUTOCAST_DTYPES: dict[str, torch.dtype | None] = {"none": None, "bf16": torch.bfloat16, "fp16": torch.float16}


@dataclass
class PreparedCrop:
    """One crop of an image, resized for the encoder (long side = the model's input size)."""

    box: tuple[int, int, int, int]  # xyxy in the full image
    layer: int  # crop layer (0 = the whole image)
    pixels: np.ndarray  # uint8 (h, w, 3)


@dataclass
class PreparedImage:
    """What the device needs of one image; built on the CPU by :func:`prepare_image` (picklable)."""

    height: int
    width: int
    crops: list[PreparedCrop]


def prepare_image(
    image: np.ndarray, *, img_size: int, crop_n_layers: int, crop_overlap_ratio: float
) -> PreparedImage:
    """Cut an RGB uint8 ``(H, W, 3)`` image into the generator's crops and resize each as SAM's predictor
    does (``ResizeLongestSide`` through PIL), without touching the model."""
    if image.ndim != 3 or image.shape[2] != 3 or image.dtype != np.uint8:
        raise ValueError(f"expected an RGB uint8 (H, W, 3) image, got {image.dtype} {image.shape}")
    height, width = image.shape[:2]
    boxes, layers = generate_crop_boxes((height, width), crop_n_layers, crop_overlap_ratio)
    resize = ResizeLongestSide(img_size)
    crops = [
        PreparedCrop((x0, y0, x1, y1), layer, resize.apply_image(image[y0:y1, x0:x1, :]))
        for (x0, y0, x1, y1), layer in zip(boxes, layers)
    ]
    return PreparedImage(height, width, crops)


@dataclass
class _Candidates:
    """Masks of one crop that passed the per-batch filters, packed at crop resolution."""

    packed: list[torch.Tensor] = field(default_factory=list)
    boxes: list[torch.Tensor] = field(default_factory=list)  # xyxy, crop coordinates
    iou: list[torch.Tensor] = field(default_factory=list)
    level: list[torch.Tensor] = field(default_factory=list)
    stability: list[torch.Tensor] = field(default_factory=list)

    def cat(self) -> dict[str, torch.Tensor]:
        return {
            name: torch.cat(getattr(self, name))
            for name in ("packed", "boxes", "iou", "level", "stability")
        }


def _chunks(n: int, size: int) -> Iterator[slice]:
    for start in range(0, n, size):
        yield slice(start, min(start + size, n))


class FastMaskGenerator:
    """Drop-in for :class:`~fmwsss.sam.generator.LeveledMaskGenerator` (same result settings, same
    output); ``points_per_batch``, ``encoder_batch``, ``postprocess_chunk`` and ``rsw_chunk`` only trade
    memory for speed (see :mod:`fmwsss.sam.memory` for what each costs)."""

    def __init__(
        self,
        model: Sam,
        *,
        points_per_side: int = 32,
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
        autocast: str = "none",
        points_per_batch: int = 256,
        encoder_batch: int = 4,
        postprocess_chunk: int = 64,
        rsw_chunk: int = 50,
    ) -> None:
        if autocast not in AUTOCAST_DTYPES:
            raise ValueError(f"autocast must be one of {sorted(AUTOCAST_DTYPES)}, got {autocast!r}")
        for name, value in (("points_per_batch", points_per_batch), ("encoder_batch", encoder_batch),
                            ("postprocess_chunk", postprocess_chunk), ("rsw_chunk", rsw_chunk)):
            if value < 1:
                raise ValueError(f"{name} must be >= 1, got {value}")
        self.model = model
        self.point_grids = build_all_layer_point_grids(points_per_side, crop_n_layers, crop_n_points_downscale_factor)
        self.transform = ResizeLongestSide(model.image_encoder.img_size)
        self.pred_iou_thresh = pred_iou_thresh
        self.stability_score_thresh = stability_score_thresh
        self.stability_score_offset = stability_score_offset
        self.box_nms_thresh = box_nms_thresh
        self.crop_n_layers = crop_n_layers
        self.crop_nms_thresh = crop_nms_thresh
        self.crop_overlap_ratio = crop_overlap_ratio
        self.min_mask_region_area = min_mask_region_area
        self.level_iou_offsets = per_level("level_iou_offsets", level_iou_offsets)
        self.level_nms_offsets = per_level("level_nms_offsets", level_nms_offsets)
        self.level_stability_bias = per_level("level_stability_bias", level_stability_bias)
        self.rsw_thresh = rsw_thresh
        self.autocast = autocast
        self.points_per_batch = points_per_batch
        self.encoder_batch = encoder_batch
        self.postprocess_chunk = postprocess_chunk
        self.rsw_chunk = rsw_chunk

    @property
    def device(self) -> torch.device:
        return self.model.device

    def prepare(self, image: np.ndarray) -> PreparedImage:
        """:func:`prepare_image` with this generator's crop settings (CPU only; safe in worker processes)."""
        return prepare_image(
            image,
            img_size=self.model.image_encoder.img_size,
            crop_n_layers=self.crop_n_layers,
            crop_overlap_ratio=self.crop_overlap_ratio,
        )

    @torch.no_grad()
    def generate(self, image: np.ndarray) -> ImageMasks:
        """Masks of an RGB uint8 ``(H, W, 3)`` image; ``N = 0`` when nothing survives the filters."""
        return self.generate_prepared([self.prepare(image)])[0]

    @torch.no_grad()
    def generate_prepared(self, images: Sequence[PreparedImage]) -> list[ImageMasks]:
        """Masks of several prepared images; their crops share encoder batches."""
        crops = [crop for image in images for crop in image.crops]
        features = self._encode([crop.pixels for crop in crops])
        results, start = [], 0
        for image in images:
            image_features = features[start : start + len(image.crops)]
            start += len(image.crops)
            results.append(self._image_masks(image, image_features))
        return results

    def _autocast(self) -> contextlib.AbstractContextManager:
        dtype = AUTOCAST_DTYPES[self.autocast]
        if dtype is None:
            return contextlib.nullcontext()
        return torch.autocast(device_type=self.device.type, dtype=dtype)

    def _encode(self, pixels: list[np.ndarray]) -> list[torch.Tensor]:
        """Image embeddings ``(1, C, h, w)`` of each crop, ``encoder_batch`` crops per forward."""
        features: list[torch.Tensor] = []
        for part in _chunks(len(pixels), self.encoder_batch):
            batch = torch.cat([
                self.model.preprocess(torch.as_tensor(p, device=self.device).permute(2, 0, 1).contiguous()[None])
                for p in pixels[part]
            ])
            with self._autocast():
                encoded = self.model.image_encoder(batch)
            features.extend(encoded.float().split(1))
        return features

    def _image_masks(self, image: PreparedImage, features: list[torch.Tensor]) -> ImageMasks:
        per_crop = [self._crop_candidates(crop, f, image.height, image.width) for crop, f in zip(image.crops, features)]
        crop_id = torch.cat([torch.full((len(c["iou"]),), i, dtype=torch.int64) for i, c in enumerate(per_crop)])
        local = torch.cat([torch.arange(len(c["iou"])) for c in per_crop])
        data = {name: torch.cat([c[name] for c in per_crop]) for name in ("boxes", "iou", "level", "stability")}
        if len(image.crops) > 1:
            # Across crops prefer masks from smaller crops, as the stock generator does.
            crop_boxes = torch.tensor([crop.box for crop in image.crops], dtype=torch.int64)[crop_id]
            keep = nms(data["boxes"], (1 / box_area(crop_boxes)).to(data["boxes"].device), self.crop_nms_thresh)
            keep_cpu = keep.cpu()
            crop_id, local = crop_id[keep_cpu], local[keep_cpu]
            data = {name: value[keep] for name, value in data.items()}
        masks = self._paste(image, per_crop, crop_id, local)
        return finish_masks(
            masks, data["boxes"], data["iou"], data["level"], data["stability"],
            min_mask_region_area=self.min_mask_region_area,
            cleanup_nms_thresh=max(self.box_nms_thresh, self.crop_nms_thresh),
            rsw_thresh=self.rsw_thresh,
            rsw_chunk=self.rsw_chunk,
        )

    def _paste(
        self, image: PreparedImage, per_crop: list[dict[str, torch.Tensor]], crop_id: torch.Tensor, local: torch.Tensor
    ) -> torch.Tensor:
        """Unpack the kept candidates and paste each into a full-image bool mask, in NMS order."""
        masks = torch.zeros((len(crop_id), image.height, image.width), dtype=torch.bool, device=self.device)
        for i, (crop, candidates) in enumerate(zip(image.crops, per_crop)):
            rows = torch.nonzero(crop_id == i).flatten()
            if len(rows) == 0:
                continue
            x0, y0, x1, y1 = crop.box
            packed = candidates["packed"][local[rows].to(candidates["packed"].device)]
            masks[rows.to(self.device), y0:y1, x0:x1] = unpack_masks_torch(packed, y1 - y0, x1 - x0)
        return masks

    def _crop_candidates(
        self, crop: PreparedCrop, features: torch.Tensor, height: int, width: int
    ) -> dict[str, torch.Tensor]:
        """Decode every point of the crop's grid, filter, NMS within the crop; boxes come back uncropped."""
        x0, y0, x1, y1 = crop.box
        crop_size = (y1 - y0, x1 - x0)
        points = self.point_grids[crop.layer] * np.array(crop_size)[None, ::-1]
        coords = torch.as_tensor(self.transform.apply_coords(points, crop_size), device=self.device)
        candidates = _Candidates()
        dense_pe = self.model.prompt_encoder.get_dense_pe()
        for part in _chunks(len(coords), self.points_per_batch):
            batch = coords[part][:, None, :]
            labels = torch.ones(batch.shape[:2], dtype=torch.int, device=self.device)
            with self._autocast():
                sparse, dense = self.model.prompt_encoder(points=(batch, labels), boxes=None, masks=None)
                low_res, iou = self.model.mask_decoder(
                    image_embeddings=features,
                    image_pe=dense_pe,
                    sparse_prompt_embeddings=sparse,
                    dense_prompt_embeddings=dense,
                    multimask_output=True,
                )
            n_levels = low_res.shape[1]
            low_res, iou = low_res.float().flatten(0, 1), iou.float().flatten(0, 1)
            level = torch.arange(n_levels, device=self.device).repeat(len(batch))
            if self.pred_iou_thresh > 0.0:
                passed = iou + level_values(self.level_iou_offsets, level) > self.pred_iou_thresh
                selected = torch.nonzero(passed).flatten()
            else:
                selected = torch.arange(len(iou), device=self.device)
            for chunk in _chunks(len(selected), self.postprocess_chunk):
                self._filter_full_resolution(candidates, low_res, iou, level, selected[chunk], crop, height, width)
        data = candidates.cat() if candidates.iou else self._no_candidates()
        keep = nms(data["boxes"], data["iou"] + level_values(self.level_nms_offsets, data["level"]), self.box_nms_thresh)
        data = {name: value[keep] for name, value in data.items()}
        data["boxes"] = uncrop_boxes_xyxy(data["boxes"], list(crop.box))
        return data

    def _filter_full_resolution(
        self,
        candidates: _Candidates,
        low_res: torch.Tensor,
        iou: torch.Tensor,
        level: torch.Tensor,
        index: torch.Tensor,
        crop: PreparedCrop,
        height: int,
        width: int,
    ) -> None:
        """Upsample one chunk of IoU survivors, apply the stability and crop-edge filters, keep packed masks."""
        x0, y0, x1, y1 = crop.box
        logits = self.model.postprocess_masks(low_res[index][:, None], crop.pixels.shape[:2], (y1 - y0, x1 - x0))[:, 0]
        threshold = self.model.mask_threshold
        stability = calculate_stability_score(logits, threshold, self.stability_score_offset)
        level = level[index]
        if self.stability_score_thresh > 0.0:
            passed = stability + level_values(self.level_stability_bias, level) >= self.stability_score_thresh
            logits, stability, level, index = logits[passed], stability[passed], level[passed], index[passed]
        masks = logits > threshold
        del logits
        boxes = batched_mask_to_box(masks)
        inside = ~is_box_near_crop_edge(boxes, list(crop.box), [0, 0, width, height])
        if not torch.all(inside):
            masks, boxes, stability, level, index = masks[inside], boxes[inside], stability[inside], level[inside], index[inside]
        candidates.packed.append(pack_masks_torch(masks))
        candidates.boxes.append(boxes)
        candidates.iou.append(iou[index])
        candidates.level.append(level)
        candidates.stability.append(stability)

    def _no_candidates(self) -> dict[str, torch.Tensor]:
        empty = torch.zeros(0, device=self.device)
        return {
            "packed": torch.zeros((0, 0), dtype=torch.uint8, device=self.device),
            "boxes": torch.zeros((0, 4), dtype=torch.int64, device=self.device),
            "iou": empty,
            "level": torch.zeros(0, dtype=torch.int64, device=self.device),
            "stability": empty,
        }
