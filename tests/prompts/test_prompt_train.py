"""Prompt training on the tiny CLIP: schedule, augmentation, loss goes down, kill + resume is bit-identical."""
from __future__ import annotations

import dataclasses
import math

import numpy as np
import pytest
import torch

import fmwsss.prompts.train as train_mod
from fmwsss.cams.clip_wrapper import ClipCam
from fmwsss.models.clip import load_clip
from fmwsss.prompts.augment import AugConfig, augment
from fmwsss.prompts.learners import cls_prompt_config, load_prompts, seg_prompt_config
from fmwsss.prompts.train import (TrainConfig, _count, _loss_parts, batch_indices, lr_at, make_batch,
                                  train_prompts)

FG = [f"class{i}" for i in range(1, 21)]
BG = ["ground", "sky", "tree"]


class Killed(Exception):
    pass


def _seg_items(voc_sample, voc_items):
    return [(i, p, voc_sample / "SegmentationClass" / f"{i}.png") for i, p, _ in voc_items]


def _batch_loss(tiny_clip_path, prompts_path, items, cfg, load_rgb, it=0):
    clip_cam = ClipCam(load_clip(tiny_clip_path))
    learner = load_prompts(prompts_path, clip_cam)
    batch = make_batch(items, np.arange(len(items)), it, cfg, 20, load_rgb, train_mod._load_png)
    with torch.enable_grad():
        return float(_loss_parts(clip_cam, learner, batch, cfg, "cpu").numerator.detach()) / _count(batch, cfg)


def test_schedule_flat_warmup_then_cosine_to_zero():
    cfg = TrainConfig(task="cls", max_iter=1800, warmup_iters=500)
    assert lr_at(0, cfg) == lr_at(499, cfg) == 1e-5
    assert lr_at(500, cfg) == 1e-3
    assert lr_at(1150, cfg) == pytest.approx(0.5e-3)
    assert lr_at(1799, cfg) == pytest.approx(1e-3 * 0.5 * (1 + math.cos(math.pi * 1299 / 1300)))


def test_sampler_is_drop_last_permutation_per_epoch():
    cfg = TrainConfig(task="cls", max_iter=10, batch_size=4, seed=3)
    epoch0 = np.concatenate([batch_indices(i, 10, cfg) for i in range(2)])
    assert len(set(epoch0.tolist())) == 8 and batch_indices(2, 10, cfg).shape == (4,)
    assert not np.array_equal(batch_indices(0, 10, cfg), batch_indices(2, 10, cfg))


def test_augment_shapes_label_follows_image_and_is_seeded():
    rgb = np.zeros((300, 500, 3), np.uint8)
    rgb[:, 250:] = 200  # right half bright
    label = np.zeros((300, 500), np.uint8)
    label[:, 250:] = 7
    cfg = AugConfig(jitter_p=0.0)
    for seed in range(5):
        out, lab = augment(rgb, label, np.random.default_rng(seed), cfg)
        assert out.shape == (224, 224, 3) and lab.shape == (224, 224)
        assert set(np.unique(lab)) <= {0, 7}
        np.testing.assert_array_equal(lab == 7, out[..., 0] > 100)  # nearest-neighbour label tracks the image
    a = augment(rgb, label, np.random.default_rng(1))
    b = augment(rgb, label, np.random.default_rng(1))
    assert np.array_equal(a[0], b[0]) and np.array_equal(a[1], b[1])


def test_cls_training_lowers_loss(tiny_clip_path, voc_items, load_rgb, tmp_path):
    items = voc_items[:4]
    cfg = TrainConfig(task="cls", max_iter=6, warmup_iters=1, lr=0.2, batch_size=4, ckpt_every=3, log_every=1)
    lines = []
    out = train_prompts(items, tiny_clip_path, cls_prompt_config(FG, BG, seed=0), cfg, tmp_path / "w",
                        tmp_path / "cls.pth", log=lines.append, load_image=load_rgb)
    init = tmp_path / "init.pth"
    state = torch.load(out, weights_only=True)
    torch.save({**state, "ctx": state["init_ctx"]}, init)
    before = _batch_loss(tiny_clip_path, init, items, cfg, load_rgb)
    after = _batch_loss(tiny_clip_path, out, items, cfg, load_rgb)
    assert after < before
    assert any("iteration 6/6" in line for line in lines)


@pytest.mark.slow
def test_seg_positives_from_image_tags_not_from_the_crop(voc_items, load_rgb, tmp_path):
    from PIL import Image

    items = []
    for (image_id, path, _), tags in zip(voc_items[:2], ([3, 7], [12])):
        seed = tmp_path / f"{image_id}.png"  # an all-background coarse seed: no class in any crop
        Image.fromarray(np.zeros(load_rgb(path).shape[:2], np.uint8)).save(seed)
        items.append((image_id, path, seed, tags))
    cfg = TrainConfig(task="seg", max_iter=2, batch_size=2, positives="image_tags")
    batch = make_batch(items, np.arange(2), 0, cfg, 20, load_rgb, train_mod._load_png)
    assert [np.flatnonzero(row).tolist() for row in batch.present.numpy()] == [[2, 6], [11]]
    assert _count(batch, cfg) == 3 * 224 * 224  # 3 (image, tag) pairs, each over all valid crop pixels
    crop = dataclasses.replace(cfg, positives="crop_labels")
    batch = make_batch(items, np.arange(2), 0, crop, 20, load_rgb, train_mod._load_png)
    assert not batch.present.any() and _count(batch, crop) == 0  # VOC's rule: nothing to train on here
    with pytest.raises(ValueError, match="has no tags"):
        make_batch([it[:3] for it in items], np.arange(2), 0, cfg, 20, load_rgb, train_mod._load_png)


def test_seg_kill_and_resume_is_bit_identical(tiny_clip_path, voc_sample, voc_items, load_rgb, tmp_path,
                                              monkeypatch):
    items = _seg_items(voc_sample, voc_items[:6])
    cfg = TrainConfig(task="seg", max_iter=3, warmup_iters=1, lr=0.05, batch_size=4, micro_batches=2,
                      ckpt_every=2, log_every=1)
    pcfg = seg_prompt_config(FG, n_bg=2, seed=1)
    full = train_prompts(items, tiny_clip_path, pcfg, cfg, tmp_path / "full", tmp_path / "full.pth",
                         log=lambda m: None, load_image=load_rgb)

    def kill(stage, done):
        if stage == "prompts_seg_train" and done == 2:
            raise Killed

    monkeypatch.setattr(train_mod, "maybe_stall", kill)
    with pytest.raises(Killed):
        train_prompts(items, tiny_clip_path, pcfg, cfg, tmp_path / "cut", tmp_path / "cut.pth",
                      log=lambda m: None, load_image=load_rgb)
    assert (tmp_path / "cut" / "last.pth").is_file() and not (tmp_path / "cut.pth").exists()
    seen, lines = [], []
    monkeypatch.setattr(train_mod, "maybe_stall", lambda stage, done: seen.append(done))
    resumed = train_prompts(items, tiny_clip_path, pcfg, cfg, tmp_path / "cut", tmp_path / "cut.pth",
                            log=lines.append, load_image=load_rgb)
    assert seen == [3] and "starting at iteration 3/3" in lines[0]
    assert float(lines[-1].split(" loss ")[1].split()[0]) > 0  # the CAM loss is live, not just weight decay
    a, b = torch.load(full, weights_only=True), torch.load(resumed, weights_only=True)
    assert torch.equal(a["ctx"], b["ctx"]) and not torch.equal(a["ctx"], a["init_ctx"])
    other = dataclasses.replace(cfg, lr=0.1)
    with pytest.raises(ValueError, match="last.pth was written with other settings"):
        train_prompts(items, tiny_clip_path, pcfg, other, tmp_path / "cut", tmp_path / "x.pth",
                      log=lambda m: None, load_image=load_rgb)
