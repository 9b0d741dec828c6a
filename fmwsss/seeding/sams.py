"""SAMS: label every SAM mask from the CAMs, then paint the masks into a dense seed map (docs/method.md §10).

Per image: score = CAM resized to the image, clamped at 0 and min-max normalised per class over space (the
reference's ``norm_first`` path; the spatial min-max is a positive affine map per class, which the later
across-mask min-max cancels, but keeping it makes the 1e-7 epsilon act on the same scale as the
reference). ``a[c, s]`` = mean score of class c over the WHOLE mask s, overlaps included. Per class across
masks: min-max with the same epsilon (the reference's clamp at 0 first is a no-op here, as ``a >= 0``).
Background ``b = (1 - max_c a)^gamma``; label = argmax over ``[b, a_1..a_P]`` (first maximum wins), confidence =
that maximum. Masks are painted onto zeros in ascending (level, confidence) order, later overwriting
earlier, ties kept in input order (a stable sort, like the reference's ``sorted``). Uncovered pixels stay 0;
no ignore label.

Degenerate normalisation: with one mask, or when every mask has the same mean for a class, ``max == min``
and the reference's ``(x - min) / (max - min + 1e-7)`` gives 0 for that class on every mask, so those masks go
to background (``b = 1``) unless another class wins. fmwsss does the same, epsilon included, so seeds match
the reference; a single mask carries no evidence of *where* the class is, so background is the safe call.
Empty masks (area 0) paint nothing; they take no part in the min-max and get label 0, confidence 0.

How it runs: masks stay bit-packed (``np.packbits`` layout, bool inputs are packed first) and are processed
64 pixels at a time as int64 words (little-endian view of the bytes, as on x86 and CUDA). The whole-mask sums
come from runs: a run starts/ends where a mask's bit flips, found with word-wide shifts and XORs; a mask's
sum is then a difference of a per-class float64 cumulative sum at its run ends, so the cost is O(N*HW/64)
word ops plus O(runs), never an (N, HW) float matrix. The spatial min-max is applied to the (P, N) means
(it is affine, so this is exact up to rounding) instead of to P*HW pixels. Painting: in descending
priority, a cumulative OR of the packed masks gives, for each mask, the bits that no higher-priority mask
covers; those are disjoint, so summing them per label yields one packed bitmap per class, and only those
rows are unpacked. All heavy work is torch on ``device``; the O(N) decision logic runs in float64 numpy on
the host.

Determinism (one key, one seed, on any thread count and device): the CAM is resized in float64 by
:func:`fmwsss.seeding.argmax.resize_bilinear` (fixed-order elementwise ops, unlike float32
``F.interpolate``, whose last bits move with the CPU thread count), then each class is rounded to integers
with its largest value at 2**32 (a relative step of 2.3e-10, far below float32 CAM precision), so the
whole-mask sums are exact int64 sums whatever the summation order (at most 2**31 pixels). Everything after
runs on the host in float64.

Ties: between classes for one mask, the first maximum of ``[b, a_1..a_P]`` wins: background before any
class, then the class listed first in ``classes`` (callers pass them ascending). When one mask is the best
mask of two classes, each scores ``(hi - lo) / (hi - lo + 1e-7)`` in its across-mask min-max: the class
whose whole-mask means spread more (``hi - lo``, on the spatially normalised scale) scores higher and wins;
equal spreads tie exactly and go to the class listed first. The epsilon is the reference's, kept for this.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch
import torch.nn.functional as F

from fmwsss.devices import resolve_device
from fmwsss.seeding.argmax import EPS, ArrayLike, check_cams, resize_bilinear

_SHIFTS = torch.arange(7, -1, -1, dtype=torch.uint8)  # np.packbits order: first pixel in the high bit
_BITS = ((torch.arange(256)[:, None] >> _SHIFTS.long()) & 1).bool()  # byte value -> its 8 pixels
# Previous-pixel bit of every bit in a little-endian int64 word of packbits bytes: inside a byte it is the
# next higher bit; for a byte's top bit it is bit 0 of the byte before (15 bits lower; previous word for byte 0).
_INSIDE_BYTE = 0x7F7F7F7F7F7F7F7F
_TOP_NOT_FIRST = 0x8080808080808000 - (1 << 64)
_LEVELS = 2.0**32  # a class's largest resized CAM value, in the integer units of the whole-mask sums


@dataclass(frozen=True)
class SamsInfo:
    """Per-mask decisions, in the input order of the masks (``N`` entries each)."""

    label: np.ndarray  # uint8: dataset class id, 0 = background
    confidence: np.ndarray  # float64: the winning score
    score: np.ndarray  # float64 (N, P + 1): [b, a_1..a_P], normalised
    area: np.ndarray  # int64: pixels in each mask
    paint_order: np.ndarray  # int64: mask indices in painting order (first painted first)


def sams_seed(
    masks: ArrayLike,
    levels: ArrayLike,
    cams: ArrayLike,
    classes: ArrayLike,
    image_size: tuple[int, int],
    gamma: float,
    device: str | torch.device | None = None,
) -> tuple[np.ndarray, SamsInfo]:
    """Seed map uint8 ``(H, W)`` (0 = background, else a dataset class id) and the per-mask decisions.

    ``masks``: bool ``(N, H, W)`` or bit-packed uint8 ``(N, ceil(H*W/8))``; ``levels`` int ``(N,)``
    (0 sub-part, 1 part, 2 whole: higher paints later, so wins); ``cams`` float ``(P, h, w)`` at patch
    resolution; ``classes`` int ``(P,)`` dataset ids 1..C; ``gamma`` the background power (0.6 coarse, 0.7
    fine on VOC; lower gamma raises the background score of weakly activated masks).
    """
    device = resolve_device(device)
    height, width = (int(v) for v in image_size)
    words = _words(_packed_on_device(masks, height, width, device))
    n = words.shape[0]
    levels = np.asarray(levels.cpu() if torch.is_tensor(levels) else levels).reshape(-1).astype(np.int64)
    if levels.shape[0] != n:
        raise ValueError(f"levels has {levels.shape[0]} entries for {n} masks")
    p, class_ids = check_cams(cams, classes)

    if height * width >= 2**31:
        raise ValueError(f"image {height}x{width} has too many pixels for exact integer sums (< 2**31)")

    mask_id, start, end = _runs(words)
    area = torch.zeros(n, dtype=torch.int64, device=device).index_add_(0, mask_id, end - start)
    sums = torch.zeros((p, n), dtype=torch.int64, device=device)
    lo = hi = scale = np.zeros((p, 1))
    if p:
        x = resize_bilinear(cams, (height, width), device).clamp_min_(0).reshape(p, height * width)
        lo, hi = (v.cpu().numpy()[:, None] for v in torch.aminmax(x, dim=1))
        scale = np.divide(_LEVELS, hi, out=np.zeros_like(hi), where=hi > 0)  # hi -> 2**32 units
        cumsum = x.mul_(torch.as_tensor(scale, device=device)).round_().to(torch.int64).cumsum_(dim=1)
        del x
        before = torch.where(start > 0, cumsum[:, (start - 1).clamp_min(0)], 0)
        sums.index_add_(1, mask_id, cumsum[:, end - 1] - before)
    area = area.cpu().numpy()
    total = sums.cpu().numpy() / np.maximum(area, 1)
    mean = np.divide(total, scale, out=np.zeros_like(total), where=scale > 0)
    mean = (mean - lo) / (hi - lo + EPS)  # the reference's per-class spatial min-max

    info = _decide(mean, area, levels, class_ids, gamma)
    seed = _paint(words, info, height, width, device)
    return seed, info


def _packed_on_device(masks: ArrayLike, height: int, width: int, device: torch.device) -> torch.Tensor:
    """uint8 ``(N, ceil(HW/8))`` on ``device``, padding bits cleared; bool masks are packed here."""
    n_bytes = -(-height * width // 8)
    if not torch.is_tensor(masks):
        masks = np.asarray(masks)
    if masks.dtype in (np.bool_, torch.bool):
        if len(masks.shape) != 3 or tuple(masks.shape[1:]) != (height, width):
            raise ValueError(f"bool masks must be (N, {height}, {width}), got {tuple(masks.shape)}")
        if isinstance(masks, np.ndarray):  # numpy packs on the host far faster than a torch round trip
            return torch.from_numpy(np.packbits(masks.reshape(masks.shape[0], height * width), axis=1)).to(device)
        flat = masks.to(device).reshape(masks.shape[0], height * width).to(torch.uint8)
        flat = F.pad(flat, (0, 8 * n_bytes - height * width))
        return (flat.view(masks.shape[0], n_bytes, 8) << _SHIFTS.to(device)).sum(dim=2, dtype=torch.uint8)
    if masks.dtype not in (np.uint8, torch.uint8) or len(masks.shape) != 2 or masks.shape[1] != n_bytes:
        raise ValueError(
            f"masks must be bool (N, {height}, {width}) or bit-packed uint8 (N, {n_bytes}), "
            f"got {masks.dtype} {tuple(masks.shape)}"
        )
    packed = torch.as_tensor(masks, device=device).clone()
    if packed.shape[0] and height * width % 8:
        packed[:, -1] &= 0xFF << (8 - height * width % 8) & 0xFF
    return packed


def _words(packed: torch.Tensor) -> torch.Tensor:
    """int64 ``(N, n_words)`` view of the packed rows, zero-padded by at least one byte (closes final runs)."""
    n_words = packed.shape[1] // 8 + 1
    return F.pad(packed, (0, 8 * n_words - packed.shape[1])).view(torch.int64)


def _runs(words: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Runs of set pixels in each row: (mask index, start pixel, end pixel exclusive), int64 each."""
    previous = ((words >> 1) & _INSIDE_BYTE) | ((words << 15) & _TOP_NOT_FIRST)
    previous |= (F.pad(words[:, :-1], (1, 0)) >> 49) & 0x80
    flips = words ^ previous
    rows, cols = flips.nonzero(as_tuple=True)
    word_bytes = flips[rows, cols].view(torch.uint8).reshape(-1, 8)
    hit, byte = word_bytes.nonzero(as_tuple=True)
    which, bit = _BITS.to(words.device)[word_bytes[hit, byte].long()].nonzero(as_tuple=True)
    hit = hit[which]
    pixel = cols[hit] * 64 + byte[which] * 8 + bit
    mask_id = rows[hit]
    return mask_id[0::2], pixel[0::2], pixel[1::2]


def _decide(
    mean: np.ndarray, area: np.ndarray, levels: np.ndarray, class_ids: np.ndarray, gamma: float
) -> SamsInfo:
    """Whole-mask means -> normalised scores, labels, confidences and the painting order (all O(N*P))."""
    valid = area > 0
    a = np.zeros_like(mean)
    if valid.any():
        m = mean[:, valid]
        lo = m.min(axis=1, keepdims=True)
        hi = m.max(axis=1, keepdims=True)
        a[:, valid] = (m - lo) / (hi - lo + EPS)
    b = (1 - a.max(axis=0, initial=0.0)) ** gamma
    score = np.concatenate([b[None], a]).T  # (N, P + 1)
    idx = np.where(valid, score.argmax(axis=1), 0)
    confidence = np.where(valid, score[np.arange(len(idx)), idx], 0.0)
    label = np.concatenate([[0], class_ids]).astype(np.uint8)[idx]
    order = np.lexsort((confidence, levels))  # stable: equal keys keep input order
    return SamsInfo(label=label, confidence=confidence, score=score, area=area, paint_order=order)


def _paint(words: torch.Tensor, info: SamsInfo, height: int, width: int, device: torch.device) -> np.ndarray:
    """Paint in ``info.paint_order`` (later wins) without a per-mask loop; see the module docstring."""
    present = np.unique(info.label[info.label > 0])
    if present.size == 0:
        return np.zeros((height, width), np.uint8)
    top_first = torch.as_tensor(info.paint_order[::-1].copy(), device=device)
    x = words[top_first]
    covered = _cumulative_or(x)
    visible = x & ~F.pad(covered[:-1], (0, 0, 1, 0))  # bits of each mask that no higher-priority mask covers
    row = torch.as_tensor(np.searchsorted(present, info.label), device=device)[top_first]
    keep = torch.as_tensor(info.label > 0, device=device)[top_first]
    per_class = torch.zeros((present.size, x.shape[1]), dtype=torch.int64, device=device)
    per_class.index_add_(0, row[keep], visible[keep])  # disjoint bits: sum == OR, no carries
    bits = (per_class.view(torch.uint8)[:, : -(-height * width // 8), None] >> _SHIFTS.to(device)) & 1
    bits = bits.reshape(present.size, -1)[:, : height * width]
    ids = torch.as_tensor(present, dtype=torch.uint8, device=device)
    return (bits * ids[:, None]).amax(dim=0).reshape(height, width).cpu().numpy()


def _cumulative_or(x: torch.Tensor) -> torch.Tensor:
    """Inclusive prefix OR along dim 0 in log2(N) vectorised steps (torch has no cumulative bitwise OR)."""
    step = 1
    while step < x.shape[0]:
        x = torch.cat([x[:step], x[step:] | x[:-step]])
        step *= 2
    return x
