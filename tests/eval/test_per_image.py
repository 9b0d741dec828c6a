"""Each image's own IoU (for the report's gallery) and the scores file: hand-computed values."""
from __future__ import annotations

import math

import numpy as np

from fmwsss.eval import Accumulator, image_scores, scores_to_json


def test_image_scores_hand_computed():
    gt = np.array([[0, 0, 1, 1], [0, 0, 1, 255]])
    pred = np.array([[0, 1, 1, 1], [0, 0, 0, 2]])
    acc = Accumulator(4)
    acc.add(pred, gt, "a")
    s = acc.per_image["a"]
    # class 0: TP 3, FP 1 (gt 1 predicted 0), FN 1 (gt 0 predicted 1) -> 3/5
    # class 1: TP 2, FP 1, FN 1 -> 2/4; class 2: predicted only on a void pixel -> absent; class 3 absent
    np.testing.assert_allclose(s["iou"][:2], [3 / 5, 2 / 4])
    assert math.isnan(s["iou"][2]) and math.isnan(s["iou"][3])
    assert s["miou"] == (3 / 5 + 2 / 4) / 2
    assert s["pixel_accuracy"] == 5 / 7


def test_image_scores_class_only_predicted_counts_as_zero():
    cm = np.array([[2, 1], [0, 0]])  # GT all background, one pixel predicted as class 1
    s = image_scores(cm)
    np.testing.assert_allclose(s["iou"], [2 / 3, 0.0])
    assert s["miou"] == (2 / 3 + 0.0) / 2


def test_image_scores_without_valid_pixels_is_undefined():
    s = image_scores(np.zeros((3, 3), np.int64))
    assert math.isnan(s["miou"]) and math.isnan(s["pixel_accuracy"])


def test_scores_json_holds_split_confusion_and_each_image():
    acc = Accumulator(2)
    acc.add(np.array([[0, 1]]), np.array([[0, 1]]), "x")
    acc.add(np.array([[1, 1]]), np.array([[0, 0]]), "y")
    out = scores_to_json(acc, ["background", "cat"], "demo: val")
    assert out["confusion"] == [[1, 2], [0, 1]]
    assert out["images"]["x"] == {"miou": 1.0, "pixel_accuracy": 1.0, "iou": [1.0, 1.0]}
    assert out["images"]["y"] == {"miou": 0.0, "pixel_accuracy": 0.0, "iou": [0.0, 0.0]}
    assert out["classes"] == ["background", "cat"] and out["split"] == "demo: val"
