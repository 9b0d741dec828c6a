"""Bit-packed masks: 8 pixels per byte, so a VOC image's ~100 masks take ~2 MB instead of 19 MB.

The numpy pair is the storage format (``np.packbits`` order); the torch pair produces the same bytes on
any device, so the fast generator can hold thousands of candidate masks on the GPU at 1/8 of their size.
"""
from __future__ import annotations

import numpy as np
import torch

_BIT_WEIGHTS = (128, 64, 32, 16, 8, 4, 2, 1)


def pack_masks(masks: np.ndarray) -> np.ndarray:
    """Pack bool ``(N, H, W)`` masks into uint8 ``(N, ceil(H*W/8))`` (row-major, ``np.packbits`` order)."""
    masks = np.asarray(masks, dtype=bool)
    if masks.ndim != 3:
        raise ValueError(f"pack_masks expects (N, H, W) masks, got shape {masks.shape}")
    return np.packbits(masks.reshape(masks.shape[0], masks.shape[1] * masks.shape[2]), axis=1)


def _check_packed_shape(shape: tuple[int, ...], height: int, width: int) -> None:
    n_bytes = -(-height * width // 8)
    if len(shape) != 2 or shape[1] != n_bytes:
        raise ValueError(
            f"packed masks of shape {tuple(shape)} do not fit a {height}x{width} image (expected (N, {n_bytes}))"
        )


def unpack_masks(packed: np.ndarray, height: int, width: int) -> np.ndarray:
    """Inverse of :func:`pack_masks`: uint8 ``(N, ceil(H*W/8))`` -> bool ``(N, H, W)``."""
    packed = np.asarray(packed, dtype=np.uint8)
    _check_packed_shape(packed.shape, height, width)
    flat = np.unpackbits(packed, axis=1, count=height * width)
    return flat.reshape(packed.shape[0], height, width).astype(bool)


def pack_masks_torch(masks: torch.Tensor) -> torch.Tensor:
    """:func:`pack_masks` on a bool ``(N, H, W)`` tensor, on its device; same bytes as ``np.packbits``."""
    if masks.ndim != 3:
        raise ValueError(f"pack_masks_torch expects (N, H, W) masks, got shape {tuple(masks.shape)}")
    n, pixels = masks.shape[0], masks.shape[1] * masks.shape[2]
    flat = masks.reshape(n, pixels).to(torch.uint8)
    pad = -pixels % 8
    if pad:
        flat = torch.nn.functional.pad(flat, (0, pad))
    weights = torch.tensor(_BIT_WEIGHTS, dtype=torch.uint8, device=masks.device)
    return (flat.view(n, flat.shape[1] // 8, 8) * weights).sum(dim=2, dtype=torch.uint8)


def unpack_masks_torch(packed: torch.Tensor, height: int, width: int) -> torch.Tensor:
    """Inverse of :func:`pack_masks_torch`: uint8 ``(N, ceil(H*W/8))`` -> bool ``(N, H, W)``."""
    _check_packed_shape(tuple(packed.shape), height, width)
    weights = torch.tensor(_BIT_WEIGHTS, dtype=torch.uint8, device=packed.device)
    bits = (packed[:, :, None] & weights) != 0
    return bits.reshape(packed.shape[0], packed.shape[1] * 8)[:, : height * width].reshape(packed.shape[0], height, width)
