"""Stage II segmenters: torchvision's DeepLabV3 (ResNet-101/50, output stride 8), Mask2Former (Swin-L), tiny ones.

The reference trains Mask2Former through an unpublished mmsegmentation fork (docs/method.md §11); transformers'
Mask2Former with the ImageNet-22k Swin-L backbone (:mod:`fmwsss.segmentation.mask2former`) is that model, and
torchvision's stock DeepLabV3 the cheaper alternative. DeepLab's ImageNet backbone weights come only through
torchvision's weight enums, read from torch's hub cache (``$TORCH_HOME/hub/checkpoints``) or ``weights_dir``;
Mask2Former's Swin comes from the weight registry as a verified file (``backbone_path``). The ``tiny`` model
is random-initialised, never pretrained; ``tiny_mask2former`` may load the tiny Swin test checkpoint. Both
exist for tests and the laptop demo.
"""
from __future__ import annotations

import io
import os
from collections import OrderedDict
from pathlib import Path

import torch
from torch import nn
from torchvision.models import ResNet50_Weights, ResNet101_Weights, WeightsEnum
from torchvision.models._utils import IntermediateLayerGetter
from torchvision.models.segmentation import DeepLabV3, deeplabv3_resnet50, deeplabv3_resnet101
from torchvision.models.segmentation.deeplabv3 import ASPP

from fmwsss.io import startup
from fmwsss.io.atomic import atomic_write_bytes

from fmwsss.segmentation.archs import ARCHS, BACKBONE_WEIGHT, MASK2FORMER_ARCHS

# A Mask2Former is built by :mod:`fmwsss.segmentation.mask2former`, imported only when one is built:
# transformers takes seconds to import.

BACKBONE_WEIGHTS: dict[str, WeightsEnum] = {
    "deeplabv3_resnet101": ResNet101_Weights.IMAGENET1K_V1,
    "deeplabv3_resnet50": ResNet50_Weights.IMAGENET1K_V1,
}
"""torchvision's own default backbones for DeepLabV3 (the ones its COCO DeepLab models started from)."""

_BUILDERS = {"deeplabv3_resnet101": deeplabv3_resnet101, "deeplabv3_resnet50": deeplabv3_resnet50}


class BackboneWeightsError(RuntimeError):
    """ImageNet backbone weights are neither cached nor downloadable; the message says what to fetch where."""


def hub_checkpoint_path(weights: WeightsEnum, weights_dir: str | os.PathLike | None = None) -> Path:
    """Where ``torch.hub`` looks for ``weights``: ``weights_dir`` or ``$TORCH_HOME/hub/checkpoints``."""
    model_dir = Path(weights_dir) if weights_dir is not None else Path(torch.hub.get_dir()) / "checkpoints"
    return model_dir / Path(weights.url).name


def load_backbone_state(weights: WeightsEnum, weights_dir: str | os.PathLike | None = None) -> dict:
    """The enum's ImageNet state dict, from the cache or downloaded (sha-prefix checked by torch.hub)."""
    try:
        return weights.get_state_dict(progress=False, check_hash=True,
                                      model_dir=None if weights_dir is None else str(weights_dir))
    except (OSError, RuntimeError) as exc:  # URLError is an OSError; a hash mismatch a RuntimeError
        dest = hub_checkpoint_path(weights, weights_dir)
        where = (f"weights_dir {weights_dir}" if weights_dir is not None else
                 f"torch's hub cache (TORCH_HOME={os.environ.get('TORCH_HOME', '<unset: ~/.cache/torch>')})")
        raise BackboneWeightsError(
            f"ImageNet backbone weights {weights} are not available: download {weights.url} and place it at "
            f"{dest} ({where}), or set pretrained_backbone: false ({type(exc).__name__}: {exc})"
        ) from exc


TINY_WIDTH = 64
"""Channels of the tiny model's deepest features and of its ASPP head."""


def _conv_bn_relu(cin: int, cout: int, stride: int = 1, dilation: int = 1) -> list[nn.Module]:
    return [nn.Conv2d(cin, cout, 3, stride, padding=dilation, dilation=dilation, bias=False), nn.BatchNorm2d(cout),
            nn.ReLU(inplace=True)]


def _tiny(num_classes: int) -> DeepLabV3:
    """DeepLabV3's shape at a test model's cost: three stride-2 convs to output stride 8 (like the real model),
    two more (one dilated), then ASPP (rates 12/24/36) and the classifier, all 64 channels wide.

    About 0.28 M parameters and ~1.7 GFLOP for a 500x375 image, some 25x less than a ResNet-18-based
    DeepLabV3 with the stock 256-channel head: the demo evaluates 8 images at 7 scales and flips in seconds
    on a CPU, and it still overfits a few images (tests/segmentation/test_seg_overfit.py).
    """
    w = TINY_WIDTH
    body = nn.Sequential(*_conv_bn_relu(3, w // 4, 2), *_conv_bn_relu(w // 4, w // 2, 2), *_conv_bn_relu(w // 2, w, 2),
                         *_conv_bn_relu(w, w), *_conv_bn_relu(w, w, dilation=2))
    backbone = IntermediateLayerGetter(nn.Sequential(OrderedDict(body=body)), return_layers={"body": "out"})
    head = nn.Sequential(ASPP(w, [12, 24, 36], w), *_conv_bn_relu(w, w), nn.Conv2d(w, num_classes, 1))
    model = DeepLabV3(backbone, head, None)
    for module in model.modules():  # ResNet's init: PyTorch's default conv init fades the signal layer by layer
        if isinstance(module, nn.Conv2d):
            nn.init.kaiming_normal_(module.weight, mode="fan_out", nonlinearity="relu")
    return model


def build_segmenter(arch: str, num_classes: int, pretrained_backbone: bool,
                    weights_dir: str | os.PathLike | None = None, settings: dict | None = None,
                    backbone_path: str | os.PathLike | None = None) -> nn.Module:
    """A segmenter with ``num_classes`` outputs (background included); ``model(x)["out"]`` is its class map.

    DeepLabV3 (no auxiliary head): ``pretrained_backbone`` loads the torchvision ImageNet enum weights
    (``BACKBONE_WEIGHTS``) into the backbone; ``tiny`` refuses it. Raises ``BackboneWeightsError`` offline
    without cached weights. Mask2Former: ``settings`` is the whole ``segmenter:`` section (its
    ``mask2former`` dict is read); ``pretrained_backbone`` requires ``backbone_path``, the verified Swin file
    (registry ``BACKBONE_WEIGHT[arch]``), and refuses one given without it. Heads stay randomly initialised
    in every case (seed torch first for a reproducible init).
    """
    if arch not in ARCHS:
        raise ValueError(f"segmenter.arch: unknown architecture {arch!r}; choose one of {', '.join(ARCHS)}")
    if arch in MASK2FORMER_ARCHS:
        from fmwsss.segmentation.mask2former import build_mask2former

        if pretrained_backbone and backbone_path is None:
            raise ValueError(f"segmenter.arch {arch} with pretrained_backbone: true needs the verified "
                             f"{BACKBONE_WEIGHT[arch]} checkpoint (backbone_path)")
        if backbone_path is not None and not pretrained_backbone:
            raise ValueError(f"segmenter.arch {arch}: a backbone checkpoint ({backbone_path}) was given but "
                             "pretrained_backbone is false")
        return build_mask2former(arch, num_classes, settings or {}, backbone_path)
    if backbone_path is not None:
        raise ValueError(f"segmenter.arch {arch}: backbone_path is for Mask2Former archs (DeepLab reads "
                         "torchvision's weights)")
    if arch == "tiny":
        if pretrained_backbone:
            raise ValueError("segmenter.arch tiny is a random-init test model: set pretrained_backbone: false")
        return _tiny(num_classes)
    weights = BACKBONE_WEIGHTS[arch]
    state = load_backbone_state(weights, weights_dir) if pretrained_backbone else None  # fail before building
    model = _BUILDERS[arch](weights=None, weights_backbone=None, num_classes=num_classes, aux_loss=False)
    if state is not None:
        result = model.backbone.load_state_dict(state, strict=False)
        unexpected = [k for k in result.unexpected_keys if not k.startswith("fc.")]
        if result.missing_keys or unexpected:
            raise RuntimeError(f"{hub_checkpoint_path(weights, weights_dir)}: not a {weights} state dict "
                               f"(missing {result.missing_keys[:5]}, unexpected {unexpected[:5]})")
    return model


def save_segmenter(path: str | os.PathLike, model: nn.Module, arch: str, num_classes: int, settings: dict) -> Path:
    """Write ``model.pt`` atomically: CPU state dict + arch + num_classes + the ``segmenter:`` settings."""
    buf = io.BytesIO()
    torch.save({"state_dict": {k: v.detach().cpu() for k, v in model.state_dict().items()}, "arch": arch,
                "num_classes": num_classes, "settings": dict(settings)}, buf)
    atomic_write_bytes(path, buf.getvalue())
    return Path(path)


def load_segmenter(model_path: str | os.PathLike, device: str | torch.device = "cpu") -> tuple[nn.Module, dict]:
    """Rebuild a trained ``model.pt`` (eval mode, on ``device``); returns the model and the saved record.
    The saved settings rebuild the architecture; no backbone file is read (the trained weights overwrite it)."""
    path = Path(model_path)
    try:
        record = torch.load(path, map_location="cpu", weights_only=True)
        model = build_segmenter(record["arch"], int(record["num_classes"]), pretrained_backbone=False,
                                settings=record["settings"])
        model.load_state_dict(record["state_dict"])
    except Exception as exc:  # torch.load raises many types (UnpicklingError, struct.error, EOFError, ...)
        raise ValueError(f"{path}: not a segmenter model file ({type(exc).__name__}: {exc})") from exc
    model = model.to(device).eval()
    startup.mark("model load")
    return model, record
