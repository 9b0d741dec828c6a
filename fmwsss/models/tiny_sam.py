"""A tiny SAM for tests and the demo (``models: tiny``) -- NOT a segmentation model.

Random weights make a real SAM return one whole-image mask per point, which would make every SAMS seed
background. This test model instead derives its masks from the (resized) input image alone, never from
ground truth, while running through the standard ``Sam`` / ``SamPredictor`` API so that both
segment-anything's ``SamAutomaticMaskGenerator`` and ours run on it unchanged:

* :class:`TinyImageEncoder` (an ``ImageEncoderViT``) appends the mean colour (and a "not padding" flag)
  of each low-resolution mask cell to its ViT features, packed into channels with ``pixel_unshuffle``;
* :class:`TinyPromptEncoder` (a ``PromptEncoder``) writes each point's normalised (x, y) into the last
  two channels of its embedding;
* :class:`ColourRegionDecoder` (a ``MaskDecoder``) grows, from each point's cell, the 8-connected region of
  cells whose colour lies within a tolerance of the point's colour, with three increasing tolerances for
  the three multimask outputs (sub-part, part, whole). Logits fall with colour distance, so the stability
  score drops for heterogeneous or thin regions; the predicted IoU falls with the region's mean colour
  distance. The stock decoder's (random-weight) output is added with a small weight, so every weight
  matters and two seeds give (slightly) different masks.

File format: one ``torch.save`` file ``{"format": "fmwsss-tiny-sam", "version": 1, "arch": {...},
"state_dict": ...}``; ``arch`` holds every :class:`TinySam` constructor argument.
"""
from __future__ import annotations

import os
from functools import partial
from pathlib import Path
from typing import Any, Sequence

import torch
import torch.nn.functional as F
from segment_anything.modeling import ImageEncoderViT, MaskDecoder, PromptEncoder, Sam, TwoWayTransformer

from fmwsss.io.atomic import atomic_path

TINY_SAM_FORMAT = "fmwsss-tiny-sam"
TINY_SAM_VERSION = 1
#: SAM's mask decoder upsamples the image embedding 4x; the colour cells match that low-res mask grid.
_UPSCALE = 4

DEFAULT_ARCH: dict[str, Any] = {
    "img_size": 256,
    "patch_size": 16,
    "encoder_embed_dim": 48,
    "encoder_depth": 2,
    "encoder_num_heads": 2,
    "prompt_embed_dim": 32,
    "mask_in_chans": 4,
    "decoder_depth": 2,
    "decoder_mlp_dim": 64,
    "decoder_num_heads": 2,
    "iou_head_hidden_dim": 32,
    "colour_tolerances": [0.1, 0.18, 0.28],
    "logit_gain": 60.0,
    "iou_spread": 0.15,
    "learned_weight": 0.05,
    "pixel_mean": [123.675, 116.28, 103.53],
    "pixel_std": [58.395, 57.12, 57.375],
}


class TinyImageEncoder(ImageEncoderViT):
    """ViT features plus, per low-res mask cell, the mean normalised colour and a "not padding" flag."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        features = super().forward(x)
        cell = self.patch_embed.proj.kernel_size[0] // _UPSCALE
        # Sam.preprocess pads with exact zeros; a real (uint8) pixel never normalises to all zeros.
        valid = (x != 0).any(dim=1, keepdim=True).to(x.dtype)
        valid_frac = F.avg_pool2d(valid, cell)
        colour = F.avg_pool2d(x, cell) / valid_frac.clamp(min=1e-6)
        cells = torch.cat([colour, (valid_frac > 0).to(x.dtype)], dim=1)
        return torch.cat([features, F.pixel_unshuffle(cells, _UPSCALE)], dim=1)


class TinyPromptEncoder(PromptEncoder):
    """The stock point embedding with the point's (x, y) / input size in its last two channels."""

    def _embed_points(self, points: torch.Tensor, labels: torch.Tensor, pad: bool) -> torch.Tensor:
        embedding = super()._embed_points(points, labels, pad)
        h, w = self.input_image_size
        xy = (points + 0.5) / torch.tensor([w, h], dtype=points.dtype, device=points.device)
        embedding[:, : points.shape[1], -2:] = xy
        return embedding


def _dilate(mask: torch.Tensor) -> torch.Tensor:
    """3x3 binary dilation of bool (..., H, W) masks (separable ORs: ~30x faster than float max-pooling)."""
    padded = mask.new_zeros(*mask.shape[:-2], mask.shape[-2] + 2, mask.shape[-1] + 2)
    padded[..., 1:-1, 1:-1] = mask
    rows = padded[..., :-2, :] | padded[..., 1:-1, :] | padded[..., 2:, :]
    return rows[..., :, :-2] | rows[..., :, 1:-1] | rows[..., :, 2:]


class ColourRegionDecoder(MaskDecoder):
    """Three nested colour regions per point (point prompts only; the first sparse token is the point)."""

    def __init__(
        self,
        *,
        colour_tolerances: Sequence[float],
        logit_gain: float,
        iou_spread: float,
        learned_weight: float,
        **kwargs: Any,
    ) -> None:
        super().__init__(**kwargs)
        if len(colour_tolerances) != self.num_multimask_outputs:
            raise ValueError(f"colour_tolerances needs {self.num_multimask_outputs} values, got {colour_tolerances}")
        self.colour_tolerances = [float(t) for t in colour_tolerances]
        self.logit_gain = float(logit_gain)
        self.iou_spread = float(iou_spread)
        self.learned_weight = float(learned_weight)

    def forward(
        self,
        image_embeddings: torch.Tensor,
        image_pe: torch.Tensor,
        sparse_prompt_embeddings: torch.Tensor,
        dense_prompt_embeddings: torch.Tensor,
        multimask_output: bool,
    ) -> tuple[torch.Tensor, torch.Tensor]:
        dim = self.transformer_dim
        learned_masks, learned_iou = super().forward(
            image_embeddings[:, :dim], image_pe, sparse_prompt_embeddings, dense_prompt_embeddings, multimask_output
        )
        cells = F.pixel_shuffle(image_embeddings[:1, dim:], _UPSCALE)[0]
        logits, iou = self._colour_regions(cells[:3], cells[3] > 0.5, sparse_prompt_embeddings[:, 0, -2:])
        if not multimask_output:
            logits, iou = logits[:, 1:2], iou[:, 1:2]
        return logits + self.learned_weight * learned_masks, iou + self.learned_weight * learned_iou

    def _colour_regions(
        self, colour: torch.Tensor, valid: torch.Tensor, xy: torch.Tensor
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """colour (3, G, G), valid (G, G), xy (B, 2) in [0, 1] -> logits (B, 3, G, G), iou (B, 3)."""
        g = colour.shape[-1]
        col, row = (xy * g).long().clamp(0, g - 1).unbind(dim=1)
        seed_colour = colour[:, row, col].T  # (B, 3)
        dist = (colour[None] - seed_colour[:, :, None, None]).norm(dim=1)  # (B, G, G)
        tol = torch.tensor(self.colour_tolerances, dtype=colour.dtype, device=colour.device)
        ratio = dist[:, None] / tol[None, :, None, None]  # (B, 3, G, G)
        within = (ratio < 1) & valid
        region = torch.zeros_like(within)
        region[torch.arange(len(xy), device=xy.device), :, row, col] = True
        region &= within
        # 8-connected flood fill from the point, all points and levels at once; converges in <= G*G steps.
        for _ in range(g * g):
            grown = _dilate(region) & within
            if torch.equal(grown, region):
                break
            region = grown
        logits = torch.where(region, self.logit_gain * (1 - ratio), torch.full_like(ratio, -self.logit_gain))
        mean_ratio = (ratio * region).sum(dim=(2, 3)) / region.sum(dim=(2, 3)).clamp(min=1)
        return logits, 1 - self.iou_spread * mean_ratio


class TinySam(Sam):
    """A ~0.16 M-parameter SAM built from segment-anything's modules; test/demo model only (see module doc)."""

    def __init__(
        self,
        *,
        img_size: int,
        patch_size: int,
        encoder_embed_dim: int,
        encoder_depth: int,
        encoder_num_heads: int,
        prompt_embed_dim: int,
        mask_in_chans: int,
        decoder_depth: int,
        decoder_mlp_dim: int,
        decoder_num_heads: int,
        iou_head_hidden_dim: int,
        colour_tolerances: Sequence[float],
        logit_gain: float,
        iou_spread: float,
        learned_weight: float,
        pixel_mean: Sequence[float],
        pixel_std: Sequence[float],
    ) -> None:
        if patch_size % _UPSCALE or img_size % patch_size:
            raise ValueError(
                f"tiny SAM needs img_size % patch_size == 0 and patch_size % 4 == 0, got {img_size}, {patch_size}"
            )
        self.arch = {k: v for k, v in locals().items() if k in DEFAULT_ARCH}
        embedding_size = img_size // patch_size
        super().__init__(
            image_encoder=TinyImageEncoder(
                img_size=img_size,
                patch_size=patch_size,
                embed_dim=encoder_embed_dim,
                depth=encoder_depth,
                num_heads=encoder_num_heads,
                mlp_ratio=4,
                out_chans=prompt_embed_dim,
                qkv_bias=True,
                norm_layer=partial(torch.nn.LayerNorm, eps=1e-6),
                use_rel_pos=False,
                window_size=0,
            ),
            prompt_encoder=TinyPromptEncoder(
                embed_dim=prompt_embed_dim,
                image_embedding_size=(embedding_size, embedding_size),
                input_image_size=(img_size, img_size),
                mask_in_chans=mask_in_chans,
            ),
            mask_decoder=ColourRegionDecoder(
                colour_tolerances=colour_tolerances,
                logit_gain=logit_gain,
                iou_spread=iou_spread,
                learned_weight=learned_weight,
                num_multimask_outputs=3,
                transformer=TwoWayTransformer(
                    depth=decoder_depth,
                    embedding_dim=prompt_embed_dim,
                    mlp_dim=decoder_mlp_dim,
                    num_heads=decoder_num_heads,
                ),
                transformer_dim=prompt_embed_dim,
                iou_head_depth=3,
                iou_head_hidden_dim=iou_head_hidden_dim,
            ),
            pixel_mean=list(pixel_mean),
            pixel_std=list(pixel_std),
        )


def create_tiny_sam(path: str | os.PathLike, seed: int = 0) -> Path:
    """Write a tiny SAM (:data:`DEFAULT_ARCH`, weights drawn from ``seed``) to ``path`` atomically."""
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        model = TinySam(**DEFAULT_ARCH)
    payload = {
        "format": TINY_SAM_FORMAT,
        "version": TINY_SAM_VERSION,
        "arch": model.arch,
        "state_dict": model.state_dict(),
    }
    with atomic_path(path) as tmp:
        torch.save(payload, tmp)
    return Path(path)
