"""Mask2Former training speed and memory: fp32 against bf16 autocast, on the same model in the same run.

    .venv/bin/python benchmarks/bench_mask2former.py [--arch mask2former_swin_large] [--batch 4] [--size 512]
                                                     [--steps 5] [--smoke]

Builds the model with a random backbone (no file), then times ``--steps`` AdamW steps (after one untimed
warm-up step per precision) of the VOC recipe's loss, gradient clipping and optimiser (``model.loss`` over
the whole batch, full-model L2 clip 0.01, lr 1e-4, weight decay 0.05) on random images and labels, on CUDA
when present. Prints the parameter count, each precision's it/s and peak memory (``max_memory_allocated``
on CUDA; on a CPU the process's peak RSS, which only grows), and bf16's speed as a ratio of fp32's.
``--smoke`` runs the tiny model at 2 x 64^2 for one step (seconds, for the test suite).
"""
from __future__ import annotations

import argparse
import resource
import time
from dataclasses import dataclass

import torch

from fmwsss.segmentation.models import build_segmenter

GIB = 1 << 30
VOC_M2F = {"num_queries": 100, "class_weight": 2.0, "mask_weight": 5.0, "dice_weight": 5.0, "no_object_weight": 0.1,
           "train_points": 12544}
"""The VOC recipe's Mask2Former settings (the paper's: 100 queries, weights 2/5/5, no-object 0.1)."""
TINY_M2F = {**VOC_M2F, "num_queries": 8, "train_points": 1024}


@dataclass(frozen=True)
class Rate:
    precision: str
    it_per_s: float
    peak_bytes: int
    loss: float


def _sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def _peak(device: torch.device) -> int:
    if device.type == "cuda":
        return torch.cuda.max_memory_allocated(device)
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024  # kB on Linux


def build(arch: str, device: torch.device) -> torch.nn.Module:
    torch.manual_seed(0)
    settings = {"mask2former": TINY_M2F if arch.startswith("tiny") else VOC_M2F}
    return build_segmenter(arch, 21, pretrained_backbone=False, settings=settings).to(device).train()


def batch_of(n: int, size: int, device: torch.device) -> tuple[torch.Tensor, torch.Tensor]:
    """Random images; labels with background, two classes in rectangles and a void border (VOC-like)."""
    gen = torch.Generator().manual_seed(0)
    x = torch.randn(n, 3, size, size, generator=gen)
    labels = torch.zeros(n, size, size, dtype=torch.long)
    for i in range(n):
        for cls in torch.randint(1, 21, (2,), generator=gen).tolist():
            y0, x0 = torch.randint(0, size // 2, (2,), generator=gen).tolist()
            labels[i, y0:y0 + size // 3, x0:x0 + size // 3] = cls
    labels[:, :, -4:] = 255
    return x.to(device), labels.to(device)


def train_rate(model: torch.nn.Module, x: torch.Tensor, labels: torch.Tensor, precision: str, steps: int) -> Rate:
    """it/s of ``steps`` training steps (one untimed warm-up first) and the peak memory they reached."""
    device = x.device
    params = [p for p in model.parameters() if p.requires_grad]
    optimizer = torch.optim.AdamW(params, lr=1e-4, weight_decay=0.05)
    totals = model.count_targets(labels)
    dtype = torch.bfloat16 if precision == "bf16" else None

    def step() -> float:
        optimizer.zero_grad(set_to_none=True)
        with torch.autocast(device.type, dtype=dtype, enabled=dtype is not None):
            loss = model.loss(x, labels, totals)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(params, 0.01)
        optimizer.step()
        return float(loss.detach())

    step()
    _sync(device)
    if device.type == "cuda":
        torch.cuda.reset_peak_memory_stats(device)
    start = time.perf_counter()
    for _ in range(steps):
        loss = step()
    _sync(device)
    return Rate(precision, steps / (time.perf_counter() - start), _peak(device), loss)


def measure(arch: str, batch: int, size: int, steps: int, device: torch.device) -> tuple[int, list[Rate]]:
    """Parameter count and the fp32 then bf16 rates of one model (fp32 first: the baseline)."""
    model = build(arch, device)
    x, labels = batch_of(batch, size, device)
    rates = [train_rate(model, x, labels, precision, steps) for precision in ("fp32", "bf16")]
    return sum(p.numel() for p in model.parameters()), rates


def rate_line(rate: Rate, baseline: Rate, device: torch.device) -> str:
    what = "peak" if device.type == "cuda" else "peak RSS (process)"
    ratio = "" if rate is baseline else f"  x{rate.it_per_s / baseline.it_per_s:.2f} vs fp32"
    name = "fp32" if rate.precision == "fp32" else "bf16 autocast"
    return f"{name:<14} {rate.it_per_s:8.3f} it/s  {what} {rate.peak_bytes / GIB:.1f} GiB  loss {rate.loss:.2f}{ratio}"


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--arch", choices=["mask2former_swin_large", "tiny_mask2former"], default="mask2former_swin_large")
    ap.add_argument("--batch", type=int, default=4)
    ap.add_argument("--size", type=int, default=512)
    ap.add_argument("--steps", type=int, default=5, help="timed steps per precision (after one warm-up)")
    ap.add_argument("--smoke", action="store_true", help="tiny model, 2 x 64^2, one step: seconds, for the test suite")
    args = ap.parse_args()
    if args.smoke:
        args.arch, args.batch, args.size, args.steps = "tiny_mask2former", 2, 64, 1
    device = torch.device("cuda" if torch.cuda.is_available() else "cpu")
    name = torch.cuda.get_device_name(device) if device.type == "cuda" else "cpu"
    params, rates = measure(args.arch, args.batch, args.size, args.steps, device)
    print(f"{args.arch} on {device} ({name}): {params:,} parameters; batch {args.batch} x {args.size}^2, "
          f"{args.steps} timed steps per precision")
    for rate in rates:
        print(rate_line(rate, rates[0], device))


if __name__ == "__main__":
    main()
