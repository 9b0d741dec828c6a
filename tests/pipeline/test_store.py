"""Store helpers: aliases, stale temp cleanup, spec.json, unreachable entries, what gc keeps."""
from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from fmwsss.pipeline.keys import stage_key
from fmwsss.pipeline.stages import STAGES, upstream_aliases
from fmwsss.pipeline.store import (
    Collection,
    clean_stale_temps,
    collect,
    link_scores,
    make_alias,
    pid_alive,
    stale_temps,
    store_links,
    unreachable_entries,
    write_spec,
)


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


def _entry(results: Path, stage: str, key: str, **spec) -> Path:
    entry = results / "demo" / "store" / stage / key
    entry.mkdir(parents=True)
    (entry / "spec.json").write_text(json.dumps(spec))
    return entry


def changed_config_store(results: Path) -> set[tuple[str, str, str]]:
    """A store after a config change: the current config needs only seeds_fine cc; the stable name `seeds`
    names an older e1, which reaches a2 through its upstream set link, a3 through a2's refs and score c1
    through its score link; a1 (named by an old set link only), a4 and score c2 are reached by nothing.
    Returns the current config's keys."""
    _entry(results, "seeds_fine", "cc")
    seeds = _entry(results, "seeds_fine", "e1", upstream={"sam_masks": "5e7"})
    os.symlink("../../score_seeds_fine/c1/metrics.json", seeds / "metrics.json")
    for key in ("c1", "c2"):
        _entry(results, "score_seeds_fine", key)
    _entry(results, "sam_masks", "a2", refs=["a3"])
    for key in ("a1", "a3", "a4"):
        _entry(results, "sam_masks", key)
    os.symlink("store/seeds_fine/e1", results / "demo" / "seeds")  # a stable name an older config made
    (results / "demo/store/sam_masks/sets").mkdir()
    os.symlink("../a2", results / "demo/store/sam_masks/sets/5e7")
    os.symlink("../a1", results / "demo/store/sam_masks/sets/9f0")
    os.symlink("store/deeplab_eval/dead", results / "demo" / "deeplab")  # its entry is gone
    return {("demo", "seeds_fine", "cc")}


def test_gc_keeps_what_stable_names_reach_after_a_config_change_and_collects_the_rest(tmp_path):
    current = changed_config_store(tmp_path)
    found = collect(tmp_path, current, skip=set())
    assert sorted(e.key for e in found.entries) == ["a1", "a4", "c2"]  # kept: cc, e1, a2 (set link), a3, c1
    assert [link.path.name for link in found.links] == ["9f0"]  # would dangle once a1 is gone
    assert [(link.path.name, link.stage, link.key) for link in found.dangling] == [("deeplab", "deeplab_eval", "dead")]
    assert {(link.path.name, link.is_set_link) for link in store_links(tmp_path)} == {
        ("seeds", False), ("deeplab", False), ("5e7", True), ("9f0", True)}
    assert collect(tmp_path, current, skip={"demo"}) == Collection([], [], [], [])


def test_stale_temps_are_those_of_writers_no_longer_alive(tmp_path):
    proc = subprocess.Popen([sys.executable, "-c", "pass"])
    proc.wait()
    dead, live = proc.pid, os.getpid()
    assert not pid_alive(dead) and pid_alive(live) and pid_alive(1)
    entry = _entry(tmp_path, "seeds_fine", "e1")
    (entry / f".manifest.sqlite.tmp-{dead}").write_bytes(b"")  # a finalize killed with kill -9
    (entry / f".spec.json.tmp-{live}").write_bytes(b"{")  # a writer still at work
    os.symlink("store/seeds_fine/e1", tmp_path / "demo" / f".seeds.tmp-{dead}")  # an alias swap killed
    (tmp_path / "demo/store/seeds_fine/sets").mkdir()
    os.symlink("../e1", tmp_path / "demo/store/seeds_fine/sets" / f".5e7.tmp-{dead}")
    (entry / "sub").mkdir()
    (entry / "sub" / f".x.tmp-{dead}").write_bytes(b"")  # below the top level: not looked at
    (entry / "timing").mkdir()
    (entry / "timing" / f".shard-000.json.tmp-{dead}").write_bytes(b"")  # a job killed writing its timing record
    assert stale_temps(tmp_path) == [
        tmp_path / "demo" / f".seeds.tmp-{dead}",
        tmp_path / "demo/store/seeds_fine/sets" / f".5e7.tmp-{dead}",
        entry / f".manifest.sqlite.tmp-{dead}",
        entry / "timing" / f".shard-000.json.tmp-{dead}",
    ]
    assert store_links(tmp_path) == []  # an alias temp is no stable name
