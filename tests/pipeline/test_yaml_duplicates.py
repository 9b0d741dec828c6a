"""Duplicate YAML keys: found with their dotted path and both lines, refused by Config.from_file and the CLI."""
from __future__ import annotations

import pytest

from fmwsss.pipeline.config import Config, ConfigError, check_unique_keys
from fmwsss.pipeline.yaml_duplicates import DuplicateKey, duplicate_keys
from tests.workflow.conftest import ROOT

NESTED = """\
datasets:
  demo:
    root: a
    preset: demo
    root: b
runtime:
  device: auto
runtime:
  device: cpu
"""


def test_nested_and_top_level_duplicates_with_both_lines():
    assert duplicate_keys(NESTED) == [DuplicateKey("datasets.demo.root", 3, 5), DuplicateKey("runtime", 6, 8)]


def test_duplicates_inside_lists_and_flow_mappings():
    text = "a:\n  - {x: 1, y: 2, x: 3}\n  - {x: 1}\n"
    assert duplicate_keys(text) == [DuplicateKey("a.0.x", 2, 2)]


def test_same_key_in_sibling_mappings_and_typed_keys_are_not_duplicates():
    text = "p: {a: 1}\nq: {a: 1}\n1: int\n'1': str\n"
    assert duplicate_keys(text) == []


def test_anchors_and_merge_keys_are_not_duplicates():
    text = "base: &b {a: 1}\nx:\n  <<: *b\n  c: 2\ny:\n  <<: *b\n"
    assert duplicate_keys(text) == []


def test_empty_document():
    assert duplicate_keys("") == []


def test_config_from_file_names_key_and_lines(tmp_path):
    shipped = (ROOT / "config.yaml").read_text()
    old = "runtime:\n  device: auto\n"
    assert shipped.count(old) == 1
    line = shipped[: shipped.index(old)].count("\n") + 2  # 1-based line of `device: auto`
    path = tmp_path / "config.yaml"
    path.write_text(shipped.replace(old, old + "  device: cpu\n"))
    with pytest.raises(ConfigError) as err:
        Config.from_file(path)
    assert str(err.value).startswith(f"{path}: duplicate key runtime.device at lines {line} and {line + 1}")


def test_invalid_yaml_is_a_config_error_naming_the_file(tmp_path):
    path = tmp_path / "config.yaml"
    path.write_text("a: [1,\n")
    with pytest.raises(ConfigError, match=f"{path}: not valid YAML"):
        check_unique_keys(path)
