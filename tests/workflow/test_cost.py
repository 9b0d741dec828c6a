"""Timing records of the shared demo run and ``fmwsss cost`` on them: every compute and score job wrote one into
its entry, outside the entry's integrity record; the cost table projects a VOC and a COCO run from them."""
from __future__ import annotations

import contextlib
import io
import json
import re
from pathlib import Path

import pytest

from fmwsss.cli.main import main
from fmwsss.io.timing import read_records
from fmwsss.pipeline.config import Config
from fmwsss.pipeline.cost import row_names
from fmwsss.pipeline.integrity import read_record
from fmwsss.pipeline.plan import Plan
from fmwsss.pipeline.stages import SCORES, STAGES

pytestmark = pytest.mark.e2e

# The demo run, by hand: 24 sample images (16 train, 8 val, fmwsss/data/demo_ids.json) in one shard of 24, and
# 40 iterations of each training (the demo preset of config.yaml).
DEMO_IMAGES, DEMO_VAL, DEMO_ITERATIONS = 24, 8, 40
DURATION = re.compile(r"(?<![\d.])(?:\d+(?:\.\d)? s|\d+ min \d\d s|\d+ h \d\d min|\d+ d \d\d h)(?![/\w])")


def _fmwsss(wd: Path, *args: str) -> tuple[int, str, str]:
    out, err = io.StringIO(), io.StringIO()
    with contextlib.chdir(wd), contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
        code = main(list(args))
    return code, out.getvalue(), err.getvalue()


def _entries(wd: Path) -> dict[str, Path]:
    """The demo run's current entry of every stage and score job."""
    with contextlib.chdir(wd):
        plan = Plan(Config.from_file("config.yaml"), refresh=False)
        found = {stage: wd / plan.store("demo", stage) for stage in STAGES}
        found.update({s.name: wd / plan.score_store("demo", s.stage) for s in SCORES.values()})
    return found


def test_every_compute_and_score_job_wrote_its_timing_record_outside_the_integrity_record(demo_run):
    wd = demo_run.path
    expected_items = {"prompts_cls_train": DEMO_ITERATIONS, "prompts_seg_train": DEMO_ITERATIONS,
                      "deeplab_train": DEMO_ITERATIONS, "deeplab_eval": DEMO_VAL}
    for row, entry in _entries(wd).items():
        sharded = row in STAGES and STAGES[row].sharded
        (record,) = read_records(entry)
        assert (record.stage, record.job) == (row, "shard-000" if sharded else "job"), entry
        # the CAM scores read every image twice (raw and CAA CAMs): each image counts once
        assert record.items == expected_items.get(row, DEMO_IMAGES), record
        assert record.unit == ("iteration" if row.endswith("_train") else "image"), record
        assert record.seconds > 0 and record.startup_seconds > 0 and record.peak_memory_bytes > 0, record
        assert record.device == "cpu" and record.peak_memory_kind == "rss" and record.threads >= 1, record
        assert record.host and record.cpu, record
        assert not [name for name in read_record(entry) if name.startswith("timing/")], entry
    code, out, err = _fmwsss(wd, "status", "demo", "--verify")
    assert code == 0 and "damaged" not in out, out + err


def _rows(out: str) -> dict[str, str]:
    """Table line of each row name (a row of settings that differ ends its name with ' *')."""
    lines = out.splitlines()
    return {name: next(ln for ln in lines if re.match(rf"{name}( \*)? ", ln)) for name in row_names()}


def test_cost_of_voc_and_coco_from_the_demo_run(demo_run):
    wd = demo_run.path
    code, out, err = _fmwsss(wd, "cost", "voc", "--from", "demo", "--gpus", "4")
    assert code == 0, out + err
    assert "WARNING: demo ran with test models (tiny_clip, tiny_sam" in out
    assert "voc: 10,582 images, 1,449 in its 'val' split (standard split size, no index for voc)" in out
    differ = {ln.split(":")[0][2:]: ln for ln in out.splitlines() if ln.startswith("* ")}
    assert "sam.points_per_side: 8 vs 32" in differ["sam_masks"] and "does not transfer" in differ["sam_masks"]
    assert "prompts_cls.batch_size: 4 vs 16" in differ["prompts_cls_train"]
    assert "segmenter.arch: tiny vs mask2former_swin_large" in differ["deeplab_train"]
    rows = _rows(out)
    for name, line in rows.items():
        assert re.search(r"[\d.]+ s/(image|iteration)", line) and len(DURATION.findall(line)) == 2, line
    assert "10,582 images (22 jobs)" in rows["sam_masks"]  # ceil(10582 / 500) shards
    assert "1,800 iterations" in rows["prompts_cls_train"] and "1 GPU: does not split" in rows["prompts_cls_train"]
    assert "1,449 images" in rows["deeplab_eval"]

    code, out, err = _fmwsss(wd, "cost", "voc", "--from", "demo", "--gpus", "4", "--json")
    assert code == 0, err
    sam = next(r for r in json.loads(out)["rows"] if r["stage"] == "sam_masks")
    (record,) = read_records(_entries(wd)["sam_masks"])
    one = record.seconds / record.items * 10582 + record.startup_seconds * 22  # 22 shard jobs, each starting up
    assert sam["one_gpu_seconds"] == pytest.approx(one) and sam["n_gpus_seconds"] == pytest.approx(one / 4)

    code, out, err = _fmwsss(wd, "cost", "coco", "--from", "demo")  # the shipped entry, root unset: no data here
    assert code == 0, out + err
    assert "coco: 82,081 images, no 'val' split (standard split size, no index for coco)" in out
    rows = _rows(out)
    assert "not run: no 'val' split" in rows["deeplab_train"] and "not run: no 'val' split" in rows["deeplab_eval"]
    assert "82,081 images (165 jobs)" in rows["seeds_fine"]  # ceil(82081 / 500)
    assert re.search(r"^\* cams_fine_dump: settings differ .*cams_fine\.caa\.enabled: true vs false", out, re.M)


def test_cost_refuses_unknown_datasets_and_unfinished_sources(demo_run, tmp_path):
    code, out, err = _fmwsss(demo_run.path, "cost", "nowhere", "--from", "demo")
    assert code == 2 and "datasets.nowhere: no such dataset" in err
    wd = demo_run.copy(tmp_path / "wd").path
    (_entries(wd)["deeplab_eval"] / "metrics.json").unlink()
    code, out, err = _fmwsss(wd, "cost", "voc", "--from", "demo")
    assert code == 2, out
    assert "the source run demo is not finished: deeplab_eval not done" in err
    assert "`snakemake --cores all results/demo/deeplab`" in err


def test_tiny_test_models_are_a_warning_and_full_size_ones_a_note_on_what_random_weights_change():
    import argparse

    from fmwsss.cli.cost import _notes

    config = Config.from_file(Path(__file__).resolve().parents[2] / "config.yaml")
    args = argparse.Namespace(source="rehearsal", dataset="voc")
    notes = _notes(args, config, None, ["random_clip_vit_b16", "random_sam_vit_h"])
    assert len(notes) == 1 and notes[0].startswith("note: rehearsal ran with full-size random-weight test models "
                                                   "(random_clip_vit_b16, random_sam_vit_h): the real architectures")
    assert "a random SAM keeps few or no masks" in notes[0]
    (warning,) = _notes(argparse.Namespace(source="demo", dataset="voc"), config, None, ["tiny_clip", "tiny_sam"])
    assert warning.startswith("WARNING: demo ran with test models (tiny_clip, tiny_sam: random weights, tiny ")
