"""Stage II architecture families and what each reads, without importing torch.

Parse-time code (stage keys, config checks, the workflow's weight inputs) needs to know which family an
``segmenter.arch`` belongs to, which settings it reads and which registry checkpoint holds its backbone;
importing the model modules for that would cost torch + transformers on every Snakefile parse.
"""
from __future__ import annotations

DEEPLAB_ARCHS = ("deeplabv3_resnet101", "deeplabv3_resnet50", "tiny")
MASK2FORMER_ARCHS = ("mask2former_swin_large", "tiny_mask2former")
ARCHS = DEEPLAB_ARCHS + MASK2FORMER_ARCHS

BACKBONE_WEIGHT = {"mask2former_swin_large": "swin_large_in22k", "tiny_mask2former": "tiny_swin"}
"""The weights-registry entry of each Mask2Former arch's ImageNet backbone (DeepLab's come from torchvision)."""


def is_mask2former(arch: str) -> bool:
    return arch in MASK2FORMER_ARCHS


def backbone_weight(segmenter: dict) -> str | None:
    """The registry name the training job loads its backbone from, or None (DeepLab, or no pretrained backbone)."""
    if is_mask2former(segmenter["arch"]) and segmenter["pretrained_backbone"]:
        return BACKBONE_WEIGHT[segmenter["arch"]]
    return None


def keyed_segmenter(segmenter: dict) -> dict:
    """The ``segmenter`` settings that change a trained model, for the stage key: a setting the chosen arch
    and optimiser never read (``momentum`` with AdamW, the ``mask2former`` block with DeepLab) never moves it."""
    keyed = dict(segmenter)
    if keyed["optimizer"] != "sgd":
        keyed.pop("momentum", None)
    if not is_mask2former(keyed["arch"]):
        keyed.pop("mask2former", None)
    return keyed
