import json
from pathlib import Path

from fmwsss.data import classes as C


def test_voc_lists():
    assert len(C.VOC_CLASS_NAMES) == 20 and C.VOC_LABEL_NAMES[0] == "background"
    assert C.VOC_LABEL_NAMES[15] == "person" and C.VOC_LABEL_NAMES[20] == "tvmonitor"
    assert len(C.VOC_FG_PROMPT_NAMES) == 20 and C.VOC_FG_PROMPT_NAMES[14] == "person with clothes,people,human"
    assert len(C.VOC_BG_PROMPT_NAMES) == 25 and len(set(C.VOC_BG_PROMPT_NAMES)) == 25


def test_coco_lists_match_sample_categories(coco_sample: Path):
    cats = json.loads((coco_sample / "annotations" / "instances_sample.json").read_text())["categories"]
    cats = sorted(cats, key=lambda c: c["id"])
    assert [c["id"] for c in cats] == list(C.COCO_CATEGORY_IDS)
    assert [c["name"] for c in cats] == list(C.COCO_CLASS_NAMES)


def test_coco_maps():
    assert len(C.COCO_CLASS_NAMES) == len(C.COCO_FG_PROMPT_NAMES) == 80
    assert sorted(C.COCO_ID_TO_LABEL.values()) == list(range(1, 81))
    assert C.COCO_ID_TO_LABEL[1] == 1 and C.COCO_ID_TO_LABEL[90] == 80 and C.COCO_ID_TO_LABEL[50] == 45
    assert C.COCO_FG_PROMPT_NAMES[C.COCO_ID_TO_LABEL[50] - 1] == "dessertspoon"
    assert len(C.COCO_BG_PROMPT_NAMES) == 23
    assert "keyboard" not in C.COCO_BG_PROMPT_NAMES and "sign" not in C.COCO_BG_PROMPT_NAMES


def test_fg_prompt_names():
    assert C.fg_prompt_names(list(C.VOC_CLASS_NAMES)) == C.VOC_FG_PROMPT_NAMES
    assert C.fg_prompt_names(C.COCO_CLASS_NAMES) == C.COCO_FG_PROMPT_NAMES
    assert C.fg_prompt_names(["apple", "pear"]) == ("apple", "pear")
