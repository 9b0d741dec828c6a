"""Batch sizes of the fast SAM generator from a memory budget in GiB (config ``runtime.sam_memory_gb``).

The plan depends only on the model's shape and the budget, never on the memory free at run time, so one
config gives the same batches (and the same floating-point results) on every machine. Peak memory is

    weights + candidates + max(encoder_batch * E, points_per_batch * D + postprocess_chunk * P)

with, in fp32 (``autocast`` only lowers it):

* E, per encoder crop: a global-attention block holds three ``heads x T x T`` tensors at once (scores,
  scores plus the decomposed relative positions, softmax; T = tokens = (img_size / patch)^2), plus ~16
  activations of ``T x dim``. ViT-B: 3 x 12 x 4096^2 x 4 B + 0.2 GB = 2.6 GB, measured on the CPU 2.5 GB
  per crop (ru_maxrss, batch 1 vs 2: 2.50 and 5.06 GB); ViT-H: 3.2 + 0.3 = 3.6 GB per crop;
* D, per point prompt: the decoder repeats the image embedding per prompt and runs its two-way transformer
  and upscaling on it. Measured on the CPU with the full-size decoder (C = 256, 64 x 64 embedding): 27-33
  MB per point (ru_maxrss, batch 8 vs 64); the plan uses 40 MB;
* P, per mask upsampled: the ``img_size^2`` intermediate plus the crop-size logits and their thresholds
  (4 MB + 2 x H x W x 4 B; 6.5 MB at 500 x 375 -- the plan assumes a 1024 x 1024 crop, 12 MB);
* candidates: every mask that passes the per-batch filters waits for NMS bit-packed (H x W / 8 bytes);
  at most 3 per point: 3 x 1024 x 131 kB = 400 MB for the 32 x 32 grid on a 1024^2 crop (bounded by one
  crop's worth, as each crop is reduced by NMS before the next); RSW adds ``2 x rsw_chunk x H x W x 4 B``.

Units are GiB. ViT-H with the default budget of 20: 2.4 GiB of weights and 0.8 GiB fixed leave 16.8 GiB:
5 crops per encoder forward and 384 points per decoder call (capped), an estimated peak of 19.7 GiB. That
leaves a 24 GB card ~3.5 GiB for the CUDA context and allocator slack; on a GPU this is the formula's
figure, not a measurement (no GPU was lent to the session that wrote it).
"""
from __future__ import annotations

from dataclasses import dataclass

from segment_anything.modeling import Sam

GIB = 1 << 30
MIB = 1 << 20

#: Decoder memory per point prompt at the full-size decoder (C = 256, 64 x 64 embedding), fp32, with margin.
_DECODER_BYTES_FULL = 40 * MIB
#: Largest image side the fixed terms are sized for (bigger images still work; the plan is then optimistic).
_PLAN_SIDE = 1024
#: Caps: beyond these, bigger batches stop paying off and only delay the first result.
MAX_ENCODER_BATCH = 8
MAX_POINTS_PER_BATCH = 384


@dataclass(frozen=True)
class BatchPlan:
    """What one fast-generator job runs at once."""

    encoder_batch: int
    points_per_batch: int
    postprocess_chunk: int
    estimated_peak_bytes: int


def weight_bytes(model: Sam) -> int:
    return sum(p.numel() * p.element_size() for p in model.parameters())


def encoder_bytes_per_crop(model: Sam) -> int:
    """E: activation memory of one crop in the image encoder (global attention dominates)."""
    encoder = model.image_encoder
    tokens = (encoder.img_size // encoder.patch_embed.proj.kernel_size[0]) ** 2
    dim = encoder.patch_embed.proj.out_channels
    heads = encoder.blocks[0].attn.num_heads if len(encoder.blocks) else 1
    windows = [block.window_size for block in encoder.blocks]
    span = tokens if (0 in windows or not windows) else max(windows) ** 2
    return 4 * (3 * heads * tokens * span + 16 * tokens * dim)


def decoder_bytes_per_point(model: Sam) -> int:
    """D: the measured full-size figure scaled by the embedding size and width of this decoder."""
    h, w = model.prompt_encoder.image_embedding_size
    scale = (model.mask_decoder.transformer_dim / 256) * (h * w / 4096)
    return max(int(_DECODER_BYTES_FULL * scale), 64 * 1024)


def postprocess_bytes_per_mask(model: Sam) -> int:
    """P: one mask's upsampling at the planning crop size."""
    side = model.image_encoder.img_size
    return 4 * (side * side + 2 * _PLAN_SIDE * _PLAN_SIDE)


def plan_batches(
    model: Sam,
    memory_gb: float,
    *,
    points_per_side: int,
    postprocess_chunk: int = 64,
    rsw_chunk: int = 50,
) -> BatchPlan:
    """The largest batches (up to the caps) whose estimated peak stays within ``memory_gb``.

    Raises ``ValueError`` naming the budget when even one crop and one point do not fit.
    """
    budget = int(memory_gb * GIB)
    pixels = _PLAN_SIDE * _PLAN_SIDE
    fixed = weight_bytes(model) + 3 * points_per_side**2 * pixels // 8 + 2 * rsw_chunk * pixels * 4
    available = budget - fixed
    per_crop = encoder_bytes_per_crop(model)
    per_point = decoder_bytes_per_point(model)
    post = postprocess_chunk * postprocess_bytes_per_mask(model)
    if available < max(per_crop, per_point + post):
        need = fixed + max(per_crop, per_point + post)
        raise ValueError(
            f"runtime.sam_memory_gb = {memory_gb} is too small for this SAM: one crop and one point need "
            f"about {need / GIB:.1f} GB (weights {weight_bytes(model) / GIB:.1f} GB)"
        )
    encoder_batch = min(MAX_ENCODER_BATCH, available // per_crop)
    points = min(MAX_POINTS_PER_BATCH, (available - post) // per_point, points_per_side**2)
    peak = fixed + max(encoder_batch * per_crop, points * per_point + post)
    return BatchPlan(int(encoder_batch), int(max(points, 1)), postprocess_chunk, int(peak))
