"""Rock-sand-water (RSW) filter: keep part masks only where no whole-object mask already covers them.

FMA-WSSS (docs/method.md §9 step 6) calls whole masks rocks, parts sand and sub-parts water: the container starts
with every level-2 mask; each level-1 mask, then each level-0 mask, is kept iff at most ``thresh`` of it lies
inside any single container mask, and the kept masks of a level join the container only after the whole
level is checked (masks of one level are never compared with each other). An empty container adopts the
current level whole.
"""
from __future__ import annotations

import numpy as np
import torch


def _as_tensor(x: np.ndarray | torch.Tensor) -> torch.Tensor:
    return x if isinstance(x, torch.Tensor) else torch.from_numpy(np.ascontiguousarray(x))


def _boxes(masks: torch.Tensor) -> torch.Tensor:
    """(N, 4) int64 ``y0, y1, x0, x1`` (end-exclusive) of bool ``(N, H, W)`` masks; empty masks get zeros."""
    height, width = masks.shape[1:]
    rows, cols = masks.any(dim=2), masks.any(dim=1)
    y0 = rows.int().argmax(dim=1)
    y1 = height - rows.flip(1).int().argmax(dim=1)
    x0 = cols.int().argmax(dim=1)
    x1 = width - cols.flip(1).int().argmax(dim=1)
    boxes = torch.stack([y0, y1, x0, x1], dim=1)
    return torch.where(rows.any(dim=1)[:, None], boxes, torch.zeros_like(boxes))


def _z_order(boxes: torch.Tensor) -> torch.Tensor:
    """Interleaved bits of the box centres (a Z-order curve): neighbours in it are close in the image."""
    y = ((boxes[:, 0] + boxes[:, 1]) // 2).clamp(min=0)
    x = ((boxes[:, 2] + boxes[:, 3]) // 2).clamp(min=0)
    code = torch.zeros_like(y)
    for bit in range(16):
        code |= ((x >> bit) & 1) << (2 * bit) | ((y >> bit) & 1) << (2 * bit + 1)
    return code


def _max_cover(
    masks: torch.Tensor, boxes: torch.Tensor, query: torch.Tensor, container: torch.Tensor, chunk: int
) -> torch.Tensor:
    """max over container masks k of |m ∩ k| for each query mask m, as chunked float matmuls.

    Only pixels inside a chunk's union box can intersect its masks, and only containers whose box meets
    that window can contribute, so each product runs on the window alone; queries are taken in Z-order
    of their box centres so that a chunk's window stays small. Counts stay exact integers in float32.
    """
    best = torch.zeros(len(query), dtype=torch.float32, device=masks.device)
    order = torch.argsort(_z_order(boxes[query]))
    container_boxes = boxes[container]
    for i in range(0, len(query), chunk):
        positions = order[i : i + chunk]
        rows_idx = query[positions]
        qb = boxes[rows_idx]
        y0, y1 = int(qb[:, 0].min()), int(qb[:, 1].max())
        x0, x1 = int(qb[:, 2].min()), int(qb[:, 3].max())
        if y1 <= y0 or x1 <= x0:
            continue
        meets = ((container_boxes[:, 0] < y1) & (container_boxes[:, 1] > y0)
                 & (container_boxes[:, 2] < x1) & (container_boxes[:, 3] > x0))
        candidates = container[meets]
        if len(candidates) == 0:
            continue
        rows = masks[rows_idx, y0:y1, x0:x1].reshape(len(rows_idx), -1).float()
        cover = torch.zeros(len(rows_idx), dtype=torch.float32, device=masks.device)
        for j in range(0, len(candidates), chunk):
            cols = masks[candidates[j : j + chunk], y0:y1, x0:x1].reshape(-1, rows.shape[1]).float()
            cover = torch.maximum(cover, (rows @ cols.T).max(dim=1).values)
        best[positions] = cover
    return best


def rock_sand_water(
    masks: np.ndarray | torch.Tensor,
    levels: np.ndarray | torch.Tensor,
    thresh: float = 0.3,
    chunk: int = 50,
) -> np.ndarray:
    """Return ``keep`` bool ``(N,)`` for bool masks ``(N, H, W)`` with levels in {0, 1, 2}.

    ``chunk`` masks per side go into one intersection matmul: memory ~ ``2 * chunk * H * W`` floats, so it
    trades memory for speed and never changes the result. Runs on the masks' device.
    """
    if chunk < 1:
        raise ValueError(f"rsw chunk must be >= 1, got {chunk}")
    masks_t = _as_tensor(masks)
    levels_t = _as_tensor(levels).to(device=masks_t.device, dtype=torch.long).reshape(-1)
    n = masks_t.shape[0]
    if levels_t.numel() != n:
        raise ValueError(f"rock_sand_water: {n} masks but {levels_t.numel()} levels")
    if n and not bool(((levels_t >= 0) & (levels_t <= 2)).all()):
        raise ValueError(f"rock_sand_water: levels must be 0, 1 or 2, got {sorted(set(levels_t.tolist()))}")
    masks_t = masks_t.bool()
    boxes = _boxes(masks_t)
    area = masks_t.flatten(1).sum(dim=1).clamp(min=1).float()
    keep = torch.zeros(n, dtype=torch.bool, device=masks_t.device)
    container = torch.nonzero(levels_t == 2).flatten()
    keep[container] = True
    for level in (1, 0):
        query = torch.nonzero(levels_t == level).flatten()
        if len(query) == 0:
            continue
        if len(container) == 0:
            keep[query] = True
            container = query
            continue
        kept = query[_max_cover(masks_t, boxes, query, container, chunk) / area[query] < thresh]
        keep[kept] = True
        container = torch.cat([container, kept])
    return keep.cpu().numpy()
