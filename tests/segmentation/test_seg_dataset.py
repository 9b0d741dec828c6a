"""Training samples: augmentation keeps image and label aligned, pads with void, and is counter-deterministic."""
from __future__ import annotations

import numpy as np
import pytest

from fmwsss.data.palette import palette_for, save_label_png
from fmwsss.segmentation.dataset import (IGNORE, IMAGENET_MEAN, IMAGENET_STD, AugSettings, IterationSampler,
                                         PseudoLabelDataset, augment, item_index)


def _unnormalize_red(image: np.ndarray) -> np.ndarray:
    return np.rint((image[0] * IMAGENET_STD[0] + IMAGENET_MEAN[0]) * 255).astype(np.int64)


def test_flip_crop_pad_keep_image_and_label_aligned():
    """Red channel = 10 * label: after augmentation it still is, and the padding is void with a 0 image."""
    rng = np.random.default_rng(0)
    label = rng.integers(0, 4, size=(20, 30)).astype(np.uint8)
    rgb = np.stack([label * 10, label, label], axis=-1).astype(np.uint8)
    aug = AugSettings(crop=24, scale_range=(1.0, 1.0), flip=True, color_jitter=0.0)
    flips = 0
    for seed in range(8):
        image, lab = augment(rgb, label, np.random.default_rng(seed), aug)
        assert image.shape == (3, 24, 24) and lab.shape == (24, 24)
        pad = lab == IGNORE
        assert pad.sum() == 4 * 24  # 20 rows of 24 valid, 4 padded
        np.testing.assert_array_equal(_unnormalize_red(image)[~pad], lab[~pad].astype(np.int64) * 10)
        assert np.all(image[:, pad] == 0)
        flips += not np.array_equal(lab[:20], label[:20, :24]) and not np.array_equal(lab[:20], label[:20, 6:])
    assert 0 < flips < 8


def test_rescale_changes_size_and_keeps_label_values():
    label = np.repeat(np.arange(3, dtype=np.uint8), 20).reshape(6, 10)
    rgb = np.zeros((6, 10, 3), np.uint8)
    aug = AugSettings(crop=64, scale_range=(2.0, 2.0), flip=False, color_jitter=0.0)
    _, lab = augment(rgb, label, np.random.default_rng(0), aug)
    assert (lab != IGNORE).sum() == 12 * 20
    assert set(np.unique(lab)) == {0, 1, 2, IGNORE}


def test_samples_are_a_function_of_seed_iteration_slot(synthetic_items, tiny_settings):
    ds = PseudoLabelDataset(synthetic_items, 3, batch_size=2, seed=0, aug=AugSettings.from_settings(tiny_settings))
    a, b = ds[(5, 1)], ds[(5, 1)]
    assert all(np.array_equal(x.numpy(), y.numpy()) for x, y in zip(a, b))
    assert not np.array_equal(ds[(5, 0)][0].numpy(), a[0].numpy())
    other = PseudoLabelDataset(synthetic_items, 3, 2, seed=1, aug=AugSettings.from_settings(tiny_settings))
    assert not np.array_equal(other[(5, 1)][0].numpy(), a[0].numpy())


def test_each_epoch_visits_every_item_once():
    per_epoch = [item_index(it, s, 7, 2, seed=3) for it in range(3) for s in range(2)]  # 3 batches per epoch
    assert len(set(per_epoch)) == 6 and set(per_epoch) <= set(range(7))
    assert [item_index(it, s, 7, 2, 3) for it in range(3, 6) for s in range(2)] != per_epoch
    keys = list(IterationSampler(4, 6, 3))
    assert keys == [(4, 0), (4, 1), (4, 2), (5, 0), (5, 1), (5, 2)]


def test_bad_labels_and_sizes_name_the_file(synthetic_items, tiny_settings, tmp_path):
    aug = AugSettings.from_settings(tiny_settings)
    bad = tmp_path / "bad.png"
    save_label_png(bad, np.full((40, 56), 7, np.uint8), palette_for(20))
    ds = PseudoLabelDataset([("x", synthetic_items[0][1], bad)] * 2, 3, 2, 0, aug)
    with pytest.raises(ValueError, match=r"bad.png.*\[7\]"):
        ds.load(0)
    save_label_png(bad, np.zeros((8, 8), np.uint8), palette_for(20))
    with pytest.raises(ValueError, match="bad.png: label is"):
        ds.load(0)
    with pytest.raises(ValueError, match="batch_size 4"):
        PseudoLabelDataset(synthetic_items[:3], 3, 4, 0, aug)
    with pytest.raises(ValueError, match="scale_range"):
        AugSettings.from_settings({**tiny_settings, "scale_range": [2.0, 1.0]})
