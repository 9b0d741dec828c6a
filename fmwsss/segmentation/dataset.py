"""Training samples for the segmenter: counter-based sampling and augmentation, so resume is bit-identical.

Sample ``(iteration, slot)`` draws its image from the epoch permutation of ``(seed, epoch)`` (random sampler,
drop_last) and its augmentation from ``(seed, iteration, slot)``: the whole random state at iteration k is
``(seed, k)``, whatever the number of loader workers or where a run was interrupted.
Augmentation (mmseg-style): random rescale, optional colour jitter, pad (image with the mean colour =
0 after normalisation, label with ``IGNORE``), random crop, random horizontal flip.
"""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Iterator, Sequence

import cv2
import numpy as np
import torch
from torch.utils.data import Dataset, Sampler

from fmwsss.data.images import load_rgb
from fmwsss.data.palette import load_label_png

IGNORE = 255
IMAGENET_MEAN = np.array([0.485, 0.456, 0.406], np.float32)
IMAGENET_STD = np.array([0.229, 0.224, 0.225], np.float32)
"""The normalisation of torchvision's ImageNet weight enums (also used for the random-init tiny model)."""


@dataclass(frozen=True)
class AugSettings:
    """Training augmentation, from the ``segmenter:`` settings."""

    crop: int  # square crop side; smaller images are padded (label IGNORE)
    scale_range: tuple[float, float]  # random rescale factor range; (1, 1) turns it off
    flip: bool  # random horizontal flip with p = 0.5
    color_jitter: float  # brightness/contrast/saturation factors from [1 - s, 1 + s]; 0 turns it off

    @classmethod
    def from_settings(cls, settings: dict) -> "AugSettings":
        lo, hi = settings["scale_range"]
        if not 0 < lo <= hi:
            raise ValueError(f"segmenter.scale_range: need 0 < low <= high, got {settings['scale_range']}")
        return cls(int(settings["crop"]), (float(lo), float(hi)), bool(settings["flip"]),
                   float(settings["color_jitter"]))


def normalize(rgb: np.ndarray) -> np.ndarray:
    """uint8 (H, W, 3) -> float32 (3, H, W) ImageNet-normalised."""
    return np.ascontiguousarray(((rgb.astype(np.float32) / 255.0 - IMAGENET_MEAN) / IMAGENET_STD).transpose(2, 0, 1))


def _jitter(rgb: np.ndarray, strength: float, rng: np.random.Generator) -> np.ndarray:
    """Brightness, contrast and saturation scaled by factors drawn from [1 - strength, 1 + strength]."""
    b, c, s = rng.uniform(1.0 - strength, 1.0 + strength, size=3)
    x = rgb.astype(np.float32) * b
    x = (x - x.mean()) * c + x.mean()
    gray = x @ np.array([0.299, 0.587, 0.114], np.float32)
    x = (x - gray[..., None]) * s + gray[..., None]
    return np.clip(np.rint(x), 0, 255).astype(np.uint8)


def augment(rgb: np.ndarray, label: np.ndarray, rng: np.random.Generator,
            aug: AugSettings) -> tuple[np.ndarray, np.ndarray]:
    """One training sample: float32 (3, crop, crop) normalised image and uint8 (crop, crop) label."""
    scale = rng.uniform(*aug.scale_range)
    if scale != 1.0:
        h, w = label.shape
        size = (max(1, round(w * scale)), max(1, round(h * scale)))
        rgb = cv2.resize(rgb, size, interpolation=cv2.INTER_LINEAR)
        label = cv2.resize(label, size, interpolation=cv2.INTER_NEAREST)
    if aug.color_jitter > 0:
        rgb = _jitter(rgb, aug.color_jitter, rng)
    image = normalize(rgb)
    h, w = label.shape
    ph, pw = max(aug.crop - h, 0), max(aug.crop - w, 0)
    image = np.pad(image, ((0, 0), (0, ph), (0, pw)))
    label = np.pad(label, ((0, ph), (0, pw)), constant_values=IGNORE)
    y = int(rng.integers(0, label.shape[0] - aug.crop + 1))
    x = int(rng.integers(0, label.shape[1] - aug.crop + 1))
    image, label = image[:, y:y + aug.crop, x:x + aug.crop], label[y:y + aug.crop, x:x + aug.crop]
    if aug.flip and rng.random() < 0.5:
        image, label = image[:, :, ::-1], label[:, ::-1]
    return np.ascontiguousarray(image), np.ascontiguousarray(label)


def item_index(iteration: int, slot: int, n_items: int, batch_size: int, seed: int) -> int:
    """Random sampler with drop_last: the epoch's permutation from (seed, epoch), consecutive batches."""
    per_epoch = n_items // batch_size
    epoch, pos = divmod(iteration, per_epoch)
    order = np.random.default_rng([seed, epoch]).permutation(n_items)
    return int(order[pos * batch_size + slot])


class PseudoLabelDataset(Dataset):
    """Indexed by ``(iteration, slot)``; items are ``(id, image path, label png path)``.

    Returns ``(image float32 (3, crop, crop), label int64 (crop, crop))``. Label values other than
    ``0..num_classes-1`` and ``IGNORE`` raise ``ValueError`` naming the file.
    """

    def __init__(self, items: Sequence[tuple[str, str | Path, str | Path]], num_classes: int, batch_size: int,
                 seed: int, aug: AugSettings) -> None:
        if len(items) < batch_size:
            raise ValueError(f"{len(items)} training items < segmenter.batch_size {batch_size}")
        self.items, self.num_classes, self.batch_size, self.seed, self.aug = items, num_classes, batch_size, seed, aug

    def __len__(self) -> int:
        return len(self.items)

    def load(self, index: int) -> tuple[np.ndarray, np.ndarray]:
        """The raw (RGB, label) pair of item ``index``, checked."""
        image_id, image_path, label_path = self.items[index]
        rgb, label = load_rgb(image_path), load_label_png(label_path)
        if label.shape != rgb.shape[:2]:
            raise ValueError(f"{label_path}: label is {label.shape}, image {image_path} is {rgb.shape[:2]}")
        bad = (label >= self.num_classes) & (label != IGNORE)
        if bad.any():
            raise ValueError(f"{label_path}: labels {np.unique(label[bad]).tolist()} outside "
                             f"0..{self.num_classes - 1} and void {IGNORE}")
        return rgb, label

    def __getitem__(self, key: tuple[int, int]) -> tuple[torch.Tensor, torch.Tensor]:
        iteration, slot = key
        rgb, label = self.load(item_index(iteration, slot, len(self.items), self.batch_size, self.seed))
        image, label = augment(rgb, label, np.random.default_rng([self.seed, iteration, slot]), self.aug)
        return torch.from_numpy(image), torch.from_numpy(label.astype(np.int64))


class IterationSampler(Sampler):
    """Yields the ``(iteration, slot)`` keys of iterations ``start..stop-1`` in order, ``slots`` of each
    (default all ``batch_size``; a data-parallel rank takes its contiguous share): batch them by ``len(slots)``."""

    def __init__(self, start: int, stop: int, batch_size: int, slots: range | None = None) -> None:
        self.start, self.stop = start, stop
        self.slots = range(batch_size) if slots is None else slots

    def __iter__(self) -> Iterator[tuple[int, int]]:
        return ((it, slot) for it in range(self.start, self.stop) for slot in self.slots)

    def __len__(self) -> int:
        return (self.stop - self.start) * len(self.slots)
