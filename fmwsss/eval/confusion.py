"""Confusion matrices and the split-level metrics of docs/method.md §12 (one matrix accumulated over a split).

Rows are ground truth, columns prediction. GT pixels equal to ``ignore`` are skipped; every other GT or
predicted value must lie in ``0..num_classes-1`` (a seed with 255 in it is an error here, not a silent miss).
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np


def confusion_matrix(pred: np.ndarray, gt: np.ndarray, num_classes: int, ignore: int = 255) -> np.ndarray:
    """int64 ``(C, C)`` counts of (GT class, predicted class) over the non-ignored pixels: one ``np.bincount``."""
    pred, gt = np.asarray(pred), np.asarray(gt)
    if pred.shape != gt.shape:
        raise ValueError(f"prediction shape {pred.shape} != ground truth shape {gt.shape}")
    valid = gt != ignore
    g = gt[valid].astype(np.int64)
    p = pred[valid].astype(np.int64)
    for name, values in (("ground truth", g), ("prediction", p)):
        if values.size and (values.min() < 0 or values.max() >= num_classes):
            raise ValueError(
                f"{name} has values outside 0..{num_classes - 1} (and != ignore {ignore}): "
                f"{np.unique(values[(values < 0) | (values >= num_classes)]).tolist()}"
            )
    return np.bincount(g * num_classes + p, minlength=num_classes**2).reshape(num_classes, num_classes)


@dataclass(frozen=True)
class Metrics:
    """Split-level scores. Per-class arrays are NaN where undefined (e.g. IoU of a class absent from both)."""

    confusion: np.ndarray  # int64 (C, C), rows GT, columns prediction
    num_images: int
    iou: np.ndarray  # (C,) TP / (TP + FP + FN)
    precision: np.ndarray  # (C,) TP / (TP + FP)
    recall: np.ndarray  # (C,) TP / (TP + FN)
    miou: float  # mean IoU over classes present in GT or prediction
    pixel_accuracy: float  # trace / total


def image_scores(confusion: np.ndarray) -> dict:
    """One image's own scores from its confusion matrix: per-class IoU (NaN for a class absent from both GT
    and prediction), mIoU over the classes present in either (the split-level definition, on one image) and
    pixel accuracy (NaN without a valid pixel)."""
    cm = np.asarray(confusion, np.float64)
    tp = np.diag(cm)
    union = cm.sum(axis=0) + cm.sum(axis=1) - tp
    present = union > 0
    with np.errstate(invalid="ignore", divide="ignore"):
        iou = np.where(present, tp / union, np.nan)
    total = cm.sum()
    return {
        "iou": iou,
        "miou": float(iou[present].mean()) if present.any() else float("nan"),
        "pixel_accuracy": float(tp.sum() / total) if total else float("nan"),
    }


class Accumulator:
    """Sum confusion matrices image by image; ``metrics()`` scores the whole split at once (not per image).

    ``per_image`` keeps each image's own scores (:func:`image_scores`, for the report's gallery): C floats
    per image, 1.7 MB for VOC train_aug.
    """

    def __init__(self, num_classes: int, ignore: int = 255) -> None:
        self.num_classes = num_classes
        self.ignore = ignore
        self.confusion = np.zeros((num_classes, num_classes), np.int64)
        self.num_images = 0
        self.per_image: dict[str, dict] = {}

    def add(self, pred: np.ndarray, gt: np.ndarray, image_id: str) -> None:
        """Add one image; a size mismatch or an out-of-range value raises ``ValueError`` naming ``image_id``."""
        try:
            cm = confusion_matrix(pred, gt, self.num_classes, self.ignore)
        except ValueError as err:
            raise ValueError(f"image {image_id}: {err}") from None
        self.confusion += cm
        self.per_image[image_id] = image_scores(cm)
        self.num_images += 1

    def metrics(self) -> Metrics:
        cm = self.confusion.astype(np.float64)
        tp = np.diag(cm)
        gt_count, pred_count = cm.sum(axis=1), cm.sum(axis=0)
        union = gt_count + pred_count - tp
        with np.errstate(invalid="ignore", divide="ignore"):
            iou = tp / union
            precision = tp / pred_count
            recall = tp / gt_count
        present = union > 0
        total = cm.sum()
        return Metrics(
            confusion=self.confusion.copy(),
            num_images=self.num_images,
            iou=np.where(present, iou, np.nan),
            precision=np.where(pred_count > 0, precision, np.nan),
            recall=np.where(gt_count > 0, recall, np.nan),
            miou=float(iou[present].mean()) if present.any() else float("nan"),
            pixel_accuracy=float(tp.sum() / total) if total else float("nan"),
        )
