"""Prompt-training losses (docs/method.md §6), returned as (numerator, count) so micro-batches can share one mean.

The count of either loss depends only on the labels, never on the graph, so a trainer that accumulates
gradients over micro-batches can sum the counts first and divide every numerator by the total: the result is
exactly one big batch's loss.
"""
from __future__ import annotations

from typing import NamedTuple

import torch
import torch.nn.functional as F

IGNORE = 255


class LossParts(NamedTuple):
    numerator: torch.Tensor  # scalar, differentiable
    count: int  # what the numerator is divided by for a mean

    def mean(self) -> torch.Tensor:
        """numerator / count, and an exact 0 (still a tensor) when there is nothing to average."""
        return self.numerator / self.count if self.count else self.numerator * 0.0


def contrastive_count(labels: torch.Tensor) -> int:
    """Number of (image, positive) pairs in images with at least one positive and one negative."""
    valid = labels.any(dim=1) & (~labels).any(dim=1)
    return int(labels[valid].sum())


def multilabel_contrastive(fg_logits: torch.Tensor, labels: torch.Tensor) -> LossParts:
    """Sum over valid (n, p) of -log(e^{S_p} / (e^{S_p} + sum_{j in Neg(n)} e^{S_j})) (docs/method.md §6.1).

    ``fg_logits`` (N, C) raw scaled logits, ``labels`` bool (N, C). Other positives stay out of the
    denominator; images without a positive or without a negative are dropped.
    """
    labels = labels.bool()
    valid = labels.any(dim=1) & (~labels).any(dim=1)
    neg_lse = fg_logits.masked_fill(labels, float("-inf")).logsumexp(dim=1, keepdim=True)
    per_pair = torch.logaddexp(fg_logits, neg_lse) - fg_logits
    keep = labels & valid[:, None]
    numerator = per_pair.masked_fill(~keep, 0.0).sum()  # masked_fill, not *: -inf rows would give NaN
    return LossParts(numerator, contrastive_count(labels))


def cam_loss_count(label_maps: torch.Tensor, image_index: torch.Tensor) -> int:
    """N = sum over pairs of |F| + |B| = the valid (non-ignore) pixels of each pair's label map."""
    valid = (label_maps != IGNORE).flatten(1).sum(dim=1)
    return int(valid[image_index].sum())


def cam_activation(cams: torch.Tensor, image_index: torch.Tensor, class_ids: torch.Tensor,
                   label_maps: torch.Tensor, fg_weight: float = 1.0, bg_weight: float = 1.0) -> LossParts:
    """CAM activation loss (docs/method.md §6.2): fg_weight sum_F |mu - m| + bg_weight sum_B max(m, 0), over all
    pairs, with N.

    ``cams`` (P, h, w) raw Grad-CAMs, ``class_ids`` (P,) the label value of each pair's class in
    ``label_maps`` (N, H, W) (ignore = 255). m = CAM bilinearly upsampled to H x W; F = pixels of the class,
    B = every other valid pixel (other fg classes included); mu = stop_grad(max(0, max_F m)), 0 without F.
    A pair whose class is absent from its map (image-tag positives, docs/method.md §13) has no F: only its bg term
    counts, which pushes that CAM down over the whole crop.
    """
    if cams.shape[0] == 0:
        return LossParts(cams.sum() * 0.0, 0)
    m = F.interpolate(cams[:, None], size=label_maps.shape[-2:], mode="bilinear", align_corners=False)[:, 0]
    lab = label_maps[image_index]
    fg = lab == class_ids.view(-1, 1, 1).to(lab.dtype)
    bg = ~fg & (lab != IGNORE)
    peak = m.detach().masked_fill(~fg, float("-inf")).flatten(1).max(dim=1).values.clamp(min=0.0)
    fg_term = ((peak.view(-1, 1, 1) - m).abs() * fg).sum()
    bg_term = (m.clamp(min=0.0) * bg).sum()
    return LossParts(fg_weight * fg_term + bg_weight * bg_term, cam_loss_count(label_maps, image_index))
