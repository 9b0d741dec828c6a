"""The dataset index: what it records, which digest each kind of change moves, rebuilds, and job-side checks."""
from __future__ import annotations

import hashlib
import json
import os
import shutil
import sqlite3

import numpy as np
import pytest
from PIL import Image

import fmwsss.data.index as index_module
from fmwsss.data.index import INDEX_NAME, IndexStale, open_index, record_path, refresh_index

ENTRY = {"type": "custom", "root": None, "options": {}}


def _png(path, value: int) -> None:
    Image.fromarray(np.full((16, 16, 3), value, dtype=np.uint8)).save(path)


@pytest.fixture
def tree(tmp_path):
    """A custom dataset: 3 images, tags a: cat, b: dog, c: cat|dog; classes cat, dog."""
    root = tmp_path / "ds"
    (root / "images").mkdir(parents=True)
    for n, i in enumerate("abc"):
        _png(root / "images" / f"{i}.png", 40 * n)
    (root / "classes.txt").write_text("cat\ndog\n")
    (root / "tags.csv").write_text("id,tags\na,cat\nb,dog\nc,cat|dog\n")
    return root


def _entry(root) -> dict:
    return {**ENTRY, "root": str(root)}


def _refresh(tmp_path, root, lines=None):
    log = lines.append if lines is not None else (lambda _m: None)
    return refresh_index(tmp_path / "results" / "ds" / INDEX_NAME, "ds", _entry(root), log)


def _moved(before: dict, after: dict) -> set[str]:
    return {k for k in before if before[k] != after[k]}


def test_index_records_ids_tags_and_classes(tmp_path, tree):
    index = _refresh(tmp_path, tree)
    assert index.ids == ["a", "b", "c"] and index.num_ids == 3
    assert index.class_names == ("cat", "dog") and index.num_classes == 2
    assert [index.tags(i) for i in "abc"] == [(1,), (2,), (1, 2)]
    assert index.image_path("b") == tree / "images" / "b.png" and index.gt_path("b") is None
    assert index.ids_range(1, 3) == ["b", "c"]
    assert index.splits == {"all": ["a", "b", "c"]}


def test_each_change_moves_only_its_digest(tmp_path, tree):
    base = _refresh(tmp_path, tree).digests
    (tree / "tags.csv").write_text("id,tags\na,cat\nb,cat|dog\nc,cat|dog\n")
    tagged = _refresh(tmp_path, tree).digests
    assert _moved(base, tagged) == {"tags"}
    _png(tree / "images" / "c.png", 200)  # replaced in place: the folder listing stays the same
    replaced = _refresh(tmp_path, tree).digests
    assert _moved(tagged, replaced) == {"images"}
    _png(tree / "images" / "d.png", 7)
    (tree / "tags.csv").write_text("id,tags\na,cat\nb,cat|dog\nc,cat|dog\nd,dog\n")
    added = _refresh(tmp_path, tree).digests
    assert _moved(replaced, added) == {"ids", "tags", "images", "gt"}  # gt: one more id without ground truth


def test_touch_moves_nothing_and_rehashes_only_touched_files(tmp_path, tree):
    base = _refresh(tmp_path, tree).digests
    path = tmp_path / "results" / "ds" / INDEX_NAME
    written = path.stat().st_mtime_ns
    lines: list[str] = []
    assert _refresh(tmp_path, tree, lines).digests == base
    assert lines == [] and path.stat().st_mtime_ns == written  # nothing changed: not rewritten
    future = written + 10**9
    os.utime(tree / "images" / "a.png", ns=(future, future))
    os.utime(tree / "tags.csv", ns=(future, future))
    assert _refresh(tmp_path, tree, lines).digests == base
    assert any("hashing 2 changed files" in m for m in lines), lines
    assert any("no digest moved" in m for m in lines), lines


def test_truncated_index_is_rebuilt_with_a_log_line(tmp_path, tree):
    base = _refresh(tmp_path, tree).digests
    path = tmp_path / "results" / "ds" / INDEX_NAME
    with open(path, "r+b") as fh:
        fh.truncate(path.stat().st_size // 2)
    lines: list[str] = []
    assert _refresh(tmp_path, tree, lines).digests == base
    assert any("corrupt" in m and "rebuilding" in m for m in lines), lines
    path.write_bytes(b"not a database at all" * 100)
    lines.clear()
    assert _refresh(tmp_path, tree, lines).digests == base
    assert any("corrupt" in m for m in lines), lines


def _overwrite_table_page(path, table: str, seed: int = 20) -> None:
    """4 KB of random bytes over the first page of ``table`` (its root), keeping the file's size and mtime."""
    con = sqlite3.connect(f"file:{path}?mode=ro", uri=True)
    root = con.execute("SELECT rootpage FROM sqlite_schema WHERE name = ?", (table,)).fetchone()[0]
    page_size = con.execute("PRAGMA page_size").fetchone()[0]
    con.close()
    assert page_size == 4096
    st = path.stat()
    with open(path, "r+b") as fh:
        fh.seek((root - 1) * page_size)
        fh.write(np.random.default_rng(seed).bytes(page_size))
    os.utime(path, ns=(st.st_atime_ns, st.st_mtime_ns))
    assert path.stat().st_size == st.st_size and path.stat().st_mtime_ns == st.st_mtime_ns


def _rows_raise_malformed(path) -> bool:
    """What every job met before the record: SQLite refusing the image rows."""
    con = sqlite3.connect(f"file:{path}?mode=ro", uri=True)
    try:
        con.execute("SELECT * FROM images").fetchall()
    except sqlite3.DatabaseError:
        return True
    finally:
        con.close()
    return False


def _assert_job_refuses_then_main_rebuilds(tmp_path, tree, path) -> None:
    with pytest.raises(IndexStale) as refused:
        open_index(path, "ds", _entry(tree))
    assert str(path) in str(refused.value) and "`fmwsss index ds`" in str(refused.value)
    lines: list[str] = []
    index = _refresh(tmp_path, tree, lines)
    assert [m for m in lines if str(path) in m and "rebuilding" in m], lines
    assert index.ids == ["a", "b", "c"] and [index.tags(i) for i in "abc"] == [(1,), (2,), (1, 2)]
    assert open_index(path, "ds", _entry(tree)).ids == ["a", "b", "c"]  # the rebuilt index serves jobs again


def test_random_bytes_over_a_page_are_refused_by_jobs_and_rebuilt(tmp_path, tree):
    path = tmp_path / "results" / "ds" / INDEX_NAME
    _refresh(tmp_path, tree)
    _overwrite_table_page(path, "images")
    assert _rows_raise_malformed(path)
    _assert_job_refuses_then_main_rebuilds(tmp_path, tree, path)


def test_an_edit_that_keeps_valid_sqlite_is_refused_and_rebuilt(tmp_path, tree):
    path = tmp_path / "results" / "ds" / INDEX_NAME
    _refresh(tmp_path, tree)
    con = sqlite3.connect(path)
    with con:
        con.execute("UPDATE images SET tags = '2' WHERE id = 'a'")  # a: cat -> dog
    assert con.execute("PRAGMA quick_check").fetchone()[0] == "ok"  # SQLite sees nothing wrong
    con.close()
    _assert_job_refuses_then_main_rebuilds(tmp_path, tree, path)


def test_a_page_damaged_after_open_is_index_stale_not_a_database_error(tmp_path, tree):
    path = tmp_path / "results" / "ds" / INDEX_NAME
    _refresh(tmp_path, tree)
    job = open_index(path, "ds", _entry(tree))  # header read, image rows not yet
    _overwrite_table_page(path, "images")
    with pytest.raises(IndexStale, match="damaged dataset index") as refused:
        job.ids
    assert str(path) in str(refused.value) and "`fmwsss index ds`" in str(refused.value)


class _Malformed:
    def execute(self, *_args):
        raise sqlite3.DatabaseError("database disk image is malformed")


@pytest.mark.parametrize("read", [
    lambda ix: ix.ids, lambda ix: ix.ids_range(0, 2), lambda ix: ix.splits, lambda ix: ix.image_path("a"),
    lambda ix: ix.gt_path("a"), lambda ix: ix.tags("a"), lambda ix: ix.image_digests(0, 3),
], ids=["ids", "ids_range", "splits", "image_path", "gt_path", "tags", "image_digests"])
def test_every_read_turns_a_database_error_into_index_stale(tmp_path, tree, read):
    path = tmp_path / "results" / "ds" / INDEX_NAME
    _refresh(tmp_path, tree)
    job = open_index(path, "ds", _entry(tree))
    job._con = _Malformed()
    with pytest.raises(IndexStale) as refused:
        read(job)
    assert str(path) in str(refused.value) and "`fmwsss index ds`" in str(refused.value)
    assert isinstance(refused.value.__cause__, sqlite3.DatabaseError)


def _record(path) -> dict:
    return json.loads(record_path(path).read_text())


def test_the_record_is_written_with_the_index_and_with_each_patch(tmp_path, tree):
    path = tmp_path / "results" / "ds" / INDEX_NAME
    _refresh(tmp_path, tree)
    assert record_path(path) == path.parent / "index.sqlite.sha256"
    built = path.read_bytes()
    assert _record(path) == {"sha256": hashlib.sha256(built).hexdigest(), "size": len(built)}
    future = path.stat().st_mtime_ns + 10**9
    os.utime(tree / "images" / "a.png", ns=(future, future))  # touched: the index is patched with its new stat
    lines: list[str] = []
    _refresh(tmp_path, tree, lines)
    assert any("no digest moved" in m for m in lines), lines
    patched = path.read_bytes()
    assert patched != built
    assert _record(path) == {"sha256": hashlib.sha256(patched).hexdigest(), "size": len(patched)}


def test_a_job_waits_once_for_a_record_being_written(tmp_path, tree, monkeypatch):
    path = tmp_path / "results" / "ds" / INDEX_NAME
    _refresh(tmp_path, tree)
    good = record_path(path).read_text()
    record_path(path).write_text(json.dumps({"sha256": "0" * 64, "size": path.stat().st_size}))
    waits: list[float] = []

    def main_process_finishes(seconds: float) -> None:  # the record arrives while the job waits
        waits.append(seconds)
        record_path(path).write_text(good)

    monkeypatch.setattr(index_module.time, "sleep", main_process_finishes)
    assert open_index(path, "ds", _entry(tree)).ids == ["a", "b", "c"]
    assert waits == [index_module.RECHECK_AFTER_S]
    monkeypatch.undo()
    record_path(path).unlink()  # and never written: refused after the wait
    with pytest.raises(IndexStale, match="no index.sqlite.sha256 records its sha256"):
        open_index(path, "ds", _entry(tree))


def test_jobs_never_build_and_refuse_a_stale_index(tmp_path, tree):
    path = tmp_path / "results" / "ds" / INDEX_NAME
    with pytest.raises(IndexStale, match="fmwsss index ds"):
        open_index(path, "ds", _entry(tree))
    assert not path.exists()
    _refresh(tmp_path, tree)
    with pytest.raises(IndexStale, match="fmwsss index ds"):
        open_index(path, "ds", _entry(tmp_path / "elsewhere"))
    os.utime(tree / "images" / "a.png", ns=(1, 1))  # touched: the same content is still accepted
    job = open_index(path, "ds", _entry(tree))
    assert job.image_path("a") == tree / "images" / "a.png"
    _png(tree / "images" / "b.png", 99)
    with pytest.raises(IndexStale, match="b.png changed since"):
        job.image_path("b")
    path.write_bytes(path.read_bytes()[:100])
    with pytest.raises(IndexStale, match="fmwsss index ds"):
        open_index(path, "ds", _entry(tree))


def test_voc_tags_from_ground_truth_match_the_sample_labels(tmp_path, voc_sample):
    """A VOC tree whose tags come from its masks: the index holds the sample's own labels.json tags."""
    import json

    root = tmp_path / "voc"
    (root / "ImageSets" / "Segmentation").mkdir(parents=True)
    shutil.copytree(voc_sample / "JPEGImages", root / "JPEGImages")
    shutil.copytree(voc_sample / "SegmentationClass", root / "SegmentationClass")
    labels = json.loads((voc_sample / "labels.json").read_text())
    ids = sorted(labels)
    (root / "ImageSets/Segmentation/train.txt").write_text("\n".join(ids[:-4]) + "\n")
    (root / "ImageSets/Segmentation/val.txt").write_text("\n".join(ids[-4:]) + "\n")
    entry = {"type": "voc", "root": str(root), "options": {}}
    index = refresh_index(tmp_path / "results" / INDEX_NAME, "voc", entry, lambda _m: None)
    assert index.ids == ids[:-4] and index.splits["val"] == ids[-4:]
    assert {i: list(index.tags(i)) for i in index.ids} == {i: sorted(labels[i]) for i in ids[:-4]}
    assert index.gt_path(ids[-1]) == root / "SegmentationClass" / f"{ids[-1]}.png"


def test_plan_opens_only_the_datasets_asked_for(tmp_path, tree, monkeypatch):
    import fmwsss.data.index as index_module
    from fmwsss.pipeline.plan import Plan

    opened: list[str] = []
    real = index_module.open_dataset

    def spy(type, root, *, name, **options):
        opened.append(name)
        return real(type, root, name=name, **options)

    monkeypatch.setattr(index_module, "open_dataset", spy)
    config = {
        "datasets": {
            "mine": {"type": "custom", "root": str(tree), "preset": "p"},
            "voc": {"type": "voc", "root": str(tmp_path / "no-voc-here"), "preset": "p"},
            "coco": {"type": "coco", "root": str(tmp_path / "no-coco-here"), "preset": "p"},
        },
        "presets": {"p": {"classes": {"fg_prompt_names": None}}},
    }
    plan = Plan(config, results=str(tmp_path / "results"))
    assert list(plan.datasets) == ["mine", "voc", "coco"] and opened == []
    assert len(plan.key("mine", "seeds_fine")) == 16
    assert opened == ["mine"] and not (tmp_path / "results" / "voc").exists()
    assert plan.datasets["voc"].error and opened == ["mine", "voc"]


def test_coco_ground_truth_is_painted_in_jobs_from_the_index_without_the_json(tmp_path, coco_sample):
    from fmwsss.data import load_label_png, open_dataset

    root = tmp_path / "coco"
    shutil.copytree(coco_sample, root)
    options = {"split": "val2014", "annotations": "annotations/instances_sample.json"}
    entry = {"type": "coco", "root": str(root), "options": {**options, "cache_dir": str(tmp_path / "cache")}}
    path = tmp_path / "results" / INDEX_NAME
    built = refresh_index(path, "c", entry, lambda _m: None)
    assert built.num_ids == 12 and not list(tmp_path.rglob("*.png"))  # nothing painted at index build
    loader = open_dataset("coco", root, name="c", **options, cache_dir=tmp_path / "loader")
    expected = {i: load_label_png(loader.gt_path(i)) for i in loader.ids}
    (root / options["annotations"]).write_bytes(b"{not json")  # a job must not need it
    job = open_index(path, "c", entry)
    assert job.ids == loader.ids
    for i in job.ids:
        assert job.gt_path(i).parent.parent == tmp_path / "cache"
        assert np.array_equal(load_label_png(job.gt_path(i)), expected[i]), i


def test_index_command_builds_then_reports(tmp_path, tree, capsys):
    import yaml

    from fmwsss.cli.main import main

    config = tmp_path / "config.yaml"
    config.write_text(yaml.safe_dump({
        "datasets": {"ds": {"type": "custom", "root": str(tree), "preset": "p"},
                     "unset": {"type": "voc", "root": None, "preset": "p"}},
        "presets": {"p": {}},
    }))
    argv = ["index", "--config", str(config), "--results", str(tmp_path / "results")]
    assert main(argv) == 0  # all datasets: an unset root is reported, not a failure
    out = capsys.readouterr()
    assert "ds: 3 ids in" in out.out and "unset: unavailable" in out.out and "opening the dataset" in out.err
    assert (tmp_path / "results" / "ds" / INDEX_NAME).is_file()
    assert main(argv[:1] + ["ds"] + argv[1:]) == 0
    assert "opening" not in capsys.readouterr().err  # fresh: read, not rebuilt
    assert main(argv[:1] + ["unset"] + argv[1:]) == 1


def test_index_and_status_commands_rebuild_a_damaged_index(tmp_path, tree, capsys, monkeypatch):
    import yaml

    from fmwsss.cli.main import main

    monkeypatch.chdir(tmp_path)  # `fmwsss status` reads results/ of the working directory
    (tmp_path / "config.yaml").write_text(yaml.safe_dump({
        "datasets": {"ds": {"type": "custom", "root": str(tree), "preset": "p"}}, "presets": {"p": {}},
    }))
    path = tmp_path / "results" / "ds" / INDEX_NAME
    assert main(["index", "ds", "--config", "config.yaml"]) == 0
    for command in ("index", "status"):
        capsys.readouterr()
        _overwrite_table_page(path, "images")
        assert main([command, "ds", "--config", "config.yaml"]) == 0
        err = capsys.readouterr().err
        assert f"{os.path.join('results', 'ds', INDEX_NAME)} is unreadable, corrupt" in err and "rebuilding" in err
        assert open_index(path, "ds", _entry(tree)).ids == ["a", "b", "c"]
