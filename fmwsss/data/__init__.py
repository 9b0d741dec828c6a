"""Datasets (voc, coco, custom, demo), the image reader, class names, label palettes, shards, sample fetchers.

Importing this package registers every built-in dataset type with ``open_dataset``.
"""
from fmwsss.data.base import DATASET_TYPES, Dataset, DatasetError, open_dataset
from fmwsss.data.classes import (
    COCO_BG_PROMPT_NAMES,
    COCO_CATEGORY_IDS,
    COCO_CLASS_NAMES,
    COCO_FG_PROMPT_NAMES,
    COCO_ID_TO_LABEL,
    VOC_BG_PROMPT_NAMES,
    VOC_CLASS_NAMES,
    VOC_FG_PROMPT_NAMES,
    VOC_LABEL_NAMES,
    fg_prompt_names,
)
from fmwsss.data import coco, custom, demo, voc  # noqa: F401  (register the dataset types)
from fmwsss.data.demo import demo_splits
from fmwsss.data.fetch import FetchError, FetchResult, fetch_coco_sample, fetch_voc_sample
from fmwsss.data.images import ImageError, load_rgb
from fmwsss.data.palette import VOID_LABEL, load_label_png, palette_for, save_label_png, voc_palette
from fmwsss.data.shards import ids_digest, shard_ids, shard_name

__all__ = [
    "COCO_BG_PROMPT_NAMES",
    "COCO_CATEGORY_IDS",
    "COCO_CLASS_NAMES",
    "COCO_FG_PROMPT_NAMES",
    "COCO_ID_TO_LABEL",
    "DATASET_TYPES",
    "Dataset",
    "DatasetError",
    "FetchError",
    "FetchResult",
    "ImageError",
    "VOC_BG_PROMPT_NAMES",
    "VOC_CLASS_NAMES",
    "VOC_FG_PROMPT_NAMES",
    "VOC_LABEL_NAMES",
    "VOID_LABEL",
    "demo_splits",
    "fetch_coco_sample",
    "fetch_voc_sample",
    "fg_prompt_names",
    "ids_digest",
    "load_label_png",
    "load_rgb",
    "open_dataset",
    "palette_for",
    "save_label_png",
    "shard_ids",
    "shard_name",
    "voc_palette",
]
