"""Gallery thumbnails: sizes, label values kept, SAM level colouring, heatmap colours, the keyed cache."""
from __future__ import annotations

import io

import numpy as np
from PIL import Image

from fmwsss.data.palette import voc_palette
from fmwsss.report import thumbs
from fmwsss.report.gallery import ThumbCache


def test_thumb_size_long_side_and_aspect():
    assert thumbs.thumb_size(375, 500) == (192, 256)
    assert thumbs.thumb_size(500, 333) == (256, 170)
    assert thumbs.thumb_size(100, 120) == (100, 120)  # never upscaled


def test_subsample_keeps_label_values_and_blocks():
    labels = np.repeat(np.repeat(np.array([[0, 5], [255, 7]], np.uint8), 4, axis=0), 4, axis=1)  # 8 x 8
    np.testing.assert_array_equal(thumbs.subsample(labels, (2, 2)), [[0, 5], [255, 7]])
    small = thumbs.subsample(labels, (3, 5))
    assert small.shape == (3, 5) and set(np.unique(small)) <= {0, 5, 7, 255}


def test_label_thumb_is_a_palette_png_of_the_labels():
    labels = np.zeros((375, 500), np.uint8)
    labels[100:300, 50:450] = 12
    labels[0, :] = 255
    data = thumbs.label_thumb(labels, thumbs.thumb_size(*labels.shape), voc_palette())
    img = Image.open(io.BytesIO(data))
    assert img.mode == "P" and img.size == (256, 192)
    assert set(np.unique(np.array(img))) == {0, 12, 255}
    assert len(data) < 4000  # flat label maps compress to a few kB


def test_jet_endpoints_and_middle():
    np.testing.assert_array_equal(thumbs.jet(np.array([0.0, 0.5, 1.0])),
                                  [[0, 0, 127], [127, 255, 127], [127, 0, 0]])


def test_heatmap_thumb_is_a_small_jpeg_of_the_photo_size():
    photo = np.full((192, 256, 3), 128, np.uint8)
    cam = np.zeros((192, 256), np.float32)
    cam[50:100, 60:120] = 3.0  # any scale: divided by its maximum
    img = Image.open(io.BytesIO(thumbs.heatmap_thumb(cam, photo)))
    assert img.format == "JPEG" and img.size == (256, 192)
    rgb = np.asarray(img).astype(int)
    assert rgb[75, 90, 0] > rgb[75, 90, 2] + 50  # peak: dark red (jet at 1)
    assert rgb[5, 5, 2] > rgb[5, 5, 0] + 50  # zero: dark blue


def test_sam_levels_map_smallest_mask_on_top_coloured_by_level():
    masks = np.zeros((3, 4, 4), bool)
    masks[0] = True  # whole image, level 2
    masks[1, :2, :2] = True  # quarter, level 1
    masks[2, 0, 0] = True  # one pixel, level 0
    level, area = np.array([2, 1, 0]), masks.reshape(3, -1).sum(1)
    out = thumbs.sam_levels_map(masks, level, area, (4, 4))
    shade = (np.arange(3) * 37) % thumbs.SAM_SHADES  # order by decreasing area = 0, 1, 2
    whole, part, sub = (1 + lv * thumbs.SAM_SHADES + s for lv, s in zip((2, 1, 0), shade))
    expected = np.full((4, 4), whole)
    expected[:2, :2] = part
    expected[0, 0] = sub
    np.testing.assert_array_equal(out, expected)
    pal = np.array(thumbs.sam_palette()).reshape(256, 3)
    assert pal[whole].argmax() == 0 and pal[part].argmax() == 1 and pal[sub].argmax() == 2
    assert not thumbs.sam_levels_map(masks[:0], level[:0], area[:0], (4, 4)).any()


def test_thumb_cache_draws_only_missing_names(tmp_path):
    calls = []

    def draw():
        calls.append(1)
        return b"x"

    cache = ThumbCache(tmp_path)
    cache.ensure("seeds_fine/key1/a.png", draw)
    cache.ensure("seeds_fine/key1/b.png", draw)
    again = ThumbCache(tmp_path)
    again.ensure("seeds_fine/key1/a.png", draw)
    again.ensure("seeds_fine/key2/a.png", draw)  # a new variant's key: a new name, drawn
    assert (cache.drawn, cache.reused, again.drawn, again.reused, len(calls)) == (2, 0, 1, 1, 3)


def test_foreground_share_counts_object_pixels_among_non_void():
    labels = np.zeros((10, 10), np.uint8)
    labels[0, :] = 255  # void row: left out of the share
    labels[5:8, 0:3] = 12  # 9 object pixels of 90 non-void
    assert thumbs.foreground_share(thumbs.encode_palette_png(labels, voc_palette())) == 9 / 90
    labels[5:8, 0:3] = 0
    assert thumbs.foreground_share(thumbs.encode_palette_png(labels, voc_palette())) == 0.0
    void = np.full((4, 4), 255, np.uint8)
    assert thumbs.foreground_share(thumbs.encode_palette_png(void, voc_palette())) == 0.0
