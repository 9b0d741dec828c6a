"""mIoU from ``fmwsss.eval.Accumulator`` against an independent computation on real VOC masks.

The independent side never builds a confusion matrix: per class, IoU = |P & G| / |P | G| from boolean
masks restricted to non-void pixels, on the whole split at once (pixels of all images concatenated), and
once more with Python sets of pixel coordinates on one image. Predictions are the GT shifted by a few
pixels (np.roll, so classes move onto each other's and the background's pixels), with some 255 in the GT.
"""
from __future__ import annotations


import numpy as np
import pytest
from PIL import Image

from fmwsss.eval import Accumulator
from tests.samples import sample_dir



@pytest.fixture(scope="module")
def gts() -> dict[str, np.ndarray]:
    """Every GT mask of the sample (any VOC sample in the ``voc_sample`` layout), by id."""
    folder = sample_dir("voc_sample") / "SegmentationClass"
    return {p.stem: np.array(Image.open(p)) for p in sorted(folder.glob("*.png"))}


def most_classes(gts: dict[str, np.ndarray]) -> tuple[str, np.ndarray]:
    """The image with the most foreground classes (first by id on ties)."""
    return max(gts.items(), key=lambda item: len(np.setdiff1d(item[1], [0, 255])))


def shifted(gt: np.ndarray, dy: int, dx: int) -> np.ndarray:
    """GT rolled by (dy, dx) with void turned into background: a plausible, imperfect prediction."""
    pred = np.roll(gt, (dy, dx), axis=(0, 1))
    return np.where(pred == 255, 0, pred)


def boolean_miou(preds: list[np.ndarray], gts: list[np.ndarray]) -> tuple[float, dict[int, float]]:
    pred = np.concatenate([p.ravel() for p in preds])
    gt = np.concatenate([g.ravel() for g in gts])
    keep = gt != 255
    pred, gt = pred[keep], gt[keep]
    ious = {}
    for c in np.union1d(np.unique(pred), np.unique(gt)):
        inter = np.logical_and(pred == c, gt == c).sum()
        union = np.logical_or(pred == c, gt == c).sum()
        ious[int(c)] = inter / union
    return float(np.mean(list(ious.values()))), ious


def set_ious(pred: np.ndarray, gt: np.ndarray) -> dict[int, float]:
    """Per-class IoU with Python sets of (row, col) pixel coordinates; void GT pixels removed from both."""
    void = set(zip(*np.nonzero(gt == 255)))
    out = {}
    for c in (set(np.unique(pred).tolist()) | set(np.unique(gt).tolist())) - {255}:
        p = set(zip(*np.nonzero(pred == c))) - void
        g = set(zip(*np.nonzero(gt == c)))
        if p | g:
            out[c] = len(p & g) / len(p | g)
    return out


def test_split_miou_matches_boolean_computation(gts):
    assert any((g == 255).any() for g in gts.values()), "the case needs void pixels in the GT"
    preds = [shifted(g, 3 + k % 4, -2 - k % 4) for k, g in enumerate(gts.values())]
    acc = Accumulator(num_classes=21)
    for (image_id, gt), pred in zip(gts.items(), preds):
        acc.add(pred, gt, image_id)
    m = acc.metrics()
    miou, ious = boolean_miou(preds, list(gts.values()))
    assert 0.5 < miou < 0.99  # the shift must hurt, or the comparison below proves little
    assert m.miou == pytest.approx(miou, abs=1e-12)
    for c, iou in ious.items():
        assert m.iou[c] == pytest.approx(iou, abs=1e-12), f"class {c}"
    assert np.isnan(m.iou[[c for c in range(21) if c not in ious]]).all()


def test_one_image_matches_python_sets(gts):
    image_id, gt = most_classes(gts)
    absent = int(np.setdiff1d(np.arange(1, 21), gt)[0])
    pred = shifted(gt, 4, 5)
    pred[:20, :20] = absent  # a class absent from the GT: IoU 0, still counted in the mean
    acc = Accumulator(num_classes=21)
    acc.add(pred, gt, image_id)
    m = acc.metrics()
    expected = set_ious(pred, gt)
    assert expected[absent] == 0.0 and set(expected) == set(np.setdiff1d(gt, [255]).tolist()) | {absent}
    for c, iou in expected.items():
        assert m.iou[c] == pytest.approx(iou, abs=1e-12), f"class {c}"
    assert m.miou == pytest.approx(np.mean(list(expected.values())), abs=1e-12)


def test_void_pixels_are_ignored_whatever_is_predicted_there(gts):
    # changing the prediction only on GT-void pixels must not change any number
    image_id, gt = max(gts.items(), key=lambda item: int((item[1] == 255).sum()))
    void = gt == 255
    assert void.any(), "the case needs void pixels in the GT"
    pred = shifted(gt, 2, 2)
    scores = []
    for fill in (0, 9, 20):
        acc = Accumulator(num_classes=21)
        acc.add(np.where(void, fill, pred), gt, image_id)
        scores.append(acc.metrics())
    for other in scores[1:]:
        np.testing.assert_array_equal(other.confusion, scores[0].confusion)
        assert other.miou == scores[0].miou
    assert scores[0].confusion.sum() == (~void).sum()
