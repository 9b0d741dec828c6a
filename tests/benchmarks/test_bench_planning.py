"""The planning benchmark's tree builder and its --smoke run (the full-size trees only run in the benchmark)."""
from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from tests.processes import run

from fmwsss.data import open_dataset
from fmwsss.data.classes import COCO_CATEGORY_IDS

BENCH = Path(__file__).resolve().parents[2] / "benchmarks"


@pytest.fixture(scope="module")
def smoke_trees(tmp_path_factory, voc_sample, coco_sample) -> Path:
    dest = tmp_path_factory.mktemp("trees")
    subprocess.run([sys.executable, str(BENCH / "make_synthetic_trees.py"), str(dest), "--smoke",
                    "--samples", str(voc_sample.parent)], check=True, capture_output=True, text=True)
    return dest


def test_voc_tree_has_the_layout_and_each_id_the_tags_of_its_sample_image(smoke_trees, voc_sample):
    ds = open_dataset("voc", smoke_trees / "voc", name="voc")  # tags derived from SegmentationClassAug
    labels = json.loads((voc_sample / "labels.json").read_text())
    assert {k: len(v) for k, v in ds.splits.items()} == {"train_aug": 48, "train": 16, "val": 24}
    assert set(ds.splits["train"]) <= set(ds.ids) and not set(ds.splits["val"]) & set(ds.ids)
    for id_ in ds.ids:
        stem = ds.image_path(id_).resolve().stem
        assert ds.gt_path(id_).resolve().stem == stem
        assert list(ds.tags(id_)) == labels[stem]


def test_coco_tree_tags_come_from_the_sample_images_annotations(smoke_trees, coco_sample):
    ds = open_dataset("coco", smoke_trees / "coco", name="coco")
    data = json.loads((smoke_trees / "coco" / "annotations" / "instances_train2014.json").read_text())
    labels = json.loads((coco_sample / "labels.json").read_text())
    assert len(ds.ids) == len(data["images"]) == 60
    assert len({a["id"] for a in data["annotations"]}) == len(data["annotations"]) == 390
    assert all(i.startswith("COCO_train2014_") for i in ds.ids)
    for id_ in ds.ids:
        sample_cats = {COCO_CATEGORY_IDS.index(c) + 1 for c in labels[ds.image_path(id_).resolve().stem]}
        assert set(ds.tags(id_)) <= sample_cats


@pytest.mark.slow
def test_bench_planning_smoke_prints_every_scenario_and_the_job_start(tmp_path, voc_sample):
    out = tmp_path / "bench.json"
    proc = run([sys.executable, str(BENCH / "bench_planning.py"), "--smoke", "--samples", str(voc_sample.parent),
                "--scratch", str(tmp_path / "scratch"), "--json", str(out)], 600)
    assert proc.returncode == 0, proc.stderr[-3000:]
    result = json.loads(out.read_text())
    rows = {r["what"]: r for r in result["scenarios"]}
    assert list(rows) == ["demo only", "demo, all configured", "voc", "coco"]
    for row in rows.values():
        assert row["jobs"] > 0 and row["cold_s"] > 0 and row["cold_mb"] > 0
        assert f"| {row['what']} |" in proc.stdout
    # configuring more datasets must not change what the demo target runs
    assert rows["demo, all configured"]["jobs"] == rows["demo only"]["jobs"]
    assert result["job_start"]["start_s"] <= result["job_start"]["exit_s"]
    assert "beyond torch" in proc.stdout
