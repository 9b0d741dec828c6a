from pathlib import Path

import pytest

from fmwsss.data import DATASET_TYPES, DatasetError, open_dataset
from fmwsss.data.base import check_id, make_dataset


@pytest.mark.parametrize("bad", ["", "a/b", "a\\b", "..", "x..y", ".hidden", " pad", 3])
def test_check_id_rejects(bad):
    with pytest.raises(DatasetError, match="where"):
        check_id(bad, "where")


def test_check_id_accepts():
    assert check_id("2007_000032", "w") == "2007_000032"
    assert check_id("COCO_val2014_000000574769", "w") == "COCO_val2014_000000574769"


def test_registry_and_unknowns(tmp_path: Path):
    assert {"voc", "coco", "custom", "demo"} <= set(DATASET_TYPES)
    with pytest.raises(DatasetError, match="unknown type 'vcc'.*voc"):
        open_dataset("vcc", tmp_path, name="x")
    with pytest.raises(DatasetError, match=r"'demo'.*bad options \['colour'\]"):
        open_dataset("demo", tmp_path, name="x", colour=1)


def _make(tmp_path: Path, **kw):
    (tmp_path / "a.jpg").write_bytes(b"")
    args = dict(
        name="t", type="t", root=tmp_path, class_names=["cat", "dog"], ids=["a"], splits={},
        images={"a": tmp_path / "a.jpg"}, tags={"a": [2, 1, 2]}, gt=lambda _i: None, tags_source="tags.csv",
    )
    args.update(kw)
    return make_dataset(**args)


def test_make_dataset(tmp_path: Path):
    ds = _make(tmp_path)
    assert ds.tags("a") == (1, 2) and ds.num_classes == 2 and ds.gt_path("a") is None
    with pytest.raises(DatasetError, match="unknown image id 'b'"):
        ds.tags("b")
    with pytest.raises(DatasetError, match=r"tags.csv.*'a'.*outside 1..2"):
        _make(tmp_path, tags={"a": [3]})
    with pytest.raises(DatasetError, match="unique"):
        _make(tmp_path, class_names=["cat", "cat"])
    with pytest.raises(DatasetError, match="duplicate id 'a'"):
        _make(tmp_path, ids=["a", "a"])
