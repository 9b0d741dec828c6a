"""Full-size Mask2Former Swin-L (random backbone, no file) on a CPU: its parameter count, derived by hand, and
one AdamW training step at 512x512 through the global-batch loss (long: about a minute and ~6 GB)."""
from __future__ import annotations

import time

import pytest
import torch
from transformers import SwinModel

from fmwsss.models.swin import swin_config
from fmwsss.segmentation.models import build_segmenter

pytestmark = pytest.mark.long

VOC_M2F = {"num_queries": 100, "class_weight": 2.0, "mask_weight": 5.0, "dice_weight": 5.0, "no_object_weight": 0.1,
           "train_points": 12544}


def _swin_large_params() -> int:
    """Swin-L (embed 192, depths 2/2/18/2, heads 6/12/24/48, window 12, MLP ratio 4), counted by hand.

    A block of width d with h heads: two LayerNorms 4d, q/k/v 3(d^2 + d), output projection d^2 + d, relative
    position table (2*12 - 1)^2 h = 529 h, MLP (4d^2 + 4d) + (4d^2 + d): 12 d^2 + 13 d + 529 h. A patch merging
    after stage d: LayerNorm 8d + reduction 4d x 2d = 8 d^2 + 8 d. Patch embedding 3*4*4*192 + 192 and its
    LayerNorm 384; the final LayerNorm 2 * 1536; Mask2Former's four per-stage output LayerNorms
    2 * (192 + 384 + 768 + 1536)."""
    block = lambda d, h: 12 * d * d + 13 * d + 529 * h  # noqa: E731
    merge = lambda d: 8 * d * d + 8 * d  # noqa: E731
    blocks = 2 * block(192, 6) + 2 * block(384, 12) + 18 * block(768, 24) + 2 * block(1536, 48)
    merges = merge(192) + merge(384) + merge(768)
    return (3 * 4 * 4 * 192 + 192) + 384 + blocks + merges + 2 * 1536 + 2 * (192 + 384 + 768 + 1536)


def test_swin_large_mask2former_trains_one_step_at_512():
    torch.manual_seed(0)
    started = time.perf_counter()
    model = build_segmenter("mask2former_swin_large", 21, pretrained_backbone=False,
                            settings={"mask2former": VOC_M2F}).train()
    built = time.perf_counter()
    backbone = sum(p.numel() for p in model.backbone.parameters())
    total = sum(p.numel() for p in model.parameters())
    stock = sum(p.numel() for p in SwinModel(swin_config("swin_large_patch4_window12_384")).parameters())
    print(f"\nMask2Former Swin-L: {total:,} parameters, backbone {backbone:,} (stock SwinModel {stock:,})")
    assert backbone == _swin_large_params() == 195_204_276
    assert backbone == stock + 2 * (192 + 384 + 768 + 1536)  # the stock model has no per-stage output norms

    x = torch.randn(1, 3, 512, 512)
    labels = torch.zeros(1, 512, 512, dtype=torch.long)
    labels[0, 100:300, 50:400] = 15
    labels[0, 350:, :200] = 255
    optimizer = torch.optim.AdamW(model.parameters(), lr=1e-4, weight_decay=0.05)
    before = model.net.class_predictor.weight.detach().clone()
    loss = model.loss(x, labels, model.count_targets(labels))
    loss.backward()
    optimizer.step()
    done = time.perf_counter()
    print(f"build {built - started:.1f} s, one step at 1x512^2 {done - built:.1f} s, loss {float(loss.detach()):.3f}")
    assert torch.isfinite(loss)
    assert not torch.equal(before, model.net.class_predictor.weight)
    assert all(p.grad is not None for p in model.parameters() if p.requires_grad)  # DDP: no unused parameters
