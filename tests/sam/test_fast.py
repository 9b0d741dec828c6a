"""The fast generator against the reference one on the real VOC demo images, with the diverse tiny SAM.

Equivalence (issue 7): same number of masks, every mask matched at IoU >= 0.99 with the same level, and
SAMS seeds identical on >= 99 % of pixels, with the fast generator at its planned batch sizes (384 points
per decoder call, 8 crops per encoder forward) and the reference at the stock 64 points.
"""
from __future__ import annotations

from pathlib import Path

import cv2
import numpy as np
import pytest
from PIL import Image

from fmwsss.pipeline.config import Config
from fmwsss.sam.build import SamSpeed, build_generator, check_sam_settings
from fmwsss.sam.compare import compare_masks, from_stock_records
from fmwsss.sam.fast import FastMaskGenerator
from fmwsss.sam.generator import RESULT_SETTINGS, LeveledMaskGenerator
from fmwsss.seeding import sams_seed

from .conftest import load_image

REPO = Path(__file__).resolve().parents[2]
#: The paper's settings, as the voc preset resolves them (32 x 32 points, one crop layer).
PAPER = {k: v for k, v in Config.from_file(REPO / "config.yaml").settings("voc")["sam"].items()}
#: No crop layer and other thresholds than the paper's.
OTHER = {**PAPER, "points_per_side": 12, "crop_n_layers": 0, "pred_iou_thresh": 0.8,
         "stability_score_thresh": 0.85, "min_mask_region_area": 50, "rsw_thresh": 0.4}


def _reference(sam, settings):
    return LeveledMaskGenerator(sam, **{k: settings[k] for k in RESULT_SETTINGS})


def _oracle_cams(voc_sample: Path, image_id: str, tags: list[int]) -> np.ndarray:
    """CAMs that a perfect CAM method would give, blurred: one-hot GT of each tagged class, sigma 8 px."""
    gt = np.array(Image.open(voc_sample / "SegmentationClass" / f"{image_id}.png"))
    return np.stack([cv2.GaussianBlur((gt == c).astype(np.float32), (0, 0), 8.0) for c in tags])


def _seed_agreement(voc_sample, image_id, tags, reference, fast) -> float:
    cams = _oracle_cams(voc_sample, image_id, tags)
    classes = np.array(tags)
    size = (reference.height, reference.width)
    seed_ref, _ = sams_seed(reference.masks, reference.level, cams, classes, size, 0.7)
    seed_fast, _ = sams_seed(fast.masks, fast.level, cams, classes, size, 0.7)
    return float((seed_ref == seed_fast).mean())


def _check_equivalent(tiny_sam, voc_sample, items, settings, speed=SamSpeed()):
    reference = _reference(tiny_sam, settings)
    fast = build_generator(tiny_sam, settings, speed)
    assert isinstance(fast, FastMaskGenerator)
    report = []
    for image_id, path, tags in items:
        image = load_image(path)
        ref_masks, fast_masks = reference.generate(image), fast.generate(image)
        comparison = compare_masks(ref_masks, fast_masks)
        agreement = _seed_agreement(voc_sample, image_id, tags, ref_masks, fast_masks)
        report.append((image_id, len(ref_masks), comparison, agreement))
    return report


def test_paper_settings_match_on_two_images(tiny_sam, voc_sample, voc_items):
    """Two images a third of the sample apart (~50 s each on 2 cores); every image: the long test below."""
    report = _check_equivalent(tiny_sam, voc_sample, voc_items[::8][:2], PAPER)
    for image_id, n_masks, comparison, agreement in report:
        assert n_masks >= 20, f"{image_id}: the test SAM must give diverse masks"
        assert comparison.all_matched(0.99), (image_id, comparison)
        assert agreement >= 0.99, (image_id, agreement)


def test_no_crop_layer_other_thresholds_on_all_24(tiny_sam, voc_sample, voc_items):
    report = _check_equivalent(tiny_sam, voc_sample, voc_items, OTHER)
    assert len(report) == len(voc_items)
    assert min(n for _, n, _, _ in report) >= 20
    same_count = np.mean([c.same_count for _, _, c, _ in report])
    assert same_count >= 0.99
    for image_id, _, comparison, agreement in report:
        assert comparison.all_matched(0.99), (image_id, comparison)
        assert agreement >= 0.99, (image_id, agreement)


@pytest.mark.long
def test_paper_settings_match_on_all_24(tiny_sam, voc_sample, voc_items):
    """The paper-settings run on every demo image (~10 min on 2 CPU cores): `make test-long`."""
    report = _check_equivalent(tiny_sam, voc_sample, voc_items, PAPER)
    assert np.mean([c.same_count for _, _, c, _ in report]) >= 0.99
    for image_id, _, comparison, agreement in report:
        assert comparison.all_matched(0.99), (image_id, comparison)
        assert agreement >= 0.99, (image_id, agreement)


def test_zero_masks(tiny_sam, blocks_image):
    settings = {**PAPER, "points_per_side": 4, "pred_iou_thresh": 1.5}
    result = build_generator(tiny_sam, settings).generate(blocks_image)
    assert len(result) == 0 and result.masks.shape == (0, 96, 128) and result.bbox.shape == (0, 4)


@pytest.mark.parametrize("shape", [(9, 13), (2000, 2000)])
def test_very_small_and_very_large_images_match(tiny_sam, voc_items, shape):
    image = np.asarray(Image.fromarray(load_image(voc_items[3][1])).resize(shape[::-1], Image.BILINEAR))
    settings = {**PAPER, "points_per_side": 4}
    reference = _reference(tiny_sam, settings).generate(image)
    fast = build_generator(tiny_sam, settings, SamSpeed(postprocess_chunk=16)).generate(image)
    assert fast.masks.shape[1:] == shape
    assert len(reference) > 0
    assert compare_masks(reference, fast).all_matched(0.99)


def test_images_share_encoder_batches(tiny_sam, voc_items):
    """Two images' crops in one encoder forward give each image its own answer."""
    settings = {**OTHER, "points_per_side": 6}
    images = [load_image(path) for _, path, _ in voc_items[:3]]
    alone = build_generator(tiny_sam, settings, SamSpeed(encoder_batch=1))
    together = build_generator(tiny_sam, settings, SamSpeed(encoder_batch=3))
    batched = together.generate_prepared([together.prepare(image) for image in images])
    for image, result in zip(images, batched):
        assert compare_masks(alone.generate(image), result).all_matched(0.99)


def test_bf16_autocast_runs_and_stays_close(tiny_sam, voc_items):
    """bf16 moves logits, so masks near the thresholds may change (hence it is in the key); most stay."""
    settings = {**OTHER, "autocast": "bf16"}
    image = load_image(voc_items[0][1])
    reference = _reference(tiny_sam, settings).generate(image)
    result = build_generator(tiny_sam, settings).generate(image)
    comparison = compare_masks(reference, result)
    assert len(result) > 0
    assert np.mean(comparison.matched_iou >= 0.99) >= 0.9


def test_settings_are_checked_before_loading():
    with pytest.raises(ValueError, match="needs sam.implementation: fast"):
        check_sam_settings({**PAPER, "implementation": "reference", "autocast": "bf16"})
    with pytest.raises(ValueError, match="implementation must be one of"):
        check_sam_settings({**PAPER, "implementation": "quick"})
    with pytest.raises(ValueError, match="points_per_sid"):
        check_sam_settings({"points_per_sid": 4})


def test_reference_implementation_is_the_stock_path(tiny_sam):
    generator = build_generator(tiny_sam, {**PAPER, "implementation": "reference"}, SamSpeed(points_per_batch=7))
    assert isinstance(generator, LeveledMaskGenerator) and generator.points_per_batch == 7


def test_compare_masks_finds_a_moved_mask():
    from fmwsss.sam.types import ImageMasks

    masks = np.zeros((2, 20, 20), bool)
    masks[0, :10], masks[1, 10:] = True, True
    a = ImageMasks(masks, [0, 2], [0.9, 0.9], [1, 1], [[0, 0, 19, 9], [0, 10, 19, 9]], [200, 200])
    moved = masks[::-1].copy()
    moved[0, 10, 0] = False  # one pixel off: IoU 199/200
    b = ImageMasks(moved, [2, 1], [0.9, 0.9], [1, 1], [[0, 10, 19, 9], [0, 0, 19, 9]], [199, 200])
    comparison = compare_masks(a, b)
    assert not comparison.identical and comparison.same_count
    np.testing.assert_allclose(comparison.matched_iou, [1.0, 0.995])
    np.testing.assert_array_equal(comparison.same_level, [False, True])
    assert not comparison.all_matched(0.99)


#: The stock generator's knobs (relaxed thresholds so the tiny SAM keeps many masks; a 4 x 4 grid on an image
#: shrunk to 160 px keeps it to seconds) with the method's extras switched off: zero level offsets and no RSW.
STOCK_KNOBS = dict(points_per_side=4, pred_iou_thresh=0.8, stability_score_thresh=0.8, stability_score_offset=1.0,
                   box_nms_thresh=0.7, crop_n_layers=0, crop_nms_thresh=0.7, crop_overlap_ratio=512 / 1500,
                   crop_n_points_downscale_factor=2, min_mask_region_area=100)
ZERO_EXTRAS = dict(level_iou_offsets=(0.0, 0.0, 0.0), level_nms_offsets=(0.0, 0.0, 0.0),
                   level_stability_bias=(0.0, 0.0, 0.0), rsw_thresh=None)


@pytest.mark.parametrize("which, extra", [(0, {}), (1, {"crop_n_layers": 1})], ids=["no-crops", "one-crop-layer"])
def test_fast_equals_stock_generator_at_zero_offsets(tiny_sam, voc_jpegs, which, extra):
    """segment-anything's own ``SamAutomaticMaskGenerator`` against the fast generator, directly: as many
    masks, each stock mask with a partner at IoU >= 0.99, and the same boxes, areas and predicted IoUs."""
    from segment_anything import SamAutomaticMaskGenerator

    path = voc_jpegs[which * len(voc_jpegs) // 2]  # the first image, and one from the middle of the sample
    with Image.open(path) as full:
        image = np.asarray(full.convert("RGB").resize((160, round(160 * full.height / full.width)), Image.BILINEAR))
    knobs = {**STOCK_KNOBS, **extra}
    stock = SamAutomaticMaskGenerator(tiny_sam, **knobs).generate(image)
    ours = build_generator(tiny_sam, {**PAPER, **knobs, **ZERO_EXTRAS}).generate(image)
    assert len(stock) >= 10, f"{path.name}: the test SAM must give diverse masks"
    comparison = compare_masks(from_stock_records(stock, *image.shape[:2]), ours)
    assert comparison.same_count and bool(np.all(comparison.matched_iou >= 0.99)), (path.name, comparison)
    stock_keys = sorted((*r["bbox"], r["area"], round(float(r["predicted_iou"]), 4)) for r in stock)
    our_keys = sorted((*b, int(a), round(float(s), 4)) for b, a, s in zip(ours.bbox.tolist(), ours.area,
                                                                           ours.predicted_iou))
    assert our_keys == stock_keys, path.name
