"""The demo dataset: the 24 real VOC 2012 images of the sample, laid out as VOC under ``root``.

``root/JPEGImages/<id>.jpg``, ``root/SegmentationClass/<id>.png``, ``root/labels.json`` (id -> class
indices, derived from the masks); ``fmwsss data voc-sample`` fills it. The id list and the official VOC
split of each id ship with the package (``demo_ids.json``, ids only): 16 train and 8 val ids. Seeds are made
and scored on all 24 (``ids``), while ``splits`` keeps the official split for DeepLab train/val.
"""
from __future__ import annotations

import json
from pathlib import Path

from fmwsss.data.base import Dataset, DatasetError, make_dataset, register_dataset_type
from fmwsss.data.classes import VOC_CLASS_NAMES
from fmwsss.data.voc import read_labels_json

DEMO_IDS_FILE = Path(__file__).with_name("demo_ids.json")


def demo_splits() -> dict[str, list[str]]:
    """``{"train": 16 ids, "val": 8 ids, "all": 24 ids}``, each sorted."""
    raw = json.loads(DEMO_IDS_FILE.read_text())
    splits = {"train": sorted(raw["train"]), "val": sorted(raw["val"])}
    splits["all"] = sorted(splits["train"] + splits["val"])
    return splits


@register_dataset_type("demo")
def open_demo(root: Path, *, name: str) -> Dataset:
    """Open the demo folder at ``root``; a missing folder or file raises ``DatasetError`` saying how to fetch it."""
    root = Path(root)
    labels = root / "labels.json"
    if not labels.is_file():
        raise DatasetError(
            f"dataset {name!r}: {labels} not found; fetch the sample first: "
            f"fmwsss data voc-sample --source DIR_OR_URL --dest {root}"
        )
    splits = demo_splits()
    ids = splits["all"]
    tags = read_labels_json(labels, ids, len(VOC_CLASS_NAMES))
    images = {i: root / "JPEGImages" / f"{i}.jpg" for i in ids}
    gts = {i: root / "SegmentationClass" / f"{i}.png" for i in ids}
    missing = [i for i in ids if not gts[i].is_file()]
    if missing:
        raise DatasetError(f"dataset {name!r}: ground truth of {missing} missing, e.g. {gts[missing[0]]}")
    return make_dataset(
        name=name, type="demo", root=root, class_names=VOC_CLASS_NAMES, ids=ids, splits=splits,
        images=images, tags=tags, gt=gts.get, tags_source=str(labels), sources=[labels, DEMO_IDS_FILE],
    )
