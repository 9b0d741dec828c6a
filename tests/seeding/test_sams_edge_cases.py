"""SAMS edge cases with known answers that tests/seeding/test_sams.py does not cover.

Already covered there: level priority, confidence order and input-order ties, uncovered pixels staying 0,
no masks / no classes, empty masks, packed vs bool vs tensor inputs on random cases. Here: a mask covering
the whole image, tiny images (1x1 up to 16x16, bit counts below and across a byte), packed inputs on these
edge cases, and a 2,000 x 2,000 image in bounded time and memory. CAMs are at image resolution unless said.
"""
from __future__ import annotations

import subprocess
import sys

import numpy as np
import pytest

from fmwsss.seeding import sams_seed


def all_forms(masks: np.ndarray) -> list[np.ndarray]:
    """The bool masks and their bit-packed form (what the shards store)."""
    return [masks, np.packbits(masks.reshape(len(masks), -1), axis=1)]


def seed_of(masks, levels, cams, classes, gamma=0.7):
    """Run SAMS on the bool and the packed form; assert they agree and return the seed and info."""
    size = masks.shape[1:]
    (seed, info), (packed_seed, packed_info) = (
        sams_seed(m, np.asarray(levels), np.asarray(cams, np.float32), np.asarray(classes), size, gamma)
        for m in all_forms(masks)
    )
    np.testing.assert_array_equal(packed_seed, seed)
    np.testing.assert_array_equal(packed_info.label, info.label)
    np.testing.assert_array_equal(packed_info.area, masks.sum(axis=(1, 2)))
    return seed, info


def test_whole_image_mask_alone_is_background():
    # one mask: max == min for every class, so a = 0, b = 1 -> background, even for a strong CAM
    h, w = 5, 7
    cams = np.zeros((1, h, w))
    cams[0, :2] = 50
    seed, info = seed_of(np.ones((1, h, w), bool), [2], cams, [12])
    assert info.label.tolist() == [0] and info.area.tolist() == [h * w] and not seed.any()


@pytest.mark.parametrize("whole_level", [0, 2])
def test_whole_image_mask_under_and_over_an_object(whole_level):
    # object = top-left 2x3 block with the CAM; the whole-image mask's mean is lower -> a = 0 -> background
    h, w = 6, 9
    obj = np.zeros((h, w), bool)
    obj[:2, :3] = True
    cams = obj[None].astype(np.float32)
    seed, info = seed_of(np.stack([np.ones((h, w), bool), obj]), [whole_level, 1], cams, [4])
    assert info.label.tolist() == [0, 4]
    expected = np.where(obj, 4, 0) if whole_level == 0 else np.zeros((h, w))  # level 2 paints over all
    np.testing.assert_array_equal(seed, expected)


def test_whole_image_mask_labelled_foreground_fills_the_image():
    # whole image (level 0) has the higher class mean than a small CAM-free hole (level 1): class everywhere
    # except the hole, which its own mask paints background
    h, w = 8, 8
    hole = np.zeros((h, w), bool)
    hole[5:, 5:] = True
    cams = np.where(hole, 0.0, 1.0)[None]
    seed, info = seed_of(np.stack([np.ones((h, w), bool), hole]), [0, 1], cams, [17])
    assert info.label.tolist() == [17, 0]
    np.testing.assert_array_equal(seed, np.where(hole, 0, 17))


@pytest.mark.parametrize("h, w", [(1, 1), (1, 3), (2, 2), (3, 5), (1, 9), (4, 4), (16, 16), (15, 17)])
def test_tiny_images(h, w):
    # left half -> class 7 (CAM 1 there), right part -> background; plus a lower-level mask over everything
    left = np.zeros((h, w), bool)
    left[:, : max(w // 2, 1)] = True
    right = ~left
    masks = [left, np.ones((h, w), bool)] + ([right] if right.any() else [])
    cams = left[None].astype(np.float32)
    seed, info = seed_of(np.stack(masks), [2, 0, 2][: len(masks)], cams, [7])
    if right.any():
        np.testing.assert_array_equal(seed, np.where(left, 7, 0))
    else:  # masks {whole image, whole image}: equal means -> degenerate -> background
        assert not seed.any() and info.label.tolist() == [0, 0]


def test_tiny_image_patch_resolution_cam_and_last_pixel():
    # 3x3 image, 1x1 CAM (resize of a constant -> every mask has the same mean -> background),
    # then a 2x2 CAM whose bottom-right cell is hot: the mask holding the last pixel (index 8, the only
    # bit of the last packed byte) must win
    last = np.zeros((3, 3), bool)
    last[2, 2] = True
    first = np.zeros((3, 3), bool)
    first[0, 0] = True
    masks = np.stack([first, last])
    seed, _ = seed_of(masks, [1, 1], np.ones((1, 1, 1)), [3])
    assert not seed.any()
    seed, info = seed_of(masks, [1, 1], np.array([[[0, 0], [0, 1]]]), [3])
    assert info.label.tolist() == [0, 3]
    np.testing.assert_array_equal(seed, np.where(last, 3, 0))


def test_zero_masks_packed_form():
    seed, info = sams_seed(np.zeros((0, 2), np.uint8), np.zeros(0, int), np.ones((1, 2, 2)), [5], (3, 5), 0.6)
    assert seed.shape == (3, 5) and not seed.any() and info.label.size == 0 and info.paint_order.size == 0


_BIG_RUN = """
import sys, time
import numpy as np
from fmwsss.seeding import sams_seed
def status_kib(field):  # this process's own memory; ru_maxrss would include the forking parent's RSS
    line = next(l for l in open("/proc/self/status") if l.startswith(field + ":"))
    return int(line.split()[1])
data = {k: v for k, v in np.load(sys.argv[1]).items()}
before = status_kib("VmRSS")
start = time.perf_counter()
seed, info = sams_seed(data["masks"], data["levels"], data["cams"], data["classes"], (2000, 2000), 0.7, device="cpu")
elapsed = time.perf_counter() - start
np.save(sys.argv[2], seed)
print(elapsed, (status_kib("VmHWM") - before) / 1024, *info.label[:16].tolist())
"""


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="reads the current RSS from /proc")
def test_2000_by_2000_image_time_and_memory(tmp_path):
    """A 4-megapixel image, 20 overlapping masks given packed, patch-resolution CAMs: answer, time, memory.

    Masks: a 4x4 grid of 500x500 tiles (level 1) over the 4 rows of tiles (level 0). Class 9's CAM is hot
    inside tile (0, 0), class 14's inside tile (3, 3) (the bilinear spill stays in the tile). Expected: those
    tiles painted with their class, everything else 0 (the row strips score a = 1/4 -> background).
    Runs in a fresh process: peak RSS after the call minus the RSS just before it is SAMS's own peak. Measured on the 2-core dev box
    (loaded): 0.6-1.3 s and 210 MB for 20 masks; the bounds below are generous (5x on memory).
    """
    size = 2000
    tile = size // 4
    rows, cols = np.divmod(np.arange(16), 4)
    yy, xx = np.mgrid[:size, :size] // tile
    tiles = np.packbits(((yy == rows[:, None, None]) & (xx == cols[:, None, None])).reshape(16, -1), axis=1)
    strips = np.packbits((yy == np.arange(4)[:, None, None]).reshape(4, -1), axis=1)
    del yy, xx
    p = tile // 16  # 31.25 patches per tile: hot areas of 30 patches stay inside their tile
    cams = np.zeros((2, size // 16, size // 16), np.float32)
    cams[0, : p - 1, : p - 1] = 5.0
    cams[1, -p + 1 :, -p + 1 :] = 5.0
    inputs = tmp_path / "inputs.npz"
    np.savez(inputs, masks=np.concatenate([tiles, strips]), levels=np.array([1] * 16 + [0] * 4), cams=cams,
             classes=np.array([9, 14]))
    out = subprocess.run([sys.executable, "-c", _BIG_RUN, str(inputs), str(tmp_path / "seed.npy")],
                         capture_output=True, text=True, check=True).stdout.split()
    elapsed, rss_growth_mb, labels = float(out[0]), float(out[1]), [int(v) for v in out[2:]]
    expected = np.zeros((size, size), np.uint8)
    expected[:tile, :tile] = 9
    expected[-tile:, -tile:] = 14
    np.testing.assert_array_equal(np.load(tmp_path / "seed.npy"), expected)
    assert labels == [9] + [0] * 14 + [14]
    assert elapsed < 30, f"2000x2000 SAMS took {elapsed:.1f} s"
    assert rss_growth_mb < 1000, f"2000x2000 SAMS grew the peak RSS by {rss_growth_mb:.0f} MB"
