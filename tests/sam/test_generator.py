import numpy as np
import pytest
import torch
from segment_anything import SamAutomaticMaskGenerator
from torchvision.ops import nms

from fmwsss.sam.generator import LeveledMaskGenerator
from fmwsss.sam.rsw import rock_sand_water
from fmwsss.sam.types import ImageMasks

from .conftest import load_image

# Relaxed thresholds so the tiny SAM yields plenty of masks; small grids keep it fast on CPU.
STOCK = dict(points_per_side=6, pred_iou_thresh=0.8, stability_score_thresh=0.8, box_nms_thresh=0.7)


def _assert_same_as_stock(ours: ImageMasks, stock: list[dict]) -> None:
    assert len(ours) == len(stock) >= 20
    np.testing.assert_array_equal(ours.masks, np.stack([a["segmentation"] for a in stock]))
    np.testing.assert_array_equal(ours.bbox, [a["bbox"] for a in stock])
    np.testing.assert_array_equal(ours.area, [a["area"] for a in stock])
    np.testing.assert_array_equal(ours.predicted_iou, np.float32([a["predicted_iou"] for a in stock]))
    np.testing.assert_array_equal(ours.stability, np.float32([a["stability_score"] for a in stock]))


@pytest.mark.parametrize(
    "index, extra",
    [
        (0, {}),
        (5, {"min_mask_region_area": 400}),
        (13, {"crop_n_layers": 1, "crop_n_points_downscale_factor": 2}),
    ],
)
def test_zero_offsets_equal_stock_generator(tiny_sam, voc_jpegs, index, extra):
    image = load_image(voc_jpegs[index])
    settings = {**STOCK, **extra}
    ours = LeveledMaskGenerator(tiny_sam, **settings).generate(image)
    stock = SamAutomaticMaskGenerator(tiny_sam, **settings).generate(image)
    _assert_same_as_stock(ours, stock)
    assert set(ours.level.tolist()) == {0, 1, 2}


def _keys(masks: ImageMasks, select: np.ndarray | None = None) -> set[tuple]:
    select = np.ones(len(masks), bool) if select is None else select
    rows = zip(masks.bbox[select].tolist(), masks.area[select], masks.predicted_iou[select])
    return {(*box, area, float(iou)) for box, area, iou in rows}


@pytest.fixture(scope="module")
def unfiltered(tiny_sam, voc_jpegs):
    """Every candidate of one image (no IoU filter, no NMS) at a fixed stability threshold."""
    image = load_image(voc_jpegs[0])
    base = dict(points_per_side=6, stability_score_thresh=0.8, box_nms_thresh=1.0)
    return image, base, LeveledMaskGenerator(tiny_sam, pred_iou_thresh=0.0, **base).generate(image)


def test_iou_offsets_shift_the_threshold_per_level(tiny_sam, unfiltered):
    image, base, cands = unfiltered
    offsets = np.array([0.0, -0.02, 0.05])
    got = LeveledMaskGenerator(tiny_sam, pred_iou_thresh=0.93, level_iou_offsets=offsets, **base).generate(image)
    expected = cands.predicted_iou + offsets[cands.level].astype(np.float32) > 0.93
    assert _keys(got) == _keys(cands, expected)
    # The offsets matter here: the plain threshold keeps a different set.
    assert expected.sum() != (cands.predicted_iou > 0.93).sum()


def test_stability_bias_shifts_the_threshold_per_level(tiny_sam, unfiltered):
    image, base, cands = unfiltered
    settings = {**base, "stability_score_thresh": 0.9}
    bias = np.array([0.05, 0.0, -0.1])
    got = LeveledMaskGenerator(tiny_sam, pred_iou_thresh=0.0, level_stability_bias=bias, **settings).generate(image)
    expected = cands.stability + bias[cands.level].astype(np.float32) >= 0.9
    assert _keys(got) == _keys(cands, expected)
    assert expected.sum() != (cands.stability >= 0.9).sum()


def test_nms_offset_makes_wholes_win(tiny_sam, unfiltered):
    image, base, cands = unfiltered
    settings = {**base, "box_nms_thresh": 0.7}
    got = LeveledMaskGenerator(tiny_sam, pred_iou_thresh=0.0, level_nms_offsets=(0, 0, 1), **settings).generate(image)
    plain = LeveledMaskGenerator(tiny_sam, pred_iou_thresh=0.0, **settings).generate(image)
    # With +1 a whole is only ever suppressed by another whole: the kept wholes are NMS over wholes alone.
    wholes = cands.level == 2
    boxes = torch.as_tensor(cands.bbox[wholes], dtype=torch.float32)
    boxes[:, 2:] += boxes[:, :2]
    kept = nms(boxes, torch.as_tensor(cands.predicted_iou[wholes]), 0.7).numpy()
    expected = np.zeros(len(cands), bool)
    expected[np.flatnonzero(wholes)[kept]] = True
    assert _keys(got, got.level == 2) == _keys(cands, expected)
    assert (got.level == 2).sum() > (plain.level == 2).sum()


def test_rsw_filters_the_final_masks(tiny_sam, unfiltered):
    image, base, cands = unfiltered
    got = LeveledMaskGenerator(tiny_sam, pred_iou_thresh=0.0, rsw_thresh=0.3, rsw_chunk=7, **base).generate(image)
    keep = rock_sand_water(cands.masks, cands.level, 0.3)
    assert 0 < keep.sum() < len(cands)
    assert _keys(got) == _keys(cands, keep)


def test_nothing_survives_gives_zero_masks(tiny_sam, blocks_image):
    generator = LeveledMaskGenerator(
        tiny_sam, points_per_side=4, pred_iou_thresh=1.5, crop_n_layers=1, min_mask_region_area=10, rsw_thresh=0.3
    )
    result = generator.generate(blocks_image)
    assert len(result) == 0 and result.masks.shape == (0, 96, 128) and result.bbox.shape == (0, 4)


def test_per_level_settings_need_three_values(tiny_sam):
    with pytest.raises(ValueError, match="level_iou_offsets"):
        LeveledMaskGenerator(tiny_sam, level_iou_offsets=(0.1, 0.2))
