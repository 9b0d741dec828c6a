from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from fmwsss.data.palette import load_label_png, palette_for, save_label_png, voc_palette


def test_voc_palette_known_entries(voc_sample: Path):
    pal = voc_palette()
    assert len(pal) == 768
    assert pal[0:3] == [0, 0, 0] and pal[3:6] == [128, 0, 0] and pal[45:48] == [192, 128, 128]
    assert pal[255 * 3 : 256 * 3] == [224, 224, 192]
    with Image.open(voc_sample / "SegmentationClass" / "2007_000032.png") as img:
        assert img.getpalette()[: 21 * 3] == pal[: 21 * 3]


def test_palette_for_coco_distinct():
    pal = np.array(palette_for(80)).reshape(256, 3)
    used = np.concatenate([pal[:81], pal[255:]])
    assert len({tuple(c) for c in used}) == 82
    assert palette_for(20)[: 21 * 3] == voc_palette()[: 21 * 3]
    with pytest.raises(ValueError, match="num_classes=255"):
        palette_for(255)


def test_label_png_roundtrip(tmp_path: Path):
    labels = np.array([[0, 1, 80, 255]], dtype=np.uint8).repeat(3, axis=0)
    save_label_png(tmp_path / "l.png", labels, palette_for(80))
    with Image.open(tmp_path / "l.png") as img:
        assert img.mode == "P"
    np.testing.assert_array_equal(load_label_png(tmp_path / "l.png"), labels)
    assert not any(p.name.startswith(".") for p in tmp_path.iterdir())


def test_label_png_errors(tmp_path: Path):
    with pytest.raises(ValueError, match="l.png"):
        save_label_png(tmp_path / "l.png", np.zeros((2, 2), np.int32), voc_palette())
    Image.new("RGB", (4, 4)).save(tmp_path / "rgb.png")
    with pytest.raises(ValueError, match="rgb.png.*mode RGB"):
        load_label_png(tmp_path / "rgb.png")
