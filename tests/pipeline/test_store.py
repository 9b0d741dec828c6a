"""Store helpers: aliases, stale temp cleanup, spec.json, unreachable entries."""
from __future__ import annotations

import json
import os

import pytest

from fmwsss.pipeline.keys import stage_key
from fmwsss.pipeline.stages import STAGES, upstream_aliases
from fmwsss.pipeline.store import clean_stale_temps, link_scores, make_alias, unreachable_entries, write_spec


def test_make_alias_is_relative_and_repoints(tmp_path):
    for key in ("a" * 16, "b" * 16):
        (tmp_path / "store" / "sam_masks" / key).mkdir(parents=True)
    link = tmp_path / "sam_masks"
    make_alias(f"store/sam_masks/{'a' * 16}", link)
    assert os.readlink(link) == f"store/sam_masks/{'a' * 16}"
    make_alias(f"store/sam_masks/{'b' * 16}", link)
    assert os.readlink(link) == f"store/sam_masks/{'b' * 16}" and link.is_dir()
    assert not list(tmp_path.glob(".sam_masks.tmp-*"))
    with pytest.raises(ValueError, match="relative"):
        make_alias(str(tmp_path / "store"), link)
    with pytest.raises(FileNotFoundError, match="does not exist"):
        make_alias("store/sam_masks/missing", link)


def test_link_scores_points_at_the_score_entry_and_repoints(tmp_path):
    entry = tmp_path / "store" / "seeds_fine" / ("e" * 16)
    entry.mkdir(parents=True)
    (entry / "spec.json").write_text("{}")
    for key, files in (("a" * 16, ("metrics.json", "scores.json", "spec.json")), ("b" * 16, ("metrics.json", "spec.json"))):
        score = tmp_path / "store" / "score_seeds_fine" / key
        score.mkdir(parents=True)
        for name in files:
            (score / name).write_text(json.dumps({"key": key, "file": name}))
    assert link_scores(entry, f"../../score_seeds_fine/{'a' * 16}") == ["metrics.json", "scores.json"]
    assert os.readlink(entry / "metrics.json") == f"../../score_seeds_fine/{'a' * 16}/metrics.json"
    assert json.loads((entry / "scores.json").read_text()) == {"key": "a" * 16, "file": "scores.json"}
    # re-pointed at a score without scores.json (no ground truth any more): the stale link goes
    assert link_scores(entry, f"../../score_seeds_fine/{'b' * 16}") == ["metrics.json"]
    assert json.loads((entry / "metrics.json").read_text())["key"] == "b" * 16
    assert sorted(p.name for p in entry.iterdir()) == ["metrics.json", "spec.json"]
    assert json.loads((entry / "spec.json").read_text()) == {}  # the entry's own files are never touched
    with pytest.raises(ValueError, match="relative"):
        link_scores(entry, str(tmp_path / "store" / "score_seeds_fine" / ("a" * 16)))
    with pytest.raises(FileNotFoundError, match="not complete"):
        link_scores(entry, "../../score_seeds_fine/missing")


def test_clean_stale_temps(tmp_path):
    (tmp_path / ".x.h5.tmp-123").write_text("half")
    (tmp_path / ".d.tmp-9").mkdir()
    (tmp_path / "keep.h5").write_text("done")
    clean_stale_temps(tmp_path)
    assert [p.name for p in tmp_path.iterdir()] == ["keep.h5"]


def test_stage_key_is_order_independent_and_sensitive():
    k1, spec = stage_key("s", 1, {"a": 1, "b": [1, 2]}, {"u": "x"}, {"ids": "d"})
    k2, _ = stage_key("s", 1, {"b": [1, 2], "a": 1}, {"u": "x"}, {"ids": "d"})
    assert k1 == k2 and len(k1) == 16
    assert stage_key("s", 2, {"a": 1, "b": [1, 2]}, {"u": "x"}, {"ids": "d"})[0] != k1
    assert stage_key("s", 1, {"a": 1, "b": [1, 2]}, {"u": "y"}, {"ids": "d"})[0] != k1
    assert spec["settings"] == {"a": 1, "b": [1, 2]}


def test_write_spec_and_unreachable_entries(tmp_path):
    results = tmp_path / "results"
    for key in ("1" * 16, "2" * 16):
        write_spec(results / "demo/store/sam_masks" / key, key, {"stage": "sam_masks"}, "demo")
    (results / "demo/store/sam_masks" / f".{'3' * 16}.partial").mkdir()
    spec = json.loads((results / "demo/store/sam_masks" / ("1" * 16) / "spec.json").read_text())
    assert spec["key"] == "1" * 16 and spec["dataset"] == "demo"
    found = unreachable_entries(results, {("demo", "sam_masks", "1" * 16)})
    assert sorted((e.key, e.partial) for e in found) == [("2" * 16, False), ("3" * 16, True)]
    assert all(e.size > 0 for e in found if not e.partial)


def test_stage_graph_is_a_dag_in_order_and_aliases_chain():
    seen = set()
    for stage in STAGES.values():
        assert set(stage.upstream) <= seen, stage.name
        seen.add(stage.name)
    assert set(upstream_aliases("seeds")) == {"cams_fine", "sam_masks"}
    assert upstream_aliases("cams_fine") == ["seeds_coarse"]
    assert set(upstream_aliases("seeds_coarse")) == {"cams_coarse", "sam_masks"}
    assert upstream_aliases("sam_masks") == []
