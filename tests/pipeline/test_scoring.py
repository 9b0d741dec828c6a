"""The score entries' scoring (fmwsss.pipeline.scoring) on hand-made seeds and masks: hand-computed IoUs,
only ids with ground truth are read, and a dataset without any says so."""
from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pytest

from fmwsss.data.palette import palette_for, save_label_png
from fmwsss.pipeline.scoring import score_seeds, stage_test_models
from fmwsss.pipeline.stages import weight_roles


@dataclass
class FakeDataset:
    """The slice of the dataset read interface scoring uses."""

    root: Path
    ids: list[str]
    with_gt: set[str]
    name: str = "tiny"
    class_names: tuple[str, ...] = ("cat",)
    splits: dict[str, list[str]] = field(default_factory=dict)

    def gt_path(self, image_id: str) -> Path | None:
        return self.root / "gt" / f"{image_id}.png" if image_id in self.with_gt else None


def _png(path: Path, labels: list[list[int]]) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    save_label_png(path, np.array(labels, np.uint8), palette_for(1))


def test_seed_scores_by_hand_and_only_ids_with_ground_truth_are_read(tmp_path):
    entry, out = tmp_path / "entry", tmp_path / "out"
    out.mkdir()
    _png(entry / "a.png", [[0, 1], [1, 1]])
    _png(tmp_path / "gt" / "a.png", [[0, 1], [0, 1]])
    # "b" has no ground truth and no seed file: reading it would fail
    ds = FakeDataset(tmp_path, ["a", "b"], {"a"}, splits={"train": ["a", "b"]})
    metrics = score_seeds(ds, "seeds_fine", entry, out, log=lambda m: None)
    # background: TP 1, FN 1, FP 0 -> 1/2; cat: TP 2, FP 1, FN 0 -> 2/3
    assert metrics["stage"] == "seeds_fine" and metrics["ground_truth"] is True
    assert metrics["split"] == "tiny: train (1 images with ground truth)" and metrics["num_images"] == 1
    assert [c["iou"] for c in metrics["per_class"]] == pytest.approx([1 / 2, 2 / 3])
    assert metrics["miou"] == pytest.approx((1 / 2 + 2 / 3) / 2) and metrics["pixel_accuracy"] == pytest.approx(3 / 4)
    scores = json.loads((out / "scores.json").read_text())
    assert list(scores["images"]) == ["a"] and scores["confusion"] == [[1, 1], [0, 2]]


def test_no_ground_truth_gives_a_metrics_saying_so_and_no_scores_file(tmp_path):
    out = tmp_path / "out"
    out.mkdir()
    ds = FakeDataset(tmp_path, ["a"], set())
    metrics = score_seeds(ds, "seeds_coarse", tmp_path / "entry", out, log=lambda m: None)
    assert metrics == {"stage": "seeds_coarse", "split": "tiny: all ids (0 images with ground truth)",
                       "ground_truth": False}
    assert list(out.iterdir()) == []


def test_weight_roles_follow_the_stage_graph():
    assert weight_roles("sam_masks") == ("sam",)
    assert weight_roles("cams_coarse_dump") == ("clip",)  # prompts_cls_train and the CAMs: CLIP only
    assert weight_roles("seeds_coarse") == ("clip", "sam")
    assert weight_roles("deeplab_eval") == ("clip", "sam")


def test_metrics_name_the_test_models_behind_each_stage():
    """The ``test_models`` field of metrics.json: the random-weight models upstream of the scored stage."""
    mixed = {"models": {"clip": "random_clip_vit_b16", "sam": "sam_vit_h"}}
    assert stage_test_models(mixed, "cams_coarse_dump") == ["random_clip_vit_b16"]
    assert stage_test_models(mixed, "seeds_fine") == ["random_clip_vit_b16"]
    assert stage_test_models({"models": {"clip": "clip_vit_b16_openai", "sam": "random_sam_vit_h"}},
                              "cams_coarse_dump") == []  # the coarse CAMs never see SAM
    deeplab = {"arch": "tiny", "pretrained_backbone": False}
    assert stage_test_models({"models": {"clip": "tiny_clip", "sam": "tiny_sam"}, "segmenter": deeplab},
                             "deeplab_eval") == ["tiny_clip", "tiny_sam"]
    real = {"models": {"clip": "clip_vit_b16_openai", "sam": "sam_vit_h"}}
    assert stage_test_models({**real, "segmenter": deeplab}, "deeplab_eval") == []
    swin_l = {"arch": "mask2former_swin_large", "pretrained_backbone": True}
    assert stage_test_models({**real, "segmenter": swin_l}, "deeplab_train") == []  # a real backbone
    tiny_m2f = {"arch": "tiny_mask2former", "pretrained_backbone": True}
    assert stage_test_models({**real, "segmenter": tiny_m2f}, "deeplab_eval") == ["tiny_swin"]
    assert stage_test_models({**real, "segmenter": tiny_m2f}, "seeds_fine") == []  # upstream of stage II
