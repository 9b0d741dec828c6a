"""CLIP loading through open_clip's OpenAI path, and random CLIPs (tiny, or ViT-B/16) in OpenAI's file format.

OpenAI's ``ViT-B-16.pt`` is a TorchScript archive whose ``state_dict()`` holds the weights (mostly fp16)
plus the scalar buffers ``input_resolution``, ``context_length`` and ``vocab_size``. ``load_openai_model``
opens it with ``torch.jit.load`` and rebuilds a plain (non-JIT) model whose architecture is inferred from
the tensor shapes (``build_model_from_openai_state_dict``, QuickGELU). Random models (the tiny one, and the
full-size ``random_clip_vit_b16``) are written as the same kind of archive (a parameter-only scripted module),
so they take the very branch the real file takes.
"""
from __future__ import annotations

import math
import os
from pathlib import Path
from typing import BinaryIO

import torch
from torch import nn

from fmwsss.io import startup
from fmwsss.io.atomic import atomic_path
from fmwsss.models.weights import load_failure_message

TINY_CFG = dict(
    embed_dim=32,
    vision_width=128,  # 2 heads (open_clip infers heads = width // 64), so head averaging is exercised
    vision_layers=3,
    patch_size=16,
    image_size=224,
    text_width=64,
    text_layers=2,
    context_length=77,
    vocab_size=49408,
)

VIT_B16_CFG = dict(
    embed_dim=512,
    vision_width=768,  # 12 heads: open_clip and its OpenAI loader take heads = width // 64
    vision_layers=12,
    patch_size=16,
    image_size=224,
    text_width=512,  # 8 heads
    text_layers=12,
    context_length=77,
    vocab_size=49408,
)
"""OpenAI CLIP ViT-B/16, the shapes of the released ``ViT-B-16.pt`` (open_clip ``ViT-B-16-quickgelu``)."""

CLIP_SHAPES = {"tiny": TINY_CFG, "ViT-B-16-quickgelu": VIT_B16_CFG}
"""Shapes by registry ``arch`` (``fmwsss.models.weights.WeightSpec.arch``) of the CLIPs made here."""

RELEASED_LOGIT_SCALE = 100.0
"""exp(logit_scale) of the released OpenAI models, which the full-size random CLIP keeps."""


class ClipLoadError(RuntimeError):
    """The CLIP checkpoint is missing, unreadable, or not the architecture the method needs."""


class _WeightsArchive(nn.Module):
    """Parameter-only module: scripting it yields a TorchScript archive with OpenAI's state-dict keys."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x


def _archive_from_state_dict(state_dict: dict[str, torch.Tensor]) -> nn.Module:
    root = _WeightsArchive()
    for key, value in state_dict.items():
        *path, leaf = key.split(".")
        mod = root
        for part in path:
            if not hasattr(mod, part):
                mod.add_module(part, _WeightsArchive())
            mod = getattr(mod, part)
        if value.is_floating_point():
            mod.register_parameter(leaf, nn.Parameter(value, requires_grad=False))
        else:
            mod.register_buffer(leaf, value)
    return root


def clip_state_dict(arch: str = "tiny", seed: int = 0, logit_scale: float = 10.0) -> dict[str, torch.Tensor]:
    """OpenAI-layout state dict of a random CLIP of shape ``CLIP_SHAPES[arch]`` (fp16 where OpenAI stores fp16),
    deterministic in ``seed``, initialised as open_clip initialises a new model (its text init; torch defaults
    and width^-0.5 normals in the vision tower, as open_clip leaves it).

    The tiny model's 32-wide embedding spreads random cosines far wider than trained CLIP's, so the released
    scale (100) would saturate every softmax and make all Grad-CAM gradients vanish; 10 keeps it in CLIP's
    regime. The full-size model keeps the released 100 (:data:`RELEASED_LOGIT_SCALE`).
    """
    from open_clip.model import CLIP, CLIPTextCfg, CLIPVisionCfg, convert_weights_to_fp16

    c = CLIP_SHAPES[arch]
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        model = CLIP(
            c["embed_dim"],
            vision_cfg=CLIPVisionCfg(layers=c["vision_layers"], width=c["vision_width"],
                                     patch_size=c["patch_size"], image_size=c["image_size"]),
            text_cfg=CLIPTextCfg(context_length=c["context_length"], vocab_size=c["vocab_size"],
                                 width=c["text_width"], heads=c["text_width"] // 64, layers=c["text_layers"]),
            quick_gelu=True,
        )
    with torch.no_grad():
        model.logit_scale.fill_(math.log(logit_scale))
    convert_weights_to_fp16(model)
    sd = {k: v.detach().clone() for k, v in model.state_dict().items()}
    sd["input_resolution"] = torch.tensor(c["image_size"])
    sd["context_length"] = torch.tensor(c["context_length"])
    sd["vocab_size"] = torch.tensor(c["vocab_size"])
    return sd


def write_clip_archive(state_dict: dict[str, torch.Tensor], fh: BinaryIO) -> None:
    """Write ``state_dict`` to the open binary file ``fh`` as an OpenAI-style TorchScript archive (the archive
    is built in memory first: ~300 MB for ViT-B/16)."""
    import warnings

    with warnings.catch_warnings():
        warnings.simplefilter("ignore", FutureWarning)  # torch.jit.script deprecation: the format is the point
        torch.jit.save(torch.jit.script(_archive_from_state_dict(state_dict)), fh)


def create_tiny_clip(path: str | os.PathLike, seed: int = 0, logit_scale: float = 10.0) -> Path:
    """Write a tiny random CLIP as an OpenAI-style TorchScript archive at ``path`` (atomically); return it.

    A test/demo model only: 3 vision blocks of width 128, 2 text blocks of width 64, embedding 32, the real
    49408-token vocabulary and 77-token context so open_clip's tokenizer works. About 14 MB on disk.
    """
    path = Path(path)
    state_dict = clip_state_dict("tiny", seed, logit_scale)
    with atomic_path(path) as tmp, open(tmp, "wb") as fh:
        write_clip_archive(state_dict, fh)
    return path


def _uses_quickgelu(model: nn.Module) -> bool:
    from open_clip.transformer import QuickGELU

    acts = [m.mlp.gelu for m in model.modules() if hasattr(m, "mlp") and hasattr(m.mlp, "gelu")]
    return bool(acts) and all(isinstance(a, QuickGELU) for a in acts)


def load_clip(path: str | os.PathLike, device: str | torch.device = "cpu", expect_quickgelu: bool = True) -> nn.Module:
    """Load an OpenAI-format CLIP file through open_clip's OpenAI loader: frozen, eval mode, fp32.

    Works for the released ``ViT-B-16.pt`` and for ``create_tiny_clip`` files alike, because the architecture
    is read from the weights. QuickGELU is what OpenAI trained with; a GELU model would silently give other
    CAMs, so it is checked.
    """
    import warnings

    from open_clip.openai import load_openai_model

    startup.mark("imports")
    path = Path(path)
    if not path.is_file():
        raise ClipLoadError(f"CLIP checkpoint not found: {path}")
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", FutureWarning)
            model = load_openai_model(str(path), precision="fp32", device=str(device))
    except Exception as exc:  # noqa: BLE001 - re-raised with the file name, without torch's unsafe advice
        raise ClipLoadError(f"CLIP checkpoint: {load_failure_message(path, exc)}") from None
    if not hasattr(model, "visual") or not hasattr(model.visual, "proj") or model.visual.proj is None:
        raise ClipLoadError(f"{path} is not a ViT CLIP with a visual projection")
    if expect_quickgelu and not _uses_quickgelu(model):
        raise ClipLoadError(f"{path}: model does not use QuickGELU activations, expected OpenAI CLIP")
    model = model.float().eval()
    model.requires_grad_(False)
    startup.mark("model load")
    return model
