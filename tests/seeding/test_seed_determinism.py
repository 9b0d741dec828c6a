"""Seeds are byte-identical on 1, 2 and 4 CPU threads, and ties are broken by the documented rule.

float32 ``F.interpolate`` on CPU gives other last bits for other thread counts (seen here for 3-channel
inputs), and the min-max normalisations turn them into other labels; the seeding code resizes in an
order-fixed float64 form and sums in integers instead (see ``fmwsss.seeding.sams``). Inputs: every image of
the VOC sample (masks = connected GT regions, their dilations and image quarters; CAMs at patch resolution
from the GT, with a third class copying the first so one mask is best for two classes, at tiny magnitudes),
plus synthetic near-tie cases (odd sizes, CAMs whose range is a few float32 steps of their offset).
"""
from __future__ import annotations

import json
import math

import cv2
import numpy as np
import pytest
import torch
from PIL import Image

from fmwsss.seeding import argmax_seed, sams_seed
from fmwsss.seeding.argmax import EPS, background_threshold
from tests.samples import sample_dir

THREADS = (1, 2, 4)


def _voc_case(gt: np.ndarray, tags: list[int], magnitude: float):
    h, w = gt.shape
    masks, levels = [], []
    for value in np.unique(gt):
        if value == 255:
            continue
        n, comp = cv2.connectedComponents((gt == value).astype(np.uint8), connectivity=8)
        for k in range(1, n):
            region = comp == k
            masks += [region, cv2.dilate(region.astype(np.uint8), np.ones((15, 15), np.uint8)) > 0]
            levels += [2, 1]
    for ys in (slice(0, h // 2), slice(h // 2, h)):
        for xs in (slice(0, w // 2), slice(w // 2, w)):
            quarter = np.zeros((h, w), bool)
            quarter[ys, xs] = True
            masks.append(quarter)
            levels.append(0)
    grid = (math.ceil(h / 16), math.ceil(w / 16))
    maps = [cv2.resize((gt == c).astype(np.float32), grid[::-1], interpolation=cv2.INTER_AREA) for c in tags]
    maps.append(maps[0])  # a third class (id 21 here, never a VOC id) whose best mask is the first class's
    cams = np.stack(maps[:3] if len(maps) >= 3 else maps + [maps[0]] * (3 - len(maps))) * magnitude - magnitude / 4
    classes = np.array((list(tags) + [21, 22])[:3])
    return np.stack(masks), np.array(levels), cams.astype(np.float32), classes, (h, w)


def _synthetic_cases():
    rng = np.random.default_rng(7)
    for h, w in ((97, 131), (313, 419), (61, 500), (5, 3)):
        grid = (math.ceil(h / 16), math.ceil(w / 16))
        noise = rng.standard_normal((3, *grid))
        cams = (5.0 + 2e-6 * noise).astype(np.float32)  # a range of a few float32 steps at 5.0
        cams[2] = cams[0]  # one mask best for two classes, exactly
        masks = np.zeros((12, h, w), bool)
        for m in masks:
            y, x = rng.integers(0, h), rng.integers(0, w)
            m[y:y + rng.integers(1, h + 1), x:x + rng.integers(1, w + 1)] = True
        yield masks, rng.integers(0, 3, 12), cams, np.array([3, 9, 14]), (h, w)


@pytest.fixture(scope="module")
def cases():
    folder = sample_dir("voc_sample")
    tags = json.loads((folder / "labels.json").read_text())
    out = []
    for n, (image_id, classes) in enumerate(sorted(tags.items())):
        gt = np.array(Image.open(folder / "SegmentationClass" / f"{image_id}.png"))
        # the argmax seed costs as much as SAMS on these: every other VOC image, every synthetic case
        out.append((*_voc_case(gt, sorted(classes), 10.0 ** (-9 + n % 7)), n % 2 == 1))
    return out + [(*case, True) for case in _synthetic_cases()]


def _all_seeds(cases, sams=sams_seed, argmax=argmax_seed) -> list[bytes]:
    out = []
    for masks, levels, cams, classes, size, with_argmax in cases:
        seed, info = sams(masks, levels, cams, classes, size, 0.7, device="cpu")
        out += [seed.tobytes(), info.label.tobytes(), info.confidence.tobytes()]
        out.append(argmax(cams, classes, size, 1.0, device="cpu").tobytes() if with_argmax else b"")
    return out


def seeds_per_thread_count(cases, **functions) -> dict[int, list[bytes]]:
    before = torch.get_num_threads()
    try:
        result = {}
        for t in THREADS:
            torch.set_num_threads(t)
            assert torch.get_num_threads() == t
            result[t] = _all_seeds(cases, **functions)
        return result
    finally:
        torch.set_num_threads(before)


@pytest.mark.slow
def test_seeds_identical_on_1_2_4_threads(cases):
    per_count = seeds_per_thread_count(cases)
    differing = [t for t in THREADS[1:] if per_count[t] != per_count[1]]
    assert not differing, f"seeds differ from 1 thread with {differing} threads"
    seeds = [np.frombuffer(b, np.uint8) for b in per_count[1][0::4]]
    assert sum((s > 0).any() for s in seeds) >= len(seeds) // 2  # not a trivial all-background comparison


def test_one_mask_best_for_two_classes_goes_to_the_larger_spread_then_the_lower_id():
    """Masks A = pixels 0-1, B = 2-3, C = 4-5 of a 1 x 6 image; CAMs at full resolution (resize = identity).

    X = [1, 1, 0, 0, 0, 0]: spatially normalised means A = 1/(1+e), B = C = 0, spread 1/(1+e).
    Y = [1, .6, .4, .4, .4, .4]: lo .4, hi 1: A = (.8 - .4)/(.6 + e), B = C = 0, spread .4/(.6+e).
    A is the best mask of both; its across-mask score is spread/(spread + e): X's is larger.
    """
    masks = np.zeros((3, 1, 6), bool)
    for k in range(3):
        masks[k, 0, 2 * k:2 * k + 2] = True
    x = np.float32([[1, 1, 0, 0, 0, 0]])
    y = np.float32([[1, .6, .4, .4, .4, .4]])
    levels = np.zeros(3, int)
    spread_x, spread_y = 1 / (1 + EPS), (0.8 - 0.4) / (0.6 + EPS)
    _, info = sams_seed(masks, levels, np.stack([y, x]), [1, 2], (1, 6), 0.7)
    assert info.label.tolist() == [2, 0, 0]  # the larger spread wins although its id is higher
    assert info.confidence[0] == pytest.approx(spread_x / (spread_x + EPS), rel=1e-12)
    assert spread_y / (spread_y + EPS) < info.confidence[0]
    _, info = sams_seed(masks, levels, np.stack([x, x]), [1, 2], (1, 6), 0.7)
    assert info.label.tolist() == [1, 0, 0]  # equal spreads: an exact tie, the first listed class wins
    _, info = sams_seed(masks, levels, np.stack([x, x]), [5, 2], (1, 6), 0.7)
    assert info.label.tolist() == [5, 0, 0]


@pytest.mark.parametrize("power, root", [(1.0, 0.5), (2.0, (3 - math.sqrt(5)) / 2)])
def test_argmax_background_threshold_is_the_root(power, root):
    t = background_threshold(power)
    assert t == pytest.approx(root, abs=1e-15)
    assert (1 - t) ** power >= t and (1 - np.nextafter(t, 1)) ** power < np.nextafter(t, 1)
    # scores x / (1 + 1e-7) on a 1 x 3 image: below the root -> background, above -> the class
    below, above = root - 0.002, root + 0.002
    for score, label in ((below, 0), (above, 4)):
        assert argmax_seed(np.float32([[[0.0, score, 1.0]]]), [4], (1, 3), power).tolist() == [[0, label, 4]]
