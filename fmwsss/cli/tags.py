"""A dataset's class names and image tags -> class ids, for the one-image commands (``fmwsss seed``, ``overlay``).

Kept free of torch and model code: ``fmwsss seed`` checks its tags against these names before it imports any
model, so a mistyped tag is reported in well under a second instead of after torch's import.
"""
from __future__ import annotations

from pathlib import Path
from typing import Sequence

import numpy as np


class TagError(ValueError):
    """An image tag that is not one of the dataset's class names; the message lists the valid ones."""


def parse_tags(text: str) -> list[str]:
    """Comma-separated tag names, stripped, empty entries dropped."""
    return [t.strip() for t in text.split(",") if t.strip()]


def dataset_class_names(config, dataset: str) -> tuple[str, ...]:
    """Foreground class names of ``dataset`` in ``config`` (a :class:`fmwsss.pipeline.config.Config`).

    VOC, demo and COCO have fixed lists, so their data folder need not exist; a custom dataset is opened (its
    class file is under its root) and any failure names the file.
    """
    from fmwsss.data import COCO_CLASS_NAMES, VOC_CLASS_NAMES, open_dataset
    from fmwsss.pipeline.config import ConfigError

    config.settings(dataset)  # raises ConfigError listing the known datasets
    entry = config.datasets[dataset]
    fixed = {"voc": VOC_CLASS_NAMES, "demo": VOC_CLASS_NAMES, "coco": COCO_CLASS_NAMES}
    if entry["type"] in fixed:
        return fixed[entry["type"]]
    if entry["root"] is None:
        raise ConfigError(f"{config.where}: datasets.{dataset}.root is not set; its class list lives under it")
    return open_dataset(entry["type"], Path(entry["root"]), name=dataset, **entry["options"]).class_names


def class_ids(tags: Sequence[str], class_names: Sequence[str]) -> np.ndarray:
    """Sorted unique class ids (1..C) of the tag names; :class:`TagError` lists the valid names."""
    index = {name: i + 1 for i, name in enumerate(class_names)}
    unknown = [t for t in tags if t not in index]
    if unknown:
        raise TagError(f"unknown tag {unknown[0]!r}; valid tags are the dataset's classes: {', '.join(class_names)}")
    if not tags:
        raise TagError(f"no tags given; name at least one of: {', '.join(class_names)}")
    return np.array(sorted({index[t] for t in tags}), dtype=np.int64)
