"""Softmax-Grad-CAM on CLIP (docs/method.md §3), all positive classes of a batch in one vector-Jacobian product.

Target per positive pair (n, c): p_{n,c}, the softmax of image n's logits over its present fg classes and
all bg classes (absent fg classes leave the denominator). Activation: A, the last block's LN1 output.
Images of a batch do not interact (eval-mode ViT), so one backward of ``sum_n p_{n, c_j(n)}`` yields the
gradient of every image's j-th positive at once; the J = max positives per image such backwards are
batched into a single ``autograd.grad(..., is_grads_batched=True)`` call.
"""
from __future__ import annotations

from dataclasses import dataclass

import torch


@dataclass
class CamBatch:
    cams: torch.Tensor  # (P, h, w) raw Grad-CAMs, no ReLU, no normalisation
    image_index: torch.Tensor  # (P,) image of each positive pair
    class_index: torch.Tensor  # (P,) fg class index (0-based) of each pair
    fg_logits: torch.Tensor  # (P,) raw logit z_{n,c} of each pair


def masked_softmax(logits: torch.Tensor, present: torch.Tensor) -> torch.Tensor:
    """Softmax over {present fg} + {all bg}: ``logits`` (N, n_fg + n_bg), ``present`` bool (N, n_fg)."""
    n_bg = logits.shape[1] - present.shape[1]
    keep = torch.cat([present, present.new_ones(present.shape[0], n_bg)], dim=1)
    return logits.masked_fill(~keep, float("-inf")).softmax(dim=1)


def positive_pairs(present: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """(image, class, slot) of every positive, slot = rank of the class among its image's positives."""
    image, cls = present.nonzero(as_tuple=True)
    slot = present.long().cumsum(dim=1)[image, cls] - 1
    return image, cls, slot


def softmax_gradcam(act: torch.Tensor, logits: torch.Tensor, present: torch.Tensor, grid: tuple[int, int],
                    create_graph: bool = False) -> CamBatch:
    """Raw CAMs of every positive pair.

    ``act`` (N, 1+HW, D) must be the graph tensor the logits were computed from; ``present`` bool (N, n_fg).
    With ``create_graph=True`` the CAMs are differentiable w.r.t. whatever produced the logits (the prompts),
    through the channel weights only: the activation itself is detached. Costs one extra backward pass,
    vectorised over J = max positives per image.
    """
    image, cls, slot = positive_pairs(present)
    n_pairs = int(image.numel())
    h, w = grid
    if n_pairs == 0:
        empty = act.new_zeros(0)
        return CamBatch(act.new_zeros(0, h, w), image, cls, empty)
    probs = masked_softmax(logits, present)
    n_slots = int(slot.max()) + 1
    selector = probs.new_zeros(n_slots, *probs.shape)
    selector[slot, image, cls] = 1.0
    (grads,) = torch.autograd.grad(probs, act, grad_outputs=selector, is_grads_batched=True,
                                   create_graph=create_graph, retain_graph=True)
    weights = grads[slot, image, 1:].mean(dim=1)  # (P, D): mean over patch tokens, CLS excluded
    cams = torch.einsum("pid,pd->pi", act.detach()[image, 1:], weights)
    return CamBatch(cams.reshape(n_pairs, h, w), image, cls, logits[image, cls])
