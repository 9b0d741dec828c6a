"""The tiny Swin test checkpoint: the hub's file layout (as transformers itself writes it), deterministic bytes."""
from __future__ import annotations

import hashlib

import torch
from safetensors.torch import load_file
from transformers import SwinForImageClassification

from fmwsss.models.swin import TINY_NUM_LABELS, create_tiny_swin, hub_layout_shapes, swin_config


def test_tiny_swin_has_the_layout_transformers_saves(tmp_path):
    path = create_tiny_swin(tmp_path / "tiny_swin.pth", seed=0)
    ours = torch.load(path, weights_only=True)
    # 4 embedding tensors, 17 per block (4 stages x 1 block), 3 per patch merging (3), final norm 2, classifier 2
    assert len(ours) == 4 + 4 * 17 + 3 * 3 + 2 + 2 == 85
    SwinForImageClassification(swin_config("tiny", TINY_NUM_LABELS)).save_pretrained(tmp_path / "hf")
    written = load_file(tmp_path / "hf" / "model.safetensors")  # transformers writes the hub (4.x) names
    assert {k: tuple(v.shape) for k, v in written.items()} == {k: tuple(v.shape) for k, v in ours.items()}
    assert hub_layout_shapes("tiny", TINY_NUM_LABELS) == {k: tuple(v.shape) for k, v in ours.items()}


def test_tiny_swin_bytes_depend_on_the_seed_only(tmp_path):
    digest = lambda p: hashlib.sha256(p.read_bytes()).hexdigest()  # noqa: E731
    a = create_tiny_swin(tmp_path / "a" / "tiny_swin.pth", seed=0)
    b = create_tiny_swin(tmp_path / "b" / "tiny_swin.pth", seed=0)
    c = create_tiny_swin(tmp_path / "c" / "tiny_swin.pth", seed=1)
    assert digest(a) == digest(b) != digest(c)
