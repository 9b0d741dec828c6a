"""Stage II evaluation: predict every image single-scale and multi-scale + flip, score both where GT exists.

Predictions are written as palette PNGs under ``out_dir/single_scale/<id>.png`` and
``out_dir/ms_flip/<id>.png``; one confusion matrix per mode is accumulated over the whole split and written
with each image's IoU to ``out_dir/scores_<mode>.json`` (for the HTML report) where ground truth exists.
Whole images are predicted in one pass, or by sliding windows of the training crop (``infer.py``).
"""
from __future__ import annotations

import os
from pathlib import Path
from typing import Any, Callable, Sequence

import torch

from fmwsss.data.images import load_rgb
from fmwsss.data.palette import load_label_png, palette_for, save_label_png
from fmwsss.eval import Accumulator, format_table, metrics_to_json, scores_to_json
from fmwsss.io.atomic import atomic_write_json
from fmwsss.io.progress import Progress
from fmwsss.segmentation.infer import predict, window_for
from fmwsss.segmentation.models import load_segmenter

MODES = ("single_scale", "ms_flip")


def evaluate_segmenter(model_path: str | os.PathLike,
                       items: Sequence[tuple[str, str | Path, str | Path | None]], num_classes: int,
                       out_dir: str | os.PathLike, device: str | torch.device, ms_scales: Sequence[float],
                       log: Callable[[str], None] = print, split_name: str = "val",
                       class_names: Sequence[str] | None = None, inference: str = "whole") -> dict[str, Any]:
    """Predict ``items`` = (id, image path, GT png path or None); returns a JSON-ready dict.

    Result: ``split``, ``num_images`` (predicted), ``num_scored`` (with GT), ``miou`` per mode (None
    without GT) and ``metrics`` per mode (``fmwsss.eval.metrics_to_json``, None without GT). ``class_names``
    default to the class ids. ``inference``: ``whole`` images or ``slide`` windows of the training crop
    (``infer.window_for``). Cost per image: 1 + 2 × len(ms_scales) forward passes (each a few windows when
    sliding).
    """
    model, record = load_segmenter(model_path, device)
    if int(record["num_classes"]) != num_classes:
        raise ValueError(f"{model_path}: model predicts {record['num_classes']} classes, "
                         f"evaluation expects {num_classes}")
    crop = window_for(inference, int(record["settings"]["crop"]))
    names = list(class_names) if class_names is not None else [str(c) for c in range(num_classes)]
    palette = palette_for(num_classes - 1)
    out_dir = Path(out_dir)
    acc = {mode: Accumulator(num_classes) for mode in MODES}
    options = {"single_scale": ((1.0,), False), "ms_flip": (tuple(ms_scales), True)}
    progress = Progress(log, f"[deeplab_eval] {split_name}: predicted", len(items), every=100, unit="image")
    for image_id, image_path, gt_path in items:
        rgb = load_rgb(image_path)
        gt = load_label_png(gt_path) if gt_path is not None else None
        for mode, (scales, flip) in options.items():
            pred = predict(model, rgb, scales=scales, flip=flip, crop=crop)
            save_label_png(out_dir / mode / f"{image_id}.png", pred, palette)
            if gt is not None:
                acc[mode].add(pred, gt, image_id)
        progress.advance(detail="images")
    scored = acc["single_scale"].num_images
    result: dict[str, Any] = {"split": split_name, "num_images": len(items), "num_scored": scored,
                              "miou": {}, "metrics": {}}
    for mode in MODES:
        metrics = acc[mode].metrics() if scored else None
        result["metrics"][mode] = metrics_to_json(metrics, names, split_name) if metrics else None
        result["miou"][mode] = result["metrics"][mode]["miou"] if metrics else None
        if metrics:
            atomic_write_json(out_dir / f"scores_{mode}.json", scores_to_json(acc[mode], names, split_name))
            log(f"[deeplab_eval] {mode}\n{format_table(metrics, names, split_name)}")
    return result
