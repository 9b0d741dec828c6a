"""Benchmark: vectorised SAMS (``fmwsss.seeding.sams_seed``) vs a straightforward per-mask Python loop.

Inputs are realistic in size: the 24 real VOC demo images' sizes and tags, ~60 synthetic masks per image at
3 levels (GT class regions as "whole" masks, random boxes as "part", random blobs as "sub-part"; there are
no real SAM masks yet) and CAMs as random smooth fields at patch resolution ``ceil(H/16) x ceil(W/16)``.
Both implementations start from the on-disk form (bit-packed masks), so the loop pays the unpack it needs.
Asserts identical seeds and labels, prints per-image times and the ratio. Runs on one CPU thread (fair on
a shared machine) unless ``--device cuda``.

    .venv/bin/python benchmarks/bench_sams.py [--data ../shared/data/voc_sample] [--device cpu] [--repeat 3]
"""
from __future__ import annotations

import argparse
import json
import os
import time
from pathlib import Path

import cv2
import numpy as np
import torch
import torch.nn.functional as F
from PIL import Image

from fmwsss.seeding import sams_seed

EPS = 1e-7
DEFAULT_DATA = Path(os.environ.get("FMWSSS_SHARED_DATA", Path(__file__).resolve().parents[1] / "../shared/data"))


def sams_loop(masks: np.ndarray, levels: np.ndarray, cams: np.ndarray, classes: np.ndarray, gamma: float):
    """The obvious implementation: one mask at a time, for the mean and for the painting."""
    n, height, width = masks.shape
    x = F.interpolate(torch.as_tensor(cams, dtype=torch.float32)[None], size=(height, width), mode="bilinear",
                      align_corners=False)[0].clamp_min(0)
    lo, hi = x.amin(dim=(1, 2), keepdim=True), x.amax(dim=(1, 2), keepdim=True)
    score = ((x - lo) / (hi - lo + EPS)).double()
    means = np.zeros((len(classes), n))
    for s in range(n):
        m = torch.from_numpy(masks[s])
        means[:, s] = (score[:, m].sum(dim=1) / m.sum()).numpy()
    a = (means - means.min(axis=1, keepdims=True)) / (means.max(axis=1, keepdims=True)
                                                       - means.min(axis=1, keepdims=True) + EPS)
    labels, confs = [], []
    for s in range(n):
        scores = [(1 - a[:, s].max()) ** gamma] + list(a[:, s])
        best = int(np.argmax(scores))
        labels.append(0 if best == 0 else int(classes[best - 1]))
        confs.append(scores[best])
    seed = np.zeros((height, width), np.uint8)
    for s in sorted(range(n), key=lambda k: (levels[k], confs[k])):
        seed[masks[s]] = labels[s]
    return seed, np.array(labels, np.uint8)


def synth_masks(gt: np.ndarray, rng: np.random.Generator, n_masks: int = 60) -> tuple[np.ndarray, np.ndarray]:
    """GT class regions (level 2), random boxes (level 1), thresholded smooth-noise blobs (level 0)."""
    height, width = gt.shape
    whole = [gt == c for c in np.unique(gt) if c not in (0, 255)] + [gt == 0]
    n_box = (n_masks - len(whole)) // 2
    boxes = []
    for _ in range(n_box):
        y0, x0 = rng.integers(0, height - 8), rng.integers(0, width - 8)
        y1, x1 = y0 + rng.integers(8, height // 2), x0 + rng.integers(8, width // 2)
        m = np.zeros((height, width), bool)
        m[y0:y1, x0:x1] = True
        boxes.append(m)
    blobs = []
    for _ in range(n_masks - len(whole) - n_box):
        noise = cv2.GaussianBlur(rng.standard_normal((height, width)).astype(np.float32), (0, 0), 12)
        blobs.append(noise > np.quantile(noise, rng.uniform(0.8, 0.97)))
    masks = np.stack(whole + boxes + blobs)
    levels = np.array([2] * len(whole) + [1] * len(boxes) + [0] * len(blobs))
    perm = rng.permutation(len(masks))
    return masks[perm], levels[perm]


def synth_cams(n_classes: int, height: int, width: int, rng: np.random.Generator) -> np.ndarray:
    """Smooth random fields with positive and negative parts at ViT-B/16 patch resolution."""
    h, w = -(-height // 16), -(-width // 16)
    fields = [cv2.GaussianBlur(rng.standard_normal((h, w)).astype(np.float32), (0, 0), 2) for _ in range(n_classes)]
    return np.stack(fields) * 10


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--data", type=Path, default=DEFAULT_DATA / "voc_sample")
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--repeat", type=int, default=3, help="best of this many runs per image and method")
    parser.add_argument("--gamma", type=float, default=0.7)
    args = parser.parse_args()
    if args.device == "cpu":
        torch.set_num_threads(1)
    tags = json.loads((args.data / "labels.json").read_text())
    rng = np.random.default_rng(0)
    total_vec = total_loop = 0.0
    print(f"{'image':<13} {'HxW':>9} {'N':>3} {'P':>2} {'loop ms':>8} {'vec ms':>7} {'ratio':>6}")
    for image_id, classes in sorted(tags.items()):
        gt = np.array(Image.open(args.data / "SegmentationClass" / f"{image_id}.png"))
        height, width = gt.shape
        masks, levels = synth_masks(gt, rng)
        cams = synth_cams(len(classes), height, width, rng)
        packed = np.packbits(masks.reshape(len(masks), -1), axis=1)
        classes = np.array(classes)

        def run_vec():
            return sams_seed(packed, levels, cams, classes, (height, width), args.gamma, device=args.device)

        def run_loop():
            unpacked = np.unpackbits(packed, axis=1, count=height * width).reshape(-1, height, width).view(bool)
            return sams_loop(unpacked, levels, cams, classes, args.gamma)

        t_vec, (seed_vec, info) = _best_time(run_vec, args.repeat, args.device)
        t_loop, (seed_loop, labels_loop) = _best_time(run_loop, args.repeat, "cpu")
        assert np.array_equal(info.label, labels_loop), f"{image_id}: mask labels differ"
        assert np.array_equal(seed_vec, seed_loop), f"{image_id}: seeds differ"
        total_vec, total_loop = total_vec + t_vec, total_loop + t_loop
        print(f"{image_id:<13} {height:>4}x{width:<4} {len(masks):>3} {len(classes):>2} "
              f"{t_loop * 1e3:>8.1f} {t_vec * 1e3:>7.2f} {t_loop / t_vec:>5.1f}x")
    print(f"total: loop {total_loop * 1e3:.0f} ms, vectorised {total_vec * 1e3:.0f} ms "
          f"on {args.device} -> {total_loop / total_vec:.1f}x (identical seeds on all {len(tags)} images)")


def _best_time(fn, repeat: int, device: str):
    best, out = float("inf"), None
    for _ in range(repeat):
        if device.startswith("cuda"):
            torch.cuda.synchronize()
        t0 = time.perf_counter()
        out = fn()
        if device.startswith("cuda"):
            torch.cuda.synchronize()
        best = min(best, time.perf_counter() - t0)
    return best, out


if __name__ == "__main__":
    main()
