"""Config validation, defaults and key stability."""
from __future__ import annotations

import copy
from pathlib import Path

import pytest
import yaml

from fmwsss.pipeline.config import Config, ConfigError, apply_defaults, load_schema
from fmwsss.pipeline.keys import stage_key

ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture(scope="module")
def raw() -> dict:
    with open(ROOT / "config.yaml") as fh:
        return yaml.safe_load(fh)


def _walk_properties(schema: dict, path: str = ""):
    for key, sub in schema.get("properties", {}).items():
        yield f"{path}.{key}".lstrip("."), sub
        yield from _walk_properties(sub, f"{path}.{key}")
    for name, sub in schema.get("$defs", {}).items():
        yield from _walk_properties(sub, f"$defs.{name}")
    if isinstance(schema.get("additionalProperties"), dict):
        yield from _walk_properties(schema["additionalProperties"], f"{path}.*")


def test_every_property_has_description_and_default():
    schema = load_schema()
    assert schema["$schema"].endswith("draft/2020-12/schema")
    missing = [p for p, sub in _walk_properties(schema) if "description" not in sub and "$ref" not in sub]
    missing += [p for p, sub in _walk_properties(schema) if "default" not in sub]
    assert not missing, missing


def test_shipped_config_is_valid_and_demo_is_shrunk(raw):
    cfg = Config(raw)
    demo, voc = cfg.settings("demo"), cfg.settings("voc")
    assert demo["data"]["shard_size"] == 24 and voc["data"]["shard_size"] == 500
    assert demo["sam"]["crop_n_layers"] == 0 and voc["sam"]["crop_n_layers"] == 1
    assert demo["models"] == {"clip": "tiny_clip", "sam": "tiny_sam"}
    assert cfg.settings("demo_pretrained")["models"] == {"clip": "clip_vit_b16_openai", "sam": "sam_vit_h"}
    # paper values arrive through the schema defaults
    assert voc["sam"]["level_iou_offsets"] == [0.0, 0.0, 0.1]
    assert voc["sam"]["crop_n_points_downscale_factor"] == 2
    assert voc["prompts_cls"]["iterations"] == 1800 and voc["prompts_seg"]["iterations"] == 17000
    # overriding one key of an object default keeps the others (prompts_seg's seg-specific defaults)
    assert demo["prompts_seg"]["class_specific"] is True and demo["prompts_seg"]["iterations"] == 40
    assert demo["prompts_seg"]["name_position"] == "front" and demo["prompts_seg"]["init_std"] == 0.0125
    assert voc["cams_fine"]["caa"]["box_thresh"] == 0.5 and voc["cams_fine"]["caa"]["sinkhorn_iters"] == 1
    assert len(voc["classes"]["bg_names"]) == 25 and len(cfg.settings("voc")["classes"]["fg_prompt_names"]) == 20


@pytest.mark.parametrize(
    "mutate, fragment",
    [
        (lambda c: c["presets"]["demo"]["sam"].update(points_per_sid=3), "presets.demo.sam"),
        (lambda c: c["presets"]["demo"]["sam"].update(points_per_side="many"), "presets.demo.sam.points_per_side"),
        (lambda c: c["datasets"]["demo"].update(typo=1), "datasets.demo"),
        (lambda c: c["datasets"]["demo"].update(preset="nope"), "datasets.demo.preset"),
        (lambda c: c["presets"]["demo"]["prompts_cls"].update(warmup_iters=40), "prompts_cls.warmup_iters"),
        (lambda c: c["runtime"].update(device=3), "runtime.device"),
        (lambda c: c["datasets"]["demo"]["overrides"].update(sam={"rsw_thresh": 2}), "rsw_thresh"),
    ],
)
def test_bad_config_names_the_key(raw, mutate, fragment):
    bad = copy.deepcopy(raw)
    bad["datasets"]["demo"].setdefault("overrides", {})
    mutate(bad)
    with pytest.raises(ConfigError) as info:
        Config(bad)
    assert fragment in str(info.value)


def _keys(cfg: Config, dataset: str) -> dict[str, str]:
    s = cfg.settings(dataset)
    return {sec: stage_key("x", 1, {sec: s[sec]}, {}, {})[0] for sec in s}


def _reorder(obj):
    if isinstance(obj, dict):
        return {k: _reorder(obj[k]) for k in reversed(list(obj))}
    return obj


def test_reordering_and_explicit_defaults_change_no_key(raw):
    base = _keys(Config(raw), "demo")
    assert _keys(Config(_reorder(raw)), "demo") == base
    explicit = copy.deepcopy(raw)
    explicit["presets"]["demo"]["sam"].update(pred_iou_thresh=0.86, box_nms_thresh=0.7, stability_score_offset=1)
    explicit["presets"]["demo"]["seeds_fine"] = {"gamma": 0.7}
    assert _keys(Config(explicit), "demo") == base


def test_changed_setting_changes_only_its_section(raw):
    changed = copy.deepcopy(raw)
    changed["presets"]["demo"]["sam"]["pred_iou_thresh"] = 0.8
    before, after = _keys(Config(raw), "demo"), _keys(Config(changed), "demo")
    assert {k for k in before if before[k] != after[k]} == {"sam"}


def test_apply_defaults_merges_object_defaults_under_given_values():
    schema = {
        "type": "object",
        "properties": {"a": {"type": "object", "default": {"x": 1, "y": 2}, "properties": {"x": {"default": 0}}}},
    }
    assert apply_defaults({"a": {"y": 5}}, schema, schema) == {"a": {"x": 1, "y": 5}}
    assert apply_defaults({}, schema, schema) == {"a": {"x": 1, "y": 2}}
