"""Stage II optimiser: which parameters decay, at which lr; clipping of the full gradient norm."""
from __future__ import annotations

import pytest
import torch
from torch import nn

from fmwsss.segmentation.optim import clip_gradients, head_lr, make_optimizer, make_scheduler

SETTINGS = {"lr": 0.5, "backbone_lr_mult": 0.1, "weight_decay": 0.05, "momentum": 0.9, "poly_power": 1.0,
            "iterations": 4}


class Toy(nn.Module):
    """A backbone (conv + LayerNorm + a Swin-style position table) and heads with each no-decay kind."""

    def __init__(self) -> None:
        super().__init__()
        self.backbone = nn.Sequential(nn.Conv2d(1, 2, 1), nn.LayerNorm(2))
        self.backbone.relative_position_bias_table = nn.Parameter(torch.zeros(3))
        self.query_feat = nn.Embedding(4, 2)
        self.norm = nn.GroupNorm(1, 2)
        self.bn = nn.BatchNorm2d(2)
        self.head = nn.Linear(2, 3)


def _groups(optim: torch.optim.Optimizer, model: nn.Module) -> dict[str, tuple[set[str], float, float]]:
    names = {id(p): n for n, p in model.named_parameters()}
    return {g["name"]: ({names[id(p)] for p in g["params"]}, g["lr"], g["weight_decay"]) for g in optim.param_groups}


def test_adamw_leaves_norms_embeddings_and_position_tables_undecayed():
    model = Toy()
    optim = make_optimizer(model, {**SETTINGS, "optimizer": "adamw"})
    assert isinstance(optim, torch.optim.AdamW) and optim.defaults["betas"] == (0.9, 0.999)
    assert _groups(optim, model) == {
        "backbone": ({"backbone.0.weight", "backbone.0.bias"}, 0.05, 0.05),
        "backbone_no_decay": ({"backbone.1.weight", "backbone.1.bias", "backbone.relative_position_bias_table"},
                              0.05, 0.0),
        "heads": ({"head.weight", "head.bias"}, 0.5, 0.05),
        "heads_no_decay": ({"query_feat.weight", "norm.weight", "norm.bias", "bn.weight", "bn.bias"}, 0.5, 0.0),
    }
    assert head_lr(optim) == 0.5


def test_sgd_decays_everything_and_keeps_two_groups():
    model = Toy()
    optim = make_optimizer(model, {**SETTINGS, "optimizer": "sgd"})
    assert isinstance(optim, torch.optim.SGD) and optim.defaults["momentum"] == 0.9
    backbone = {"backbone.0.weight", "backbone.0.bias", "backbone.1.weight", "backbone.1.bias",
                "backbone.relative_position_bias_table"}
    heads = {"query_feat.weight", "norm.weight", "norm.bias", "bn.weight", "bn.bias", "head.weight", "head.bias"}
    assert _groups(optim, model) == {"backbone": (backbone, 0.05, 0.05), "heads": (heads, 0.5, 0.05)}


def test_poly_schedule_and_unknown_optimizer():
    model = Toy()
    optim = make_optimizer(model, {**SETTINGS, "optimizer": "sgd"})
    sched = make_scheduler(optim, SETTINGS)
    lrs = []
    for _ in range(4):
        lrs.append(head_lr(optim))
        optim.step()
        sched.step()
    assert lrs == pytest.approx([0.5, 0.375, 0.25, 0.125])  # power 1 over 4 iterations: lr * (1 - k/4)
    with pytest.raises(ValueError, match="segmenter.optimizer: unknown optimizer 'adam'"):
        make_optimizer(model, {**SETTINGS, "optimizer": "adam"})


def test_clip_scales_the_norm_of_all_gradients_together():
    model = nn.Linear(1, 1)
    model.weight.grad, model.bias.grad = torch.tensor([[3.0]]), torch.tensor([4.0])  # joint norm 5
    clip_gradients(model, None)
    assert model.weight.grad.item() == 3.0 and model.bias.grad.item() == 4.0
    clip_gradients(model, 1.0)
    assert model.weight.grad.item() == pytest.approx(0.6, rel=1e-5)
    assert model.bias.grad.item() == pytest.approx(0.8, rel=1e-5)
