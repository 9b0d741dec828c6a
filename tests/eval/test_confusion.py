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
    assert m.num_images == len(voc_gt) == 24
    assert m.miou == 1.0 and m.pixel_accuracy == 1.0
    assert np.all(m.iou == 1.0)  # the sample covers all 20 classes plus background


def test_oracle_one_region_erased(voc_gt):
    gt = voc_gt["2007_000032"]  # aeroplane (1) and person (15)
    pred = gt.copy()
    pred[gt == 15] = 0
    n_bg, n_person = int((gt == 0).sum()), int((gt == 15).sum())
    acc = Accumulator(num_classes=21)
    acc.add(pred, gt, "2007_000032")
    m = acc.metrics()
    assert m.iou[15] == 0.0 and m.recall[15] == 0.0 and np.isnan(m.precision[15])
    assert m.iou[0] == pytest.approx(n_bg / (n_bg + n_person))
    assert m.precision[0] == pytest.approx(n_bg / (n_bg + n_person)) and m.recall[0] == 1.0
    assert m.iou[1] == 1.0
    assert m.miou == pytest.approx((n_bg / (n_bg + n_person) + 1.0 + 0.0) / 3)
