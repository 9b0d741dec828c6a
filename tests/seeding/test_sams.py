"""SAMS on small hand-made arrays with known answers (CAMs given at image resolution, so no resizing)."""
from __future__ import annotations

import numpy as np
import pytest
import torch

from fmwsss.seeding import sams_seed

H, W = 4, 6


def cols(*columns: int) -> np.ndarray:
    m = np.zeros((H, W), bool)
    m[:, list(columns)] = True
    return m


def col_cam(values) -> np.ndarray:
    """One class whose CAM is constant down each column."""
    return np.broadcast_to(np.asarray(values, np.float32), (H, W)).copy()


def run(masks, levels, cams, classes, gamma=1.0, **kw):
    return sams_seed(np.stack(masks), np.asarray(levels), np.stack(cams), np.asarray(classes), (H, W), gamma, **kw)


TWO_CLASSES = [col_cam([1, 1, 1, 0, 0, 0]), col_cam([0, 0, 0, 1, 1, 1])]


@pytest.mark.parametrize("levels, col3", [((0, 2, 1), 5), ((2, 0, 1), 3)])
def test_higher_level_paints_over_lower(levels, col3):
    # m0 cols 0-3 -> class 3 (a3=.75), m1 cols 3-5 -> class 5, m2 col 0 -> class 3; they meet at column 3
    seed, info = run([cols(0, 1, 2, 3), cols(3, 4, 5), cols(0)], levels, TWO_CLASSES, [3, 5])
    np.testing.assert_array_equal(info.label, [3, 5, 3])
    np.testing.assert_allclose(info.confidence, [0.75, 1, 1], atol=1e-6)
    np.testing.assert_array_equal(seed[:, 3], col3)
    np.testing.assert_array_equal(seed[:, [0, 1, 2]], 3)
    np.testing.assert_array_equal(seed[:, [4, 5]], 5)


def test_same_level_tie_broken_by_confidence_then_input_order():
    # class 3 strong on column 0 only, class 5 constant on columns 0-1: same level, overlapping on column 0
    cams = [col_cam([1, 0, 0, 0, 0, 0]), col_cam([1, 1, 0, 0, 0, 0])]
    masks = [cols(0), cols(0, 1, 2), cols(5)]  # m0 -> class 3 (conf ~1), m1 -> class 5 (conf < 1)
    for order in ([0, 1, 2], [1, 0, 2]):
        seed, info = run([masks[i] for i in order], [1, 1, 1], cams, [3, 5])
        assert seed[0, 0] == 3  # the more confident mask wins wherever it sits in the input
        assert seed[0, 1] == 5
    # equal (level, confidence): X -> class 3, Y -> class 5, both with a = .5 / (.5 + 1e-7); the later input wins
    cams = [col_cam([1, 0, 0, 0, 0, 0]), col_cam([0, 0, 1, 0, 0, 0])]
    x, y, z = cols(0, 1), cols(1, 2), cols(5)
    seed, info = run([x, y, z], [0, 0, 0], cams, [3, 5])
    assert info.label.tolist() == [3, 5, 0] and info.confidence[0] == info.confidence[1]
    np.testing.assert_array_equal(seed[0], [3, 5, 5, 0, 0, 0])
    seed, _ = run([y, x, z], [0, 0, 0], cams, [3, 5])
    np.testing.assert_array_equal(seed[0], [3, 3, 5, 0, 0, 0])


@pytest.mark.parametrize("gamma, middle", [(0.6, 0), (1.0, 0), (2.0, 9)])
def test_background_power(gamma, middle):
    # normalised a = 0, .5, 1 on the three masks; b(.5) = .5**gamma beats .5 unless gamma > 1
    seed, info = run([cols(0), cols(1), cols(2)], [0, 0, 0], [col_cam([0, 0.5, 1, 0, 0, 0])], [9], gamma=gamma)
    np.testing.assert_allclose(info.score[:, 1], [0, 0.5, 1], atol=1e-6)
    np.testing.assert_allclose(info.score[1, 0], 0.5**gamma, atol=1e-6)
    np.testing.assert_array_equal(seed[0], [0, middle, 9, 0, 0, 0])  # columns 3-5 uncovered -> 0


def test_degenerate_normalisation_goes_to_background():
    # a single mask, or masks with equal means: (x - min) / (max - min + 1e-7) = 0 -> b = 1 -> background
    seed, info = run([cols(0, 1, 2)], [2], [col_cam([5, 5, 5, 0, 0, 0])], [4])
    assert info.label.tolist() == [0] and info.confidence[0] == 1.0 and not seed.any()
    seed, info = run([cols(0), cols(1)], [2, 2], [col_cam([3, 3, 0, 0, 0, 0])], [4])
    assert info.label.tolist() == [0, 0] and not seed.any()


def test_whole_mask_mean_includes_overwritten_pixels():
    cam = col_cam([1, 1, 0, 0, 0, 0])
    # A cols 0-3 (level 0, mean .5 over the WHOLE mask, 0 over its visible part), B cols 0-1 (level 2), C cols 4-5
    seed, info = run([cols(0, 1, 2, 3), cols(0, 1), cols(4, 5)], [0, 2, 0], [cam], [6], gamma=2.0)
    np.testing.assert_allclose(info.score[:, 1], [0.5, 1, 0], atol=1e-6)
    np.testing.assert_array_equal(seed[0], [6, 6, 6, 6, 0, 0])
    np.testing.assert_array_equal(info.area, [16, 8, 8])


def test_no_masks_and_no_classes_give_background():
    cams = np.ones((1, 2, 3), np.float32)
    seed, info = sams_seed(np.zeros((0, H, W), bool), np.zeros(0), cams, [1], (H, W), 0.7)
    assert seed.shape == (H, W) and seed.dtype == np.uint8 and not seed.any() and info.label.size == 0
    seed, info = sams_seed(np.stack([cols(0), cols(1)]), [0, 2], np.zeros((0, 2, 3)), [], (H, W), 0.7)
    assert not seed.any() and info.label.tolist() == [0, 0]


def test_empty_mask_ignored():
    seed, info = run([cols(0), np.zeros((H, W), bool), cols(2)], [0, 2, 0], [col_cam([0, 0, 1, 0, 0, 0])], [2])
    assert info.label.tolist() == [0, 0, 2] and info.area[1] == 0
    np.testing.assert_array_equal(seed[0], [0, 0, 2, 0, 0, 0])


def random_case(seed: int, height: int = 37, width: int = 53, n: int = 25, p: int = 3):
    rng = np.random.default_rng(seed)
    masks = np.zeros((n, height, width), bool)
    for m in masks:
        y, x = rng.integers(0, height - 3), rng.integers(0, width - 3)
        m[y : y + rng.integers(3, height), x : x + rng.integers(3, width)] = True
    cams = rng.standard_normal((p, -(-height // 16), -(-width // 16))).astype(np.float32)
    return masks, rng.integers(0, 3, n), cams, np.array([2, 11, 20])[:p], (height, width)


def loop_reference(masks, levels, cams, classes, size, gamma):
    """Per-mask loop straight from docs/method.md §10 (plus the reference's spatial min-max)."""
    x = torch.nn.functional.interpolate(torch.as_tensor(cams)[None], size=size, mode="bilinear")[0].clamp_min(0)
    x = ((x - x.amin((1, 2), keepdim=True)) / (x.amax((1, 2), keepdim=True) - x.amin((1, 2), keepdim=True) + 1e-7))
    x = x.double().numpy()
    mean = np.array([[x[c][m].mean() for m in masks] for c in range(len(classes))])
    a = (mean - mean.min(1, keepdims=True)) / (mean.max(1, keepdims=True) - mean.min(1, keepdims=True) + 1e-7)
    score = np.concatenate([(1 - a.max(0, keepdims=True)) ** gamma, a])
    label, conf = np.concatenate([[0], classes])[score.argmax(0)], score.max(0)
    out = np.zeros(size, np.uint8)
    for s in sorted(range(len(masks)), key=lambda k: (levels[k], conf[k])):
        out[masks[s]] = label[s]
    return out


@pytest.mark.parametrize("case", range(4))
def test_matches_per_mask_loop_on_random_inputs(case):
    masks, levels, cams, classes, size = random_case(case, p=1 + case % 3)
    seed, _ = sams_seed(masks, levels, cams, classes, size, 0.7)
    np.testing.assert_array_equal(seed, loop_reference(masks, levels, cams, classes, size, 0.7))


@pytest.mark.parametrize("width", [53, 56])  # 53*37 % 8 != 0 (padding bits), 56*37 % 8 == 0 (runs to the end)
def test_packed_and_tensor_inputs_equal_bool(width):
    masks, levels, cams, classes, size = random_case(7, width=width)
    masks[0] = True  # a mask reaching the last pixel
    ref, ref_info = sams_seed(masks, levels, cams, classes, size, 0.6)
    packed = np.packbits(masks.reshape(len(masks), -1), axis=1)
    if (size[0] * size[1]) % 8:
        packed[:, -1] |= 0xFF >> ((size[0] * size[1]) % 8)  # garbage in the padding bits must be ignored
    for variant in (packed, torch.from_numpy(masks), torch.from_numpy(packed)):
        seed, info = sams_seed(variant, torch.as_tensor(levels), torch.as_tensor(cams), classes, size, 0.6)
        np.testing.assert_array_equal(seed, ref)
        np.testing.assert_array_equal(info.area, masks.sum((1, 2)))
        np.testing.assert_array_equal(info.paint_order, ref_info.paint_order)


@pytest.mark.skipif(not torch.cuda.is_available(), reason="no CUDA device")
def test_cuda_matches_cpu():
    for case in range(3):
        masks, levels, cams, classes, size = random_case(case)
        cpu, cpu_info = sams_seed(masks, levels, cams, classes, size, 0.7, device="cpu")
        gpu, gpu_info = sams_seed(masks, levels, cams, classes, size, 0.7, device="cuda")
        np.testing.assert_array_equal(cpu, gpu)
        np.testing.assert_array_equal(cpu_info.label, gpu_info.label)


def test_bad_inputs_are_named():
    with pytest.raises(ValueError, match="bit-packed uint8"):
        sams_seed(np.zeros((2, 5), np.uint8), [0, 0], np.zeros((1, 1, 1)), [1], (H, W), 0.7)
    with pytest.raises(ValueError, match="levels has 1 entries for 2 masks"):
        sams_seed(np.zeros((2, H, W), bool), [0], np.zeros((1, 1, 1)), [1], (H, W), 0.7)
    with pytest.raises(ValueError, match="P = len"):
        sams_seed(np.zeros((2, H, W), bool), [0, 0], np.zeros((2, 1, 1)), [1], (H, W), 0.7)
