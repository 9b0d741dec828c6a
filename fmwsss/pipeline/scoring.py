"""Scoring a finished CAM or seed entry against the dataset's ground truth (the ``score_<stage>`` entries).

Scoring is kept out of the compute stages so that ``eval`` settings and corrected masks rerun only these
light jobs. Only images with ground truth are read; a dataset without any gets a ``metrics.json`` saying so.
"""
from __future__ import annotations

from pathlib import Path
from typing import Any, Callable, Iterable, Iterator, Mapping

import numpy as np

from fmwsss.models.weights import is_test_model
from fmwsss.pipeline.stages import weight_roles
from fmwsss.segmentation.archs import backbone_weight

Log = Callable[[str], None]
Scored = Iterable[tuple[str, np.ndarray, np.ndarray]]  # (image id, predicted labels, ground-truth labels)


def stage_test_models(settings: Mapping[str, Any], stage: str) -> list[str]:
    """The random-weight test models (``fmwsss.models.weights.is_test_model``) that ``stage``'s results come
    from, sorted: the ``test_models`` field of every metrics.json, an empty list with real weights (present
    either way, so a reader needs no default), so numbers copied out of a run say what made them."""
    names = {settings["models"][role] for role in weight_roles(stage)}
    if stage in ("deeplab_train", "deeplab_eval") and (backbone := backbone_weight(settings["segmenter"])):
        names.add(backbone)  # the segmenter's registry backbone (tiny_swin in the tests)
    return sorted(n for n in names if is_test_model(n))


def ground_truth(dataset: Any, image_id: str) -> Path | None:
    """The image's ground-truth mask file, or None where it has none (COCO masks are painted on request)."""
    gt = dataset.gt_path(image_id)
    return Path(gt) if gt is not None and Path(gt).is_file() else None


def split_name(dataset: Any) -> str:
    """The name of the split whose ids are the run's ids ("all ids" when none is)."""
    return next((name for name, ids in dataset.splits.items() if list(ids) == list(dataset.ids)), "all ids")


def evaluate(dataset: Any, scored: Scored, log: Log, scores_path: Path, repeat: bool = False) -> dict:
    """Accumulate (id, prediction, ground truth) triples; the metrics.json content.

    With ground truth, ``scores_path`` gets the confusion matrix and each image's IoU (for the HTML report).
    ``repeat``: a further pass over images an earlier call of the job scored (the job's timing record counts
    each image once).
    """
    from fmwsss.eval import Accumulator, format_table, metrics_to_json, scores_to_json
    from fmwsss.io.atomic import atomic_write_json
    from fmwsss.io.progress import Progress

    names = ("background", *dataset.class_names)
    acc, count = Accumulator(len(names)), 0
    progress = Progress(log, f"scoring {dataset.name}: image", len(dataset.ids), unit="image", repeat=repeat)
    for image_id, labels, gt in scored:
        acc.add(labels, gt, image_id)
        count += 1
        progress.advance()
    split = f"{dataset.name}: {split_name(dataset)} ({count} images with ground truth)"
    if not count:
        log(f"no ground truth for {dataset.name}: nothing scored")
        return {"split": split, "ground_truth": False}
    metrics = acc.metrics()
    log("\n" + format_table(metrics, names, split))
    atomic_write_json(scores_path, scores_to_json(acc, names, split))
    return {"ground_truth": True, **metrics_to_json(metrics, names, split)}


def seed_pairs(dataset: Any, entry: Path) -> Iterator[tuple[str, np.ndarray, np.ndarray]]:
    """(id, seed, ground truth) of every id with ground truth, from the seed entry's palette PNGs."""
    from fmwsss.data.palette import load_label_png

    for image_id in dataset.ids:
        gt = ground_truth(dataset, image_id)
        if gt is not None:
            yield image_id, load_label_png(entry / f"{image_id}.png"), load_label_png(gt)


def cam_pairs(
    dataset: Any, shards: Iterable[str | Path], kind: str, bg_power: float
) -> Iterator[tuple[str, np.ndarray, np.ndarray]]:
    """(id, argmax of its ``kind`` CAMs with background power ``bg_power``, ground truth) of every id with
    ground truth, read from CAM shards."""
    from fmwsss.cams.shards import CamShardReader
    from fmwsss.data.palette import load_label_png
    from fmwsss.seeding import argmax_seed

    for shard in shards:
        with CamShardReader(shard) as reader:
            for image_id in reader.ids():
                gt = ground_truth(dataset, image_id)
                if gt is None:
                    continue
                cam = reader.read(image_id)
                labels = argmax_seed(getattr(cam, kind), cam.classes, (cam.height, cam.width), bg_power)
                yield image_id, labels, load_label_png(gt)


def score_seeds(dataset: Any, stage: str, entry: Path, out: Path, log: Log) -> dict:
    """metrics.json content of a seed entry (and ``out/scores.json`` with ground truth)."""
    return {"stage": stage, **evaluate(dataset, seed_pairs(dataset, entry), log, out / "scores.json")}


def score_cams(dataset: Any, stage: str, shards: list[str], bg_power: float, out: Path, log: Log) -> dict:
    """metrics.json content of a CAM entry: raw and CAA CAMs scored by argmax with a fixed background power
    (and ``out/scores_cam_raw.json`` / ``scores_cam_caa.json`` with ground truth)."""
    report: dict[str, Any] = {"stage": stage, "cam_bg_power": bg_power}
    for kind in ("cam_raw", "cam_caa"):
        log(f"{stage}: {kind} scored by argmax with background power {bg_power}")
        report[kind] = evaluate(dataset, cam_pairs(dataset, shards, kind, bg_power), log, out / f"scores_{kind}.json",
                                repeat=kind != "cam_raw")
    return report
