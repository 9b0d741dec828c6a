"""Losses: hand-computed values, accumulation == one batch, gradcheck of the CAM loss's double backward."""
from __future__ import annotations

import math

import torch
import torch.nn.functional as F

from fmwsss.cams.gradcam import softmax_gradcam
from fmwsss.prompts.losses import cam_activation, multilabel_contrastive


def test_contrastive_hand_values():
    s = torch.tensor([[2.0, 1.0, 0.0], [0.0, 3.0, 1.0], [1.0, 1.0, 1.0], [0.0, 0.0, 0.0]])
    y = torch.tensor([[1, 1, 0], [0, 1, 0], [1, 1, 1], [0, 0, 0]], dtype=torch.bool)
    parts = multilabel_contrastive(s, y)
    l00 = -math.log(math.e ** 2 / (math.e ** 2 + 1))  # positives 0 and 1 each vs negative 2 only
    l01 = -math.log(math.e / (math.e + 1))
    l11 = -math.log(math.e ** 3 / (math.e ** 3 + 1 + math.e))
    assert parts.count == 3  # rows 2 (no negative) and 3 (no positive) dropped
    assert abs(parts.mean().item() - (l00 + l01 + l11) / 3) < 1e-6
    empty = multilabel_contrastive(s[2:], y[2:])
    assert empty.count == 0 and empty.mean().item() == 0.0


def test_cam_loss_hand_values():
    cams = torch.tensor([[[1.0, 3.0], [-1.0, 2.0]], [[0.5, -0.5], [0.0, 1.0]]])
    labels = torch.tensor([[[1, 1], [2, 255]]])
    upsample_identity = labels  # label size == CAM size: bilinear resize is the identity
    parts = cam_activation(cams, torch.tensor([0, 0]), torch.tensor([1, 2]), upsample_identity)
    # pair 1 (class 1): F = {1, 3}, mu = 3, fg = |3-1| + 0 = 2; B = {-1} -> 0
    # pair 2 (class 2): F = {0.0}, mu = 0, fg = 0; B = {0.5, -0.5} -> 0.5
    assert parts.count == 6 and parts.numerator.item() == 2.5
    none = cam_activation(cams, torch.tensor([0, 0]), torch.tensor([5, 6]), labels)  # no F pixels at all
    assert none.numerator.item() == (1 + 3) + 0.5  # mu = 0, only bg terms over valid pixels
    zero = cam_activation(torch.zeros(0, 2, 2, requires_grad=True), torch.zeros(0, dtype=torch.long),
                          torch.zeros(0, dtype=torch.long), labels)
    assert zero.count == 0 and zero.mean().item() == 0.0 and not torch.isnan(zero.mean())


def test_cam_loss_upsamples_bilinear_and_mu_is_stop_grad():
    cams = torch.randn(1, 2, 2, requires_grad=True)
    labels = torch.zeros(1, 4, 4, dtype=torch.long)
    labels[0, :2] = 3
    parts = cam_activation(cams, torch.tensor([0]), torch.tensor([3]), labels)
    m = F.interpolate(cams[:, None], size=(4, 4), mode="bilinear", align_corners=False)[0, 0]
    fg = labels[0] == 3
    mu = m.detach()[fg].max().clamp(min=0)
    ref = (mu - m[fg]).abs().sum() + m[~fg].clamp(min=0).sum()
    torch.testing.assert_close(parts.numerator, ref)
    (g,) = torch.autograd.grad(parts.numerator, cams)
    (g_ref,) = torch.autograd.grad(ref, cams)
    torch.testing.assert_close(g, g_ref)


def test_accumulation_equals_one_batch():
    gen = torch.Generator().manual_seed(0)
    cams = torch.randn(5, 3, 3, generator=gen, requires_grad=True)
    labels = torch.randint(0, 4, (3, 6, 6), generator=gen)
    labels[1, 0] = 255
    image, cls = torch.tensor([0, 0, 1, 2, 2]), torch.tensor([1, 2, 3, 1, 3])
    full = cam_activation(cams, image, cls, labels).mean()
    (g_full,) = torch.autograd.grad(full, cams)
    micro = [(slice(0, 2), slice(0, 1)), (slice(2, 5), slice(1, 3))]
    parts = [cam_activation(cams[ps], image[ps] - image[ps][0], cls[ps], labels[ls]) for ps, ls in micro]
    total = sum(p.count for p in parts)
    acc = sum(p.numerator for p in parts) / total
    (g_acc,) = torch.autograd.grad(acc, cams)
    torch.testing.assert_close(acc, full)
    torch.testing.assert_close(g_acc, g_full)
    logits, y = torch.randn(4, 5, generator=gen), torch.rand(4, 5, generator=gen) > 0.5
    c_full = multilabel_contrastive(logits, y).mean()
    halves = [multilabel_contrastive(logits[i:i + 2], y[i:i + 2]) for i in (0, 2)]
    torch.testing.assert_close(sum(h.numerator for h in halves) / sum(h.count for h in halves), c_full)


def test_gradcheck_cam_loss_double_backward():
    """d(CAM loss)/d(text) goes through d(p)/d(A): a second-order gradient, checked numerically in double.

    mu is a stop-gradient, which finite differences cannot see; the full loss is therefore checked with label
    maps where mu is 0 by construction (no pixel of the positive class), and the CAMs themselves in general.
    """
    gen = torch.Generator().manual_seed(0)
    act = torch.randn(2, 5, 3, dtype=torch.double, generator=gen, requires_grad=True)  # 2 images, 2x2 grid
    proj = torch.randn(3, 3, dtype=torch.double, generator=gen)
    present = torch.tensor([[True, False], [True, True]])

    def cams(text: torch.Tensor) -> torch.Tensor:
        feat = torch.tanh(act[:, 1:] @ proj).mean(dim=1)
        logits = 5.0 * F.normalize(feat, dim=-1) @ F.normalize(text, dim=-1).t()
        return softmax_gradcam(act, logits, present, (2, 2), create_graph=True)

    labels = torch.tensor([[[0, 0, 0, 9], [0, 9, 0, 0], [3, 3, 0, 0], [0, 9, 3, 255]],
                           [[3, 3, 9, 9], [3, 0, 9, 9], [0, 0, 0, 3], [9, 9, 3, 3]]])

    def loss(text: torch.Tensor) -> torch.Tensor:
        batch = cams(text)
        return cam_activation(batch.cams, batch.image_index, batch.class_index + 1, labels).mean()

    text = torch.randn(3, 3, dtype=torch.double, generator=gen, requires_grad=True)  # 2 fg + 1 bg
    assert torch.autograd.gradcheck(lambda t: cams(t).cams, (text,), eps=1e-6, atol=1e-6)
    assert torch.autograd.gradcheck(loss, (text,), eps=1e-6, atol=1e-6)
    assert torch.autograd.grad(loss(text), text)[0].abs().max() > 0


def test_cam_loss_tag_positive_absent_from_the_crop_and_term_weights():
    # COCO (docs/method.md §13): positives are the image tags, so a tagged class may have no pixel in the seed crop
    cams = torch.tensor([[[0.5, 0.2], [0.4, 0.9]], [[-0.1, 0.3], [0.2, 0.7]]])
    labels = torch.tensor([[[1, 1], [0, 255]]])  # 2x2 = CAM size: the bilinear resize is the identity
    pairs = torch.tensor([0, 0]), torch.tensor([1, 3])  # class 3 is a tag with no pixel here
    parts = cam_activation(cams, *pairs, labels)
    # class 1: F = {0.5, 0.2}, mu = 0.5, fg = 0 + 0.3; B = {0.4} -> 0.4
    # class 3: F empty, fg = 0; B = {-0.1, 0.3, 0.2} -> 0 + 0.3 + 0.2 = 0.5; N = 3 + 3 valid pixels
    assert parts.count == 6
    assert math.isclose(parts.numerator.item(), 0.3 + 0.4 + 0.5, rel_tol=1e-6)
    weighted = cam_activation(cams, *pairs, labels, fg_weight=2.0, bg_weight=0.5)
    assert math.isclose(weighted.numerator.item(), 2.0 * 0.3 + 0.5 * (0.4 + 0.5), rel_tol=1e-6)
