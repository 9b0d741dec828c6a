"""A SAM whose masks come from the image: the GPU suite's load for mask post-processing.

Random weights make a real SAM keep about one mask per image, so the filters, NMS, clean-up and RSW of an
automatic mask generator are timed on almost nothing. This stand-in keeps the real model's work (a ``vit_h``
image encoder, prompt encoder and two-way-transformer decoder, random weights) but answers each point prompt
with three point-seeded colour blobs (sub-part, part, whole): the cells of SAM's 256 x 256 low-resolution
mask grid (4 x 4 pixels of the 1024 input frame) within radius ``r_l`` of the point whose mean colour lies
within ``tolerance_l`` of the point's cell. Logits fall linearly to the nearer of the two limits
(``gain``), so a blob cut by a smooth colour gradient or by its radius has a low stability score, and the
predicted IoU falls with the mean of that ratio inside the blob (homogeneous compact blobs score high), plus
a deterministic jitter below 1e-3 (so NMS meets no ties). On the first three VOC sample images at the
``voc`` preset's settings without level offsets and RSW (32 x 32 points and one crop layer: 6,144 candidates
an image; IoU 0.86, stability 0.92), 900-1,900 candidates pass the filters and stock and fast both keep 71, 90
and 113 masks, every one matched (measured on a CPU with the small encoder; the full method keeps 13, 30, 58).

Each blob depends only on its own point and the image: one pass of elementwise work per decoder call (no
flood fill), so the stock generator's 64 points per call and the fast generator's larger batches give the
same masks, and the encoder size never changes them (the suite's counts can be checked on a CPU with the
small encoder). The colour cells and the point coordinates travel through the library's tiny-SAM encoders
(:class:`~fmwsss.models.tiny_sam.TinyImageEncoder`, :class:`~fmwsss.models.tiny_sam.TinyPromptEncoder`).
"""
from __future__ import annotations

from functools import partial
from typing import Any, Sequence

import torch
import torch.nn.functional as F
from segment_anything.modeling import MaskDecoder, Sam, TwoWayTransformer

from fmwsss.models.tiny_sam import TinyImageEncoder, TinyPromptEncoder

IMG_SIZE = 1024
#: Low-resolution mask cells per input pixel side: SAM's decoder upsamples the 64 x 64 embedding 4x.
_UPSCALE = 4
PIXEL_MEAN = (123.675, 116.28, 103.53)
PIXEL_STD = (58.395, 57.12, 57.375)
#: Model sizes: segment-anything's vit_h (its real cost) or a small one (a CPU; the same masks). ``encoder``:
#: the image encoder's arguments besides image and patch size; ``decoder``: its two-way transformer's.
SIZES: dict[str, dict[str, dict[str, Any]]] = {
    "vit_h": {
        "encoder": dict(embed_dim=1280, depth=32, num_heads=16, global_attn_indexes=(7, 15, 23, 31),
                        window_size=14, use_rel_pos=True, out_chans=256),
        "decoder": dict(depth=2, mlp_dim=2048, num_heads=8),
    },
    "small": {
        "encoder": dict(embed_dim=32, depth=1, num_heads=2, global_attn_indexes=(), window_size=16,
                        use_rel_pos=False, out_chans=32),
        "decoder": dict(depth=1, mlp_dim=64, num_heads=2),
    },
}
#: Blob radii (in 256-grid cells), colour tolerances (normalised RGB distance), logit gain, IoU spread.
RADII = (64.0, 128.0, 256.0)
TOLERANCES = (0.35, 0.6, 0.9)
GAIN = 40.0
IOU_SPREAD = 0.2


def blob_masks(
    colour: torch.Tensor, valid: torch.Tensor, xy: torch.Tensor, radii: Sequence[float],
    tolerances: Sequence[float], gain: float, iou_spread: float,
) -> tuple[torch.Tensor, torch.Tensor]:
    """colour (3, G, G), valid (G, G) bool, xy (B, 2) in [0, 1] -> logits (B, 3, G, G), iou (B, 3)."""
    g = colour.shape[-1]
    point = xy * g  # (B, 2) in cell units, x first
    col, row = point.long().clamp(0, g - 1).unbind(dim=1)
    seed = colour[:, row, col].T  # (B, 3)
    colour_dist = ((colour[None] - seed[:, :, None, None]) ** 2).sum(dim=1).sqrt()  # (B, G, G)
    centres = torch.arange(g, dtype=colour.dtype, device=colour.device) + 0.5
    dy = centres[None, :, None] - point[:, 1, None, None]
    dx = centres[None, None, :] - point[:, 0, None, None]
    place_dist = (dx * dx + dy * dy).sqrt()  # (B, G, G)
    tol = torch.tensor(tolerances, dtype=colour.dtype, device=colour.device)[None, :, None, None]
    rad = torch.tensor(radii, dtype=colour.dtype, device=colour.device)[None, :, None, None]
    ratio = torch.maximum(colour_dist[:, None] / tol, place_dist[:, None] / rad)  # (B, 3, G, G)
    logits = torch.where(valid, gain * (1 - ratio), torch.full_like(ratio, -gain))
    inside = (ratio < 1) & valid
    mean_ratio = (ratio * inside).sum(dim=(2, 3)) / inside.sum(dim=(2, 3)).clamp(min=1)
    jitter = 1e-3 * torch.frac(0.7548776662 * point[:, 0] * _UPSCALE + 0.5698402910 * point[:, 1] * _UPSCALE)
    return logits, 1 - iou_spread * mean_ratio + jitter[:, None]


class BlobDecoder(MaskDecoder):
    """Runs the (random-weight) decoder for its cost, answers with :func:`blob_masks` (point prompts only)."""

    def __init__(self, *, radii: Sequence[float], tolerances: Sequence[float], gain: float, iou_spread: float,
                 **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.radii, self.tolerances = tuple(radii), tuple(tolerances)
        self.gain, self.iou_spread = float(gain), float(iou_spread)

    def forward(
        self,
        image_embeddings: torch.Tensor,
        image_pe: torch.Tensor,
        sparse_prompt_embeddings: torch.Tensor,
        dense_prompt_embeddings: torch.Tensor,
        multimask_output: bool,
    ) -> tuple[torch.Tensor, torch.Tensor]:
        dim = self.transformer_dim
        # The real decoder's work, so a timing includes it; its random-weight masks are not the answer.
        super().forward(image_embeddings[:, :dim], image_pe, sparse_prompt_embeddings, dense_prompt_embeddings,
                        multimask_output)
        cells = F.pixel_shuffle(image_embeddings[:1, dim:].float(), _UPSCALE)[0]
        logits, iou = blob_masks(cells[:3], cells[3] > 0.5, sparse_prompt_embeddings[:, 0, -2:].float(),
                                 self.radii, self.tolerances, self.gain, self.iou_spread)
        if not multimask_output:
            logits, iou = logits[:, 1:2], iou[:, 1:2]
        return logits, iou


def standin_sam(size: str, device: torch.device, seed: int = 0) -> Sam:
    """The stand-in at ``size`` (a key of :data:`SIZES`), built on ``device``, eval mode, frozen."""
    encoder, decoder = SIZES[size]["encoder"], SIZES[size]["decoder"]
    dim = encoder["out_chans"]
    embedding = IMG_SIZE // 16
    with torch.random.fork_rng(devices=[device] if device.type == "cuda" else []), torch.device(device):
        torch.manual_seed(seed)
        model = Sam(
            image_encoder=TinyImageEncoder(
                img_size=IMG_SIZE, patch_size=16, mlp_ratio=4, qkv_bias=True,
                norm_layer=partial(torch.nn.LayerNorm, eps=1e-6), **encoder,
            ),
            prompt_encoder=TinyPromptEncoder(
                embed_dim=dim, image_embedding_size=(embedding, embedding), input_image_size=(IMG_SIZE, IMG_SIZE),
                mask_in_chans=16,
            ),
            mask_decoder=BlobDecoder(
                radii=RADII, tolerances=TOLERANCES, gain=GAIN, iou_spread=IOU_SPREAD, num_multimask_outputs=3,
                transformer=TwoWayTransformer(embedding_dim=dim, **decoder), transformer_dim=dim, iou_head_depth=3,
                iou_head_hidden_dim=dim,
            ),
            pixel_mean=list(PIXEL_MEAN),
            pixel_std=list(PIXEL_STD),
        )
    return model.eval().requires_grad_(False)
