import json
from pathlib import Path

import pytest

from fmwsss.data import DatasetError, demo_splits, open_dataset
from fmwsss.data.demo import DEMO_IDS_FILE


def test_demo_ids_shipped_match_manifest(voc_sample: Path):
    splits = demo_splits()
    assert len(splits["train"]) == 16 and len(splits["val"]) == 8 and len(splits["all"]) == 24
    assert set(json.loads(DEMO_IDS_FILE.read_text())) == {"train", "val"}
    rows = [ln.split("|") for ln in (voc_sample / "MANIFEST.md").read_text().splitlines() if ln.startswith("| 20")]
    assert {r[1].strip(): r[4].strip() for r in rows} == {i: s for s in ("train", "val") for i in splits[s]}


def test_open_demo_over_shared_sample(voc_sample: Path):
    ds = open_dataset("demo", voc_sample, name="demo")
    labels = json.loads((voc_sample / "labels.json").read_text())
    assert ds.ids == sorted(labels) and ds.splits["all"] == ds.ids
    assert all(ds.tags(i) == tuple(labels[i]) for i in ds.ids)
    assert ds.gt_path("2007_000032") == voc_sample / "SegmentationClass" / "2007_000032.png"


def test_missing_demo_says_how_to_fetch(tmp_path: Path):
    with pytest.raises(DatasetError, match="fmwsss data voc-sample"):
        open_dataset("demo", tmp_path / "nothing", name="demo")
