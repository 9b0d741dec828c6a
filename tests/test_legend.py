"""The colour legend under ``fmwsss overlay`` pictures: which classes it lists and the colours it shows."""
from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from fmwsss.cli.legend import OUTLINE, PAD, SWATCH, legend_strip, present_classes, with_legend
from fmwsss.cli.main import main
from fmwsss.cli.single_image import overlay
from fmwsss.data.classes import VOC_CLASS_NAMES
from fmwsss.data.palette import save_label_png, voc_palette

REPO = Path(__file__).resolve().parents[1]
AEROPLANE, PERSON = (128, 0, 0), (192, 128, 128)  # VOC palette 1 and 15 (15 = 0b1111: r 128+64, g 128, b 128)
NOT_A_CLASS = {(255, 255, 255), (0, 0, 0), OUTLINE}  # strip background, text, swatch border


def strip_colours(strip: np.ndarray) -> set[tuple[int, int, int]]:
    return {tuple(c) for c in np.unique(strip.reshape(-1, 3), axis=0).tolist()} - NOT_A_CLASS


def test_present_classes_skip_background_void_and_absent_classes():
    labels = np.array([[0, 1, 1], [15, 255, 0]], np.uint8)
    assert present_classes(labels, VOC_CLASS_NAMES) == [(1, "aeroplane"), (15, "person")]
    assert present_classes(np.zeros((2, 2), np.uint8), VOC_CLASS_NAMES) == []
    with pytest.raises(ValueError, match=r"\[21\] exceed the dataset's 20 classes"):
        present_classes(np.array([[21, 1]], np.uint8), VOC_CLASS_NAMES)


def test_swatches_show_the_palette_colours_of_the_present_classes_only():
    picture = np.full((30, 300, 3), 50, np.uint8)
    labels = np.zeros((30, 300), np.uint8)
    labels[:5, :5], labels[-1, -1] = 15, 1
    out = with_legend(picture, labels, VOC_CLASS_NAMES, voc_palette())
    assert out.shape[1] == 300 and out.shape[0] > 30 and np.array_equal(out[:30], picture)
    strip = out[30:]
    first = strip[PAD:PAD + SWATCH, PAD:PAD + SWATCH]  # entries ascend by label: aeroplane's swatch comes first
    assert tuple(first[SWATCH // 2, SWATCH // 2]) == AEROPLANE
    assert tuple(first[0, 0]) == OUTLINE and tuple(first[-1, -1]) == OUTLINE
    assert (first[1:-1, 1:-1] == AEROPLANE).all()
    assert strip_colours(strip) == {AEROPLANE, PERSON}
    person = np.argwhere((strip == PERSON).all(axis=2))  # the second swatch: a full square in the same row
    assert len(person) == (SWATCH - 2) ** 2 and person[:, 0].min() == PAD + 1 and person[:, 1].min() > PAD + SWATCH


def test_many_classes_wrap_into_rows_and_an_empty_map_gets_a_note():
    palette = voc_palette()
    entries = [(c, VOC_CLASS_NAMES[c - 1]) for c in range(1, 21)]
    narrow, wide = legend_strip(entries, palette, 150), legend_strip(entries, palette, 1500)
    expected = {tuple(palette[3 * c:3 * c + 3]) for c in range(1, 21)}
    assert strip_colours(narrow) == expected and strip_colours(wide) == expected
    assert narrow.shape[0] > wide.shape[0]
    empty = legend_strip([], palette, 200)
    assert empty.shape[1] == 200 and strip_colours(empty) == set() and (empty == 0).all(axis=2).any()


@pytest.fixture
def voc_image(voc_sample) -> tuple[Path, Path, list[int]]:
    """The sample's first image with 2+ classes: its JPEG, its ground-truth PNG and its tags."""
    labels = json.loads((voc_sample / "labels.json").read_text())
    image_id = next(k for k, v in sorted(labels.items()) if len(v) >= 2)
    return (voc_sample / "JPEGImages" / f"{image_id}.jpg", voc_sample / "SegmentationClass" / f"{image_id}.png",
            labels[image_id])


def test_overlay_command_legends_the_ground_truth_classes(voc_image, tmp_path):
    image, gt, tags = voc_image
    out = tmp_path / "overlay.png"
    assert main(["overlay", str(image), str(gt), "-o", str(out), "--config", str(REPO / "config.yaml")]) == 0
    rgb = np.asarray(Image.open(image).convert("RGB"))
    labels = np.asarray(Image.open(gt))
    with Image.open(out) as img:
        picture = np.asarray(img.convert("RGB"))
    h = rgb.shape[0]
    assert np.array_equal(picture[:h], overlay(rgb, labels, voc_palette()))
    palette = voc_palette()
    assert strip_colours(picture[h:]) == {tuple(palette[3 * c:3 * c + 3]) for c in tags}


def test_overlay_command_rejects_labels_of_another_dataset(voc_image, tmp_path, capsys):
    image, gt, _ = voc_image
    wrong = tmp_path / "coco_like.png"
    labels = np.asarray(Image.open(gt)).copy()
    labels[0, 0] = 42
    save_label_png(wrong, labels, voc_palette())
    out = tmp_path / "overlay.png"
    assert main(["overlay", str(image), str(wrong), "-o", str(out), "--config", str(REPO / "config.yaml")]) == 2
    err = capsys.readouterr().err
    assert str(wrong) in err and "[42]" in err and "--dataset" in err
    assert not out.exists()
