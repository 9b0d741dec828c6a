import numpy as np
import pytest
from PIL import Image

import fmwsss.sam.run as sam_run
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


def _run(items, tiny_sam_path, out_dir, lines):
    run_sam_shard(items, tiny_sam_path, "tiny", SETTINGS, out_dir / ".partial" / "shard.h5", out_dir / "shard.h5",
                  device="cpu", points_per_batch=8, rsw_chunk=4, log=lines.append)


class Stalled(Exception):
    pass


def test_resume_after_interruption_equals_uninterrupted_run(tmp_path, items, tiny_sam_path, monkeypatch):
    reference_lines: list[str] = []
    _run(items, tiny_sam_path, tmp_path / "ref", reference_lines)
    assert [line.split(" -> ")[0] for line in reference_lines] == [
        "sam_masks: image 1/3 img_a", "sam_masks: image 2/3 img_b", "sam_masks: image 3/3 img_c"]

    def stall_after_two(stage, done):
        if stage == "sam_masks" and done == 2:
            raise Stalled

    lines: list[str] = []
    monkeypatch.setattr(sam_run, "maybe_stall", stall_after_two)
    with pytest.raises(Stalled):
        _run(items, tiny_sam_path, tmp_path / "out", lines)
    assert not (tmp_path / "out" / "shard.h5").exists()
    with pytest.raises(ValueError, match="incomplete"):
        SamShardReader(tmp_path / "out" / ".partial" / "shard.h5")

    monkeypatch.undo()
    lines.clear()
    _run(items, tiny_sam_path, tmp_path / "out", lines)
    assert len(lines) == 1 and lines[0].startswith("sam_masks: image 3/3 img_c -> ")
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
    _run(items, tiny_sam_path, tmp_path / "out", lines)
    assert lines == [f"sam_masks: {tmp_path / 'out' / 'shard.h5'} is complete, nothing to do"]
    assert (tmp_path / "out" / "shard.h5").stat().st_mtime_ns == mtime


def test_unknown_setting_is_named(tmp_path, items, tiny_sam_path):
    with pytest.raises(ValueError, match="points_per_sid"):
        run_sam_shard(items, tiny_sam_path, "tiny", {"points_per_sid": 4}, tmp_path / "p.h5", tmp_path / "f.h5",
                      device="cpu", points_per_batch=8, rsw_chunk=4)
