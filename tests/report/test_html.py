"""Pieces of the report's pages on hand-made data: the dataset's label, the per-class IoU table's header."""
from __future__ import annotations

from fmwsss.report.html import dataset_label, iou_section


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
