"""Tiny CLIP file format and loading, and the CAM wrapper against open_clip's own forward passes."""
from __future__ import annotations

import copy

import numpy as np
import open_clip
import pytest
import torch

from fmwsss.cams.clip_wrapper import ClipCam, preprocess_native
from fmwsss.models.clip import ClipLoadError, clip_state_dict, create_tiny_clip, load_clip


@pytest.mark.filterwarnings("ignore::FutureWarning")
def test_tiny_clip_is_openai_archive_deterministic(tiny_clip_path, tmp_path):
    archive = torch.jit.load(str(tiny_clip_path), map_location="cpu")  # same branch as OpenAI's ViT-B-16.pt
    sd = archive.state_dict()
    assert sd["visual.conv1.weight"].dtype == torch.float16
    assert int(sd["context_length"]) == 77 and int(sd["vocab_size"]) == 49408
    other = torch.jit.load(str(create_tiny_clip(tmp_path / "again.pt", seed=0))).state_dict()
    assert all(torch.equal(sd[k], other[k]) for k in sd)
    reseeded = clip_state_dict("tiny", seed=1)
    assert not torch.equal(sd["visual.proj"], reseeded["visual.proj"])
    assert not list(tmp_path.glob(".*tmp*"))
    assert float(load_clip(create_tiny_clip(tmp_path / "s100.pt", logit_scale=100.0)).logit_scale.exp()) == \
        pytest.approx(100.0, rel=1e-3)


def test_load_clip_frozen_fp32_quickgelu(clip_cam):
    model = clip_cam.clip
    assert isinstance(model, open_clip.model.CLIP) and not model.training
    assert all(p.dtype == torch.float32 and not p.requires_grad for p in model.parameters())
    assert isinstance(model.visual.transformer.resblocks[0].mlp.gelu, open_clip.transformer.QuickGELU)
    assert float(clip_cam.logit_scale) == pytest.approx(10.0, rel=1e-3)  # read from the checkpoint


def test_load_clip_errors_name_file(tmp_path, monkeypatch):
    bad = tmp_path / "broken.pt"
    bad.write_bytes(b"not a checkpoint")
    with pytest.raises(ClipLoadError, match="broken.pt"):
        load_clip(bad)
    with pytest.raises(ClipLoadError, match="missing.pt"):
        load_clip(tmp_path / "missing.pt")
    good = create_tiny_clip(tmp_path / "gelu.pt")
    monkeypatch.setattr("fmwsss.models.clip._uses_quickgelu", lambda model: False)
    with pytest.raises(ClipLoadError, match="gelu.pt.*QuickGELU"):
        load_clip(good)


def test_image_features_match_open_clip_avg_pool(clip_cam):
    images = torch.randn(2, 3, 224, 224, generator=torch.Generator().manual_seed(0))
    ref_model = copy.deepcopy(clip_cam.clip)
    ref_model.visual.pool_type = "avg"  # open_clip's own mean over patch tokens after ln_post
    out = clip_cam.encode_image(images, need_attn=True)
    torch.testing.assert_close(out.feat, ref_model.encode_image(images), rtol=1e-5, atol=1e-5)
    assert out.grid == (14, 14) and out.act.shape == (2, 197, 128) and out.attn.shape == (2, 196, 196)


def test_attention_is_torch_head_average_of_last_blocks(clip_cam):
    images = torch.randn(1, 3, 64, 96, generator=torch.Generator().manual_seed(1))
    wrapper = ClipCam(clip_cam.clip, n_attn_layers=2)
    out = wrapper.encode_image(images, need_attn=True)
    v = clip_cam.clip.visual
    x = v.ln_pre(torch.cat([v.class_embedding.expand(1, 1, -1), v.conv1(images).flatten(2).transpose(1, 2)], 1)
                 + wrapper._pos_embed(4, 6))
    maps = []
    for blk in v.transformer.resblocks:
        a = blk.ln_1(x)
        maps.append(blk.attn(a, a, a, need_weights=True, average_attn_weights=True)[1][:, 1:, 1:])
        x = blk(x)
    torch.testing.assert_close(out.attn, (maps[-2] + maps[-1]) / 2, rtol=1e-5, atol=1e-6)
    torch.testing.assert_close(out.attn.sum(-1), torch.ones(1, 24), atol=0.2, rtol=0)  # CLS column dropped


def test_pos_embed_interpolation_keeps_cls_and_native_grid(clip_cam):
    pos = clip_cam.clip.visual.positional_embedding
    assert clip_cam._pos_embed(14, 14) is pos
    up = clip_cam._pos_embed(28, 14)
    torch.testing.assert_close(up[0], pos[0])
    assert up.shape == (1 + 28 * 14, pos.shape[1])


def test_text_features_match_encode_text(clip_cam):
    tokens = open_clip.tokenize(["a photo of a cat.", "a clean origami dog."])
    emb = clip_cam.token_embedding(tokens)
    feats = clip_cam.encode_prompts(emb, tokens.argmax(-1))
    torch.testing.assert_close(feats, clip_cam.clip.encode_text(tokens), rtol=1e-5, atol=1e-5)


def test_preprocess_rounds_up_to_stride():
    rgb = np.zeros((375, 500, 3), np.uint8)
    assert preprocess_native(rgb).shape == (3, 384, 512)
    assert preprocess_native(np.zeros((224, 32, 3), np.uint8)).shape == (3, 224, 32)
