import json
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from fmwsss.data import COCO_ID_TO_LABEL, DatasetError, load_label_png, open_dataset
from fmwsss.data.coco import decode_rle, paint_order, rasterise, rle_string_to_counts


def _open(root: Path, cache: Path | None):
    return open_dataset(
        "coco", root, name="coco", split="val2014", annotations="annotations/instances_sample.json",
        cache_dir=cache,
    )


def _rle_to_string(counts: list[int]) -> str:
    """pycocotools' rleToString, as an independent reference encoder."""
    out = []
    for i, x in enumerate(counts):
        if i > 2:
            x -= counts[i - 2]
        more = True
        while more:
            c = x & 0x1F
            x >>= 5
            more = (x != -1) if (c & 0x10) else (x != 0)
            out.append(chr((c | 0x20 if more else c) + 48))
    return "".join(out)


def test_rle_string_roundtrip():
    rng = np.random.default_rng(1)
    for _ in range(20):
        counts = rng.integers(0, 5000, size=rng.integers(1, 60)).tolist()
        counts[0] = int(rng.integers(0, 3))
        np.testing.assert_array_equal(rle_string_to_counts(_rle_to_string(counts)), counts)
    assert rle_string_to_counts("").size == 0
    with pytest.raises(ValueError):
        rle_string_to_counts("\x7f")


def test_decode_rle_column_major():
    m = decode_rle([1, 2, 3], 2, 3)  # column-major: (0,0)=0, (1,0)=1, (0,1)=1, then zeros
    np.testing.assert_array_equal(m, [[0, 1, 0], [1, 0, 0]])
    np.testing.assert_array_equal(decode_rle(_rle_to_string([1, 2, 3]), 2, 3), m)
    with pytest.raises(ValueError, match="2x3"):
        decode_rle([1, 2], 2, 3)


def test_tags_follow_annotations(coco_sample: Path, tmp_path: Path):
    labels = json.loads((coco_sample / "labels.json").read_text())
    ds = _open(coco_sample, tmp_path / "cache")
    assert ds.ids == sorted(labels) and len(ds.ids) == 12 and ds.num_classes == 80
    for i in ds.ids:
        assert ds.tags(i) == tuple(sorted(COCO_ID_TO_LABEL[c] for c in labels[i]))
        assert ds.image_path(i) == coco_sample / "val2014" / f"{i}.jpg"
    assert COCO_ID_TO_LABEL[50] in ds.tags("COCO_val2014_000000574769")  # the small spoon


def test_label_maps(coco_sample: Path, tmp_path: Path):
    ds = _open(coco_sample, tmp_path / "cache")
    assert _open(coco_sample, None).gt_path(ds.ids[0]) is None
    hidden = {}
    for i in ds.ids:
        path = ds.gt_path(i)
        lab = load_label_png(path)
        with Image.open(ds.image_path(i)) as img:
            assert lab.shape == (img.height, img.width)
        present = set(np.unique(lab).tolist()) - {0}
        assert present <= set(ds.tags(i)), i
        if set(ds.tags(i)) - present:
            hidden[i] = set(ds.tags(i)) - present
    # Truth found on the sample: painting larger instances first leaves every tagged class visible.
    assert hidden == {}
    mtime = ds.gt_path(ds.ids[0]).stat().st_mtime_ns
    assert ds.gt_path(ds.ids[0]).stat().st_mtime_ns == mtime  # cached, not repainted
    assert not list((tmp_path / "cache").rglob(".*"))  # no temporaries left


def test_file_order_hides_the_spoon(coco_sample: Path):
    data = json.loads((coco_sample / "annotations" / "instances_sample.json").read_text())
    anns = [a for a in data["annotations"] if a["image_id"] == 574769]
    rec = next(r for r in data["images"] if r["id"] == 574769)
    spoon = COCO_ID_TO_LABEL[50]
    in_file_order = rasterise(anns, rec["height"], rec["width"])
    assert spoon not in in_file_order  # as the sample's MANIFEST reports (covered by the bowl)
    assert spoon in rasterise(paint_order(anns), rec["height"], rec["width"])


def test_masks_match_coco_areas(coco_sample: Path):
    from fmwsss.data.coco import annotation_mask

    data = json.loads((coco_sample / "annotations" / "instances_sample.json").read_text())
    recs = {r["id"]: r for r in data["images"]}
    rel = []
    for a in data["annotations"]:
        m = annotation_mask(a, recs[a["image_id"]]["height"], recs[a["image_id"]]["width"])
        if a["iscrowd"]:
            assert int(m.sum()) == {900100293802: 4915, 900100184613: 7378}[a["id"]]  # MANIFEST's RLE counts
        elif a["area"] > 500:
            rel.append(m.sum() / a["area"] - 1)
    assert abs(np.mean(rel)) < 0.02 and np.max(np.abs(rel)) < 0.06


def test_coco_errors(coco_sample: Path, tmp_path: Path):
    data = json.loads((coco_sample / "annotations" / "instances_sample.json").read_text())
    root = tmp_path / "coco"
    (root / "annotations").mkdir(parents=True)
    (root / "val2014").symlink_to(coco_sample / "val2014")
    bad = dict(data, annotations=data["annotations"] + [dict(data["annotations"][0], id=1, category_id=12)])
    (root / "annotations" / "instances_sample.json").write_text(json.dumps(bad))
    with pytest.raises(DatasetError, match=r"instances_sample.json.*annotation 1.*category 12"):
        _open(root, None)
    gone = dict(data, images=data["images"] + [dict(data["images"][0], id=7, file_name="COCO_val2014_7.jpg")])
    gone["annotations"] = data["annotations"] + [dict(data["annotations"][0], id=2, image_id=7)]
    (root / "annotations" / "instances_sample.json").write_text(json.dumps(gone))
    with pytest.raises(DatasetError, match=r"'COCO_val2014_7'.*val2014/COCO_val2014_7.jpg"):
        _open(root, None)
    with pytest.raises(DatasetError, match="instances_val2014.json"):
        open_dataset("coco", root, name="coco", split="val2014")
