"""Class names of VOC and COCO, the COCO category-id map, and CLIP-ES prompt names (docs/method.md §4, §13).

Label convention everywhere in fmwsss: 0 = background, class ``i + 1`` = ``class_names[i]``, 255 = void.
The CLIP-ES synonym lists are the names CLIP reads in the prompts; they are not the dataset's class names.
"""
from __future__ import annotations

from collections.abc import Sequence

VOC_CLASS_NAMES: tuple[str, ...] = (
    "aeroplane", "bicycle", "bird", "boat", "bottle", "bus", "car", "cat", "chair", "cow",
    "diningtable", "dog", "horse", "motorbike", "person", "pottedplant", "sheep", "sofa", "train", "tvmonitor",
)
"""The 20 VOC foreground classes; label ``i + 1`` is ``VOC_CLASS_NAMES[i]``."""

VOC_LABEL_NAMES: tuple[str, ...] = ("background", *VOC_CLASS_NAMES)
"""All 21 VOC labels, indexed by label value (0 = background)."""

VOC_FG_PROMPT_NAMES: tuple[str, ...] = (
    "aeroplane", "bicycle", "bird avian", "boat", "bottle", "bus", "car", "cat", "chair seat", "cow",
    "diningtable", "dog", "horse", "motorbike", "person with clothes,people,human", "pottedplant", "sheep",
    "sofa", "train", "tvmonitor screen",
)
"""CLIP-ES foreground synonyms for VOC, aligned with ``VOC_CLASS_NAMES``."""

VOC_BG_PROMPT_NAMES: tuple[str, ...] = (
    "ground", "land", "grass", "tree", "building", "wall", "sky", "lake", "water", "river", "sea", "railway",
    "railroad", "keyboard", "helmet", "cloud", "house", "mountain", "ocean", "road", "rock", "street",
    "valley", "bridge", "sign",
)
"""The 25 CLIP-ES background names for VOC."""

COCO_CATEGORY_IDS: tuple[int, ...] = (
    1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 13, 14, 15, 16, 17, 18, 19, 20, 21, 22, 23, 24, 25, 27, 28, 31, 32, 33,
    34, 35, 36, 37, 38, 39, 40, 41, 42, 43, 44, 46, 47, 48, 49, 50, 51, 52, 53, 54, 55, 56, 57, 58, 59, 60,
    61, 62, 63, 64, 65, 67, 70, 72, 73, 74, 75, 76, 77, 78, 79, 80, 81, 82, 84, 85, 86, 87, 88, 89, 90,
)
"""The 80 sparse COCO category ids, sorted; contiguous label ``i + 1`` is ``COCO_CATEGORY_IDS[i]``."""

COCO_CLASS_NAMES: tuple[str, ...] = (
    "person", "bicycle", "car", "motorcycle", "airplane", "bus", "train", "truck", "boat", "traffic light",
    "fire hydrant", "stop sign", "parking meter", "bench", "bird", "cat", "dog", "horse", "sheep", "cow",
    "elephant", "bear", "zebra", "giraffe", "backpack", "umbrella", "handbag", "tie", "suitcase", "frisbee",
    "skis", "snowboard", "sports ball", "kite", "baseball bat", "baseball glove", "skateboard", "surfboard",
    "tennis racket", "bottle", "wine glass", "cup", "fork", "knife", "spoon", "bowl", "banana", "apple",
    "sandwich", "orange", "broccoli", "carrot", "hot dog", "pizza", "donut", "cake", "chair", "couch",
    "potted plant", "bed", "dining table", "toilet", "tv", "laptop", "mouse", "remote", "keyboard",
    "cell phone", "microwave", "oven", "toaster", "sink", "refrigerator", "book", "clock", "vase", "scissors",
    "teddy bear", "hair drier", "toothbrush",
)
"""The official COCO category names, in ``COCO_CATEGORY_IDS`` order."""

COCO_ID_TO_LABEL: dict[int, int] = {cat: i + 1 for i, cat in enumerate(COCO_CATEGORY_IDS)}
"""COCO category id -> contiguous label 1..80."""

COCO_FG_PROMPT_NAMES: tuple[str, ...] = (
    "person with clothes,people,human", "bicycle", "car", "motorbike", "aeroplane", "bus", "train", "truck",
    "boat", "traffic light", "fire hydrant", "stop sign", "parking meter", "bench", "bird avian", "cat", "dog",
    "horse", "sheep", "cow", "elephant", "bear", "zebra", "giraffe", "backpack,bag", "umbrella,parasol",
    "handbag,purse", "necktie", "suitcase", "frisbee", "skis",
    "sknowboard",  # sic: CLIP-ES's spelling, kept so the prompts match the reference
    "sports ball", "kite", "baseball bat", "glove", "skateboard", "surfboard", "tennis racket", "bottle",
    "wine glass", "cup", "fork", "knife", "dessertspoon", "bowl", "banana", "apple", "sandwich", "orange",
    "broccoli", "carrot", "hot dog", "pizza", "donut", "cake", "chair seat", "sofa", "pottedplant", "bed",
    "diningtable", "toilet", "tvmonitor screen", "laptop", "mouse", "remote control", "keyboard", "cell phone",
    "microwave", "oven", "toaster", "sink", "refrigerator", "book", "clock", "vase", "scissors", "teddy bear",
    "hairdrier,blowdrier", "toothbrush",
)
"""CLIP-ES foreground synonyms for COCO (``new_class_names_coco``), aligned with ``COCO_CLASS_NAMES``."""

COCO_BG_PROMPT_NAMES: tuple[str, ...] = tuple(n for n in VOC_BG_PROMPT_NAMES if n not in ("keyboard", "sign"))
"""The 23 CLIP-ES background names for COCO: VOC's list without keyboard (a COCO class) and sign."""


def fg_prompt_names(class_names: Sequence[str]) -> tuple[str, ...]:
    """CLIP-ES synonyms when ``class_names`` is exactly VOC's or COCO's list, else the names themselves."""
    names = tuple(class_names)
    if names == VOC_CLASS_NAMES:
        return VOC_FG_PROMPT_NAMES
    if names == COCO_CLASS_NAMES:
        return COCO_FG_PROMPT_NAMES
    return names
