"""Swin Transformer backbones for Mask2Former: the architectures, the tiny test checkpoint, checked loading.

Checkpoints are read in the layout the Hugging Face hub releases them in (transformers 4.x names:
``swin.encoder.layers.0.blocks.0.attention.self.query.weight``, plus the ImageNet ``classifier.*``), e.g.
``microsoft/swin-large-patch4-window12-384-in22k``'s ``pytorch_model.bin``. transformers' own loader converts
those names to its current ones; :func:`load_swin_backbone` lets it, then refuses any tensor that did not
land (missing, unexpected or of another shape), so a wrong file can never leave part of a backbone random.

The tiny test checkpoint (:func:`create_tiny_swin`) is written in that same layout with plain torch (no
transformers import: the ``weights_tiny`` job stays fast), so the real loading path is what tests exercise.
"""
from __future__ import annotations

import contextlib
import io
import json
import os
import tempfile
from pathlib import Path
from typing import Any, Iterator

import torch
from torch import nn

from fmwsss.io.atomic import atomic_write_bytes

OUT_FEATURES = ["stage1", "stage2", "stage3", "stage4"]
"""All four stages feed Mask2Former's pixel decoder (strides 4, 8, 16, 32)."""

SWIN_ARCHS: dict[str, dict[str, Any]] = {
    # microsoft/swin-large-patch4-window12-384-in22k: the backbone of Mask2Former's Swin-L configs
    # (MODEL.SWIN: EMBED_DIM 192, DEPTHS [2, 2, 18, 2], NUM_HEADS [6, 12, 24, 48], WINDOW_SIZE 12,
    # PRETRAIN_IMG_SIZE 384, DROP_PATH_RATE 0.3).
    "swin_large_patch4_window12_384": {
        "image_size": 384, "patch_size": 4, "embed_dim": 192, "depths": [2, 2, 18, 2],
        "num_heads": [6, 12, 24, 48], "window_size": 12, "drop_path_rate": 0.3,
    },
    # A test model: one block per stage, 16 channels; runs forward+backward at 2x128^2 in ~0.1 s on a CPU.
    "tiny": {
        "image_size": 64, "patch_size": 4, "embed_dim": 16, "depths": [1, 1, 1, 1],
        "num_heads": [1, 2, 2, 4], "window_size": 4, "drop_path_rate": 0.0,
    },
}
"""SwinConfig arguments per registry ``arch`` (the rest are SwinConfig's defaults: mlp_ratio 4, qkv bias)."""

TINY_NUM_LABELS = 10
"""Classes of the tiny checkpoint's (unused) classifier: present only because the real file has one."""

_MLP_RATIO = 4


def swin_config(arch: str, num_labels: int | None = None):
    """transformers' SwinConfig for registry ``arch`` with all four stages as outputs."""
    from transformers import SwinConfig

    if arch not in SWIN_ARCHS:
        raise ValueError(f"unknown Swin architecture {arch!r}; known: {', '.join(SWIN_ARCHS)}")
    extra = {} if num_labels is None else {"num_labels": num_labels}
    return SwinConfig(**SWIN_ARCHS[arch], out_features=list(OUT_FEATURES), **extra)


def hub_layout_shapes(arch: str, num_labels: int) -> dict[str, tuple[int, ...]]:
    """Every tensor of a released Swin image classifier of ``arch``: hub (transformers 4.x) name -> shape."""
    a = SWIN_ARCHS[arch]
    c, w, p = a["embed_dim"], a["window_size"], a["patch_size"]
    shapes: dict[str, tuple[int, ...]] = {
        "swin.embeddings.patch_embeddings.projection.weight": (c, 3, p, p),
        "swin.embeddings.patch_embeddings.projection.bias": (c,),
        "swin.embeddings.norm.weight": (c,), "swin.embeddings.norm.bias": (c,),
    }
    for i, (depth, heads) in enumerate(zip(a["depths"], a["num_heads"])):
        d = c * 2 ** i
        for j in range(depth):
            b = f"swin.encoder.layers.{i}.blocks.{j}."
            shapes.update({
                b + "layernorm_before.weight": (d,), b + "layernorm_before.bias": (d,),
                b + "attention.self.relative_position_bias_table": ((2 * w - 1) ** 2, heads),
                **{b + f"attention.self.{n}.{t}": (d, d) if t == "weight" else (d,)
                   for n in ("query", "key", "value") for t in ("weight", "bias")},
                b + "attention.output.dense.weight": (d, d), b + "attention.output.dense.bias": (d,),
                b + "layernorm_after.weight": (d,), b + "layernorm_after.bias": (d,),
                b + "intermediate.dense.weight": (_MLP_RATIO * d, d), b + "intermediate.dense.bias": (_MLP_RATIO * d,),
                b + "output.dense.weight": (d, _MLP_RATIO * d), b + "output.dense.bias": (d,),
            })
        if i < len(a["depths"]) - 1:  # patch merging: 2x2 neighbours (4d) -> 2d channels
            m = f"swin.encoder.layers.{i}.downsample."
            shapes.update({m + "reduction.weight": (2 * d, 4 * d), m + "norm.weight": (4 * d,),
                           m + "norm.bias": (4 * d,)})
    last = c * 2 ** (len(a["depths"]) - 1)
    shapes.update({"swin.layernorm.weight": (last,), "swin.layernorm.bias": (last,),
                   "classifier.weight": (num_labels, last), "classifier.bias": (num_labels,)})
    return shapes


def create_tiny_swin(path: str | os.PathLike, seed: int = 0) -> Path:
    """Write the tiny Swin classifier (``SWIN_ARCHS["tiny"]``) as the hub releases Swin: a ``torch.save``'d
    state dict in transformers 4.x names. Every tensor is drawn from ``seed`` (norm weights around 1), so a
    tensor that failed to load would differ from a fresh init; the same seed gives the same bytes."""
    gen = torch.Generator().manual_seed(seed)
    state = {}
    for name, shape in hub_layout_shapes("tiny", TINY_NUM_LABELS).items():
        noise = torch.randn(shape, generator=gen)
        is_norm_weight = name.endswith(".weight") and ("norm." in name or "layernorm_" in name)
        state[name] = 1.0 + 0.1 * noise if is_norm_weight else 0.02 * noise
    buf = io.BytesIO()  # not torch.save(path): the zip's root folder would be the (per-process) temp file's name
    torch.save(state, buf)
    atomic_write_bytes(path, buf.getvalue())
    return Path(path)


class SwinCheckpointError(ValueError):
    """A Swin checkpoint does not match the architecture; the message names the file and the tensors."""


@contextlib.contextmanager
def _quiet_transformers() -> Iterator[None]:
    """transformers' load report and progress bar off while loading (our own check reports instead)."""
    from transformers.utils import logging as hf_logging

    level, bar = hf_logging.get_verbosity(), hf_logging.is_progress_bar_enabled()
    hf_logging.set_verbosity_error()
    hf_logging.disable_progress_bar()
    try:
        yield
    finally:
        hf_logging.set_verbosity(level)
        if bar:
            hf_logging.enable_progress_bar()


def _num_labels(path: Path) -> int:
    """Classes of the checkpoint's classifier (the config transformers loads it with must agree)."""
    try:
        if path.suffix == ".safetensors":
            from safetensors import safe_open

            with safe_open(str(path), framework="pt") as f:
                shape = f.get_slice("classifier.weight").get_shape() if "classifier.weight" in f.keys() else None
        else:
            try:  # mmap: only the classifier's shape is read, not 0.8 GB
                state = torch.load(path, map_location="cpu", weights_only=True, mmap=True)
            except RuntimeError:  # a legacy (non-zip) torch file cannot be mapped
                state = torch.load(path, map_location="cpu", weights_only=True)
            shape = state["classifier.weight"].shape if isinstance(state, dict) and "classifier.weight" in state else None
    except Exception as exc:  # torch.load raises many types (UnpicklingError, RuntimeError, EOFError, ...)
        raise SwinCheckpointError(f"{path}: not a readable Swin checkpoint ({type(exc).__name__}: {exc})") from exc
    if shape is None:
        raise SwinCheckpointError(f"{path}: not a Swin image-classifier state dict (no classifier.weight)")
    return int(shape[0])


def load_swin_backbone(arch: str, path: str | os.PathLike) -> nn.Module:
    """The checkpoint at ``path`` as a transformers ``SwinBackbone`` of ``arch``, every tensor checked.

    Only the per-stage output norms (``hidden_states_norms.*``, which Mask2Former adds and no classifier
    has) may be missing, and only the ImageNet ``classifier.*`` may be left over; anything else, or a shape
    that differs, raises SwinCheckpointError naming the file. Costs one read of the file (~0.8 GB for Swin-L).
    """
    from transformers import SwinBackbone

    path = Path(path).absolute()
    with tempfile.TemporaryDirectory(prefix="fmwsss-swin-") as tmp:
        (Path(tmp) / "config.json").write_text(json.dumps(swin_config(arch, _num_labels(path)).to_dict()))
        link = "model.safetensors" if path.suffix == ".safetensors" else "pytorch_model.bin"
        (Path(tmp) / link).symlink_to(path)
        with _quiet_transformers():
            backbone, info = SwinBackbone.from_pretrained(tmp, output_loading_info=True,
                                                          ignore_mismatched_sizes=True)
    missing = sorted(k for k in info["missing_keys"] if not k.startswith("hidden_states_norms."))
    unexpected = sorted(k for k in info["unexpected_keys"] if not k.startswith("classifier."))
    mismatched = sorted(str(k) for k in info["mismatched_keys"])
    if missing or unexpected or mismatched or info.get("error_msgs"):
        raise SwinCheckpointError(
            f"{path}: not a {arch} Swin checkpoint: missing {missing[:5]}, unexpected {unexpected[:5]}, "
            f"wrong shape {mismatched[:5]}" + (f", errors {info['error_msgs'][:2]}" if info.get("error_msgs") else "")
        )
    return backbone
