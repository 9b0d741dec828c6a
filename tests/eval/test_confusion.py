"""Confusion matrix and split metrics: hand-computed cases and an oracle on real VOC masks."""
from __future__ import annotations


import numpy as np
import pytest
from PIL import Image

from fmwsss.eval import Accumulator, confusion_matrix
from tests.samples import sample_dir



@pytest.fixture(scope="module")
def voc_gt() -> dict[str, np.ndarray]:
    folder = sample_dir("voc_sample") / "SegmentationClass"
    return {p.stem: np.array(Image.open(p)) for p in sorted(folder.glob("*.png"))}


def test_confusion_matrix_hand_computed():
    gt = np.array([[0, 0, 1], [1, 2, 255]])
    pred = np.array([[0, 1, 1], [2, 2, 0]])
    expected = np.array([[1, 1, 0], [0, 1, 1], [0, 0, 1]])  # rows GT, columns prediction; 255 skipped
    np.testing.assert_array_equal(confusion_matrix(pred, gt, 3), expected)


def test_confusion_matrix_rejects_bad_values_and_shapes():
    with pytest.raises(ValueError, match="prediction has values outside 0..2"):
        confusion_matrix(np.array([0, 255]), np.array([0, 1]), 3)
    with pytest.raises(ValueError, match="shape"):
        confusion_matrix(np.zeros((2, 3)), np.zeros((3, 2)), 3)


def test_accumulator_metrics_by_hand():
    acc = Accumulator(num_classes=3)
    acc.add(np.array([0, 1, 1, 2]), np.array([0, 0, 1, 1]), "a")
    acc.add(np.array([0, 0]), np.array([0, 255]), "b")
    m = acc.metrics()
    # confusion: GT0 -> [2, 1, 0], GT1 -> [0, 1, 1], GT2 -> [0, 0, 0]
    np.testing.assert_allclose(m.iou, [2 / 3, 1 / 3, 0.0])  # class 2: predicted once, never in GT -> IoU 0
    assert m.miou == pytest.approx((2 / 3 + 1 / 3 + 0) / 3)
    assert m.pixel_accuracy == pytest.approx(3 / 5)
    np.testing.assert_allclose(m.precision, [1.0, 0.5, 0.0])
    np.testing.assert_allclose(m.recall[:2], [2 / 3, 0.5])
    assert np.isnan(m.recall[2]) and m.num_images == 2


def test_absent_class_excluded_from_miou():
    acc = Accumulator(num_classes=4)
    acc.add(np.array([0, 1]), np.array([0, 1]), "x")
    m = acc.metrics()
    assert m.miou == 1.0 and np.isnan(m.iou[2:]).all()


def test_size_mismatch_names_image():
    acc = Accumulator(num_classes=21)
    with pytest.raises(ValueError, match="image 2007_000032: prediction shape"):
        acc.add(np.zeros((10, 12), np.uint8), np.zeros((12, 10), np.uint8), "2007_000032")
    assert acc.num_images == 0


def test_oracle_gt_against_itself(voc_gt):
    acc = Accumulator(num_classes=21)
    for image_id, gt in voc_gt.items():
        acc.add(gt, gt, image_id)
    m = acc.metrics()
    present = np.unique(np.concatenate([np.unique(g) for g in voc_gt.values()]))
    present = present[present != 255]
    assert m.num_images == len(voc_gt) > 0
    assert m.miou == 1.0 and m.pixel_accuracy == 1.0
    assert np.all(m.iou[present] == 1.0)
    assert np.isnan(np.delete(m.iou, present)).all()  # a class in no GT and no prediction is undefined


def test_oracle_one_region_erased(voc_gt):
    # the first image with a foreground class; its largest foreground class is predicted as background
    image_id, gt = next((i, g) for i, g in voc_gt.items() if np.isin(g, np.arange(1, 21)).any())
    values, counts = np.unique(gt[(gt != 0) & (gt != 255)], return_counts=True)
    erased = int(values[counts.argmax()])
    kept = [int(c) for c in np.unique(gt) if c not in (0, 255, erased)]
    pred = gt.copy()
    pred[gt == erased] = 0
    n_bg, n_erased = int((gt == 0).sum()), int((gt == erased).sum())
    acc = Accumulator(num_classes=21)
    acc.add(pred, gt, image_id)
    m = acc.metrics()
    assert m.iou[erased] == 0.0 and m.recall[erased] == 0.0 and np.isnan(m.precision[erased])
    assert m.iou[0] == pytest.approx(n_bg / (n_bg + n_erased))
    assert m.precision[0] == pytest.approx(n_bg / (n_bg + n_erased)) and m.recall[0] == 1.0
    assert all(m.iou[c] == 1.0 for c in kept)
    assert m.miou == pytest.approx((n_bg / (n_bg + n_erased) + len(kept) + 0.0) / (2 + len(kept)))
