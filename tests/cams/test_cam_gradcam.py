"""Batched Softmax-Grad-CAM against a slow one-class-at-a-time reference on real VOC images."""
from __future__ import annotations

import torch
import torch.nn.functional as F

from fmwsss.cams.clip_wrapper import preprocess_native
from fmwsss.cams.gradcam import masked_softmax, positive_pairs, softmax_gradcam
from fmwsss.prompts.learners import PromptLearner, cls_prompt_config

FG = ["aeroplane", "bicycle", "bird avian", "boat", "bottle", "bus", "car", "cat", "chair seat", "cow",
      "diningtable", "dog", "horse", "motorbike", "person with clothes,people,human", "pottedplant", "sheep",
      "sofa", "train", "tvmonitor screen"]
BG = ["ground", "sky", "tree", "wall"]


def _batch(voc_items, load_rgb, n=3):
    items = [it for it in voc_items if len(it[2]) > 1][:n]
    images = torch.stack([F.interpolate(preprocess_native(load_rgb(p))[None], size=(64, 80), mode="bilinear")[0]
                          for _, p, _ in items])
    present = torch.zeros(len(items), 20, dtype=torch.bool)
    for i, (_, _, tags) in enumerate(items):
        present[i, [t - 1 for t in tags]] = True
    return images, present


def _slow_reference(clip_cam, learner, images, present):
    out = clip_cam.encode_image(images)
    probs = masked_softmax(clip_cam.logits(out.feat, learner.text_features(clip_cam)), present)
    cams = []
    for n, c in present.nonzero().tolist():
        (g,) = torch.autograd.grad(probs[n, c], out.act, retain_graph=True)
        cams.append((out.act.detach()[n, 1:] @ g[n, 1:].mean(0)).reshape(out.grid))
    return torch.stack(cams)


def test_masked_softmax_excludes_absent_fg():
    logits = torch.tensor([[1.0, 5.0, 0.0, 2.0]])
    p = masked_softmax(logits, torch.tensor([[True, False]]))
    ref = torch.softmax(torch.tensor([1.0, 0.0, 2.0]), 0)
    torch.testing.assert_close(p, torch.tensor([[ref[0], 0.0, ref[1], ref[2]]]))
    image, cls, slot = positive_pairs(torch.tensor([[True, False, True], [False, True, False]]))
    assert image.tolist() == [0, 0, 1] and cls.tolist() == [0, 2, 1] and slot.tolist() == [0, 1, 0]


def test_batched_gradcam_equals_per_class_backward(clip_cam, voc_items, load_rgb):
    learner = PromptLearner(clip_cam, cls_prompt_config(FG, BG, seed=0))
    images, present = _batch(voc_items, load_rgb)
    out = clip_cam.encode_image(images)
    logits = clip_cam.logits(out.feat, learner.text_features(clip_cam))
    batch = softmax_gradcam(out.act, logits, present, out.grid)
    ref = _slow_reference(clip_cam, learner, images, present)
    assert batch.cams.shape == (int(present.sum()), 4, 5)
    assert (batch.cams < 0).any() and batch.cams.abs().max() > 0  # raw: no ReLU, no normalisation
    torch.testing.assert_close(batch.cams, ref, rtol=1e-5, atol=1e-5 * float(ref.abs().max()))
    assert torch.equal(batch.class_index, present.nonzero()[:, 1])
    torch.testing.assert_close(batch.fg_logits, logits[:, :20][present])


def test_native_resolution_single_image(clip_cam, voc_items, load_rgb):
    learner = PromptLearner(clip_cam, cls_prompt_config(FG, BG, seed=0))
    _, path, tags = next(it for it in voc_items if len(it[2]) > 2)
    images = preprocess_native(load_rgb(path))[None]  # e.g. 500x375 -> 512x384 -> 32x24 grid
    present = torch.zeros(1, 20, dtype=torch.bool)
    present[0, [t - 1 for t in tags]] = True
    out = clip_cam.encode_image(images)
    batch = softmax_gradcam(out.act, clip_cam.logits(out.feat, learner.text_features(clip_cam)), present, out.grid)
    ref = _slow_reference(clip_cam, learner, images, present)
    assert batch.cams.shape == (len(tags), images.shape[2] // 16, images.shape[3] // 16)
    torch.testing.assert_close(batch.cams, ref, rtol=1e-5, atol=1e-5 * float(ref.abs().max()))


def test_training_gradcam_reaches_prompts_only_through_weights(clip_cam, voc_items, load_rgb):
    learner = PromptLearner(clip_cam, cls_prompt_config(FG, BG, seed=0))
    images, present = _batch(voc_items, load_rgb, n=2)
    out = clip_cam.encode_image(images)
    logits = clip_cam.logits(out.feat, learner.text_features(clip_cam))
    batch = softmax_gradcam(out.act, logits, present, out.grid, create_graph=True)
    assert batch.cams.requires_grad
    (g_batched,) = torch.autograd.grad(batch.cams.sum(), learner.ctx)
    # reference: the same second-order gradient through per-pair weights
    out2 = clip_cam.encode_image(images)
    probs = masked_softmax(clip_cam.logits(out2.feat, learner.text_features(clip_cam)), present)
    total = 0.0
    for n, c in present.nonzero().tolist():
        (g,) = torch.autograd.grad(probs[n, c], out2.act, retain_graph=True, create_graph=True)
        total = total + (out2.act.detach()[n, 1:] @ g[n, 1:].mean(0)).sum()
    (g_ref,) = torch.autograd.grad(total, learner.ctx)
    torch.testing.assert_close(g_batched, g_ref, rtol=1e-4, atol=1e-6 * float(g_ref.abs().max()))
    assert g_ref.abs().max() > 0


def test_no_positive_gives_empty_batch(clip_cam):
    out = clip_cam.encode_image(torch.zeros(1, 3, 32, 32))
    logits = torch.zeros(1, 24, requires_grad=True)
    batch = softmax_gradcam(out.act, logits, torch.zeros(1, 20, dtype=torch.bool), out.grid)
    assert batch.cams.shape == (0, 2, 2)
