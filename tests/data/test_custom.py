import json
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from fmwsss.data import DatasetError, open_dataset


@pytest.fixture
def root(tmp_path: Path) -> Path:
    (tmp_path / "images").mkdir()
    for i in ("a", "b", "c"):
        Image.fromarray(np.zeros((20, 20, 3), np.uint8)).save(tmp_path / "images" / f"{i}.png")
    (tmp_path / "classes.txt").write_text("# my classes\ncat\ndog\n\nbird\n")
    (tmp_path / "tags.csv").write_text("id,tags\na,cat;dog\nb,bird | cat\n")
    return tmp_path


def test_csv(root: Path):
    ds = open_dataset("custom", root, name="mine")
    assert ds.class_names == ("cat", "dog", "bird")
    assert ds.ids == ["a", "b"]  # image c has no tags: not used
    assert ds.tags("a") == (1, 2) and ds.tags("b") == (1, 3)
    assert ds.image_path("b") == root / "images" / "b.png" and ds.gt_path("a") is None


def test_files_saved_with_a_byte_order_mark_read_as_without(root: Path):
    """Excel's "CSV UTF-8" and Windows editors start the file with U+FEFF: not part of 'id' or a class name."""
    bom = "\ufeff"
    (root / "classes.txt").write_text(bom + "cat\ndog\nbird\n", encoding="utf-8")
    (root / "tags.csv").write_text(bom + "id,tags\r\na,cat;dog\r\nb,bird\r\n", encoding="utf-8")
    ds = open_dataset("custom", root, name="mine")
    assert ds.class_names == ("cat", "dog", "bird") and ds.tags("a") == (1, 2) and ds.tags("b") == (3,)
    (root / "tags.json").write_text(bom + json.dumps({"c": ["cat"]}), encoding="utf-8")
    assert open_dataset("custom", root, name="mine", tags="tags.json").tags("c") == (1,)


def test_json_and_yaml(root: Path):
    (root / "tags.json").write_text(json.dumps({"c": ["bird"], "a": ["dog"]}))
    (root / "classes.yaml").write_text("- cat\n- dog\n- bird\n")
    ds = open_dataset("custom", root, name="mine", tags="tags.json", classes="classes.yaml")
    assert ds.ids == ["a", "c"] and ds.tags("c") == (3,)


@pytest.mark.parametrize(
    ("text", "pattern"),
    [
        ("id,tags\na,cat;horse\n", r"tags.csv.*'a'.*unknown tag 'horse'"),
        ("id,tags\nz,cat\n", r"tags.csv.*'z'.*no image file"),
        ("id,tags\n../a,cat\n", r"tags.csv:2.*'\.\./a'"),
        ("id,tags\nsub/a,cat\n", r"tags.csv:2.*'sub/a'"),
        ("id,tags\na,\n", r"tags.csv.*'a'.*empty tag list.*cannot be used"),
        ("id,tags\na,cat\na,dog\n", r"tags.csv:3.*duplicate id 'a'"),
        ("a,cat\n", r"tags.csv.*header"),
    ],
)
def test_csv_errors(root: Path, text: str, pattern: str):
    (root / "tags.csv").write_text(text)
    with pytest.raises(DatasetError, match=pattern):
        open_dataset("custom", root, name="mine")


def test_json_errors(root: Path):
    (root / "tags.json").write_text('{"a": ["cat"], "a": ["dog"]}')
    with pytest.raises(DatasetError, match=r"tags.json.*duplicate id 'a'"):
        open_dataset("custom", root, name="mine", tags="tags.json")
    (root / "tags.json").write_text('{"a": ["cow"]}')
    with pytest.raises(DatasetError, match=r"tags.json.*'a'.*unknown tag 'cow'"):
        open_dataset("custom", root, name="mine", tags="tags.json")


def test_class_and_image_errors(root: Path):
    (root / "classes.txt").write_text("cat\ncat\n")
    with pytest.raises(DatasetError, match=r"classes.txt.*duplicate class name 'cat'"):
        open_dataset("custom", root, name="mine")
    (root / "classes.txt").write_text("cat\n")
    Image.fromarray(np.zeros((20, 20, 3), np.uint8)).save(root / "images" / "a.jpg")
    with pytest.raises(DatasetError, match="two image files for id 'a'"):
        open_dataset("custom", root, name="mine")
    with pytest.raises(DatasetError, match="nothere.csv.*not found"):
        open_dataset("custom", root, name="mine", tags="nothere.csv")
