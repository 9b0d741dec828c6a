"""The coco preset end to end on the 12-image COCO sample (dataset coco_demo), from the shared session run.

Expected values come from the sample's instances JSON, read here with the standard library: the ids are the
file stems of its images, the tags its categories (contiguous label = rank of the category id + 1).
"""
from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

pytestmark = pytest.mark.e2e


@pytest.fixture(scope="module")
def coco_run(demo_attempt) -> Path:
    demo_run = demo_attempt.get()
    assert (demo_run.path / "results/coco_demo/seeds").is_dir(), "the session run did not build coco_demo seeds"
    return demo_run.path


def _expected_tags(workdir: Path) -> dict[str, set[int]]:
    data = json.loads((workdir / "data/coco_sample/annotations/instances_sample.json").read_text())
    label = {cat: rank + 1 for rank, cat in enumerate(sorted(c["id"] for c in data["categories"]))}
    stem = {rec["id"]: Path(rec["file_name"]).stem for rec in data["images"]}
    tags: dict[str, set[int]] = {}
    for ann in data["annotations"]:
        tags.setdefault(stem[ann["image_id"]], set()).add(label[ann["category_id"]])
    return tags


def test_coco_seeds_are_tag_classes_for_every_id(coco_run):
    tags = _expected_tags(coco_run)
    seeds = coco_run / "results/coco_demo/seeds"
    assert seeds.is_symlink() and len(tags) == 12
    assert sorted(p.stem for p in seeds.glob("*.png")) == sorted(tags)
    painted = set()
    for image_id, image_tags in tags.items():
        img = Image.open(seeds / f"{image_id}.png")
        source = Image.open(coco_run / "data/coco_sample/val2014" / f"{image_id}.jpg")
        assert img.mode == "P" and img.size == source.size
        values = set(np.unique(np.asarray(img)).tolist())
        assert max(values) <= 80 and values - {0} <= image_tags, (image_id, values, image_tags)
        painted |= values - {0}
    assert painted, "no foreground class painted in any of the 12 seed maps"


def test_coco_seeds_scored_against_the_painted_ground_truth(coco_run):
    metrics = json.loads((coco_run / "results/coco_demo/seeds/metrics.json").read_text())
    assert metrics["ground_truth"] and metrics["num_images"] == 12
    assert metrics["split"].startswith("coco_demo: val2014 (12 images with ground truth)")
    assert len(metrics["per_class"]) == 81 and 0 <= metrics["miou"] <= 1
    painted = list((coco_run / "results/coco_demo/gt").glob("*/*.png"))
    assert sorted(p.stem for p in painted) == sorted(_expected_tags(coco_run))


def test_coco_preset_settings_reached_the_stages(coco_run):
    fine_spec = json.loads((coco_run / "results/coco_demo/cams_fine/spec.json").read_text())
    seg_key = fine_spec["upstream"]["prompts_seg_train"]
    seg_spec = coco_run / "results/coco_demo/store/prompts_seg_train" / seg_key / "spec.json"
    seg = json.loads(seg_spec.read_text())["settings"]["prompts_seg"]
    assert seg["positives"] == "image_tags" and not seg["class_specific"] and seg["name_position"] == "end"
    fine = json.loads((coco_run / "results/coco_demo/cams_fine/metrics.json").read_text())
    assert fine["cam_raw"] == fine["cam_caa"]  # no CAA in the fine stage: the raw CAM is passed through


def test_make_demo_coco_report_builds_on_a_run_to_the_seeds(demo_run, tmp_path):
    """`make demo-coco` ends with `fmwsss report coco_demo`: on a run that stops at the seeds (no val split, no
    segmenter) it builds, says the models were tiny, and names its index.html once."""
    import contextlib
    import io

    from fmwsss.cli.main import main

    wd = demo_run.copy(tmp_path / "wd")
    out = io.StringIO()
    with contextlib.chdir(wd.path), contextlib.redirect_stdout(out):
        assert main(["report", "coco_demo"]) == 0
    assert out.getvalue().count("results/coco_demo/report/index.html") == 1, out.getvalue()
    html = (wd.path / "results/coco_demo/report/index.html").read_text()
    assert 'id="test-models-banner"' in html and "tiny_clip" in html
