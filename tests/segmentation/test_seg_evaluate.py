"""Evaluation: palette PNGs for both modes, mIoUs consistent with the written predictions, GT-less images."""
from __future__ import annotations

import pytest
import torch

from fmwsss.data.palette import load_label_png
from fmwsss.eval import Accumulator
from fmwsss.segmentation.evaluate import evaluate_segmenter
from fmwsss.segmentation.models import build_segmenter, save_segmenter

NUM_CLASSES = 3


@pytest.fixture
def model_path(tmp_path, tiny_settings):
    torch.manual_seed(0)
    model = build_segmenter("tiny", NUM_CLASSES, pretrained_backbone=False)
    with torch.no_grad():
        model.classifier[-1].weight.mul_(50)
    return save_segmenter(tmp_path / "model.pt", model, "tiny", NUM_CLASSES, {**tiny_settings, "crop": 32})


def test_writes_both_modes_and_scores_what_it_wrote(model_path, synthetic_items, tmp_path):
    items = synthetic_items[:3] + [("nogt", synthetic_items[3][1], None)]
    logs = []
    result = evaluate_segmenter(model_path, items, NUM_CLASSES, tmp_path / "pred", "cpu", ms_scales=[0.75, 1.0],
                                log=logs.append, split_name="train", class_names=["bg", "red", "green"])
    assert result["split"] == "train" and result["num_images"] == 4 and result["num_scored"] == 3
    for mode in ("single_scale", "ms_flip"):
        acc = Accumulator(NUM_CLASSES)
        for image_id, _, gt in items:
            pred = load_label_png(tmp_path / "pred" / mode / f"{image_id}.png")
            assert pred.shape == (40, 56) and pred.max() < NUM_CLASSES
            if gt is not None:
                acc.add(pred, load_label_png(gt), image_id)
        assert result["miou"][mode] == pytest.approx(acc.metrics().miou)
        assert result["metrics"][mode]["per_class"][1]["name"] == "red"
    assert any("ms_flip" in line and "mIoU" in line for line in logs)


def test_without_ground_truth_and_with_wrong_class_count(model_path, synthetic_items, tmp_path):
    items = [(i, p, None) for i, p, _ in synthetic_items[:2]]
    result = evaluate_segmenter(model_path, items, NUM_CLASSES, tmp_path / "p", "cpu", [1.0], log=lambda s: None)
    assert result["num_scored"] == 0 and result["miou"] == {"single_scale": None, "ms_flip": None}
    assert sorted(p.name for p in (tmp_path / "p").rglob("*.png")) == ["img0.png", "img0.png", "img1.png", "img1.png"]
    with pytest.raises(ValueError, match="model.pt: model predicts 3 classes, evaluation expects 21"):
        evaluate_segmenter(model_path, items, 21, tmp_path / "q", "cpu", [1.0], log=lambda s: None)
