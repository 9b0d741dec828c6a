"""Reports name the split and carry every class."""
from __future__ import annotations

import json

import numpy as np

from fmwsss.eval import Accumulator, format_table, metrics_to_json

NAMES = ["background", "aeroplane", "bicycle"]


def _metrics():
    acc = Accumulator(num_classes=3)
    acc.add(np.array([0, 1, 1, 0]), np.array([0, 1, 0, 0]), "img")
    return acc.metrics()


def test_format_table_names_split_and_classes():
    text = format_table(_metrics(), NAMES, "train_aug")
    assert text.splitlines()[0] == "split train_aug: 1 images"
    row = next(line for line in text.splitlines() if "aeroplane" in line)
    assert row.split()[2:] == ["50.0", "50.0", "100.0"]
    assert "bicycle" in text and "    -" in text  # absent class shown as undefined
    assert text.splitlines()[-1] == "mIoU 58.3  pixel accuracy 75.0"


def test_metrics_to_json_round_trips():
    d = metrics_to_json(_metrics(), NAMES, "val")
    d = json.loads(json.dumps(d))  # no NaN sneaks in
    assert d["split"] == "val" and d["num_images"] == 1
    assert abs(d["miou"] - (2 / 3 + 1 / 2) / 2) < 1e-12
    assert d["per_class"][1] == {"id": 1, "name": "aeroplane", "iou": 0.5, "precision": 0.5, "recall": 1.0}
    assert d["per_class"][2]["iou"] is None
