"""Stage II optimiser, schedule and gradient clipping, for both segmenter families.

``sgd`` is the DeepLab recipe (momentum, weight decay on every parameter); ``adamw`` is detectron2
Mask2Former's (WEIGHT_DECAY_NORM = WEIGHT_DECAY_EMBED = 0: no decay on normalisation layers, embeddings and
position tables). Either way the backbone (``model.backbone``) runs at lr × ``backbone_lr_mult``.
"""
from __future__ import annotations

import torch
from torch import nn

OPTIMIZERS = ("sgd", "adamw")
NO_DECAY_MODULES = (nn.LayerNorm, nn.GroupNorm, nn.modules.batchnorm._BatchNorm, nn.Embedding)
"""Modules whose parameters AdamW leaves undecayed (BatchNorm1d/2d/3d and SyncBatchNorm share the base)."""
NO_DECAY_NAMES = ("relative_position_bias_table", "absolute_pos_embed", "position_embeddings")
"""Parameter-name parts of position tables (Swin's bias tables, absolute embeddings), left undecayed."""


def no_decay_names(model: nn.Module) -> set[str]:
    """Names (as in ``model.named_parameters()``) of the parameters AdamW must not decay."""
    names = set()
    for module_name, module in model.named_modules():
        if isinstance(module, NO_DECAY_MODULES):
            names.update(f"{module_name}.{n}" if module_name else n for n, _ in module.named_parameters(recurse=False))
    names.update(n for n, _ in model.named_parameters() if any(part in n for part in NO_DECAY_NAMES))
    return names


def make_optimizer(model: nn.Module, settings: dict) -> torch.optim.Optimizer:
    """The ``segmenter.optimizer`` over named parameter groups (``name`` key: backbone/heads[, _no_decay]).

    Groups run at lr × ``backbone_lr_mult`` (backbone) or lr (heads); AdamW adds ``*_no_decay`` groups at
    weight decay 0. Empty groups are left out. The head lr is :func:`head_lr`.
    """
    kind = settings["optimizer"]
    if kind not in OPTIMIZERS:
        raise ValueError(f"segmenter.optimizer: unknown optimizer {kind!r}; choose one of {', '.join(OPTIMIZERS)}")
    lr, decay = float(settings["lr"]), float(settings["weight_decay"])
    backbone = {id(p) for p in model.backbone.parameters()}
    skip = no_decay_names(model) if kind == "adamw" else set()
    groups: dict[str, dict] = {}
    for name, param in model.named_parameters():
        if not param.requires_grad:
            continue
        part = "backbone" if id(param) in backbone else "heads"
        key = f"{part}_no_decay" if name in skip else part
        group = groups.setdefault(key, {
            "name": key, "params": [], "weight_decay": 0.0 if name in skip else decay,
            "lr": lr * float(settings["backbone_lr_mult"]) if part == "backbone" else lr})
        group["params"].append(param)
    order = [k for k in ("backbone", "backbone_no_decay", "heads", "heads_no_decay") if k in groups]
    param_groups = [groups[k] for k in order]
    if kind == "sgd":
        return torch.optim.SGD(param_groups, lr=lr, momentum=float(settings["momentum"]), weight_decay=decay)
    return torch.optim.AdamW(param_groups, lr=lr, weight_decay=decay)


def make_scheduler(optim: torch.optim.Optimizer, settings: dict) -> torch.optim.lr_scheduler.PolynomialLR:
    """Poly decay of every group's lr to 0 over ``segmenter.iterations`` (power ``poly_power``)."""
    return torch.optim.lr_scheduler.PolynomialLR(optim, total_iters=int(settings["iterations"]),
                                                 power=float(settings["poly_power"]))


def head_lr(optim: torch.optim.Optimizer) -> float:
    """The heads' current lr (the one ``loss.csv`` logs)."""
    return next(g["lr"] for g in optim.param_groups if g["name"] == "heads")


def clip_gradients(model: nn.Module, grad_clip: float | None) -> None:
    """Clip the L2 norm of all gradients together to ``grad_clip`` (detectron2's full_model clip); None: off.

    Call it once the gradients are complete (summed over chunks and processes, unscaled).
    """
    if grad_clip is not None:
        torch.nn.utils.clip_grad_norm_([p for p in model.parameters() if p.grad is not None], float(grad_clip))
