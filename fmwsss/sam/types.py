"""The in-memory form of one image's SAM masks, shared by the generator, the shard store and SAMS."""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

LEVEL_NAMES = ("sub-part", "part", "whole")


@dataclass
class ImageMasks:
    """SAM masks of one image, ``N`` of them (``N`` may be 0; then ``masks`` has shape ``(0, H, W)``).

    ``level`` is the index of SAM's multimask output the mask came from (0 sub-part, 1 part, 2 whole);
    ``predicted_iou`` is SAM's raw quality prediction (no level offsets); ``bbox`` is SAM's xywh box
    (``w = x_max - x_min`` with inclusive pixel coordinates, as in ``SamAutomaticMaskGenerator``).
    """

    masks: np.ndarray  # bool (N, H, W)
    level: np.ndarray  # int8 (N,)
    predicted_iou: np.ndarray  # float32 (N,)
    stability: np.ndarray  # float32 (N,)
    bbox: np.ndarray  # int32 (N, 4) xywh
    area: np.ndarray  # int64 (N,)

    def __post_init__(self) -> None:
        self.masks = np.asarray(self.masks, dtype=bool)
        if self.masks.ndim != 3:
            raise ValueError(f"ImageMasks.masks must be (N, H, W), got shape {self.masks.shape}")
        n = self.masks.shape[0]
        self.level = np.asarray(self.level, dtype=np.int8).reshape(n)
        self.predicted_iou = np.asarray(self.predicted_iou, dtype=np.float32).reshape(n)
        self.stability = np.asarray(self.stability, dtype=np.float32).reshape(n)
        self.bbox = np.asarray(self.bbox, dtype=np.int32).reshape(n, 4)
        self.area = np.asarray(self.area, dtype=np.int64).reshape(n)

    def __len__(self) -> int:
        return self.masks.shape[0]

    @property
    def height(self) -> int:
        return self.masks.shape[1]

    @property
    def width(self) -> int:
        return self.masks.shape[2]

    @classmethod
    def empty(cls, height: int, width: int) -> "ImageMasks":
        """No masks for an image of the given size."""
        return cls(
            masks=np.zeros((0, height, width), bool),
            level=np.zeros(0, np.int8),
            predicted_iou=np.zeros(0, np.float32),
            stability=np.zeros(0, np.float32),
            bbox=np.zeros((0, 4), np.int32),
            area=np.zeros(0, np.int64),
        )
