"""Per-image result keys, entry manifests, reuse lookups and what gc keeps (fmwsss.pipeline.reuse, store)."""
from __future__ import annotations

import json
import os
import shutil
from pathlib import Path

import numpy as np
import pytest
import yaml

from fmwsss.io.shards import GroupShardWriter, ShardError, open_complete
from fmwsss.pipeline.plan import Plan
from fmwsss.pipeline.integrity import record_files
from fmwsss.pipeline.reuse import (
    Holder, find_reusable, image_keys, manifest_rows, own_links, rebuild_manifest, write_manifest,
)
from fmwsss.pipeline.store import store_entries, with_references
from tests.samples import sample_dir

ROOT = Path(__file__).resolve().parents[2]
SHARDED = ("sam_masks", "cams_coarse_dump", "seeds_coarse", "cams_fine_dump", "seeds_fine")


def _config(root: Path, **overrides) -> dict:
    config = yaml.safe_load((ROOT / "config.yaml").read_text())
    config["datasets"] = {"demo": {"type": "demo", "root": str(root), "preset": "demo", "overrides": overrides}}
    return config


@pytest.fixture(scope="module")
def demo_root(tmp_path_factory) -> Path:
    root = tmp_path_factory.mktemp("reuse") / "voc_sample"
    shutil.copytree(sample_dir("voc_sample"), root)
    return root


def _plan(root: Path, results: Path, **overrides):
    plan = Plan(_config(root, **overrides), results=str(results), log=lambda m: None)
    return plan.get("demo")


def test_per_image_keys_ignore_layout_and_other_ids_but_follow_settings_and_content(demo_root, tmp_path):
    base = _plan(demo_root, tmp_path / "a")
    n = base.dataset.num_ids
    keys = {s: image_keys(base, s, 0, n) for s in SHARDED}
    assert all(len(set(k.values())) == n for k in keys.values())  # one key per image

    # another shard size: new entry keys, the same set keys and per-image keys
    other = _plan(demo_root, tmp_path / "b", data={"shard_size": 5})
    assert {s: other.keys[s] for s in SHARDED} != {s: base.keys[s] for s in SHARDED}
    assert {s: other.set_keys[s] for s in SHARDED} == {s: base.set_keys[s] for s in SHARDED}
    assert other.keys["prompts_seg_train"] == base.keys["prompts_seg_train"]
    assert other.keys["deeplab_train"] == base.keys["deeplab_train"]
    assert {s: image_keys(other, s, 0, n) for s in SHARDED} == keys
    # one shard's rows give the same keys as the whole list
    assert image_keys(other, "seeds_fine", 5, 10) == {i: keys["seeds_fine"][i] for i in other.dataset.ids[5:10]}

    # a SAM setting moves every SAM key and everything downstream of SAM per image, not the CAMs
    sam = _plan(demo_root, tmp_path / "c", sam={"points_per_side": 4})
    moved = {s: image_keys(sam, s, 0, n) != keys[s] for s in SHARDED}
    assert moved == {"sam_masks": True, "cams_coarse_dump": False, "seeds_coarse": True,
                     "cams_fine_dump": True, "seeds_fine": True}

    # one image's tag changed: the prompts retrain on the new tags, so every CAM key moves; SAM keys never
    # read tags
    changed = tmp_path / "tags"
    shutil.copytree(demo_root, changed)
    labels = json.loads((changed / "labels.json").read_text())
    first = sorted(labels)[0]
    labels[first] = sorted(set(labels[first]) ^ {5 if 5 not in labels[first] else 8})  # class ids 1..20
    (changed / "labels.json").write_text(json.dumps(labels))
    tagged = _plan(changed, tmp_path / "d")
    retagged = image_keys(tagged, "cams_coarse_dump", 0, n)
    assert image_keys(tagged, "sam_masks", 0, n) == keys["sam_masks"]
    assert tagged.keys["prompts_cls_train"] != base.keys["prompts_cls_train"]
    assert all(retagged[i] != keys["cams_coarse_dump"][i] for i in retagged)


def _entry(stage_dir: Path, key: str, images: dict[str, int], links: dict[str, tuple[str, str]] = {},
           keys: dict[str, str] | None = None) -> Path:
    """A finished entry with one shard: ``images`` computed here (a dataset holding the value; its group records
    ``keys[id]``, by default ``k`` + the value), ``links``."""
    entry = stage_dir / key
    entry.mkdir(parents=True)
    keys = {i: f"k{v}" for i, v in images.items()} if keys is None else keys
    with GroupShardWriter(stage_dir / f".{key}.partial" / "shard-000.h5", entry / "shard-000.h5", {}, keys) as w:
        for image_id, value in images.items():
            w.write(image_id, {"x": np.full(3, value)}, {})
        for image_id, (filename, group) in links.items():
            w.link(image_id, filename, group)
        w.finish([*images, *links])
    shutil.rmtree(stage_dir / f".{key}.partial")
    return entry


def _finish(entry: Path, keys: dict[str, str] | None = None) -> set[str]:
    """Manifest and spec.json (with its file record) as a finalize writes them."""
    refs = write_manifest(entry, manifest_rows(entry.name, [entry / "shard-000.h5"], keys))
    (entry / "spec.json").write_text(json.dumps({"refs": sorted(refs), "files": record_files(entry)}))
    return refs


def test_manifest_points_at_the_holder_and_lookups_skip_unfinished_entries(tmp_path):
    stage = tmp_path / "store" / "sam_masks"
    a = _entry(stage, "aaaa", {"img1": 1, "img2": 2})
    assert _finish(a, {"img1": "k1", "img2": "k2"}) == set()
    # entry b reuses img1 from a (by link) and computes img3
    b = _entry(stage, "bbbb", {"img3": 3}, {"img1": Holder("aaaa", "shard-000.h5", "img1").link_target()})
    assert _finish(b, {"img1": "k1", "img3": "k3"}) == {"aaaa"}
    # an unfinished entry (no spec.json) and a .partial folder are never looked into
    c = _entry(stage, "cccc", {"img4": 4})
    write_manifest(c, manifest_rows("cccc", [c / "shard-000.h5"], {"img4": "k4"}))
    (stage / ".dddd.partial").mkdir()

    found = find_reusable(stage, "eeee", {"x1": "k1", "x3": "k3", "x4": "k4", "x9": "k9"})
    # k1 is held by a (b only links to it), k3 by b; k4's entry is unfinished; k9 is nowhere
    assert found == {"x1": Holder("aaaa", "shard-000.h5", "img1"), "x3": Holder("bbbb", "shard-000.h5", "img3")}
    assert find_reusable(stage, "bbbb", {"x3": "k3"}) == {}  # never from the asking entry itself
    with open_complete(b / "shard-000.h5") as fh:  # a reader follows the link to a's bytes
        assert fh["img1"]["x"][()].tolist() == [1, 1, 1]
    os.remove(a / "shard-000.h5")  # a holder whose file is gone is skipped
    assert find_reusable(stage, "eeee", {"x1": "k1"}) == {}


def test_gc_keeps_what_current_entries_link_into_and_set_link_targets(tmp_path):
    store = tmp_path / "demo" / "store"
    for stage, key, spec in [
        ("sam_masks", "a1", {"refs": []}),
        ("sam_masks", "a2", {"refs": ["a1"]}),
        ("sam_masks", "a3", {"refs": []}),
        ("seeds_coarse", "b1", {"upstream": {"sam_masks": "a2"}, "refs": []}),
        ("prompts_seg_train", "c1", {"upstream": {"seeds_coarse": "5e7"}}),
    ]:
        (store / stage / key).mkdir(parents=True)
        (store / stage / key / "spec.json").write_text(json.dumps(spec))
    (store / "seeds_coarse" / "sets").mkdir()
    os.symlink("../b1", store / "seeds_coarse" / "sets" / "5e7")
    kept = with_references(tmp_path, {("demo", "prompts_seg_train", "c1")})
    # c1 -> set 5e7 -> b1 -> a2 -> (refs) a1; a3 is not needed
    assert kept == {("demo", "prompts_seg_train", "c1"), ("demo", "seeds_coarse", "b1"),
                    ("demo", "sam_masks", "a2"), ("demo", "sam_masks", "a1")}
    assert {e.key for e in store_entries(tmp_path) if e.stage == "seeds_coarse"} == {"b1"}  # not "sets"


def test_manifest_is_written_atomically(tmp_path):
    entry = tmp_path / "k"
    entry.mkdir()

    def rows():
        yield ("k1", "img1", "k", "shard-000.h5", "img1")
        raise RuntimeError("killed")

    with pytest.raises(RuntimeError):
        write_manifest(entry, rows())
    assert os.listdir(entry) == []


def _swap_groups(entry: Path, a: str, b: str) -> None:
    """Swap two images' groups in a manifest with SQL: the file stays valid SQLite."""
    import sqlite3

    con = sqlite3.connect(entry / "manifest.sqlite")
    with con:
        con.execute("UPDATE results SET grp = CASE grp WHEN ? THEN ? WHEN ? THEN ? END WHERE grp IN (?, ?)",
                    (a, b, b, a, a, b))
    con.close()


def test_a_manifest_edited_or_damaged_is_never_trusted(tmp_path):
    stage = tmp_path / "store" / "sam_masks"
    a = _entry(stage, "aaaa", {"img1": 1, "img2": 2})
    _finish(a)
    wanted = {"x1": "k1", "x2": "k2"}
    assert find_reusable(stage, "eeee", wanted) == {"x1": Holder("aaaa", "shard-000.h5", "img1"),
                                                   "x2": Holder("aaaa", "shard-000.h5", "img2")}
    _swap_groups(a, "img1", "img2")  # valid SQLite, other bytes than spec.json records
    said: list[str] = []
    assert find_reusable(stage, "eeee", wanted, said.append) == {}
    assert len(said) == 1 and f"{a / 'manifest.sqlite'}: sha256" in said[0]

    # the same edit with spec.json's record rewritten to match (a hostile user): each group's recorded key
    # still refuses the swapped rows, naming the image, the file and both keys
    (a / "spec.json").write_text(json.dumps({"refs": [], "files": record_files(a)}))
    said.clear()
    assert find_reusable(stage, "eeee", wanted, said.append) == {}
    assert sorted(said) == sorted(
        f"not linking image {x!r} to {g} of {a / 'shard-000.h5'}: it records key {k}, this entry wants {wanted[x]}; "
        f"computed here" for x, g, k in (("x1", "img2", "k2"), ("x2", "img1", "k1")))

    # 4 KB of random bytes over the manifest, size kept: skipped with a line naming it, no DatabaseError
    rebuild_manifest(a)
    (a / "spec.json").write_text(json.dumps({"refs": [], "files": record_files(a)}))
    data = bytearray((a / "manifest.sqlite").read_bytes())
    data[:4096] = np.random.default_rng(0).integers(0, 256, 4096, dtype=np.uint8).tobytes()
    (a / "manifest.sqlite").write_bytes(bytes(data))
    said.clear()
    assert find_reusable(stage, "eeee", wanted, said.append) == {} and "manifest.sqlite: sha256" in said[0]


def test_holders_that_are_gone_damaged_or_hold_other_keys_are_skipped(tmp_path):
    stage = tmp_path / "store" / "sam_masks"
    a = _entry(stage, "aaaa", {"img1": 1})
    _finish(a)
    b = _entry(stage, "bbbb", {"img2": 2}, keys={"img2": "k-other"})  # the group records another key
    _finish(b, {"img2": "k-other"})
    _swap_groups(b, "img2", "img2")
    said: list[str] = []
    assert find_reusable(stage, "eeee", {"x1": "k1", "x2": "k2"}, said.append) == {
        "x1": Holder("aaaa", "shard-000.h5", "img1")}
    shard = a / "shard-000.h5"
    shard.write_bytes(shard.read_bytes()[:-10])  # truncated: no longer the size spec.json records
    assert find_reusable(stage, "eeee", {"x1": "k1"}, said.append) == {}


def test_manifest_is_rebuilt_from_the_keys_groups_record(tmp_path):
    stage = tmp_path / "store" / "sam_masks"
    a = _entry(stage, "aaaa", {"img1": 1, "img2": 2})
    _finish(a)
    b = _entry(stage, "bbbb", {"img3": 3}, {"img1": Holder("aaaa", "shard-000.h5", "img1").link_target()})
    assert _finish(b) == {"aaaa"}  # the link's key is read through the link from a's group
    before = sorted(manifest_rows("bbbb", [b / "shard-000.h5"]))
    assert before == [("k1", "img1", "aaaa", "shard-000.h5", "img1"), ("k3", "img3", "bbbb", "shard-000.h5", "img3")]
    (b / "manifest.sqlite").write_bytes(b"garbage")
    assert rebuild_manifest(b) == {"aaaa"}
    assert sorted(manifest_rows("bbbb", [b / "shard-000.h5"])) == before
    with pytest.raises(ShardError, match="img3.*records key k3, its inputs give k9"):
        list(manifest_rows("bbbb", [b / "shard-000.h5"], {"img1": "k1", "img3": "k9"}))


def test_a_repair_links_only_what_the_entry_linked_before_to_whole_holders(tmp_path):
    stage = tmp_path / "store" / "sam_masks"
    a = _entry(stage, "aaaa", {"img1": 1, "img2": 2})
    _finish(a)
    b = _entry(stage, "bbbb", {"img3": 3}, {i: Holder("aaaa", "shard-000.h5", i).link_target() for i in ("img1", "img2")})
    _finish(b)
    wanted = {"img1": "k1", "img2": "k2", "img3": "k3"}
    # img3 was computed in b: never linked elsewhere, even where another entry holds the same key
    c = _entry(stage, "cccc", {"img3": 3})
    _finish(c)
    assert own_links(b, wanted, wanted) == {i: Holder("aaaa", "shard-000.h5", i) for i in ("img1", "img2")}
    shutil.rmtree(a)  # the holder is gone: both images are computed by the repair
    assert own_links(b, wanted, wanted, lambda m: None) == {}
