"""Human- and machine-readable reports of :class:`~fmwsss.eval.confusion.Metrics` (the split is always named)."""
from __future__ import annotations

import math
from typing import Any, Sequence

from fmwsss.eval.confusion import Accumulator, Metrics


def _pct(value: float) -> str:
    return "    -" if math.isnan(value) else f"{100 * value:5.1f}"


def _check_names(metrics: Metrics, class_names: Sequence[str]) -> None:
    if len(class_names) != len(metrics.iou):
        raise ValueError(f"{len(class_names)} class names for {len(metrics.iou)} classes")


def format_table(metrics: Metrics, class_names: Sequence[str], split_name: str) -> str:
    """Per-class IoU / precision / recall in percent ('-' = undefined), then mIoU and pixel accuracy."""
    _check_names(metrics, class_names)
    width = max(len("class"), *(len(n) for n in class_names))
    lines = [
        f"split {split_name}: {metrics.num_images} images",
        f"{'id':>3}  {'class':<{width}}  {'IoU':>5}  {'prec':>5}  {'rec':>5}",
    ]
    for c, name in enumerate(class_names):
        lines.append(
            f"{c:>3}  {name:<{width}}  {_pct(metrics.iou[c])}  {_pct(metrics.precision[c])}  {_pct(metrics.recall[c])}"
        )
    lines.append(f"mIoU {_pct(metrics.miou).strip()}  pixel accuracy {_pct(metrics.pixel_accuracy).strip()}")
    return "\n".join(lines)


def metrics_to_json(metrics: Metrics, class_names: Sequence[str], split_name: str) -> dict[str, Any]:
    """JSON-ready dict; fractions in [0, 1], undefined values as ``None`` (JSON has no NaN)."""
    _check_names(metrics, class_names)

    def num(value: float) -> float | None:
        return None if math.isnan(value) else float(value)

    return {
        "split": split_name,
        "num_images": metrics.num_images,
        "miou": num(metrics.miou),
        "pixel_accuracy": num(metrics.pixel_accuracy),
        "per_class": [
            {
                "id": c,
                "name": name,
                "iou": num(metrics.iou[c]),
                "precision": num(metrics.precision[c]),
                "recall": num(metrics.recall[c]),
            }
            for c, name in enumerate(class_names)
        ],
    }


def scores_to_json(acc: Accumulator, class_names: Sequence[str], split_name: str) -> dict[str, Any]:
    """What the HTML report needs beside ``metrics.json``: the split's confusion matrix (rows GT, columns
    prediction, pixel counts) and each image's own mIoU, pixel accuracy and per-class IoU (None = undefined)."""
    if len(class_names) != acc.num_classes:
        raise ValueError(f"{len(class_names)} class names for {acc.num_classes} classes")

    def num(value: float) -> float | None:
        return None if math.isnan(value) else round(float(value), 6)

    return {
        "split": split_name,
        "classes": list(class_names),
        "confusion": acc.confusion.tolist(),
        "images": {
            image_id: {
                "miou": num(s["miou"]),
                "pixel_accuracy": num(s["pixel_accuracy"]),
                "iou": [num(v) for v in s["iou"]],
            }
            for image_id, s in acc.per_image.items()
        },
    }
