"""The dataset index in the workflow: which input moves which stage key (dry runs with the shipped rerun
triggers), touching moves nothing, untargeted datasets are never opened, and jobs read only the index."""
from __future__ import annotations

import json
import os
import shutil
from pathlib import Path

import numpy as np
import pytest
import yaml
from PIL import Image

from fmwsss.pipeline.config import Config
from fmwsss.pipeline.plan import Plan
from fmwsss.pipeline.stages import SCORES, STAGES

from .conftest import Workdir

pytestmark = pytest.mark.e2e

ALL = set(STAGES)
SCORE_ENTRIES = {s.name for s in SCORES.values()}  # ground truth enters only these (and deeplab_eval, via val_gt)


def _voc_tree(root: Path, sample: Path, train: list[str], val: list[str], spare: list[str]) -> None:
    """A VOC layout of sample images (tags from a labels JSON); ``spare`` ids have files but no split."""
    (root / "ImageSets" / "Segmentation").mkdir(parents=True)
    (root / "JPEGImages").mkdir()
    (root / "SegmentationClass").mkdir()
    for i in train + val + spare:
        shutil.copy(sample / "JPEGImages" / f"{i}.jpg", root / "JPEGImages")
        shutil.copy(sample / "SegmentationClass" / f"{i}.png", root / "SegmentationClass")
    (root / "ImageSets/Segmentation/train.txt").write_text("\n".join(train) + "\n")
    (root / "ImageSets/Segmentation/val.txt").write_text("\n".join(val) + "\n")
    shutil.copy(sample / "labels.json", root / "labels.json")


def _keys(updated: list[str]) -> dict[str, dict[str, str]]:
    """dataset -> stage -> key, from the store paths a dry run would write."""
    out: dict[str, dict[str, str]] = {}
    for p in updated:
        parts = p.split("/")
        if len(parts) > 4 and parts[2] == "store":
            out.setdefault(parts[1], {})[parts[3]] = parts[4]
    return out


def _change_gt(path: Path) -> None:
    labels = np.array(Image.open(path))
    img = Image.fromarray(np.where(labels == 0, 255, labels).astype(np.uint8), mode="P")
    img.putpalette(Image.open(path).getpalette())
    img.save(path)


@pytest.mark.slow
def test_each_input_moves_exactly_its_stages(tmp_path, voc_sample, coco_sample):
    ids = sorted(json.loads((voc_sample / "labels.json").read_text()))
    train, val, spare = ids[:6], ids[6:9], ids[9:11]
    base = tmp_path / "trees" / "voc_base"
    _voc_tree(base, voc_sample, train, val, spare)
    variants = {}

    def variant(name, change):
        root = tmp_path / "trees" / name
        shutil.copytree(base, root)
        change(root)
        variants[name] = root

    def new_train_id(root):
        (root / "ImageSets/Segmentation/train.txt").write_text("\n".join(train + spare[:1]) + "\n")

    def new_val_id(root):
        (root / "ImageSets/Segmentation/val.txt").write_text("\n".join(val + spare[:1]) + "\n")

    def changed_tag(root):
        labels = json.loads((root / "labels.json").read_text())
        labels[train[0]] = sorted(set(labels[train[0]]) | {1 if 1 not in labels[train[0]] else 2})
        (root / "labels.json").write_text(json.dumps(labels))

    def replace_image(i):
        return lambda root: shutil.copy(root / "JPEGImages" / f"{spare[1]}.jpg", root / "JPEGImages" / f"{i}.jpg")

    def change_gt(i):
        return lambda root: _change_gt(root / "SegmentationClass" / f"{i}.png")

    def touched(root):
        for p in root.rglob("*"):
            os.utime(p, (1_000_000_000, 1_000_000_000))

    variant("voc_new_id", new_train_id)
    variant("voc_new_val_id", new_val_id)
    variant("voc_tag", changed_tag)
    variant("voc_image", replace_image(train[1]))
    variant("voc_val_image", replace_image(val[0]))
    variant("voc_gt", change_gt(train[2]))
    variant("voc_val_gt", change_gt(val[1]))
    variant("voc_touched", touched)

    coco = tmp_path / "trees" / "coco_base"
    shutil.copytree(coco_sample, coco)
    coco_ann = tmp_path / "trees" / "coco_ann"
    shutil.copytree(coco_sample, coco_ann)
    ann_file = coco_ann / "annotations" / "instances_sample.json"
    data = json.loads(ann_file.read_text())
    big = max((a for a in data["annotations"] if isinstance(a["segmentation"], list)), key=lambda a: a["area"])
    big["segmentation"] = [[max(v - 20, 0) if k % 2 == 0 else v for k, v in enumerate(poly)]
                           for poly in big["segmentation"]]  # the same object, 20 px further left
    ann_file.write_text(json.dumps(data))

    wd = Workdir(tmp_path / "wd")
    wd.path.mkdir()
    raw = yaml.safe_load((Path(__file__).resolve().parents[2] / "config.yaml").read_text())
    voc_entry = {"type": "voc", "preset": "demo", "options": {"cls_labels": "labels.json"}}
    coco_options = {"split": "val2014", "annotations": "annotations/instances_sample.json", "cache_dir": "cache"}
    coco_entry = {"type": "coco", "preset": "demo", "options": coco_options,
                  "overrides": {"classes": {"fg_prompt_names": None}}}
    raw["datasets"] = {"voc_base": {**voc_entry, "root": str(base)}}
    raw["datasets"].update({name: {**voc_entry, "root": str(root)} for name, root in variants.items()})
    raw["datasets"]["coco_base"] = {**coco_entry, "root": str(coco)}
    raw["datasets"]["coco_ann"] = {**coco_entry, "root": str(coco_ann)}
    wd.write_config(yaml.safe_dump(raw))

    targets = [f"results/{name}/{alias}" for name in raw["datasets"] for alias in ("seeds", "deeplab")]
    keys = _keys(wd.updated(*targets))

    def moved(name, reference="voc_base"):
        return {s for s in keys[reference] if keys[name][s] != keys[reference][s]}

    assert set(keys["voc_base"]) == ALL | SCORE_ENTRIES
    assert moved("voc_touched") == set()  # mtimes and the root folder's path are in no key
    assert moved("voc_new_id") == ALL | SCORE_ENTRIES
    assert moved("voc_new_val_id") == {"deeplab_train", "deeplab_eval"}
    assert moved("voc_tag") == (ALL | SCORE_ENTRIES) - {"sam_masks"}
    assert moved("voc_image") == ALL | SCORE_ENTRIES
    assert moved("voc_val_image") == {"deeplab_eval"}
    assert moved("voc_gt") == SCORE_ENTRIES  # a corrected training mask reruns only the scoring
    assert moved("voc_val_gt") == {"deeplab_eval"}
    assert moved("coco_ann", "coco_base") == SCORE_ENTRIES


def test_touching_sources_schedules_nothing_and_other_roots_stay_closed(demo_run, tmp_path):
    wd = demo_run.copy(tmp_path / "wd")
    raw = yaml.safe_load(wd.config_text())
    raw["datasets"]["voc"]["root"] = str(tmp_path / "no-voc-here")
    raw["datasets"]["coco"] = {"type": "coco", "root": str(tmp_path / "no-coco-here"), "preset": "coco"}
    wd.write_config(yaml.safe_dump(raw))
    future = 2_000_000_000
    for p in (wd.path / "data").rglob("*"):
        os.utime(p, (future, future))
    proc = wd.snakemake("-n", "--cores", "1", "results/demo/seeds", "results/demo/deeplab")
    assert "no digest moved" in proc.stderr, proc.stderr[-2000:]
    assert wd.updated("results/demo/seeds", "results/demo/deeplab") == []
    assert not (wd.path / "results/voc").exists() and not (wd.path / "results/coco").exists()


def _garble_keeping_stat(path: Path) -> None:
    """Same size and mtime, unreadable content: any read of it fails, a stat sees no change."""
    st = path.stat()
    path.write_bytes(os.urandom(st.st_size))
    os.utime(path, ns=(st.st_atime_ns, st.st_mtime_ns))


@pytest.mark.slow
def test_jobs_read_neither_ground_truth_nor_annotations(demo_run, tmp_path, voc_sample, coco_sample):
    """Tags of a VOC tree derived from its masks, a COCO annotation JSON: once indexed, jobs read neither."""
    wd = demo_run.copy(tmp_path / "wd")
    ids = sorted(json.loads((voc_sample / "labels.json").read_text()))
    voc = tmp_path / "voc"
    _voc_tree(voc, voc_sample, ids[:6], ids[6:8], [])
    (voc / "labels.json").unlink()
    coco = tmp_path / "coco"
    shutil.copytree(coco_sample, coco)
    raw = yaml.safe_load(wd.config_text())
    raw["datasets"]["voc_gt"] = {"type": "voc", "root": str(voc), "preset": "demo"}
    raw["datasets"]["coco12"] = {
        "type": "coco", "root": str(coco), "preset": "demo",
        "options": {"split": "val2014", "annotations": "annotations/instances_sample.json", "cache_dir": "cache"},
        "overrides": {"classes": {"fg_prompt_names": None}},
    }
    wd.write_config(yaml.safe_dump(raw))
    wd.snakemake("-n", "--cores", "1", "results/voc_gt/cams_coarse", "results/coco12/cams_coarse")

    config = Config.from_file(wd.path / "config.yaml")
    cwd = os.getcwd()
    os.chdir(wd.path)
    try:
        plan = Plan(config, refresh=False)
        targets = [plan.product(name, "prompts_cls_train") for name in ("voc_gt", "coco12")]
    finally:
        os.chdir(cwd)
    garbled = [*(voc / "SegmentationClass").glob("*.png"), coco / "annotations" / "instances_sample.json"]
    for path in garbled:
        _garble_keeping_stat(path)
    before = {p: p.read_bytes() for p in garbled}
    wd.snakemake("--cores", "2", *targets)
    assert all((wd.path / t).is_file() for t in targets)
    assert {p: p.read_bytes() for p in garbled} == before
    log = next((wd.path / "results/voc_gt/logs/prompts_cls_train").glob("*.log")).read_text()
    assert "prompts_cls_train: 6 images" in log, log[-2000:]
