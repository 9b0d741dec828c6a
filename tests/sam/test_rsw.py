import numpy as np
import pytest
import torch

from fmwsss.sam.rsw import rock_sand_water


def _rect(y0, y1, x0, x1, shape=(10, 10)):
    m = np.zeros(shape, bool)
    m[y0:y1, x0:x1] = True
    return m


def test_parts_under_a_whole_are_dropped():
    whole = _rect(0, 10, 0, 5)  # left half
    inside = _rect(0, 4, 0, 4)  # fully covered -> drop
    straddle = _rect(0, 10, 3, 8)  # 20 of 50 px covered: 0.4 >= 0.3 -> drop
    outside = _rect(0, 10, 4, 10)  # 10 of 60 px covered: 0.17 < 0.3 -> keep
    sub_in_kept_part = _rect(0, 5, 6, 10)  # covered by the kept part -> drop
    sub_half = _rect(8, 10, 0, 10)  # 10 of 20 px under the whole -> drop
    masks = np.stack([whole, inside, straddle, outside, sub_in_kept_part, sub_half])
    levels = np.array([2, 1, 1, 1, 0, 0])
    np.testing.assert_array_equal(rock_sand_water(masks, levels, 0.3), [1, 0, 0, 1, 0, 0])


def test_same_level_masks_are_not_compared():
    whole = _rect(0, 2, 0, 2)
    a = _rect(5, 10, 5, 10)
    b = _rect(5, 10, 5, 10)  # identical to a, same level: both kept
    sub = _rect(6, 8, 6, 8)  # inside a and b (joined the container after level 1) -> drop
    sub_free = _rect(0, 2, 5, 8)  # touches no container mask -> keep
    masks = np.stack([whole, a, b, sub, sub_free])
    np.testing.assert_array_equal(rock_sand_water(masks, np.array([2, 1, 1, 0, 0])), [1, 1, 1, 0, 1])


def test_empty_container_adopts_the_level():
    big = _rect(0, 10, 0, 10)
    part = _rect(0, 5, 0, 5)  # no wholes: all level-1 kept and become the container
    sub_in = _rect(0, 3, 0, 3)
    masks = np.stack([big, part, sub_in])
    np.testing.assert_array_equal(rock_sand_water(masks, np.array([1, 1, 0])), [1, 1, 0])
    np.testing.assert_array_equal(rock_sand_water(masks[2:], np.array([0])), [1])


def test_threshold_is_strict():
    whole = _rect(0, 10, 0, 3)  # covers 3 of the part's 10 columns: ratio exactly 0.3
    part = _rect(0, 10, 0, 10)
    masks = np.stack([whole, part])
    np.testing.assert_array_equal(rock_sand_water(masks, np.array([2, 1]), thresh=0.3), [1, 0])
    np.testing.assert_array_equal(rock_sand_water(masks, np.array([2, 1]), thresh=0.31), [1, 1])


def test_chunk_and_torch_input_do_not_change_result():
    rng = np.random.default_rng(0)
    masks = rng.random((37, 12, 12)) > 0.7
    levels = rng.integers(0, 3, 37)
    ref = rock_sand_water(masks, levels, 0.3, chunk=1000)
    assert 0 < ref.sum() < 37
    for chunk in (1, 5, 7):
        got = rock_sand_water(torch.from_numpy(masks), torch.from_numpy(levels), 0.3, chunk)
        np.testing.assert_array_equal(got, ref)


def test_empty_and_bad_levels():
    assert rock_sand_water(np.zeros((0, 4, 4), bool), np.zeros(0, int)).shape == (0,)
    with pytest.raises(ValueError, match="levels"):
        rock_sand_water(np.ones((1, 2, 2), bool), np.array([3]))


def _rsw_brute_force(masks: np.ndarray, levels: np.ndarray, thresh: float) -> np.ndarray:
    """The definition, one pair at a time."""
    keep = levels == 2
    container = list(np.flatnonzero(keep))
    for level in (1, 0):
        query = np.flatnonzero(levels == level)
        if not container:
            keep[query] = True
            container = list(query)
            continue
        kept = [q for q in query
                if max((masks[q] & masks[k]).sum() for k in container) / max(masks[q].sum(), 1) < thresh]
        keep[kept] = True
        container += kept
    return keep


def test_windowed_products_equal_the_definition():
    """Local masks of every size (the windowed matmuls must miss no overlap), empty masks included."""
    rng = np.random.default_rng(3)
    for case in range(30):
        n, height, width = int(rng.integers(1, 40)), int(rng.integers(8, 48)), int(rng.integers(8, 48))
        masks = np.zeros((n, height, width), bool)
        for m in masks:
            if rng.random() < 0.1:
                continue  # empty
            y0, x0 = rng.integers(0, height), rng.integers(0, width)
            h, w = rng.integers(1, height + 1), rng.integers(1, width + 1)
            m[y0 : y0 + h, x0 : x0 + w] = rng.random((min(h, height - y0), min(w, width - x0))) > 0.3
        levels = rng.integers(0, 3, n)
        for chunk in (1, 3, 50):
            np.testing.assert_array_equal(rock_sand_water(masks, levels, 0.3, chunk),
                                          _rsw_brute_force(masks, levels, 0.3), err_msg=f"case {case}")
