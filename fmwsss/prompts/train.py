"""Prompt training loop (docs/method.md §5): SGD on the context vectors only, resumable bit-for-bit.

Randomness is counter-based: the epoch order is a permutation drawn from (seed, epoch) and each sample's
augmentation from (seed, iteration, slot), so the full random state at iteration k is (seed, k). A checkpoint
holds the context, the optimiser (momentum), the schedule position and that state; a run killed after
checkpoint k and resumed computes iterations k+1.. exactly as an uninterrupted run would.
Classification (``task='cls'``): multi-label contrastive loss on image tags, no CAM needed.
Segmentation (``task='seg'``): CAM activation loss against the coarse seeds through a double-backward
Softmax-Grad-CAM; positives = classes in the augmented seed crop (``crop_labels``, VOC) or the image tags
(``image_tags``, COCO, docs/method.md §13: every image has a positive, so a crop of pure background still trains).
"""
from __future__ import annotations

import csv
import io
import math
import os
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Callable, Literal, Sequence

import numpy as np
import torch
from tqdm import tqdm

from fmwsss.cams.clip_wrapper import ClipCam, to_input_tensor
from fmwsss.cams.gradcam import softmax_gradcam
from fmwsss.io.atomic import atomic_write_bytes
from fmwsss.io.loss_log import loss_row, reset_loss_csv
from fmwsss.io.progress import Progress
from fmwsss.hooks import maybe_stall
from fmwsss.prompts.augment import AugConfig, augment
from fmwsss.prompts.learners import PromptConfig, PromptLearner, save_prompts
from fmwsss.prompts.losses import (cam_activation, cam_loss_count, contrastive_count, multilabel_contrastive)

IGNORE = 255


@dataclass(frozen=True)
class TrainConfig:
    task: Literal["cls", "seg"]
    max_iter: int  # includes the warm-up
    warmup_iters: int = 500
    warmup_lr: float = 1e-5
    lr: float = 1e-3
    momentum: float = 0.9
    weight_decay: float = 5e-4
    batch_size: int = 16
    micro_batches: int = 1  # gradient accumulation: same result as one batch, less memory
    ckpt_every: int = 1000
    log_every: int = 20
    seed: int = 0
    positives: Literal["crop_labels", "image_tags"] = "crop_labels"  # seg only; cls always uses the tags
    fg_weight: float = 1.0  # seg: weights of the CAM activation loss's two terms
    bg_weight: float = 1.0
    aug: AugConfig = field(default_factory=AugConfig)


def lr_at(it: int, cfg: TrainConfig) -> float:
    """Flat ``warmup_lr`` for iterations < warmup, then cosine from ``lr`` to 0 over the rest (0-based ``it``)."""
    if it < cfg.warmup_iters:
        return cfg.warmup_lr
    t, span = it - cfg.warmup_iters, max(cfg.max_iter - cfg.warmup_iters, 1)
    return cfg.lr * 0.5 * (1.0 + math.cos(math.pi * t / span))


def batch_indices(it: int, n_items: int, cfg: TrainConfig) -> np.ndarray:
    """Random sampler with drop_last: epoch order from (seed, epoch), then consecutive batches."""
    per_epoch = n_items // cfg.batch_size
    epoch, pos = divmod(it, per_epoch)
    order = np.random.default_rng([cfg.seed, epoch]).permutation(n_items)
    return order[pos * cfg.batch_size:(pos + 1) * cfg.batch_size]


def _load_png(path: Path) -> np.ndarray:
    from PIL import Image

    return np.asarray(Image.open(path))


def _default_image_loader() -> Callable[[Path], np.ndarray]:
    from fmwsss.data.images import load_rgb

    return load_rgb


@dataclass
class Batch:
    images: torch.Tensor  # (B, 3, 224, 224) normalised
    present: torch.Tensor  # (B, n_fg) bool positives
    labels: torch.Tensor | None  # (B, 224, 224) long seed crops (seg) or None


def make_batch(items: Sequence[tuple], indices: np.ndarray, it: int, cfg: TrainConfig, n_fg: int,
               load_image: Callable, load_label: Callable) -> Batch:
    """Load and augment one batch. cls items: (id, image, tags 1..C); seg items: (id, image, seed png[, tags]),
    the tags needed with ``positives='image_tags'``."""
    images, present, labels = [], torch.zeros(len(indices), n_fg, dtype=torch.bool), []
    by_tags = cfg.task == "cls" or cfg.positives == "image_tags"
    for slot, idx in enumerate(indices):
        image_id, image_path, target, *rest = items[idx]
        tags = target if cfg.task == "cls" else (rest[0] if rest else None)
        if by_tags and tags is None:
            raise ValueError(f"positives from image tags, but training item {image_id!r} has no tags")
        rng = np.random.default_rng([cfg.seed, it, slot])
        rgb = load_image(Path(image_path))
        label = load_label(Path(target)) if cfg.task == "seg" else None
        if label is not None and label.shape != rgb.shape[:2]:
            raise ValueError(f"seed {target} is {label.shape}, image {image_path} is {rgb.shape[:2]}")
        rgb, label = augment(rgb, label, rng, cfg.aug)
        images.append(to_input_tensor(rgb))
        if by_tags:
            present[slot, [int(t) - 1 for t in tags]] = True
        else:
            counts = np.bincount(label[label != IGNORE].ravel(), minlength=n_fg + 1)
            present[slot] = torch.from_numpy(counts[1:n_fg + 1] > 0)
        if cfg.task == "seg":
            labels.append(torch.from_numpy(label.astype(np.int64)))
    return Batch(torch.stack(images), present, torch.stack(labels) if labels else None)


def _loss_parts(clip_cam: ClipCam, learner: PromptLearner, batch: Batch, cfg: TrainConfig, device):
    images, present = batch.images.to(device), batch.present.to(device)
    out = clip_cam.encode_image(images)
    logits = clip_cam.logits(out.feat, learner.text_features(clip_cam))
    if cfg.task == "cls":
        return multilabel_contrastive(logits[:, :learner.n_fg], present)
    cams = softmax_gradcam(out.act, logits, present, out.grid, create_graph=True)
    return cam_activation(cams.cams, cams.image_index, cams.class_index + 1, batch.labels.to(device),
                          cfg.fg_weight, cfg.bg_weight)


def _count(batch: Batch, cfg: TrainConfig) -> int:
    if cfg.task == "cls":
        return contrastive_count(batch.present)
    image_index = batch.present.nonzero(as_tuple=True)[0]
    return cam_loss_count(batch.labels, image_index)


def _save_checkpoint(path: Path, learner: PromptLearner, optim: torch.optim.Optimizer, done: int,
                     cfg: TrainConfig) -> None:
    state = {"ctx": learner.ctx.detach().cpu(), "init_ctx": learner.init_ctx.cpu(),
             "config": asdict(learner.config), "optimizer": optim.state_dict(),
             "scheduler": {"iteration": done, "lr": lr_at(done - 1, cfg)},
             "rng": {"seed": cfg.seed, "iteration": done}, "sampler": {"seed": cfg.seed, "iteration": done},
             "iteration": done, "train_config": asdict(cfg)}
    buf = io.BytesIO()
    torch.save(state, buf)
    atomic_write_bytes(path, buf.getvalue())


def train_prompts(items: Sequence[tuple], clip_path: str | os.PathLike, prompt_config: PromptConfig,
                  cfg: TrainConfig, work_dir: str | os.PathLike, out_path: str | os.PathLike,
                  device: str | torch.device = "cpu", log: Callable[[str], None] = print,
                  load_image: Callable[[Path], np.ndarray] | None = None,
                  load_label: Callable[[Path], np.ndarray] = _load_png) -> Path:
    """Train prompts; checkpoints go to ``work_dir/last.pth`` (resumed if present), the result to ``out_path``.

    ``work_dir/loss.csv`` logs each iteration's loss and lr and is copied next to ``out_path`` at the end.
    """
    from fmwsss.models.clip import load_clip

    if len(items) < cfg.batch_size:
        raise ValueError(f"{len(items)} training items < batch size {cfg.batch_size}")
    if cfg.batch_size % cfg.micro_batches:
        raise ValueError(f"batch size {cfg.batch_size} is not divisible by micro_batches {cfg.micro_batches}")
    stage = f"prompts_{cfg.task}_train"
    load_image = load_image or _default_image_loader()
    clip_cam = ClipCam(load_clip(clip_path, device))
    learner = PromptLearner(clip_cam, prompt_config).to(device)
    optim = torch.optim.SGD([learner.ctx], lr=cfg.lr, momentum=cfg.momentum, weight_decay=cfg.weight_decay)
    ckpt_path = Path(work_dir) / "last.pth"
    start = 0
    if ckpt_path.is_file():
        state = torch.load(ckpt_path, map_location=device, weights_only=True)
        if state["config"] != asdict(prompt_config) or state["train_config"] != asdict(cfg):
            raise ValueError(f"checkpoint {ckpt_path} was written with other settings; delete it to restart")
        with torch.no_grad():
            learner.ctx.copy_(state["ctx"])
        optim.load_state_dict(state["optimizer"])
        start = int(state["iteration"])
        log(f"[{stage}] resuming from {ckpt_path}: starting at iteration {start + 1}/{cfg.max_iter}")
    learner.ctx.grad = torch.zeros_like(learner.ctx)  # weight decay applies even to a step without a loss
    csv_path = Path(work_dir) / "loss.csv"
    csv_path.parent.mkdir(parents=True, exist_ok=True)
    reset_loss_csv(csv_path, start)
    with open(csv_path, "a", newline="") as csv_fh:
        writer = csv.writer(csv_fh)
        bar = tqdm(range(start, cfg.max_iter), desc=stage, initial=start, total=cfg.max_iter, mininterval=5)
        progress = Progress(log, f"[{stage}] iteration", cfg.max_iter, done=start, every=cfg.log_every, unit="iteration")
        for it in bar:
            lr = lr_at(it, cfg)
            for group in optim.param_groups:
                group["lr"] = lr
            batch = make_batch(items, batch_indices(it, len(items), cfg), it, cfg, learner.n_fg, load_image, load_label)
            total = _count(batch, cfg)
            optim.zero_grad(set_to_none=False)
            loss_value = 0.0
            step = cfg.batch_size // cfg.micro_batches
            try:
                for s in range(0, cfg.batch_size, step):
                    sub = Batch(batch.images[s:s + step], batch.present[s:s + step],
                                batch.labels[s:s + step] if batch.labels is not None else None)
                    parts = _loss_parts(clip_cam, learner, sub, cfg, device)
                    if total and parts.numerator.requires_grad:
                        loss = parts.numerator / total
                        loss.backward()
                        loss_value += float(loss.detach())
            except torch.cuda.OutOfMemoryError as exc:
                raise RuntimeError(f"[{stage}] CUDA out of memory at iteration {it + 1} with batch {cfg.batch_size}: "
                                   f"raise micro_batches (same result, less memory)") from exc
            optim.step()
            done = it + 1
            writer.writerow(loss_row(done, loss_value, lr))
            csv_fh.flush()
            if done % cfg.ckpt_every == 0 or done == cfg.max_iter:
                _save_checkpoint(ckpt_path, learner, optim, done, cfg)
            bar.set_postfix(loss=f"{loss_value:.4f}", lr=f"{lr:.2e}")
            progress.advance(detail=f"loss {loss_value:.6f} lr {lr:.3e}")
            maybe_stall(stage, done)
    saved = save_prompts(learner, out_path)
    atomic_write_bytes(Path(out_path).parent / "loss.csv", csv_path.read_bytes())
    return saved
