"""Unusable images are found early: headers at planning (the dataset index), truncated pixels by one full
decode of a job's images before any model, each time with every bad file and its reason in one error."""
from __future__ import annotations

import numpy as np
import pytest
from PIL import Image

import fmwsss.data.index as index_module
from fmwsss.data.images import BadImages, probe_header, require_decodable
from fmwsss.data.index import INDEX_NAME, refresh_index


def _jpeg(path, w: int, h: int) -> None:
    rng = np.random.default_rng(0)
    Image.fromarray(rng.integers(0, 256, (h, w, 3), dtype=np.uint8)).save(path, quality=90)


def _truncate(path) -> None:
    data = path.read_bytes()
    path.write_bytes(data[: len(data) // 2])


@pytest.fixture
def files(tmp_path):
    """good.jpg 40x30, trunc.jpg (40x30, second half cut off), small.jpg 10x10, text.jpg (not an image)."""
    _jpeg(tmp_path / "good.jpg", 40, 30)
    _jpeg(tmp_path / "trunc.jpg", 40, 30)
    _truncate(tmp_path / "trunc.jpg")
    _jpeg(tmp_path / "small.jpg", 10, 10)
    (tmp_path / "text.jpg").write_text("not an image\n")
    return tmp_path


def test_header_check_sees_size_and_unreadable_headers_but_not_truncated_pixels(files):
    assert probe_header(files / "good.jpg") == (40, 30)
    assert probe_header(files / "trunc.jpg") == (40, 30)  # a fine header: only a full decode sees it
    assert probe_header(files / "small.jpg") == "image is 10x10 pixels; both sides must be at least 16"
    assert probe_header(files / "text.jpg").startswith("unreadable image header (")
    assert probe_header(files / "missing.jpg") == "image file not found"


def test_full_decode_names_every_bad_file_on_one_line(files):
    paths = [files / n for n in ("good.jpg", "trunc.jpg", "small.jpg", "text.jpg")]
    with pytest.raises(BadImages) as caught:
        require_decodable(paths, "sam_masks shard-000 of demo", threads=2)
    assert [p for p, _ in caught.value.problems] == [str(files / n) for n in ("trunc.jpg", "small.jpg", "text.jpg")]
    reasons = dict(caught.value.problems)
    assert "truncated" in reasons[str(files / "trunc.jpg")]
    assert reasons[str(files / "small.jpg")] == "image is 10x10 pixels; both sides must be at least 16"
    message = str(caught.value)
    assert "\n" not in message and message.startswith("sam_masks shard-000 of demo: 3 unusable image(s): ")
    require_decodable(paths[:1], "fine")  # all usable: no error


def _tree(root):
    """A custom dataset of 4 images: a and d fine, b 10x10, c not an image."""
    (root / "images").mkdir(parents=True)
    _jpeg(root / "images" / "a.jpg", 20, 20)
    _jpeg(root / "images" / "b.jpg", 10, 10)
    (root / "images" / "c.jpg").write_text("nope")
    _jpeg(root / "images" / "d.jpg", 16, 64)
    (root / "classes.txt").write_text("cat\n")
    (root / "tags.csv").write_text("id,tags\na,cat\nb,cat\nc,cat\nd,cat\n")


def test_index_refuses_bad_headers_at_planning_and_probes_each_image_once(tmp_path, monkeypatch):
    root = tmp_path / "ds"
    _tree(root)
    probed: list[str] = []
    real = index_module.probe_header
    monkeypatch.setattr(index_module, "probe_header", lambda p: probed.append(p) or real(p))
    path, entry = tmp_path / "results" / "ds" / INDEX_NAME, {"type": "custom", "root": str(root), "options": {}}

    with pytest.raises(BadImages) as caught:
        refresh_index(path, "ds", entry, lambda _m: None)
    b, c = str(root / "images" / "b.jpg"), str(root / "images" / "c.jpg")
    assert [p for p, _ in caught.value.problems] == [b, c]
    assert "10x10" in dict(caught.value.problems)[b]
    assert sorted(probed) == [str(root / "images" / f"{i}.jpg") for i in "abcd"]
    assert path.is_file()  # written anyway: the next run re-opens no image

    probed.clear()
    with pytest.raises(BadImages):
        refresh_index(path, "ds", entry, lambda _m: None)
    assert probed == []  # warm run: stat-cached, no image opened

    _jpeg(root / "images" / "b.jpg", 16, 16)
    (root / "images" / "c.jpg").unlink()
    _jpeg(root / "images" / "c.jpg", 17, 17)
    probed.clear()
    index = refresh_index(path, "ds", entry, lambda _m: None)
    assert sorted(probed) == [b, c] and index.ids == ["a", "b", "c", "d"]
