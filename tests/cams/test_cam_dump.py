"""CAM shards and the dump stage on real VOC images with the tiny CLIP."""
from __future__ import annotations

import h5py
import numpy as np
import pytest
import torch

import fmwsss.cams.dump as dump_mod
from fmwsss.cams.caa import COARSE, FINE, refine
from fmwsss.cams.clip_wrapper import preprocess_native
from fmwsss.cams.dump import ZeroShot, dump_cams
from fmwsss.cams.gradcam import softmax_gradcam
from fmwsss.cams.shards import CamShardError, CamShardReader, CamShardWriter
from fmwsss.prompts.learners import PromptLearner, ZeroShotPrompts, save_prompts, seg_prompt_config

FG = [f"class{i}" for i in range(1, 21)]
BG = ["ground", "sky", "tree"]


class Stop(Exception):
    pass


def _run(items, clip, prompts, tmp, load_rgb, caa=COARSE, stage="cams_coarse_dump"):
    return dump_cams(items, clip, prompts, caa, tmp / "s.partial.h5", tmp / "s.h5", "cpu", log=lambda m: None,
                     stage=stage, load_image=load_rgb)


def test_shard_roundtrip_upsample_and_refuses_incomplete(tmp_path):
    writer = CamShardWriter(tmp_path / "p.h5", tmp_path / "f.h5", {"k": 1})
    cam = np.arange(12, dtype=np.float32).reshape(1, 3, 4)
    writer.write_cams("a", cam, cam * 2, np.array([7]), 48, 64, 16)
    with pytest.raises(CamShardError, match="already written"):
        writer.write_cams("a", cam, cam, np.array([7]), 48, 64, 16)
    writer.close()
    with pytest.raises(CamShardError, match="p.h5 is incomplete"):
        CamShardReader(tmp_path / "p.h5")
    writer = CamShardWriter(tmp_path / "p.h5", tmp_path / "f.h5", {"k": 1})
    assert writer.done == {"a"}
    final = writer.finish(["a"])
    assert not (tmp_path / "p.h5").exists()
    with CamShardReader(final) as reader:
        rec = reader.read("a")
        assert reader.ids() == ["a"] and reader.settings == {"k": 1}
        np.testing.assert_allclose(rec.cam_caa, cam * 2, rtol=1e-3)  # the codec keeps ~3 digits
        up = rec.upsampled("cam_raw")
        assert up.shape == (1, 48, 64) and up.min() >= 0 and up.max() <= 11
        with pytest.raises(CamShardError, match="no image 'b'"):
            reader.read("b")


def test_dump_matches_direct_computation_and_stores_no_attention(tiny_clip_path, clip_cam, voc_items, load_rgb,
                                                                 tmp_path):
    items = voc_items[:3]
    final = _run(items, tiny_clip_path, ZeroShot(tuple(FG), tuple(BG)), tmp_path, load_rgb)
    text = ZeroShotPrompts(clip_cam, FG, BG).text_features(clip_cam)
    with h5py.File(final, "r") as f:
        for _, ds in f.items():
            for name in ds:
                assert ds[name].ndim <= 3 and max(ds[name].shape, default=0) < 100, name  # no HW x HW on disk
    with CamShardReader(final) as reader:
        assert reader.ids() == sorted(i for i, _, _ in items)
        image_id, path, tags = items[0]
        rec = reader.read(image_id)
        rgb = load_rgb(path)
        x = preprocess_native(rgb)[None]
        out = clip_cam.encode_image(x, need_attn=True)
        present = torch.zeros(1, 20, dtype=torch.bool)
        present[0, [t - 1 for t in tags]] = True
        cams = softmax_gradcam(out.act, clip_cam.logits(out.feat, text), present, out.grid).cams.detach()
        assert rec.classes.tolist() == sorted(tags) and (rec.height, rec.width, rec.stride) == (*rgb.shape[:2], 16)
        assert rec.cam_raw.shape == (len(tags), x.shape[2] // 16, x.shape[3] // 16)
        np.testing.assert_allclose(rec.cam_raw, cams.numpy(), rtol=2e-3, atol=1e-3 * float(cams.abs().max()))
        caa = refine(cams, out.attn[0], COARSE).numpy()
        np.testing.assert_allclose(rec.cam_caa, caa, rtol=2e-3, atol=1e-3 * float(np.abs(caa).max()))
        assert rec.upsampled().shape == (len(tags), *rgb.shape[:2])


def test_dump_resumes_after_kill(tiny_clip_path, clip_cam, voc_items, load_rgb, tmp_path, monkeypatch):
    items = voc_items[:3]
    learner = PromptLearner(clip_cam, seg_prompt_config(FG, n_bg=2, seed=5))
    prompts = save_prompts(learner, tmp_path / "seg.pth")
    full = _run(items, tiny_clip_path, prompts, tmp_path / "full", load_rgb, FINE, "cams_fine_dump")

    def stall(stage, done):
        if stage == "cams_fine_dump" and done == 2:
            raise Stop

    monkeypatch.setattr(dump_mod, "maybe_stall", stall)
    with pytest.raises(Stop):
        _run(items, tiny_clip_path, prompts, tmp_path / "cut", load_rgb, FINE, "cams_fine_dump")
    assert not (tmp_path / "cut" / "s.h5").exists()
    seen = []
    monkeypatch.setattr(dump_mod, "maybe_stall", lambda stage, done: seen.append(done))
    resumed = _run(items, tiny_clip_path, prompts, tmp_path / "cut", load_rgb, FINE, "cams_fine_dump")
    assert seen == [3]  # only the third image was computed
    with CamShardReader(full) as a, CamShardReader(resumed) as b:
        assert a.ids() == b.ids()
        for i in a.ids():
            np.testing.assert_array_equal(a.read(i).cam_caa, b.read(i).cam_caa)
