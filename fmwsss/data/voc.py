"""PASCAL VOC 2012 (+ SBD train_aug) in its standard layout.

``root/JPEGImages/<id>.jpg``, ground truth in ``root/SegmentationClassAug`` (preferred, as the reference) or
``root/SegmentationClass``, id lists in ``root/ImageSets/Segmentation/{train,val}.txt`` and
``root/ImageSets/SegmentationAug/train_aug.txt``. Tags come from a JSON labels file (id -> class indices
1..20) when given, else from the ground truth as the reference does (docs/method.md §2): class c is present iff
a GT pixel has label c; 0 and 255 are dropped. Deriving them reads every GT PNG of the split once at open
(~10k files for train_aug); pass ``cls_labels`` to skip that.
"""
from __future__ import annotations

import json
from collections.abc import Sequence
from pathlib import Path

import numpy as np

from fmwsss.data.base import (
    Dataset,
    DatasetError,
    check_id,
    check_ids,
    check_image_files,
    make_dataset,
    register_dataset_type,
)
from fmwsss.data.classes import VOC_CLASS_NAMES
from fmwsss.data.palette import VOID_LABEL, load_label_png

SPLIT_FILES: dict[str, str] = {
    "train": "ImageSets/Segmentation/train.txt",
    "val": "ImageSets/Segmentation/val.txt",
    "train_aug": "ImageSets/SegmentationAug/train_aug.txt",
}
GT_DIRS: tuple[str, ...] = ("SegmentationClassAug", "SegmentationClass")


def classes_in_mask(path: Path, num_classes: int) -> tuple[int, ...]:
    """Sorted foreground classes present in the label PNG at ``path`` (0 and 255 dropped)."""
    try:
        labels = load_label_png(path)
    except (ValueError, FileNotFoundError) as exc:
        raise DatasetError(f"{path}: cannot read ground-truth mask ({exc})") from exc
    present = np.flatnonzero(np.bincount(labels.ravel(), minlength=256))
    bad = present[(present > num_classes) & (present != VOID_LABEL)]
    if bad.size:
        raise DatasetError(f"{path}: ground-truth value {int(bad[0])} is neither 0..{num_classes} nor {VOID_LABEL}")
    return tuple(int(c) for c in present if 0 < c <= num_classes)


def read_split_file(path: Path) -> list[str]:
    """Ids of a VOC split file; accepts plain ids and DeepLab's ``/JPEGImages/<id>.jpg /Seg.../<id>.png`` lines."""
    ids = []
    for lineno, line in enumerate(path.read_text().splitlines(), 1):
        tok = line.split()
        if not tok:
            continue
        id_ = Path(tok[0]).stem if tok[0].startswith("/JPEGImages/") else tok[0]
        ids.append(check_id(id_, f"{path}:{lineno}"))
    return check_ids(ids, str(path))


def read_labels_json(path: Path, ids: Sequence[str], num_classes: int) -> dict[str, tuple[int, ...]]:
    """Read ``{id: [class indices 1..C]}`` for ``ids``; errors name the file and the id."""
    try:
        raw = json.loads(path.read_text())
    except (OSError, json.JSONDecodeError) as exc:
        raise DatasetError(f"{path}: cannot read labels JSON ({exc})") from exc
    if not isinstance(raw, dict):
        raise DatasetError(f"{path}: labels JSON must map image id -> list of class indices")
    out = {}
    for id_ in ids:
        if id_ not in raw:
            raise DatasetError(f"{path}: no labels for image id {id_!r}")
        vals = raw[id_]
        if not isinstance(vals, list) or not all(isinstance(v, int) and not isinstance(v, bool) for v in vals):
            raise DatasetError(f"{path}: labels of {id_!r} must be a list of integers, got {vals!r}")
        bad = [v for v in vals if not 1 <= v <= num_classes]
        if bad:
            raise DatasetError(f"{path}: image {id_!r} has unknown class index {bad[0]} (expected 1..{num_classes})")
        out[id_] = tuple(sorted(set(vals)))
    return out


@register_dataset_type("voc")
def open_voc(
    root: Path,
    *,
    name: str,
    split: str | None = None,
    cls_labels: str | Path | None = None,
    gt_dir: str | None = None,
) -> Dataset:
    """Open a VOC2012 root.

    ``split``: which id list the pipeline runs on (default ``train_aug`` when its file exists, else
    ``train``). ``cls_labels``: JSON labels file (relative paths are under ``root``); default: derive tags
    from the ground truth. ``gt_dir``: GT folder under ``root`` (default SegmentationClassAug if present,
    else SegmentationClass).
    """
    root = Path(root)
    if not (root / "JPEGImages").is_dir():
        raise DatasetError(f"dataset {name!r}: {root / 'JPEGImages'} not found (is root a VOC2012 folder?)")
    splits = {k: read_split_file(root / f) for k, f in SPLIT_FILES.items() if (root / f).is_file()}
    if split is None:
        split = "train_aug" if "train_aug" in splits else "train"
    if split not in splits:
        expected = root / SPLIT_FILES[split] if split in SPLIT_FILES else f"one of {sorted(SPLIT_FILES)}"
        raise DatasetError(f"dataset {name!r}: split {split!r} not available; expected {expected}")
    ids = splits[split]
    if gt_dir is None:
        gt_dir = next((d for d in GT_DIRS if (root / d).is_dir()), GT_DIRS[-1])
    gt_root = root / gt_dir
    all_ids = sorted({i for s in splits.values() for i in s})
    images = {i: root / "JPEGImages" / f"{i}.jpg" for i in all_ids}
    check_image_files(name, all_ids, images)
    num = len(VOC_CLASS_NAMES)
    if cls_labels is not None:
        source = root / cls_labels  # an absolute path wins
        tags = read_labels_json(source, ids, num)
    else:
        source = gt_root
        tags = {}
        for id_ in ids:
            gt = gt_root / f"{id_}.png"
            if not gt.is_file():
                raise DatasetError(
                    f"dataset {name!r}: tags of {id_!r} come from its ground truth, but {gt} does not exist "
                    "(give cls_labels or the right gt_dir)"
                )
            tags[id_] = classes_in_mask(gt, num)

    def gt(id_: str) -> Path | None:
        p = gt_root / f"{id_}.png"
        return p if p.is_file() else None

    split_files = [root / f for f in SPLIT_FILES.values() if (root / f).is_file()]
    tag_files = [source] if cls_labels is not None else [gt_root / f"{i}.png" for i in ids]
    return make_dataset(
        name=name, type="voc", root=root, class_names=VOC_CLASS_NAMES, ids=ids, splits=splits,
        images=images, tags=tags, gt=gt, tags_source=str(source), sources=split_files + tag_files,
        source_dirs=[root, *{(root / f).parent for f in SPLIT_FILES.values()}, gt_root],
    )
