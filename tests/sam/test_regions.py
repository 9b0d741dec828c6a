"""clean_mask must equal segment-anything's holes-then-islands clean-up bit for bit, flag included."""
from __future__ import annotations

import cv2
import numpy as np
import pytest
from segment_anything.utils.amg import remove_small_regions

from fmwsss.sam import regions
from fmwsss.sam.regions import clean_mask


def stock(mask: np.ndarray, min_area: int) -> tuple[np.ndarray, bool]:
    m, c1 = remove_small_regions(mask, min_area, mode="holes")
    m, c2 = remove_small_regions(m, min_area, mode="islands")
    return m, c1 or c2


def assert_matches(mask: np.ndarray, min_area: int, label: str = "") -> None:
    before = mask.copy()
    got, changed = clean_mask(mask, min_area)
    want, want_changed = stock(mask, min_area)
    assert np.array_equal(mask, before), f"input modified {label}"
    assert got.dtype == np.bool_ and got.shape == mask.shape, label
    assert changed == want_changed, f"flag {label} min_area={min_area}"
    assert np.array_equal(got, want), f"mask {label} min_area={min_area}"


@pytest.fixture
def fallbacks(monkeypatch: pytest.MonkeyPatch) -> list[int]:
    """Records (by min_area) each time clean_mask falls back to the full-image stock call."""
    calls: list[int] = []
    original = regions._stock

    def counting(mask: np.ndarray, min_area: int) -> tuple[np.ndarray, bool]:
        calls.append(min_area)
        return original(mask, min_area)

    monkeypatch.setattr(regions, "_stock", counting)
    return calls


def blobs(rng: np.random.Generator, h: int, w: int) -> np.ndarray:
    """Thresholded smoothed noise of random scale and density."""
    noise = cv2.GaussianBlur(rng.standard_normal((h, w)).astype(np.float32), (0, 0), rng.uniform(0.5, 4))
    return noise > np.quantile(noise, rng.uniform(0.05, 0.95))


def random_mask(rng: np.random.Generator) -> np.ndarray:
    kind = int(rng.integers(8))
    # Some VOC-size images, but not for specks: stock's islands pass is quadratic in the island count.
    voc_size = kind != 5 and rng.random() < 0.03
    h, w = (375, 500) if voc_size else (int(rng.integers(1, 70)), int(rng.integers(1, 90)))
    if kind == 0:
        return blobs(rng, h, w)
    if kind == 1:  # mostly full, with small holes anywhere (border included)
        mask = np.ones((h, w), bool)
        for _ in range(int(rng.integers(1, 8))):
            y, x, s = int(rng.integers(h)), int(rng.integers(w)), int(rng.integers(1, 4))
            mask[y : y + s, x : x + s] = False
        return mask
    if kind == 2:  # ellipse with small cuts at random pixels, some on its edge (notches open to the margin)
        mask = np.zeros((h, w), np.uint8)
        centre = (int(rng.integers(w)), int(rng.integers(h)))
        axes = (int(rng.integers(1, w + 1)), int(rng.integers(1, h + 1)))
        cv2.ellipse(mask, centre, axes, float(rng.uniform(0, 180)), 0, 360, 1, -1)
        mask = mask.astype(bool)
        ys, xs = np.nonzero(mask)
        for i in rng.integers(len(ys), size=min(len(ys), 6)):
            mask[ys[i] : ys[i] + int(rng.integers(1, 3)), xs[i] : xs[i] + int(rng.integers(1, 3))] = False
        return mask
    if kind == 3:  # thin lines and outlines (rings enclose holes of every size)
        mask = np.zeros((h, w), np.uint8)
        for _ in range(int(rng.integers(1, 4))):
            p, q = (int(rng.integers(w)), int(rng.integers(h))), (int(rng.integers(w)), int(rng.integers(h)))
            if rng.random() < 0.5:
                cv2.line(mask, p, q, 1, 1)
            else:
                cv2.rectangle(mask, p, q, 1, 1)
        return mask.astype(bool)
    if kind == 4:  # blobs glued to some image borders
        mask = blobs(rng, h, w)
        for side in np.flatnonzero(rng.random(4) < 0.5):
            band = int(rng.integers(1, 4))
            [mask[:band], mask[-band:], mask[:, :band], mask[:, -band:]][side][...] = True
        return mask
    if kind == 5:  # sparse specks: many tiny islands, often all small with equal sizes
        return rng.random((h, w)) < rng.uniform(0.001, 0.05)
    if kind == 6:  # a single pixel
        mask = np.zeros((h, w), bool)
        mask[rng.integers(h), rng.integers(w)] = True
        return mask
    return np.full((h, w), bool(rng.integers(2)))  # empty or full


def test_matches_stock_on_random_masks(fallbacks: list[int]) -> None:
    cases = 0
    for seed in range(400):
        rng = np.random.default_rng(seed)
        mask = random_mask(rng)
        h, w = mask.shape
        for min_area in (0, 1, 2, 3, 5, 10, 25, 100, 400, h * w - 1, h * w, h * w + 1, 10 * h * w):
            assert_matches(mask, min_area, f"seed={seed}")
            cases += 1
    assert len(fallbacks) < cases // 4  # the window path does the work


def test_empty_full_and_single_pixel_edge_sizes() -> None:
    for h, w in ((1, 1), (1, 7), (6, 1), (3, 4)):
        for fill in (False, True):
            for min_area in (0, 1, h * w, h * w + 1):
                assert_matches(np.full((h, w), fill), min_area, f"{h}x{w} fill={fill}")
    mask = np.zeros((5, 5), bool)
    mask[4, 4] = True
    for min_area in range(0, 30):
        assert_matches(mask, min_area, "corner pixel")


def test_fallback_when_outside_region_is_small_in_window(fallbacks: list[int]) -> None:
    # Mask = top 10 rows of a 40x30 image; the margin (3 rows) of complement touches the open bottom
    # edge with 90 px in-window < 100, while the true region below is 900 px: only the stock call knows.
    mask = np.zeros((40, 30), bool)
    mask[:10] = True
    mask[4, 5] = False  # a real small hole to fill
    assert_matches(mask, 100)
    assert fallbacks == [100]
    got, changed = clean_mask(mask, 100)
    assert changed and got[:10].all() and not got[10:].any()


def test_no_fallback_for_enclosed_holes(fallbacks: list[int]) -> None:
    mask = np.zeros((60, 80), bool)
    mask[10:40, 20:60] = True
    mask[15:17, 25:27] = False  # 4 px hole: filled
    mask[20:35, 30:50] = False  # 300 px hole: kept
    mask[50, 5] = True  # 1 px island: dropped
    assert_matches(mask, 100)
    assert fallbacks == []


def test_equal_size_small_islands_keep_stock_tie_winner(fallbacks: list[int]) -> None:
    # Box starts at an odd row: cv2 scans 2x2 blocks, so labelling the box alone would number the
    # island at (2, 1) first, while the full image numbers the one at (1, 6) first and keeps it.
    mask = np.zeros((8, 10), bool)
    mask[1, 6] = mask[2, 1] = True
    want, _ = stock(mask, 5)
    assert want[1, 6] and not want[2, 1]
    assert_matches(mask, 5, "parity tie")
    assert len(fallbacks) == 1
    # Ties of larger islands on the same and on different rows, and a unique largest (no fallback).
    for offset in range(4):
        mask = np.zeros((30, 40), bool)
        mask[offset + 3 : offset + 6, 20:23] = True
        mask[offset + 4 : offset + 7, 2:5] = True
        mask[offset + 10 : offset + 13, 10:13] = True
        assert_matches(mask, 50, f"tie offset={offset}")
        mask[offset + 15 : offset + 19, 30:34] = True  # 16 px: the unique largest small island
        fallbacks.clear()
        assert_matches(mask, 50, f"unique offset={offset}")
        assert fallbacks == []


def test_unchanged_mask_is_returned_as_is() -> None:
    mask = np.zeros((20, 20), bool)
    mask[5:15, 5:15] = True
    got, changed = clean_mask(mask, 10)
    assert got is mask and not changed
