"""A ``seeds_coarse`` / ``seeds_fine`` config section applied to one image: the one place that reads it."""
from __future__ import annotations

from typing import Any

import numpy as np
import torch

from fmwsss.seeding.argmax import ArrayLike, argmax_seed
from fmwsss.seeding.sams import sams_seed


def seed_image(section: dict[str, Any], cams: ArrayLike, classes: ArrayLike, image_size: tuple[int, int],
               masks: Any = None, device: str | torch.device | None = None) -> np.ndarray:
    """uint8 ``(H, W)`` seed: SAMS with ``section["gamma"]`` on ``masks`` (an object with ``masks`` and
    ``level``, e.g. :class:`fmwsss.sam.types.ImageMasks`; needed only for method ``sams``) or the argmax
    baseline with ``section["argmax_bg_power"]``."""
    if section["method"] == "sams":
        if masks is None:
            raise ValueError("seeding method sams needs the image's SAM masks")
        return sams_seed(masks.masks, masks.level, cams, classes, image_size, section["gamma"], device=device)[0]
    if section["method"] == "argmax":
        return argmax_seed(cams, classes, image_size, section["argmax_bg_power"], device=device)
    raise ValueError(f"unknown seeding method {section['method']!r}; expected sams or argmax")
