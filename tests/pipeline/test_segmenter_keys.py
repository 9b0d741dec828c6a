"""Only the segmenter settings the chosen arch and optimiser read enter the training's stage key."""
from __future__ import annotations

from fmwsss.pipeline.plan import keyed_section
from fmwsss.segmentation.archs import ARCHS, BACKBONE_WEIGHT, backbone_weight, keyed_segmenter

M2F_BLOCK = {"num_queries": 100, "class_weight": 2.0, "mask_weight": 5.0, "dice_weight": 5.0,
             "no_object_weight": 0.1, "train_points": 12544, "precision": "fp32"}


def _segmenter(**changes) -> dict:
    base = {"arch": "deeplabv3_resnet101", "pretrained_backbone": True, "optimizer": "sgd", "lr": 0.01,
            "momentum": 0.9, "weight_decay": 1e-4, "grad_clip": None, "mask2former": dict(M2F_BLOCK)}
    return {**base, **changes}


def test_deeplab_with_sgd_keeps_momentum_and_drops_the_mask2former_block():
    keyed = keyed_segmenter(_segmenter())
    assert keyed["momentum"] == 0.9 and "mask2former" not in keyed
    # what DeepLab never reads cannot move its key
    other = _segmenter(mask2former={**M2F_BLOCK, "num_queries": 7})
    assert keyed_segmenter(other) == keyed


def test_mask2former_with_adamw_drops_momentum_and_keeps_its_block():
    seg = _segmenter(arch="mask2former_swin_large", optimizer="adamw", lr=1e-4)
    keyed = keyed_segmenter(seg)
    assert "momentum" not in keyed and keyed["mask2former"] == M2F_BLOCK
    assert keyed_segmenter({**seg, "momentum": 0.5}) == keyed
    assert keyed_segmenter({**seg, "mask2former": {**M2F_BLOCK, "precision": "bf16"}}) != keyed
    assert seg["momentum"] == 0.9  # the input is not changed


def test_only_the_segmenter_section_is_pruned():
    section = {"momentum": 1, "optimizer": "adamw"}
    assert keyed_section("prompts_cls", section) is section
    assert "momentum" in keyed_section("segmenter", _segmenter())


def test_backbone_weight_only_for_a_mask2former_with_a_pretrained_backbone():
    assert set(BACKBONE_WEIGHT) <= set(ARCHS)
    assert backbone_weight(_segmenter()) is None  # DeepLab: torchvision's enums, not the registry
    assert backbone_weight(_segmenter(arch="mask2former_swin_large")) == "swin_large_in22k"
    assert backbone_weight(_segmenter(arch="tiny_mask2former")) == "tiny_swin"
    assert backbone_weight(_segmenter(arch="mask2former_swin_large", pretrained_backbone=False)) is None
