import os
import subprocess
import sys
import time

import h5py
import numpy as np
import pytest
from PIL import Image

import fmwsss.sam.run as sam_run
from fmwsss.sam.build import SamSpeed
from fmwsss.sam.run import run_sam_shard
from fmwsss.sam.shards import SamShardReader

SETTINGS = dict(points_per_side=4, pred_iou_thresh=0.8, stability_score_thresh=0.8, min_mask_region_area=20,
                level_iou_offsets=[0.0, 0.0, 0.1], level_nms_offsets=[0.0, 0.0, 1.0], rsw_thresh=0.3)


@pytest.fixture
def items(tmp_path, blocks_image):
    out = []
    for k, image_id in enumerate(["img_a", "img_b", "img_c"]):
        path = tmp_path / "images" / f"{image_id}.png"
        path.parent.mkdir(exist_ok=True)
        Image.fromarray(np.roll(blocks_image, 16 * k, axis=1)).save(path)
        out.append((image_id, path))
    return out


def _run(items, tiny_sam_path, out_dir, lines, speed=SamSpeed(points_per_batch=8, encoder_batch=1, rsw_chunk=4),
         settings=SETTINGS, num_workers=0):
    run_sam_shard(items, tiny_sam_path, "tiny", settings, out_dir / ".partial" / "shard.h5", out_dir / "shard.h5",
                  device="cpu", speed=speed, num_workers=num_workers, log=lines.append)


class Stalled(Exception):
    pass


@pytest.mark.parametrize("implementation", ["reference", "fast"])
def test_resume_after_interruption_equals_uninterrupted_run(tmp_path, items, tiny_sam_path, monkeypatch, implementation):
    settings = {**SETTINGS, "implementation": implementation}
    reference_lines: list[str] = []
    _run(items, tiny_sam_path, tmp_path / "ref", reference_lines, settings=settings)
    assert [line.split(" -> ")[0] for line in reference_lines[1:-1]] == [
        "sam_masks: image 1/3 img_a", "sam_masks: image 2/3 img_b", "sam_masks: image 3/3 img_c"]
    assert reference_lines[-1] == "sam_masks: shard.h5: 3 images: reused 0, computed 3"

    def stall_after_two(stage, done):
        if stage == "sam_masks" and done == 2:
            raise Stalled

    lines: list[str] = []
    monkeypatch.setattr(sam_run, "maybe_stall", stall_after_two)
    with pytest.raises(Stalled):
        _run(items, tiny_sam_path, tmp_path / "out", lines, settings=settings)
    assert not (tmp_path / "out" / "shard.h5").exists()
    with pytest.raises(ValueError, match="incomplete"):
        SamShardReader(tmp_path / "out" / ".partial" / "shard.h5")

    monkeypatch.undo()
    lines.clear()
    _run(items, tiny_sam_path, tmp_path / "out", lines, settings=settings)
    assert len(lines) == 3 and lines[1].startswith("sam_masks: image 3/3 img_c -> ")
    assert lines[2] == "sam_masks: shard.h5: 3 images: reused 0, computed 1"
    assert not (tmp_path / "out" / ".partial" / "shard.h5").exists()

    with SamShardReader(tmp_path / "ref" / "shard.h5") as ref, SamShardReader(tmp_path / "out" / "shard.h5") as got:
        assert got.ids() == ref.ids() == ["img_a", "img_b", "img_c"]
        assert got.settings == ref.settings
        for image_id in ref.ids():
            a, b = ref.read(image_id), got.read(image_id)
            assert len(a) > 0
            for name in ("masks", "level", "predicted_iou", "stability", "bbox", "area"):
                np.testing.assert_array_equal(getattr(a, name), getattr(b, name))

    # A finished shard is left alone.
    mtime = (tmp_path / "out" / "shard.h5").stat().st_mtime_ns
    lines.clear()
    _run(items, tiny_sam_path, tmp_path / "out", lines, settings=settings)
    assert lines == [f"sam_masks: {tmp_path / 'out' / 'shard.h5'} is complete, nothing to do"]
    assert (tmp_path / "out" / "shard.h5").stat().st_mtime_ns == mtime


def test_unknown_setting_is_named(tmp_path, items, tiny_sam_path):
    with pytest.raises(ValueError, match="points_per_sid"):
        run_sam_shard(items, tiny_sam_path, "tiny", {"points_per_sid": 4}, tmp_path / "p.h5", tmp_path / "f.h5",
                      device="cpu")


def _shard_content(path):
    """Every attribute and dataset of a shard file, as plain Python/numpy values."""
    with h5py.File(path, "r") as f:
        content = {"/": dict(f.attrs)}
        for name, group in f.items():
            content[name] = dict(group.attrs)
            for key, dataset in group.items():
                content[f"{name}/{key}"] = np.asarray(dataset)
    return content


def _assert_same_content(a, b):
    assert a.keys() == b.keys()
    for key in a:
        if isinstance(a[key], dict):
            assert a[key] == b[key], key
        else:
            np.testing.assert_array_equal(a[key], b[key], err_msg=key)


def test_point_batch_size_leaves_the_shard_identical(tmp_path, items, tiny_sam_path):
    """The budget may change points_per_batch; the shard must not change with it (tiny SAM, CPU)."""
    settings = {**SETTINGS, "points_per_side": 8}
    _run(items, tiny_sam_path, tmp_path / "a", [], speed=SamSpeed(points_per_batch=7, encoder_batch=1),
         settings=settings)
    _run(items, tiny_sam_path, tmp_path / "b", [], speed=SamSpeed(points_per_batch=64, encoder_batch=1),
         settings=settings)
    _assert_same_content(_shard_content(tmp_path / "a" / "shard.h5"), _shard_content(tmp_path / "b" / "shard.h5"))


def test_killed_mid_batch_resumes_at_the_first_uncommitted_image(tmp_path, items, tiny_sam_path):
    """A real kill through the FMWSSS_TEST_STALL hook, with two images per batch and a loader worker:
    the job stalls after committing image 3 of 4 (mid-batch); the rerun only does image 4."""
    four = items + [("img_d", items[0][1])]
    speed = "SamSpeed(points_per_batch=8, encoder_batch=2, rsw_chunk=4)"
    script = (
        "import sys; from pathlib import Path; from fmwsss.sam.build import SamSpeed; "
        "from fmwsss.sam.run import run_sam_shard; "
        f"run_sam_shard({[(i, str(p)) for i, p in four]!r}, {str(tiny_sam_path)!r}, 'tiny', {SETTINGS!r}, "
        f"Path({str(tmp_path / 'out' / '.partial' / 'shard.h5')!r}), Path({str(tmp_path / 'out' / 'shard.h5')!r}), "
        f"device='cpu', speed={speed}, num_workers=1, log=lambda m: print(m, flush=True))"
    )
    env = {**os.environ, "FMWSSS_TEST_STALL": "sam_masks:3"}
    proc = subprocess.Popen([sys.executable, "-c", script], env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                            text=True)
    deadline = time.monotonic() + 120
    stderr = ""
    while "stalled after 3" not in stderr:
        assert proc.poll() is None and time.monotonic() < deadline, proc.communicate()
        stderr += proc.stderr.readline()
    proc.kill()
    stdout, _ = proc.communicate()
    assert "image 3/4 img_c" in stdout and "img_d" not in stdout
    assert "2 image(s) per batch" in stdout

    lines: list[str] = []
    _run(four, tiny_sam_path, tmp_path / "out", lines, speed=SamSpeed(points_per_batch=8, encoder_batch=2, rsw_chunk=4))
    assert [line.split(" -> ")[0] for line in lines[1:-1]] == ["sam_masks: image 4/4 img_d"]
    _run(four, tiny_sam_path, tmp_path / "ref", [], speed=SamSpeed(points_per_batch=8, encoder_batch=2, rsw_chunk=4))
    _assert_same_content(_shard_content(tmp_path / "ref" / "shard.h5"), _shard_content(tmp_path / "out" / "shard.h5"))


def test_reused_images_are_linked_not_recomputed_and_the_holder_is_untouched(tmp_path, items, tiny_sam_path):
    """Images another shard already holds are linked; with nothing left to compute no model is loaded."""
    _run(items, tiny_sam_path, tmp_path / "a", [])
    holder = tmp_path / "a" / "shard.h5"
    before = (holder.stat().st_mtime_ns, holder.read_bytes())
    reused = {image_id: ("../a/shard.h5", image_id) for image_id, _ in items}
    lines: list[str] = []
    run_sam_shard(items, tmp_path / "no-such-model.pt", "tiny", SETTINGS, tmp_path / "b" / ".partial" / "shard.h5",
                  tmp_path / "b" / "shard.h5", device="cpu", log=lines.append, reused=reused)
    assert lines == ["sam_masks: shard.h5: 3 images: reused 3, computed 0"]
    _assert_same_content(_shard_content(holder), _shard_content(tmp_path / "b" / "shard.h5"))
    assert (holder.stat().st_mtime_ns, holder.read_bytes()) == before
    # a mixed shard: two linked, one computed, same content as computing all three
    mixed: list[str] = []
    run_sam_shard(items, tiny_sam_path, "tiny", SETTINGS, tmp_path / "d" / ".partial" / "shard.h5",
                  tmp_path / "d" / "shard.h5", device="cpu", log=mixed.append,
                  reused={i: ("../a/shard.h5", i) for i, _ in items[::2]})
    assert mixed[-1] == "sam_masks: shard.h5: 3 images: reused 2, computed 1"
    _assert_same_content(_shard_content(holder), _shard_content(tmp_path / "d" / "shard.h5"))
