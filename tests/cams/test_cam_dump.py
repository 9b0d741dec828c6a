"""CAM shards and the dump stage: hand-computed CAMs through a linear stand-in for CLIP, and resumption on
real VOC images with the tiny CLIP."""
from __future__ import annotations

from types import SimpleNamespace

import h5py
import numpy as np
import pytest
import torch

import fmwsss.cams.dump as dump_mod
from fmwsss.cams.caa import COARSE, FINE
from fmwsss.cams.dump import ZeroShot, dump_cams
from fmwsss.cams.shards import CamShardError, CamShardReader, CamShardWriter
from fmwsss.prompts.learners import PromptLearner, save_prompts, seg_prompt_config

FG = [f"class{i}" for i in range(1, 21)]


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


class LinearClip:
    """A stand-in for ``ClipCam`` whose Grad-CAM can be worked out by hand.

    The activation A (1, 1 + 6, 2) is fixed (CLS row, then a 2 x 3 patch grid); the image feature is the mean
    of the patch rows and the logits are ``feat @ text.T``. Image-independent, so the dump's wiring (tags ->
    positives, Grad-CAM, CAA, shard) is what is checked.
    """

    patch_size = 16
    #: patch rows of A: first channel sums to 0 (so the feature's first channel is 0), second is constant
    PATCHES = torch.tensor([[3.0, 1.0], [-1.0, 1.0], [0.0, 1.0], [1.0, 1.0], [-2.0, 1.0], [-1.0, 1.0]])
    #: 6 x 6 attention 2 x (0.4 I + 0.1 J): after one Sinkhorn step and symmetrising, T = 0.4 I + 0.1 J, and
    #: T^2 = 0.16 I + (0.08 + 0.06) J: 0.30 on the diagonal, 0.14 elsewhere
    ATTN = 2 * (0.4 * torch.eye(6) + 0.1 * torch.ones(6, 6))

    def __init__(self, clip, n_attn_layers=8):
        pass

    def encode_image(self, x, need_attn=False):
        assert x.shape[-2:] == (32, 48), "the 30 x 40 test image rounds up to 32 x 48"
        act = torch.cat([torch.zeros(1, 2), self.PATCHES])[None].clone().requires_grad_()
        return SimpleNamespace(act=act, feat=act[:, 1:].mean(dim=1), grid=(2, 3), attn=self.ATTN[None])

    def logits(self, feat, text):
        return feat @ text.t()


class LinearHead(torch.nn.Module):
    """Text features of 3 fg classes and 1 bg class: fg1 = (1, 0), fg2 = (0, 1), fg3 = (1, 1), bg = (0, 0)."""

    n_fg = 3

    def text_features(self, clip_cam):
        return torch.tensor([[1.0, 0.0], [0.0, 1.0], [1.0, 1.0], [0.0, 0.0]])


def load_rgb_png(path):
    import cv2

    return cv2.imread(str(path))[..., ::-1]


def test_dump_stores_hand_computed_cams(tmp_path, monkeypatch):
    """Tags (1,): z = (f0, -, -, 0) with f = mean patch row = (0, 1), so p1 = sigmoid(0) = 1/2 over {fg1, bg}
    and dp1/dA_i = (1/6) p1 (1 - p1) (t1 - t_bg) = (1/24, 0) for every patch i: the CAM is A_i0 / 24.
    Tags (1, 2): z = (0, 1, -, 0) over {fg1, fg2, bg}, p = (1, e, 1) / (2 + e); dp_c/df = p_c (t_c - sum_k p_k
    t_k) with sum_k p_k t_k = (p1, p2), and the CAM_c(i) = A_i . (dp_c/df) / 6.
    CAA (coarse): only cell (0, 0) of the fg1 score passes the 0.4 box (0.33 x 254 = 84 < 101), so its refined
    map is T^2(i, 0) x score(0, 0) = 0.30 at (0, 0) and 0.14 elsewhere (score(0, 0) = 1 up to 1e-7).
    """
    import cv2

    monkeypatch.setattr(dump_mod, "ClipCam", LinearClip)
    monkeypatch.setattr(dump_mod, "build_text_head", lambda clip_cam, prompts: LinearHead())
    monkeypatch.setattr("fmwsss.models.clip.load_clip", lambda path, device: None)
    image = tmp_path / "img.png"
    cv2.imwrite(str(image), np.zeros((30, 40, 3), np.uint8))
    items = [("a", image, [1]), ("b", image, [2, 1])]
    final = dump_cams(items, "unused.pt", ZeroShot(("x",), ("y",)), COARSE, tmp_path / "s.partial.h5",
                      tmp_path / "s.h5", log=lambda m: None, load_image=load_rgb_png)
    a0 = LinearClip.PATCHES[:, 0].numpy().reshape(2, 3)
    e = np.e
    p1, p2 = 1 / (2 + e), e / (2 + e)
    w1 = p1 * (np.array([1.0, 0.0]) - np.array([p1, p2])) / 6
    w2 = p2 * (np.array([0.0, 1.0]) - np.array([p1, p2])) / 6
    patches = LinearClip.PATCHES.numpy()
    with CamShardReader(final) as reader:
        a, b = reader.read("a"), reader.read("b")
    assert a.classes.tolist() == [1] and b.classes.tolist() == [1, 2]
    assert (a.height, a.width, a.stride) == (30, 40, 16)
    np.testing.assert_allclose(a.cam_raw, (a0 / 24)[None], rtol=2e-3, atol=1e-7)
    np.testing.assert_allclose(a.cam_caa, [[[0.30, 0.14, 0.14], [0.14, 0.14, 0.14]]], rtol=2e-3, atol=1e-7)
    expected_b = np.stack([patches @ w1, patches @ w2]).reshape(2, 2, 3)
    np.testing.assert_allclose(b.cam_raw, expected_b, rtol=2e-3, atol=1e-7)


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
    with h5py.File(resumed, "r") as f:
        for _, group in f.items():
            for name in group:
                assert group[name].ndim <= 3 and max(group[name].shape, default=0) < 100, name  # no HW x HW on disk
    with CamShardReader(full) as a, CamShardReader(resumed) as b:
        assert a.ids() == b.ids()
        for i in a.ids():
            np.testing.assert_array_equal(a.read(i).cam_caa, b.read(i).cam_caa)
