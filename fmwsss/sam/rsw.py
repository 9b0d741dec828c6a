"""Rock-sand-water (RSW) filter: keep part masks only where no whole-object mask already covers them.

FMA-WSSS (method.md §9 step 6) calls whole masks rocks, parts sand and sub-parts water: the container starts
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


def _max_cover(flat: torch.Tensor, query: torch.Tensor, container: torch.Tensor, chunk: int) -> torch.Tensor:
    """max over container masks k of |m ∩ k| for each query mask m, as chunked float matmuls."""
    best = torch.zeros(len(query), dtype=torch.float32, device=flat.device)
    for i in range(0, len(query), chunk):
        rows = flat[query[i : i + chunk]].float()
        for j in range(0, len(container), chunk):
            inter = rows @ flat[container[j : j + chunk]].float().T
            best[i : i + chunk] = torch.maximum(best[i : i + chunk], inter.max(dim=1).values)
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
    flat = masks_t.flatten(1).bool()
    area = flat.sum(dim=1).clamp(min=1).float()
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
        kept = query[_max_cover(flat, query, container, chunk) / area[query] < thresh]
        keep[kept] = True
        container = torch.cat([container, kept])
    return keep.cpu().numpy()
