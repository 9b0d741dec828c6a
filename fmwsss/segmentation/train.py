"""Stage II training for both segmenter families (DeepLabV3, Mask2Former) on 1..N processes.

One loop: the global batch (``segmenter.batch_size``) is split into equal contiguous shares, one per process
(``distributed.py``), each share into micro-batch chunks. Every chunk's loss is its share of the GLOBAL
batch loss: DeepLab's cross-entropy sum over the valid pixels divided by the valid pixels of the whole
global batch; Mask2Former's ``model.loss(x, y, totals)`` with ``totals`` the sums of ``model.count_targets``
over every chunk of every process. Summing the chunks' gradients (and all-reducing them) thus gives the
global batch's gradient whatever the process count or micro-batch, up to float order and BatchNorm.

A checkpoint (``work_dir/last.pth``, written atomically by rank 0 every ``checkpoint_every`` iterations)
holds the model, optimiser, scheduler, AMP scaler and the iteration, no RNG state: data sampling and
augmentation are counter-based (``dataset.py``) and model randomness is seeded per chunk, so a run killed
after checkpoint k and resumed, with any process count, computes iterations k+1.. as an uninterrupted run
would (exactly on CPU for the same chunks; cuDNN kernels are not bit-reproducible).
``work_dir/loss.csv`` logs the loss and lr of every iteration and is copied next to the final model.
"""
from __future__ import annotations

import csv
import io
import os
from contextlib import nullcontext
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, Sequence

import torch
import torch.nn.functional as F
from torch import nn
from torch.utils.data import DataLoader
from tqdm import tqdm

from fmwsss.io import startup
from fmwsss.io.atomic import atomic_write_bytes
from fmwsss.io.loss_log import loss_row, reset_loss_csv
from fmwsss.io.progress import Progress
from fmwsss import hooks
from fmwsss.segmentation import distributed
from fmwsss.segmentation.archs import DEEPLAB_ARCHS
from fmwsss.segmentation.dataset import IGNORE, AugSettings, IterationSampler, PseudoLabelDataset
from fmwsss.segmentation.models import build_segmenter, save_segmenter
from fmwsss.segmentation.optim import clip_gradients, head_lr, make_optimizer, make_scheduler

STAGE = "deeplab_train"
SETTINGS_KEYS = ("arch", "pretrained_backbone", "crop", "scale_range", "flip", "color_jitter", "batch_size",
                 "iterations", "lr", "backbone_lr_mult", "momentum", "weight_decay", "poly_power", "seed",
                 "optimizer", "grad_clip", "mask2former")
"""The ``segmenter:`` keys training reads (``ms_scales`` is read by evaluation only)."""


def check_settings(settings: dict) -> None:
    """Raise ``ValueError`` naming the missing ``segmenter.*`` keys."""
    missing = [k for k in SETTINGS_KEYS if k not in settings]
    if missing:
        raise ValueError(f"segmenter settings lack {', '.join('segmenter.' + k for k in missing)}")


PRECISIONS = ("fp32", "bf16")
def _amp_setup(device: torch.device, amp: bool | None) -> tuple[bool, torch.dtype, torch.amp.GradScaler]:
    """DeepLab: AMP on CUDA by default: bf16 where supported (no scaler needed), else fp16 with a gradient scaler."""
    enabled = device.type == "cuda" if amp is None else amp
    bf16 = enabled and device.type == "cuda" and torch.cuda.is_bf16_supported()
    dtype = torch.bfloat16 if bf16 or device.type != "cuda" else torch.float16
    scaler = torch.amp.GradScaler(device.type, enabled=enabled and dtype == torch.float16)
    return enabled, dtype, scaler


def _fingerprint(items: Sequence[tuple], settings: dict, num_classes: int) -> dict:
    """What a checkpoint must match to be resumed; no runtime knob (process count, devices, micro-batch)."""
    return {"settings": {k: settings[k] for k in SETTINGS_KEYS}, "num_classes": num_classes,
            "items": [str(item[0]) for item in items]}


def _save(path: Path, obj: dict) -> None:
    buf = io.BytesIO()
    torch.save(obj, buf)
    atomic_write_bytes(path, buf.getvalue())



def _precision(model: nn.Module, settings: dict, device: torch.device,
               amp: bool | None) -> tuple[bool, torch.dtype, torch.amp.GradScaler]:
    """(autocast on, its dtype, scaler): Mask2Former from ``mask2former.precision`` (bf16: autocast, no
    scaler; ``amp`` is not read), DeepLab from the runtime ``amp`` (:func:`_amp_setup`)."""
    if not _is_mask2former(model):
        return _amp_setup(device, amp)
    precision = settings["mask2former"]["precision"]
    if precision not in PRECISIONS:
        raise ValueError(f"segmenter.mask2former.precision: {precision!r} is not one of {', '.join(PRECISIONS)}")
    return precision == "bf16", torch.bfloat16, torch.amp.GradScaler(device.type, enabled=False)


def _is_mask2former(model: nn.Module) -> bool:
    """The set-prediction family brings its own loss and normalisers (the contract's ``count_targets``)."""
    return hasattr(model, "count_targets")


@dataclass(frozen=True)
class _Job:
    """Everything one training process needs (picklable: sent to spawned workers)."""

    items: Sequence[tuple]
    settings: dict
    num_classes: int
    out_path: Path
    work_dir: Path
    micro: int
    checkpoint_every: int
    amp: bool | None
    num_workers: int
    weights_dir: str | os.PathLike | None
    backbone_path: str | os.PathLike | None


def train_segmenter(items: Sequence[tuple[str, str | Path, str | Path]], settings: dict, num_classes: int,
                    out_path: str | os.PathLike, work_dir: str | os.PathLike,
                    device: str | torch.device = "cpu", log: Callable[[str], None] = print,
                    micro_batch: int | None = None, checkpoint_every: int = 1000, amp: bool | None = None,
                    num_workers: int = 0, log_every: int = 20, weights_dir: str | os.PathLike | None = None,
                    backbone_path: str | os.PathLike | None = None, processes: int = 1,
                    devices: Sequence[str | torch.device] | None = None) -> Path:
    """Train on ``items`` = (id, image path, label png path); write ``out_path`` (model.pt) atomically.

    ``num_classes`` counts background (21 for VOC). ``backbone_path``: the verified Swin checkpoint of a
    Mask2Former arch (unused by DeepLab). Runtime knobs, none of which changes the schedule: ``processes``
    data-parallel workers on ``devices`` (default: ``device`` for each on CPU, ``cuda:0..N-1`` for a CUDA
    ``device``); N must divide batch_size; each process takes batch_size/N images of every batch.
    ``micro_batch`` images per forward pass within a process's share (gradient accumulation: less memory,
    more passes; must divide the share; DeepLab needs >= 2 because its image-pooling BatchNorm needs two
    samples; BatchNorm statistics are per micro-batch, over all processes on CUDA with SyncBatchNorm, per
    process on CPU). ``checkpoint_every`` (each costs one model+optimiser write), ``amp`` (DeepLab only;
    default: on for CUDA), ``num_workers`` (loader processes per training process). Resumes from
    ``work_dir/last.pth`` when present, at any process count; refuses one written for other settings.
    """
    check_settings(settings)
    batch_size = int(settings["batch_size"])
    device = torch.device(device)
    if devices is None:
        devices = [device] * processes if device.type == "cpu" or processes == 1 else \
            [torch.device("cuda", i) for i in range(processes)]
    devices = [torch.device(d) for d in devices]
    distributed.check_world(processes, batch_size, devices)
    share = batch_size // processes
    micro = share if micro_batch is None else int(micro_batch)
    if share % micro or micro < 1 or (micro < 2 and settings["arch"] in DEEPLAB_ARCHS):
        raise ValueError(f"micro_batch {micro} must divide the per-process share {share} of segmenter.batch_size "
                         f"{batch_size} ({processes} processes) and be >= 2 for DeepLab")
    work_dir, out_path = Path(work_dir), Path(out_path)
    work_dir.mkdir(parents=True, exist_ok=True)
    job = _Job(list(items), dict(settings), num_classes, out_path, work_dir, micro, checkpoint_every, amp,
               num_workers, weights_dir, backbone_path)
    if processes == 1:
        _train(job, devices[0], log, log_every)
    else:
        progress: list[Progress] = []

        def on_message(message: Any) -> None:  # rank 0's lines and steps, logged and counted here
            if isinstance(message, str):
                log(message)
            elif message[0] == "start":
                progress.append(Progress(log, f"[{STAGE}] iteration", int(settings["iterations"]),
                                         done=message[1], every=log_every, unit="iteration"))
            else:
                progress[0].advance(detail=message[1])

        distributed.launch(_rank_main, (job,), devices, work_dir / f".rendezvous-{os.getpid()}", on_message)
    log(f"[{STAGE}] wrote {out_path}")
    return out_path


def _rank_main(device: torch.device, send: Callable[[Any], None], job: _Job) -> None:
    """A spawned worker's training (rank 0 also reports progress steps to the parent)."""
    _train(job, device, send, None)


def _build(job: _Job) -> nn.Module:
    settings = job.settings
    return build_segmenter(settings["arch"], job.num_classes, bool(settings["pretrained_backbone"]),
                           job.weights_dir, settings=settings, backbone_path=job.backbone_path)


def _train(job: _Job, device: torch.device, send: Callable[[Any], None], log_every: int | None) -> None:
    """One process's training loop (the only one at N = 1, where ``log_every`` is given and ``send`` is the
    caller's log; under N > 1 ``send`` carries rank 0's lines and progress steps to the parent)."""
    settings = job.settings
    rank, size = distributed.world()
    lead = rank == 0
    batch_size, iterations, seed = int(settings["batch_size"]), int(settings["iterations"]), int(settings["seed"])
    slots = distributed.rank_slots(rank, size, batch_size)
    ckpt_path, csv_path = job.work_dir / "last.pth", job.work_dir / "loss.csv"
    dataset = PseudoLabelDataset(job.items, job.num_classes, batch_size, seed, AugSettings.from_settings(settings))

    torch.manual_seed(seed)  # the same initialisation (heads, tiny backbones) on every rank
    model = distributed.sync_batchnorm(_build(job), device)
    model.to(device).train()
    startup.mark("model load")
    optim = make_optimizer(model, settings)
    sched = make_scheduler(optim, settings)
    amp_on, amp_dtype, scaler = _precision(model, settings, device, job.amp)
    fingerprint = _fingerprint(job.items, settings, job.num_classes)

    start = 0
    if ckpt_path.is_file():
        state = torch.load(ckpt_path, map_location=device, weights_only=True)
        if state["fingerprint"] != fingerprint:
            raise ValueError(f"checkpoint {ckpt_path} was written for other settings or items; delete it to restart")
        model.load_state_dict(state["model"])
        optim.load_state_dict(state["optimizer"])
        sched.load_state_dict(state["scheduler"])
        scaler.load_state_dict(state["scaler"])
        start = int(state["iteration"])
        if lead:
            send(f"[{STAGE}] resuming from {ckpt_path}: starting at iteration {start + 1}/{iterations}")
    if lead:
        reset_loss_csv(csv_path, start)
    if log_every is not None:
        progress = Progress(send, f"[{STAGE}] iteration", iterations, done=start, every=log_every, unit="iteration")
        step = lambda detail: progress.advance(detail=detail)  # noqa: E731
    else:
        if lead:
            send(("start", start))
        step = lambda detail: send(("step", detail))  # noqa: E731

    loader = DataLoader(distributed.traced_dataset(dataset, rank), batch_size=len(slots),
                        sampler=IterationSampler(start, iterations, batch_size, slots),
                        num_workers=job.num_workers, pin_memory=device.type == "cuda",
                        generator=torch.Generator().manual_seed(0))  # keeps the global RNG untouched
    bar = tqdm(loader, desc=STAGE, initial=start, total=iterations, mininterval=2, disable=not lead)
    csv_fh = open(csv_path, "a", newline="") if lead else nullcontext()
    with csv_fh:
        writer = csv.writer(csv_fh) if lead else None
        for it, (images, labels) in enumerate(bar, start=start):
            lr = head_lr(optim)
            optim.zero_grad(set_to_none=False)
            loss_value = _accumulate(model, images, labels, job.micro, slots.start, seed, it, device,
                                     (amp_on, amp_dtype, scaler))
            if size > 1:
                distributed.all_reduce_grads(model)
                loss_value = distributed.all_reduce_values({"loss": loss_value}, device)["loss"]
            scaler.unscale_(optim)
            clip_gradients(model, settings["grad_clip"])
            scaler.step(optim)
            scaler.update()
            sched.step()
            if size > 1:
                distributed.average_batchnorm_stats(model)
            done = it + 1
            distributed.trace_step(model, rank, done)
            if not lead:
                continue
            writer.writerow(loss_row(done, loss_value, lr))
            csv_fh.flush()
            if done % job.checkpoint_every == 0 or done == iterations:
                _save(ckpt_path, {"model": model.state_dict(), "optimizer": optim.state_dict(),
                                  "scheduler": sched.state_dict(), "scaler": scaler.state_dict(),
                                  "iteration": done, "fingerprint": fingerprint})
            bar.set_postfix(loss=f"{loss_value:.4f}", lr=f"{lr:.2e}")
            step(f"loss {loss_value:.6f} lr {lr:.3e}")
            hooks.maybe_stall(STAGE, done)
    bar.close()
    if lead:
        save_segmenter(job.out_path, model, settings["arch"], job.num_classes, settings)
        atomic_write_bytes(job.out_path.parent / "loss.csv", csv_path.read_bytes())


def _accumulate(model: nn.Module, images: torch.Tensor, labels: torch.Tensor, micro: int, first_slot: int,
                seed: int, iteration: int, device: torch.device, precision: tuple) -> float:
    """Backpropagate this process's share chunk by chunk; returns its part of the global batch loss.

    The loss normalisers are this share's counts summed over all processes (one collective before any
    forward pass), so each chunk's loss is already its share of the global batch loss. Each chunk's model
    randomness is seeded from (seed, iteration, its first global slot).
    """
    amp_on, amp_dtype, scaler = precision
    m2f = _is_mask2former(model)
    chunks = [(s, images[s:s + micro], labels[s:s + micro]) for s in range(0, len(labels), micro)]
    if m2f:
        local: dict[str, float] = {}
        for _, _, y in chunks:
            for key, value in model.count_targets(y).items():
                local[key] = local.get(key, 0.0) + float(value)
    else:
        local = {"valid": float((labels != IGNORE).sum())}
    totals = distributed.all_reduce_values(local, device)
    valid = max(totals.get("valid", 0.0), 1.0)
    loss_value = 0.0
    for s, x, y in chunks:
        x, y = x.to(device, non_blocking=True), y.to(device, non_blocking=True)
        distributed.seed_chunk(seed, iteration, first_slot + s)
        try:
            with torch.autocast(device.type, dtype=amp_dtype, enabled=amp_on):
                if m2f:
                    loss = model.loss(x, y, totals)
                else:
                    logits = model(x)["out"]
            if not m2f:
                loss = F.cross_entropy(logits.float(), y, ignore_index=IGNORE, reduction="sum") / valid
            scaler.scale(loss).backward()
        except torch.cuda.OutOfMemoryError as exc:
            raise RuntimeError(f"[{STAGE}] CUDA out of memory at iteration {iteration + 1} with micro-batch {micro}: "
                               f"lower micro_batch (same schedule, less memory)") from exc
        loss_value += float(loss.detach())
    return loss_value
