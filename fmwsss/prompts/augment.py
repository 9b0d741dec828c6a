"""Training augmentation for prompt learning (docs/method.md §5), in the reference order.

colour jitter -> random-range rescale (long side L in {288..480}, short side kept >= 224) -> random 224 crop
-> horizontal flip. Label maps (segmentation prompts) follow every geometric step with nearest-neighbour.
Every draw comes from the ``np.random.Generator`` passed in, so a (seed, iteration, sample) triple fixes
the result.
"""
from __future__ import annotations

from dataclasses import dataclass

import cv2
import numpy as np


@dataclass(frozen=True)
class AugConfig:
    long_side: tuple[int, int] = (288, 480)  # inclusive integer range of the drawn long side
    crop: int = 224  # also the minimum short side, so no padding is ever needed
    flip_p: float = 0.5
    jitter_p: float = 0.5  # probability of each colour step
    brightness: float = 32.0  # additive, on 0..255
    contrast: tuple[float, float] = (0.5, 1.5)
    saturation: tuple[float, float] = (0.5, 1.5)
    hue: int = 18  # on OpenCV's 0..180 hue scale (= +-36 degrees)


def color_jitter(rgb: np.ndarray, rng: np.random.Generator, cfg: AugConfig) -> np.ndarray:
    """Brightness, contrast, saturation, hue, each applied with probability ``jitter_p`` (mmseg-style)."""
    img = rgb.astype(np.float32)
    if rng.random() < cfg.jitter_p:
        img = img + rng.uniform(-cfg.brightness, cfg.brightness)
    if rng.random() < cfg.jitter_p:
        img = img * rng.uniform(*cfg.contrast)
    img = np.clip(img, 0, 255).astype(np.uint8)
    do_sat, do_hue = rng.random() < cfg.jitter_p, rng.random() < cfg.jitter_p
    if do_sat or do_hue:
        hsv = cv2.cvtColor(img, cv2.COLOR_RGB2HSV).astype(np.float32)
        if do_sat:
            hsv[..., 1] = np.clip(hsv[..., 1] * rng.uniform(*cfg.saturation), 0, 255)
        if do_hue:
            hsv[..., 0] = np.mod(hsv[..., 0] + rng.integers(-cfg.hue, cfg.hue + 1), 180)
        img = cv2.cvtColor(hsv.astype(np.uint8), cv2.COLOR_HSV2RGB)
    return img


def random_rescale(rgb: np.ndarray, label: np.ndarray | None, rng: np.random.Generator, cfg: AugConfig):
    """Scale by r = max(L / long side, crop / short side), L drawn uniformly from the integer range."""
    h, w = rgb.shape[:2]
    target = int(rng.integers(cfg.long_side[0], cfg.long_side[1] + 1))
    r = max(target / max(h, w), cfg.crop / min(h, w))
    size = (max(int(round(w * r)), cfg.crop), max(int(round(h * r)), cfg.crop))
    rgb = cv2.resize(rgb, size, interpolation=cv2.INTER_CUBIC)
    if label is not None:
        label = cv2.resize(label, size, interpolation=cv2.INTER_NEAREST)
    return rgb, label


def random_crop_flip(rgb: np.ndarray, label: np.ndarray | None, rng: np.random.Generator, cfg: AugConfig):
    h, w = rgb.shape[:2]
    y, x = int(rng.integers(0, h - cfg.crop + 1)), int(rng.integers(0, w - cfg.crop + 1))
    rgb = rgb[y:y + cfg.crop, x:x + cfg.crop]
    label = label[y:y + cfg.crop, x:x + cfg.crop] if label is not None else None
    if rng.random() < cfg.flip_p:
        rgb = rgb[:, ::-1]
        label = label[:, ::-1] if label is not None else None
    return np.ascontiguousarray(rgb), (np.ascontiguousarray(label) if label is not None else None)


def augment(rgb: np.ndarray, label: np.ndarray | None, rng: np.random.Generator, cfg: AugConfig = AugConfig()):
    """The whole pipeline of docs/method.md §5 on uint8 RGB (H, W, 3) and an optional label map (H, W) -> 224 x 224
    crops."""
    rgb = color_jitter(rgb, rng, cfg)
    rgb, label = random_rescale(rgb, label, rng, cfg)
    return random_crop_flip(rgb, label, rng, cfg)
