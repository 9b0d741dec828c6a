"""Prompt learners: token layouts against the tokenizer, seeded inits, zero-shot features, save/load."""
from __future__ import annotations

import open_clip
import pytest
import torch

from fmwsss.prompts.learners import (PromptLearner, ZeroShotPrompts, cls_prompt_config, load_prompts,
                                     save_prompts, seg_prompt_config)

FG = ["aeroplane", "bird avian", "person with clothes,people,human"]
BG = ["ground", "sky"]


def _x_embedding(clip_cam) -> torch.Tensor:
    return clip_cam.token_embedding(open_clip.tokenize(["X"]))[0, 1]


def test_cls_layout_is_sos_ctx_name_dot_eos(clip_cam):
    learner = PromptLearner(clip_cam, cls_prompt_config(FG, BG, seed=3))
    assert learner.ctx.shape == (16, 64) and learner.n_classes == 5
    with torch.no_grad():
        learner.ctx.copy_(_x_embedding(clip_cam).expand(16, -1))
    tokens = open_clip.tokenize([" ".join(["X"] * 16) + f" {n}." for n in FG + BG])
    torch.testing.assert_close(learner.prompt_embeddings(), clip_cam.token_embedding(tokens))
    torch.testing.assert_close(learner.text_features(clip_cam), clip_cam.clip.encode_text(tokens),
                               rtol=1e-5, atol=1e-5)


def test_seg_layout_is_sos_name_ctx_dot_eos_with_empty_bg(clip_cam):
    learner = PromptLearner(clip_cam, seg_prompt_config(FG, n_bg=2, seed=3))
    assert learner.ctx.shape == (5, 16, 64)
    with torch.no_grad():
        learner.ctx.copy_(_x_embedding(clip_cam).expand(5, 16, -1))
    texts = [f"{n} " + " ".join(["X"] * 16) + "." for n in FG] + [" ".join(["X"] * 16) + "."] * 2
    tokens = open_clip.tokenize(texts)
    torch.testing.assert_close(learner.prompt_embeddings(), clip_cam.token_embedding(tokens))
    assert learner.eot_index.tolist() == tokens.argmax(-1).tolist()


def test_seeded_init_std_and_gradient_reaches_only_ctx(clip_cam):
    a = PromptLearner(clip_cam, seg_prompt_config(FG, n_bg=2, seed=7))
    b = PromptLearner(clip_cam, seg_prompt_config(FG, n_bg=2, seed=7))
    c = PromptLearner(clip_cam, seg_prompt_config(FG, n_bg=2, seed=8))
    assert torch.equal(a.ctx, b.ctx) and not torch.equal(a.ctx, c.ctx)
    assert torch.equal(a.init_ctx, a.ctx.detach())
    assert a.ctx.std().item() == pytest.approx(0.0125, rel=0.05)
    assert [n for n, _ in a.named_parameters()] == ["ctx"]
    a.text_features(clip_cam).sum().backward()
    assert a.ctx.grad is not None and a.ctx.grad.abs().sum() > 0


def test_zero_shot_matches_clip_es_classifier(clip_cam):
    zs = ZeroShotPrompts(clip_cam, FG, BG)
    tokens = open_clip.tokenize([f"a clean origami {n}." for n in FG + BG])
    ref = torch.nn.functional.normalize(clip_cam.clip.encode_text(tokens), dim=-1)
    torch.testing.assert_close(zs.text_features(clip_cam), ref, rtol=1e-5, atol=1e-5)


def test_save_load_roundtrip(clip_cam, tmp_path):
    learner = PromptLearner(clip_cam, cls_prompt_config(FG, BG, seed=1))
    with torch.no_grad():
        learner.ctx.add_(1.0)
    loaded = load_prompts(save_prompts(learner, tmp_path / "p.pth"), clip_cam)
    assert torch.equal(loaded.ctx, learner.ctx) and torch.equal(loaded.init_ctx, learner.init_ctx)
    assert loaded.config == learner.config
    (tmp_path / "bad.pth").write_bytes(b"junk")
    with pytest.raises(ValueError, match="bad.pth"):
        load_prompts(tmp_path / "bad.pth", clip_cam)


@pytest.mark.parametrize("dataset", ["voc", "demo"])
def test_each_learner_draws_its_own_initial_context(clip_cam, dataset):
    """With one seed, class 0's seg context was the cls context times 0.0125 / 0.015; each now has its own."""
    from pathlib import Path

    from fmwsss.pipeline.config import Config
    from fmwsss.pipeline.stage_settings import prompt_config

    settings = Config.from_file(Path(__file__).resolve().parents[2] / "config.yaml").settings(dataset)
    assert (settings["prompts_cls"]["seed"], settings["prompts_seg"]["seed"]) == (0, 1)  # the documented defaults
    cls = PromptLearner(clip_cam, prompt_config(settings["prompts_cls"], tuple(FG), tuple(BG))).init_ctx
    seg = PromptLearner(clip_cam, prompt_config(settings["prompts_seg"], tuple(FG), tuple(BG))).init_ctx
    assert cls.shape == seg.shape[1:]
    for k in range(seg.shape[0]):
        a, b = cls.flatten().double(), seg[k].flatten().double()
        ratio = (a @ b) / (a @ a)  # best multiple of the cls context
        assert (b - ratio * a).norm() > 0.5 * b.norm()  # far from any multiple (independent draws: ~0.99)
    a = PromptLearner(clip_cam, cls_prompt_config(FG, BG)).init_ctx.flatten()
    b = PromptLearner(clip_cam, seg_prompt_config(FG, len(BG))).init_ctx[0].flatten()
    assert abs(torch.nn.functional.cosine_similarity(a, b, dim=0)) < 0.2  # the helpers' defaults differ too
