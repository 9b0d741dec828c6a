"""Load a frozen SAM: official segment-anything checkpoints (vit_h/l/b) or the fmwsss tiny test SAM."""
from __future__ import annotations

import os
from pathlib import Path

import torch
from segment_anything import sam_model_registry
from segment_anything.modeling import Sam

from fmwsss.io import startup
from fmwsss.models.tiny_sam import TINY_SAM_FORMAT, TINY_SAM_VERSION, TinySam
from fmwsss.models.weights import load_failure_message

SAM_ARCHS = ("vit_h", "vit_l", "vit_b", "tiny")


def _read(checkpoint: Path) -> object:
    if not checkpoint.is_file():
        raise FileNotFoundError(f"SAM checkpoint not found: {checkpoint}")
    try:
        return torch.load(checkpoint, map_location="cpu", weights_only=True)
    except Exception as exc:  # torch raises several types for corrupt or foreign files
        raise ValueError(f"SAM checkpoint: {load_failure_message(checkpoint, exc)}") from None


def _build_official(obj: object, checkpoint: Path, arch: str) -> Sam:
    if not isinstance(obj, dict) or obj.get("format") == TINY_SAM_FORMAT:
        kind = "an fmwsss tiny SAM file" if isinstance(obj, dict) else type(obj).__name__
        raise ValueError(f"{checkpoint}: expected an official SAM {arch} state dict, found {kind}")
    # Build on the meta device and adopt the checkpoint's tensors: no 2.5 GB random init for vit_h.
    with torch.device("meta"):
        model = sam_model_registry[arch](checkpoint=None)
    try:
        model.load_state_dict(obj, strict=True, assign=True)
    except RuntimeError as exc:
        raise ValueError(f"{checkpoint}: state dict does not match SAM {arch}: {exc}") from exc
    return model


def _build_tiny(obj: object, checkpoint: Path) -> Sam:
    if not isinstance(obj, dict) or obj.get("format") != TINY_SAM_FORMAT:
        raise ValueError(
            f"{checkpoint}: not an {TINY_SAM_FORMAT} file (an official SAM checkpoint needs arch vit_h/vit_l/vit_b)"
        )
    if obj.get("version") != TINY_SAM_VERSION:
        raise ValueError(f"{checkpoint}: {TINY_SAM_FORMAT} version {obj.get('version')!r}, expected {TINY_SAM_VERSION}")
    try:
        model = TinySam(**obj["arch"])
        model.load_state_dict(obj["state_dict"], strict=True)
    except (KeyError, TypeError, RuntimeError, ValueError) as exc:
        raise ValueError(f"{checkpoint}: corrupt {TINY_SAM_FORMAT} file: {exc}") from exc
    return model


def load_sam(checkpoint: str | os.PathLike, arch: str, device: str | torch.device = "cpu") -> Sam:
    """Load SAM ``arch`` (one of :data:`SAM_ARCHS`) from ``checkpoint``: eval mode, frozen, on ``device``."""
    if arch not in SAM_ARCHS:
        raise ValueError(f"unknown SAM arch {arch!r}; expected one of {SAM_ARCHS}")
    checkpoint = Path(checkpoint)
    obj = _read(checkpoint)
    model = _build_tiny(obj, checkpoint) if arch == "tiny" else _build_official(obj, checkpoint, arch)
    model.requires_grad_(False)
    model = model.eval().to(device)
    startup.mark("model load")
    return model
