"""Inference: multi-scale + flip against an explicit slow reference; sliding window against whole-image."""
from __future__ import annotations

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from torch import nn

from fmwsss.segmentation.dataset import normalize
from fmwsss.segmentation.infer import predict, predict_probs, window_starts
from fmwsss.segmentation.models import build_segmenter


@pytest.fixture(scope="module")
def tiny_model():
    torch.manual_seed(0)
    model = build_segmenter("tiny", 4, pretrained_backbone=False)
    with torch.no_grad():  # make the random head's outputs vary enough for the argmax to matter
        model.classifier[-1].weight.mul_(50)
    return model.eval()


@pytest.fixture(scope="module")
def image():
    return np.random.default_rng(0).integers(0, 256, size=(37, 53, 3), dtype=np.uint8)


def _reference(model, image, scales):
    """Loop over scales and flips explicitly: softmax at each, resize back, sum."""
    x = torch.from_numpy(normalize(image))[None]
    h, w = image.shape[:2]
    total = torch.zeros(1, 4, h, w)
    with torch.no_grad():
        for s in scales:
            xs = F.interpolate(x, size=(round(h * s), round(w * s)), mode="bilinear", align_corners=False)
            p = model(xs)["out"].softmax(1)
            pf = model(xs.flip(3))["out"].softmax(1).flip(3)
            for q in (p, pf):
                total += F.interpolate(q, size=(h, w), mode="bilinear", align_corners=False)
    return total


def test_ms_flip_equals_slow_reference(tiny_model, image):
    scales = (0.5, 0.75, 1.0, 1.25, 1.5)
    ref = _reference(tiny_model, image, scales)
    probs = predict_probs(tiny_model, image, scales, flip=True)
    torch.testing.assert_close(probs, ref, rtol=1e-5, atol=1e-5)
    labels = predict(tiny_model, image, scales, flip=True)
    assert labels.dtype == np.uint8 and labels.shape == image.shape[:2]
    np.testing.assert_array_equal(labels, ref[0].argmax(0).numpy())
    assert len(np.unique(labels)) > 1
    assert not np.array_equal(labels, predict(tiny_model, image))  # the scales do change the answer


class _Pointwise(nn.Module):
    """A 1x1 conv: windows and whole image must give identical logits."""

    def __init__(self) -> None:
        super().__init__()
        torch.manual_seed(0)
        self.conv = nn.Conv2d(3, 4, 1)

    def forward(self, x):
        return {"out": self.conv(x)}


def test_sliding_window_matches_whole_image_for_a_pointwise_model(image):
    model = _Pointwise().eval()
    whole = predict_probs(model, image)
    slid = predict_probs(model, image, scales=(1.0, 1.5), crop=16)
    torch.testing.assert_close(slid, whole + predict_probs(model, image, scales=(1.5,)), rtol=1e-5, atol=1e-6)


def test_window_starts_cover_the_image_ending_flush():
    assert window_starts(10, 16, 10) == [0]
    starts = window_starts(53, 16, 10)
    assert starts[0] == 0 and starts[-1] == 53 - 16
    assert all(b - a <= 10 for a, b in zip(starts, starts[1:]))


def test_crop_at_least_image_is_whole_image(tiny_model, image):
    np.testing.assert_array_equal(predict(tiny_model, image, crop=64), predict(tiny_model, image))
    with pytest.raises(ValueError, match="scales"):
        predict(tiny_model, image, scales=())
