"""The projection arithmetic of ``fmwsss cost`` on hand-written timing records (expected numbers computed by hand)."""
from __future__ import annotations

from pathlib import Path

import pytest

from fmwsss.io.timing import TimingRecord
from fmwsss.pipeline import cost
from fmwsss.pipeline.cost import Counts

GiB = 2**30
ROOT = Path(__file__).resolve().parents[2]


def rec(stage: str, job: str, items: int, seconds: float, startup: float, peak: float = 1.0, unit: str = "image",
        kind: str = "gpu") -> TimingRecord:
    return TimingRecord(stage=stage, job=job, unit=unit, items=items, seconds=seconds, startup_seconds=startup,
                        peak_memory_bytes=int(peak * GiB), peak_memory_kind=kind, device="cuda:0 GPU", cpu="cpu",
                        threads=8, host="h")


SAM = [rec("sam_masks", "shard-000", 10, 25.0, 8.0, peak=4.0), rec("sam_masks", "shard-001", 5, 15.0, 6.0, peak=6.0),
       rec("sam_masks", "shard-002", 0, 0.0, 3.0, peak=9.0)]  # the last one reused every image: ignored


def test_measured_pools_the_jobs_that_computed_something():
    m = cost.measured(SAM)
    # 15 images in 40 s; start-up the mean of 8 and 6; the 0-item job's 9 GiB is not a measurement
    assert (m.items, m.seconds, m.jobs, m.startup_seconds) == (15, 40.0, 2, 7.0)
    assert m.seconds_per_item == pytest.approx(40 / 15)
    assert (m.peak_memory_bytes, m.peak_memory_kind) == (6 * GiB, "gpu")
    assert cost.measured([SAM[2]]) is None and cost.measured([]) is None


def test_a_sharded_stage_pays_a_start_up_per_shard_and_splits_over_at_most_its_jobs():
    settings = {"data": {"shard_size": 300}}
    n = cost.need("sam_masks", settings, Counts(run=1000, val=100, source="test"))
    assert (n.items, n.jobs, n.splits) == (1000, 4, True)  # ceil(1000 / 300) shards
    m = cost.measured(SAM)
    # 1000 images x 40/15 s + 4 jobs x 7 s = 2666.67 + 28 = 2694.67 s; on 3 GPUs a third
    one, three = cost.project(m, n, 3)
    assert one == pytest.approx(2694.6667, abs=1e-3) and three == pytest.approx(898.2222, abs=1e-3)
    # 8 GPUs, 4 shard jobs: 4 run at once, the others idle
    assert cost.project(m, n, 8)[1] == pytest.approx(673.6667, abs=1e-3)


def test_training_runs_its_iterations_on_one_gpu_and_evaluation_the_val_split():
    settings = {"prompts_cls": {"mode": "learned", "iterations": 1800}, "segmenter": {"iterations": 30000}}
    counts = Counts(run=1000, val=1449, source="test")
    train = cost.need("prompts_cls_train", settings, counts)
    m = cost.measured([rec("prompts_cls_train", "job", 40, 20.0, 5.0, unit="iteration")])
    # 0.5 s/iteration x 1800 + 5 s start-up; --gpus does not divide it
    assert cost.project(m, train, 4) == (905.0, 905.0)
    evaluate = cost.need("deeplab_eval", settings, counts)
    m = cost.measured([rec("deeplab_eval", "job", 8, 4.0, 2.0)])
    assert (evaluate.items, evaluate.jobs, evaluate.splits) == (1449, 1, False)
    assert cost.project(m, evaluate, 4) == (726.5, 726.5)  # 0.5 s x 1449 + 2 s
    score = cost.need("score_seeds_fine", settings, counts)
    m = cost.measured([rec("score_seeds_fine", "job", 24, 2.4, 1.0, kind="rss")])
    assert cost.project(m, score, 4) == pytest.approx((101.0, 101.0))  # 0.1 s x 1000 + 1 s, one CPU job


def test_deeplab_does_not_run_without_a_val_split_and_zero_shot_prompts_train_nothing():
    settings = {"prompts_seg": {"mode": "zero_shot", "iterations": 17000}, "segmenter": {"iterations": 80000}}
    counts = Counts(run=82783, val=None, source="test")
    assert cost.need("deeplab_train", settings, counts).items is None
    assert cost.need("deeplab_eval", settings, counts).why == "not run: no 'val' split"
    assert cost.need("prompts_seg_train", settings, counts).items == 0


def _settings(points: int, batch: int, iterations: int, warmup: int, shard: int) -> dict:
    return {"models": {"sam": "tiny_sam", "clip": "tiny_clip"}, "data": {"shard_size": shard},
            "sam": {"points_per_side": points, "crop_n_layers": 0}, "classes": {"bg_names": ["sky"]},
            "prompts_cls": {"batch_size": batch, "iterations": iterations, "warmup_iters": warmup}}


def test_setting_differences_leave_out_iteration_counts_and_the_shard_layout():
    source, target = _settings(8, 4, 40, 5, 24), _settings(32, 4, 1800, 500, 500)
    assert cost.setting_differences("sam_masks", source, target) == ["sam.points_per_side: 8 vs 32"]
    assert cost.setting_differences("prompts_cls_train", source, target) == []
    target["prompts_cls"]["batch_size"] = 16
    target["models"]["clip"] = "clip_vit_b16_openai"
    assert cost.setting_differences("prompts_cls_train", source, target) == [
        "models.clip: clip tiny vs clip ViT-B-16-quickgelu", "prompts_cls.batch_size: 4 vs 16"]
    target["classes"]["bg_names"] = ["ground", "land", "grass", "tree", "building", "wall", "sky"]
    assert cost.setting_differences("prompts_cls_train", source, target)[0] == 'classes.bg_names: ["sky"] vs [7 items]'


def test_the_shipped_rehearsal_costs_what_voc_does_but_for_its_iteration_counts():
    """The rehearsal differs from voc in iteration counts, the shard layout, random models of the real
    architectures and DeepLab's initialisation: nothing that changes a unit cost, so no stage is flagged."""
    from fmwsss.pipeline.config import Config

    config = Config.from_file(ROOT / "config.yaml")
    rehearsal, voc = config.settings("rehearsal"), config.settings("voc")
    assert cost.compared_settings("sam_masks", rehearsal)["models.sam"] == "sam vit_h"
    assert {row: cost.differences(row, rehearsal, voc) for row in cost.row_names()} == {
        row: [] for row in cost.row_names()}
    other = {**voc, "models": {**voc["models"], "sam": "sam_vit_b"}}
    assert cost.setting_differences("sam_masks", rehearsal, other) == ["models.sam: sam vit_h vs sam vit_b"]


def test_standard_split_sizes():
    voc, coco = cost.standard_counts("voc", "voc", None), cost.standard_counts("coco", "coco", "val2014")
    assert (voc.run, voc.val) == (10582, 1449)  # train_aug, val
    assert (coco.run, coco.val) == (40137, None)  # one split: no 'val'
    assert cost.standard_counts("coco", "coco", None).source == "standard split size, no index for coco"
    with pytest.raises(ValueError, match="run `fmwsss index mine`"):
        cost.standard_counts("mine", "custom", None)


def test_rows_project_what_was_measured_and_say_why_the_rest_is_not():
    from fmwsss.pipeline.config import Config

    config = Config.from_file(ROOT / "config.yaml")
    demo, voc = config.settings("demo"), config.settings("voc")
    records = {"sam_masks": SAM, "prompts_cls_train": [rec("prompts_cls_train", "job", 40, 20.0, 5.0, unit="iteration")],
               "seeds_coarse": [rec("seeds_coarse", "shard-000", 0, 0.0, 2.0)]}
    table = {r.stage: r for r in cost.rows(demo, voc, Counts(10582, 1449, "test"), records,
                                           {"deeplab_eval": "src has no 'val' split"}, gpus=2)}
    assert list(table) == cost.row_names()
    # 10582 images x 40/15 s + ceil(10582 / 500) = 22 shard jobs x 7 s; 1800 iterations x 0.5 s + 5 s
    assert table["sam_masks"].one_gpu == pytest.approx(28372.667, abs=1e-3)
    assert table["sam_masks"].n_gpus == pytest.approx(14186.333, abs=1e-3)
    assert table["prompts_cls_train"].one_gpu == table["prompts_cls_train"].n_gpus == 905.0
    assert table["cams_coarse_dump"].why == "not measured: no timing record"
    assert table["seeds_coarse"].why == "not measured: its jobs computed nothing (their results were reused)"
    assert table["deeplab_eval"].why == "not measured: src has no 'val' split"
    assert "prompts_cls.batch_size: 4 vs 16" in table["prompts_cls_train"].differs
    assert cost.total(list(table.values())) == pytest.approx((28372.667 + 905, 14186.333 + 905), abs=1e-3)


def test_a_stage_whose_inputs_were_made_with_other_settings_says_so():
    source, target = _settings(8, 4, 40, 5, 24), _settings(32, 4, 1800, 500, 500)
    for settings in (source, target):
        settings.update(cams_coarse={}, seeds_coarse={})
    assert cost.inputs_of("seeds_coarse") == ("cams_coarse_dump", "sam_masks")
    assert cost.inputs_of("score_seeds_coarse") == ("seeds_coarse",)
    assert cost.differences("prompts_cls_train", source, target) == []  # reads no stage
    assert cost.differences("cams_coarse_dump", source, target) == []  # its prompts: only iteration counts differ
    # SAM masks of 8 vs 32 points: the seeds read them directly, their score through the seeds
    assert cost.differences("seeds_coarse", source, target) == ["inputs from sam_masks made with other settings"]
    assert cost.differences("score_seeds_coarse", source, target) == [
        "inputs from seeds_coarse made with other settings"]
    target["prompts_cls"] = {**target["prompts_cls"], "batch_size": 16}  # now the CAMs' prompts differ too
    assert cost.differences("seeds_coarse", source, target) == [
        "inputs from cams_coarse_dump, sam_masks made with other settings"]
