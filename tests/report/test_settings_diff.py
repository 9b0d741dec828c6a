"""The variants table's settings diff: hand-made specs."""
from __future__ import annotations

from fmwsss.report.settings_diff import MISSING, flatten, format_value, settings_diff


def _spec(gamma, caa=None, version=1, weights="tiny_clip:abc"):
    settings = {"seeds_fine": {"gamma": gamma, "method": "sams"}, "data": {"shard_size": 8}}
    if caa is not None:
        settings["cams"] = {"caa": caa}
    return {"stage": "seeds_fine", "version": version, "settings": settings,
            "upstream": {"cams_fine_dump": "k1"}, "inputs": {"weights.clip": weights}}


def test_flatten_nested_settings():
    assert flatten({"a": {"b": 1, "c": {"d": [1, 2]}}, "e": {}}) == {"a.b": 1, "a.c.d": [1, 2], "e": {}}


def test_diff_lists_changed_settings_only():
    assert settings_diff(_spec(0.5), _spec(0.9)) == [("seeds_fine.gamma", 0.5, 0.9)]
    assert settings_diff(_spec(0.9), _spec(0.9)) == []


def test_diff_ignores_upstream_keys_but_sees_version_and_weights():
    a, b = _spec(0.9, version=1, weights="x"), _spec(0.9, version=2, weights="y")
    b["upstream"] = {"cams_fine_dump": "k2"}
    assert settings_diff(a, b) == [("inputs.weights.clip", "x", "y"), ("version", 1, 2)]


def test_diff_marks_added_and_removed_sections():
    rows = settings_diff(_spec(0.9, caa={"enabled": True}), _spec(0.9))
    assert rows == [("cams.caa.enabled", True, MISSING)]


def test_format_value():
    assert format_value("sams") == "sams" and format_value([1, 2]) == "[1, 2]" and format_value(0.5) == "0.5"
