import json
from pathlib import Path

import numpy as np
import pytest

from fmwsss.data import DatasetError, demo_splits, open_dataset
from fmwsss.data.palette import save_label_png, voc_palette


@pytest.fixture
def voc_root(tmp_path: Path, voc_sample: Path) -> Path:
    """A VOC2012-layout root over the real sample (symlinks) with the official train/val split files."""
    root = tmp_path / "VOC2012"
    root.mkdir()
    (root / "JPEGImages").symlink_to(voc_sample / "JPEGImages")
    (root / "SegmentationClass").symlink_to(voc_sample / "SegmentationClass")
    sets = root / "ImageSets" / "Segmentation"
    sets.mkdir(parents=True)
    for split, ids in demo_splits().items():
        if split != "all":
            (sets / f"{split}.txt").write_text("\n".join(ids) + "\n")
    return root


def test_tags_derived_from_gt_equal_labels(voc_root: Path, voc_sample: Path):
    labels = json.loads((voc_sample / "labels.json").read_text())
    ds = open_dataset("voc", voc_root, name="voc")
    assert ds.type == "voc" and ds.num_classes == 20
    assert ds.ids == demo_splits()["train"]  # no train_aug file -> train
    assert set(ds.splits) == {"train", "val"}
    for i in ds.ids:
        assert ds.tags(i) == tuple(labels[i])
        assert ds.image_path(i) == voc_root / "JPEGImages" / f"{i}.jpg"
        assert ds.gt_path(i) == voc_root / "SegmentationClass" / f"{i}.png"
    val = open_dataset("voc", voc_root, name="voc", split="val")
    assert val.ids == demo_splits()["val"] and val.tags("2007_003011") == (9, 11, 18, 20)
    assert ds.gt_path("2007_003011") is not None  # val ids answer image/gt queries too


def test_train_aug_default_and_deeplab_lines(voc_root: Path):
    aug = voc_root / "ImageSets" / "SegmentationAug"
    aug.mkdir()
    ids = ["2007_000032", "2007_000039"]
    aug.joinpath("train_aug.txt").write_text(
        "".join(f"/JPEGImages/{i}.jpg /SegmentationClassAug/{i}.png\n" for i in ids)
    )
    ds = open_dataset("voc", voc_root, name="voc")
    assert ds.ids == ids and ds.tags("2007_000032") == (1, 15)


def test_prefers_segmentation_class_aug(voc_root: Path):
    (voc_root / "SegmentationClassAug").mkdir()
    mask = np.full((281, 500), 3, np.uint8)
    save_label_png(voc_root / "SegmentationClassAug" / "2007_000032.png", mask, voc_palette())
    (voc_root / "ImageSets" / "Segmentation" / "train.txt").write_text("2007_000032\n")
    ds = open_dataset("voc", voc_root, name="voc")
    assert ds.tags("2007_000032") == (3,)
    assert ds.gt_path("2007_000032").parent.name == "SegmentationClassAug"


def test_cls_labels_file(voc_root: Path, tmp_path: Path):
    labels = {i: [7] for i in demo_splits()["train"]}
    (tmp_path / "cls.json").write_text(json.dumps(labels))
    ds = open_dataset("voc", voc_root, name="voc", cls_labels=str(tmp_path / "cls.json"))
    assert ds.tags("2007_000032") == (7,)
    labels["2007_000032"] = [21]
    (tmp_path / "cls.json").write_text(json.dumps(labels))
    with pytest.raises(DatasetError, match=r"cls.json.*2007_000032.*21"):
        open_dataset("voc", voc_root, name="voc", cls_labels=str(tmp_path / "cls.json"))
    labels["2007_000032"] = []
    (tmp_path / "cls.json").write_text(json.dumps(labels))
    with pytest.raises(DatasetError, match=r"cls.json.*2007_000032.*empty tag list"):
        open_dataset("voc", voc_root, name="voc", cls_labels=str(tmp_path / "cls.json"))


def test_errors(voc_root: Path):
    with pytest.raises(DatasetError, match="split 'train_aug'.*train_aug.txt"):
        open_dataset("voc", voc_root, name="voc", split="train_aug")
    train = voc_root / "ImageSets" / "Segmentation" / "train.txt"
    train.write_text("2007_000032\n2099_000001\n")
    with pytest.raises(DatasetError, match=r"2099_000001.*JPEGImages/2099_000001.jpg"):
        open_dataset("voc", voc_root, name="voc")
    train.write_text("2007_000032\n2007_000032\n")
    with pytest.raises(DatasetError, match=r"train.txt.*duplicate id '2007_000032'"):
        open_dataset("voc", voc_root, name="voc")
    train.write_text("../etc/passwd\n")
    with pytest.raises(DatasetError, match=r"train.txt:1.*'\.\./etc/passwd'"):
        open_dataset("voc", voc_root, name="voc")
    with pytest.raises(DatasetError, match="JPEGImages"):
        open_dataset("voc", voc_root / "nowhere", name="voc")
