"""Pieces of the report's pages on hand-made data: the dataset's label, the per-class IoU table's header."""
from __future__ import annotations

from pathlib import Path

from fmwsss.report.collect import RunView
from fmwsss.report.html import banner, dataset_label, iou_section, segmenter_note


def test_dataset_label_says_each_name_once():
    assert dataset_label("voc", "voc", "voc") == "voc"
    assert dataset_label("demo_pretrained", "demo", "demo") == "demo_pretrained (type and preset demo)"
    assert dataset_label("coco_demo", "coco", "coco") == "coco_demo (type and preset coco)"
    assert dataset_label("mine", "voc", "demo") == "mine (type voc, preset demo)"


def test_iou_table_names_each_columns_split():
    per_class = [{"iou": 0.5}, {"iou": None}]
    html = iou_section({"seeds fine": per_class, "segmenter": per_class}, ["background", "cat"],
                       {"seeds fine": 0.5, "segmenter": 0.25},
                       {"seeds fine": "all, 24 images", "segmenter": "val, 8 images"})
    assert '<th>seeds fine<br><span class="split">all, 24 images</span></th>' in html
    assert '<th>segmenter<br><span class="split">val, 8 images</span></th>' in html
    assert '<td class="num">50.0</td><td class="num">50.0</td>' in html and "<b>25.0</b>" in html


def _run(tiny: bool) -> RunView:
    models = {"clip": "tiny_clip", "sam": "tiny_sam"} if tiny else {"clip": "clip_vit_b16_openai", "sam": "sam_vit_h"}
    return RunView("demo", Path("results/demo"), None, {"models": models}, {}, {})


def test_segmenter_note_only_when_it_predicts_nearly_all_background():
    seeds = {"split": "demo: all (2 images with ground truth)", "confusion": [[70, 10], [20, 0]],
             "images": {"a": {}, "b": {}}}
    black = {"split": "demo: val", "confusion": [[60, 0], [39, 1]]}  # 99 % of the predictions background
    note = segmenter_note(_run(tiny=True), {"segmenter": black, "seeds fine": seeds})
    assert ("background on 99.0 % of the val pixels (ground truth: 60.0 %; the fine seeds on all, 2 images: "
            "90.0 %)") in note
    assert "random-weight" in note
    assert "random-weight" not in segmenter_note(_run(tiny=False), {"segmenter": black})
    coloured = {"split": "demo: val", "confusion": [[50, 10], [20, 20]]}  # 70 %: no note
    assert segmenter_note(_run(tiny=True), {"segmenter": coloured}) == ""
    assert segmenter_note(_run(tiny=True), {}) == ""


def test_banner_marks_every_random_weight_test_model():
    tiny = banner(_run(tiny=True))
    assert "random-weight TEST models (tiny_clip, tiny_sam)" in tiny and "real architectures" not in tiny
    full = banner(RunView("r", Path("results/r"), None,
                          {"models": {"clip": "random_clip_vit_b16", "sam": "random_sam_vit_h"}}, {}, {}))
    assert "random-weight TEST models (random_clip_vit_b16, random_sam_vit_h)" in full
    assert "random_clip_vit_b16, random_sam_vit_h: the real architectures, so their times and memory" in full
    mixed = banner(RunView("r", Path("results/r"), None, {"models": {"clip": "tiny_clip", "sam": "random_sam_vit_h"}},
                           {}, {}))
    assert "(random_sam_vit_h, tiny_clip)" in mixed and " random_sam_vit_h: the real architectures" in mixed
    assert banner(_run(tiny=False)) == ""
