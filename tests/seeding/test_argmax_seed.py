"""The reference's CAM score and per-pixel argmax seed (docs/method.md §3)."""
from __future__ import annotations

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from fmwsss.seeding import argmax_seed, cam_to_score

CAMS = np.array([[[1.0, 0.0, 0.2, -3.0]], [[0.0, 1.0, 0.0, -1.0]]], np.float32)  # (2, 1, 4), already image size


@pytest.mark.parametrize("power, expected", [(1, [4, 8, 0, 0]), (3, [4, 8, 0, 0]), (10, [4, 8, 4, 0])])
def test_background_power(power, expected):
    # scores: class 4 -> [1, 0, .2, 0], class 8 -> [0, 1, 0, 0]; bg = (1 - max)^p = [0, 0, .8^p, 1]
    seed = argmax_seed(CAMS, [4, 8], (1, 4), bg_power=power)
    assert seed.dtype == np.uint8
    np.testing.assert_array_equal(seed[0], expected)


def test_score_is_resized_clamped_and_minmax_normalised():
    rng = np.random.default_rng(0)
    cams = rng.standard_normal((3, 5, 7)).astype(np.float32)
    score = cam_to_score(cams, (37, 50), torch.device("cpu"))
    assert score.dtype == torch.float64  # float64, order-fixed: the same bits on any thread count (see argmax.py)
    ref = F.interpolate(torch.from_numpy(cams).double()[None], size=(37, 50), mode="bilinear", align_corners=False)[0]
    ref = ref.clamp_min(0)
    lo, hi = ref.amin((1, 2), keepdim=True), ref.amax((1, 2), keepdim=True)
    ref = (ref - lo) / (hi - lo + 1e-7)
    torch.testing.assert_close(score, ref, rtol=1e-12, atol=1e-12)
    assert score.amax() < 1 and score.amin() == 0


def test_all_negative_class_scores_zero_and_never_wins():
    cams = np.stack([np.full((2, 2), -5.0), np.array([[0.0, 1.0], [0.5, 0.0]])]).astype(np.float32)
    seed = argmax_seed(cams, [1, 2], (2, 2), bg_power=1)
    np.testing.assert_array_equal(seed, [[0, 2], [0, 0]])  # bg (1 - .5) ties .5 at (1, 0): first max = bg


def test_no_positive_class_is_all_background():
    seed = argmax_seed(np.zeros((0, 3, 3), np.float32), [], (5, 6), bg_power=2)
    assert seed.shape == (5, 6) and not seed.any()
