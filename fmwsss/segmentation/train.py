"""Stage II training: DeepLabV3 on the pseudo labels, SGD + poly schedule, resumable bit-for-bit on CPU.

A checkpoint (``work_dir/last.pth``, written atomically every ``checkpoint_every`` iterations) holds the model,
optimiser (momentum), scheduler, AMP scaler, torch RNG states (dropout) and the iteration; data sampling and
augmentation are counter-based (``dataset.py``), so a run killed after checkpoint k and resumed computes
iterations k+1.. exactly as an uninterrupted run would (on CPU; cuDNN kernels are not bit-reproducible).
``work_dir/loss.csv`` logs the loss and lr of every iteration and is copied next to the final model.
"""
from __future__ import annotations

import csv
import io
import os
from pathlib import Path
from typing import Callable, Sequence

import torch
import torch.nn.functional as F
from torch.utils.data import DataLoader
from tqdm import tqdm

from fmwsss.io import startup
from fmwsss.io.atomic import atomic_write_bytes
from fmwsss.io.loss_log import loss_row, reset_loss_csv
from fmwsss.io.progress import Progress
from fmwsss import hooks
from fmwsss.segmentation.dataset import IGNORE, AugSettings, IterationSampler, PseudoLabelDataset
from fmwsss.segmentation.models import build_segmenter, save_segmenter

STAGE = "deeplab_train"
SETTINGS_KEYS = ("arch", "pretrained_backbone", "crop", "scale_range", "flip", "color_jitter", "batch_size",
                 "iterations", "lr", "backbone_lr_mult", "momentum", "weight_decay", "poly_power", "seed")
"""The ``segmenter:`` keys training reads (``ms_scales`` is read by evaluation only)."""


def check_settings(settings: dict) -> None:
    """Raise ``ValueError`` naming the missing ``segmenter.*`` keys."""
    missing = [k for k in SETTINGS_KEYS if k not in settings]
    if missing:
        raise ValueError(f"segmenter settings lack {', '.join('segmenter.' + k for k in missing)}")


def make_optimizer(model: torch.nn.Module, settings: dict) -> torch.optim.SGD:
    """SGD with momentum; the (pretrained) backbone at ``backbone_lr_mult`` × lr, the heads at lr."""
    lr = float(settings["lr"])
    return torch.optim.SGD(
        [{"params": list(model.backbone.parameters()), "lr": lr * float(settings["backbone_lr_mult"])},
         {"params": [p for n, p in model.named_parameters() if not n.startswith("backbone.")], "lr": lr}],
        lr=lr, momentum=float(settings["momentum"]), weight_decay=float(settings["weight_decay"]))


def _amp_setup(device: torch.device, amp: bool | None) -> tuple[bool, torch.dtype, torch.amp.GradScaler]:
    """AMP on CUDA by default: bf16 where supported (no scaler needed), else fp16 with a gradient scaler."""
    enabled = device.type == "cuda" if amp is None else amp
    bf16 = enabled and device.type == "cuda" and torch.cuda.is_bf16_supported()
    dtype = torch.bfloat16 if bf16 or device.type != "cuda" else torch.float16
    scaler = torch.amp.GradScaler(device.type, enabled=enabled and dtype == torch.float16)
    return enabled, dtype, scaler


def _fingerprint(items: Sequence[tuple], settings: dict, num_classes: int) -> dict:
    return {"settings": {k: settings[k] for k in SETTINGS_KEYS}, "num_classes": num_classes,
            "items": [str(item[0]) for item in items]}


def _save(path: Path, obj: dict) -> None:
    buf = io.BytesIO()
    torch.save(obj, buf)
    atomic_write_bytes(path, buf.getvalue())


def _rng_state(device: torch.device) -> dict:
    return {"torch": torch.get_rng_state(),
            "cuda": torch.cuda.get_rng_state_all() if device.type == "cuda" else []}


def _set_rng_state(state: dict, device: torch.device) -> None:
    torch.set_rng_state(state["torch"])
    if device.type == "cuda" and state["cuda"]:
        torch.cuda.set_rng_state_all(state["cuda"])


def train_segmenter(items: Sequence[tuple[str, str | Path, str | Path]], settings: dict, num_classes: int,
                    out_path: str | os.PathLike, work_dir: str | os.PathLike,
                    device: str | torch.device = "cpu", log: Callable[[str], None] = print,
                    micro_batch: int | None = None, checkpoint_every: int = 1000, amp: bool | None = None,
                    num_workers: int = 0, log_every: int = 20, weights_dir: str | os.PathLike | None = None) -> Path:
    """Train on ``items`` = (id, image path, label png path); write ``out_path`` (model.pt) atomically.

    ``num_classes`` counts background (21 for VOC). Runtime knobs, none of which changes the result on CPU:
    ``micro_batch`` images per forward pass (gradient accumulation: less memory, more passes; must divide
    batch_size and be >= 2 because DeepLab's image-pooling BatchNorm needs two samples; BatchNorm statistics
    are per micro-batch, so on GPU it is close to, not identical with, the full batch), ``checkpoint_every``
    (each costs one model+optimiser write), ``amp`` (default: on for CUDA), ``num_workers`` (loader
    processes). Resumes from ``work_dir/last.pth`` when present; refuses one written for other settings.
    """
    check_settings(settings)
    device = torch.device(device)
    batch_size, iterations = int(settings["batch_size"]), int(settings["iterations"])
    micro = batch_size if micro_batch is None else int(micro_batch)
    if batch_size % micro or micro < 2:
        raise ValueError(f"micro_batch {micro} must divide segmenter.batch_size {batch_size} and be >= 2")
    work_dir, out_path = Path(work_dir), Path(out_path)
    work_dir.mkdir(parents=True, exist_ok=True)
    ckpt_path, csv_path = work_dir / "last.pth", work_dir / "loss.csv"
    dataset = PseudoLabelDataset(items, num_classes, batch_size, int(settings["seed"]),
                                 AugSettings.from_settings(settings))

    torch.manual_seed(int(settings["seed"]))  # reproducible head (and tiny backbone) initialisation
    model = build_segmenter(settings["arch"], num_classes, bool(settings["pretrained_backbone"]), weights_dir)
    model.to(device).train()
    startup.mark("model load")
    optim = make_optimizer(model, settings)
    sched = torch.optim.lr_scheduler.PolynomialLR(optim, total_iters=iterations, power=float(settings["poly_power"]))
    amp_on, amp_dtype, scaler = _amp_setup(device, amp)
    fingerprint = _fingerprint(items, settings, num_classes)

    start = 0
    if ckpt_path.is_file():
        state = torch.load(ckpt_path, map_location=device, weights_only=True)
        if state["fingerprint"] != fingerprint:
            raise ValueError(f"checkpoint {ckpt_path} was written for other settings or items; delete it to restart")
        model.load_state_dict(state["model"])
        optim.load_state_dict(state["optimizer"])
        sched.load_state_dict(state["scheduler"])
        scaler.load_state_dict(state["scaler"])
        _set_rng_state(state["rng"], device)
        start = int(state["iteration"])
        log(f"[{STAGE}] resuming from {ckpt_path}: starting at iteration {start + 1}/{iterations}")
    reset_loss_csv(csv_path, start)

    loader = DataLoader(dataset, batch_size=batch_size, sampler=IterationSampler(start, iterations, batch_size),
                        num_workers=num_workers, pin_memory=device.type == "cuda",
                        generator=torch.Generator().manual_seed(0))  # keeps the global RNG untouched
    bar = tqdm(loader, desc=STAGE, initial=start, total=iterations, mininterval=2)
    progress = Progress(log, f"[{STAGE}] iteration", iterations, done=start, every=log_every, unit="iteration")
    with open(csv_path, "a", newline="") as csv_fh:
        writer = csv.writer(csv_fh)
        for it, (images, labels) in enumerate(bar, start=start):
            lr = optim.param_groups[1]["lr"]
            valid = max(int((labels != IGNORE).sum()), 1)
            optim.zero_grad(set_to_none=False)
            loss_value = 0.0
            try:
                for s in range(0, batch_size, micro):
                    x = images[s:s + micro].to(device, non_blocking=True)
                    y = labels[s:s + micro].to(device, non_blocking=True)
                    with torch.autocast(device.type, dtype=amp_dtype, enabled=amp_on):
                        logits = model(x)["out"]
                    loss = F.cross_entropy(logits.float(), y, ignore_index=IGNORE, reduction="sum") / valid
                    scaler.scale(loss).backward()
                    loss_value += float(loss.detach())
            except torch.cuda.OutOfMemoryError as exc:
                raise RuntimeError(f"[{STAGE}] CUDA out of memory at iteration {it + 1} with micro-batch {micro}: "
                                   f"lower micro_batch (same schedule, less memory)") from exc
            scaler.step(optim)
            scaler.update()
            sched.step()
            done = it + 1
            writer.writerow(loss_row(done, loss_value, lr))
            csv_fh.flush()
            if done % checkpoint_every == 0 or done == iterations:
                _save(ckpt_path, {"model": model.state_dict(), "optimizer": optim.state_dict(),
                                  "scheduler": sched.state_dict(), "scaler": scaler.state_dict(),
                                  "rng": _rng_state(device), "iteration": done, "fingerprint": fingerprint})
            bar.set_postfix(loss=f"{loss_value:.4f}", lr=f"{lr:.2e}")
            progress.advance(detail=f"loss {loss_value:.6f} lr {lr:.3e}")
            hooks.maybe_stall(STAGE, done)
    bar.close()
    save_segmenter(out_path, model, settings["arch"], num_classes, settings)
    atomic_write_bytes(out_path.parent / "loss.csv", csv_path.read_bytes())
    log(f"[{STAGE}] wrote {out_path}")
    return out_path
