"""Benchmark: stock ``SamAutomaticMaskGenerator`` vs the reference and the fast fmwsss generators.

One run, the same images and the same weights for all three; each timed over ``--images`` demo images after
one warm-up image:

- stock vs fast with the stock generator's own knobs (paper points, crops and thresholds; no level offsets,
  no RSW): the fast generator's claim is to give the same masks faster;
- reference vs fast with the method's full settings (level offsets, clean-up, RSW).

It prints images/s for each, the ratios, how many images' masks agree (count, IoU >= 0.99, level), and the
shard bytes per image of the fast output. ``--model tiny`` is the test SAM (CPU-friendly); ``vit_b`` /
``vit_l`` / ``vit_h`` build the real architectures with random weights (timing only: random weights give a
few large masks, not a realistic mask count), which needs a GPU to finish in reasonable time.

    .venv/bin/python benchmarks/bench_sam_generator.py [--model tiny] [--images 6] [--points 32]
        [--crop-layers 1] [--device auto] [--memory-gb 20] [--autocast none] [--smoke]

``--smoke`` (seconds, run by the test suite): the tiny SAM, 1 image shrunk to 128 px, 4 x 4 points, no crop layer.
"""
from __future__ import annotations

import argparse
import os
import tempfile
import time
from pathlib import Path

import numpy as np
import torch
from PIL import Image
from segment_anything import SamAutomaticMaskGenerator, sam_model_registry

from fmwsss.devices import resolve_device
from fmwsss.models.sam import load_sam
from fmwsss.models.tiny_sam import create_tiny_sam
from fmwsss.pipeline.config import Config
from fmwsss.sam.build import SamSpeed, build_generator
from fmwsss.sam.compare import compare_masks, from_stock_records
from fmwsss.sam.generator import RESULT_SETTINGS
from fmwsss.sam.shards import SamShardWriter
from fmwsss.sam.types import ImageMasks

ROOT = Path(__file__).resolve().parents[1]
DEFAULT_DATA = Path(os.environ.get("FMWSSS_SHARED_DATA") or ROOT / "samples")
STOCK_KNOBS = ("points_per_side", "pred_iou_thresh", "stability_score_thresh", "stability_score_offset",
               "box_nms_thresh", "crop_n_layers", "crop_nms_thresh", "crop_overlap_ratio",
               "crop_n_points_downscale_factor", "min_mask_region_area")


def _shrunk(image: Image.Image, side: int | None) -> Image.Image:
    """``image`` with its long side at most ``side`` pixels (None: unchanged)."""
    if side is None or max(image.size) <= side:
        return image
    scale = side / max(image.size)
    return image.resize((max(1, round(image.width * scale)), max(1, round(image.height * scale))), Image.BILINEAR)


def timed(label: str, run, images: list[np.ndarray]) -> tuple[list, float]:
    run(images[0])  # warm-up: allocator, kernels, thread pools
    if torch.cuda.is_available():
        torch.cuda.synchronize()
    start = time.perf_counter()
    out = [run(image) for image in images]
    if torch.cuda.is_available():
        torch.cuda.synchronize()
    seconds = time.perf_counter() - start
    print(f"{label:<34} {len(images) / seconds:8.3f} images/s  ({seconds / len(images):.2f} s/image)")
    return out, seconds


def agreement(reference: list[ImageMasks], other: list[ImageMasks], levels: bool) -> str:
    comparisons = [compare_masks(a, b) for a, b in zip(reference, other)]
    same_count = sum(c.same_count for c in comparisons)
    matched = sum(c.same_count and bool(np.all(c.matched_iou >= 0.99)) and (c.same_level.all() or not levels)
                  for c in comparisons)
    identical = sum(len(a) == len(b) and np.array_equal(a.masks, b.masks) for a, b in zip(reference, other))
    return (f"{same_count}/{len(comparisons)} same count, {matched}/{len(comparisons)} all masks matched "
            f"(IoU >= 0.99{', same level' if levels else ''}), {identical}/{len(comparisons)} with bit-identical "
            f"masks in the same order")


def load_model(name: str, device: torch.device, workdir: Path):
    if name == "tiny":
        return load_sam(create_tiny_sam(workdir / "tiny_sam.pt", seed=0), "tiny", device)
    model = sam_model_registry[name]()  # random weights of the real size: timing only
    return model.eval().requires_grad_(False).to(device)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--model", default="tiny", choices=["tiny", "vit_b", "vit_l", "vit_h"])
    parser.add_argument("--data", type=Path, default=DEFAULT_DATA / "voc_sample")
    parser.add_argument("--images", type=int, default=6, help="timed images (after one warm-up)")
    parser.add_argument("--points", type=int, default=32, help="points per side (paper: 32)")
    parser.add_argument("--crop-layers", type=int, default=1, help="crop layers (paper: 1)")
    parser.add_argument("--device", default="auto")
    parser.add_argument("--memory-gb", type=float, default=20.0, help="runtime.sam_memory_gb for the fast plan")
    parser.add_argument("--autocast", default="none", choices=["none", "bf16", "fp16"])
    parser.add_argument("--threads", type=int, default=None, help="torch CPU threads (default: torch's)")
    parser.add_argument("--smoke", action="store_true", help="tiny SAM, 1 image, 4x4 points, no crops: seconds")
    args = parser.parse_args()
    if args.smoke:
        args.model, args.images, args.points, args.crop_layers = "tiny", 1, 4, 0
    if args.threads:
        torch.set_num_threads(args.threads)

    device = resolve_device(args.device)
    paths = sorted((args.data / "JPEGImages").glob("*.jpg"))[: args.images]
    if not paths:
        raise SystemExit(f"no images under {args.data / 'JPEGImages'}")
    images = [np.asarray(_shrunk(Image.open(p).convert("RGB"), 128 if args.smoke else None)) for p in paths]
    method = dict(Config.from_file(ROOT / "config.yaml").settings("voc")["sam"])
    method.update(points_per_side=args.points, crop_n_layers=args.crop_layers, autocast=args.autocast)
    stock_settings = {**method, "level_iou_offsets": [0, 0, 0], "level_nms_offsets": [0, 0, 0],
                      "level_stability_bias": [0, 0, 0], "rsw_thresh": None}
    speed = SamSpeed(memory_gb=args.memory_gb)

    with tempfile.TemporaryDirectory() as tmp:
        model = load_model(args.model, device, Path(tmp))
        print(f"model {args.model} on {device}, {len(images)} images, {args.points}x{args.points} points, "
              f"{args.crop_layers} crop layer(s), autocast {args.autocast}")
        stock = SamAutomaticMaskGenerator(model, **{k: stock_settings[k] for k in STOCK_KNOBS})
        fast_stock = build_generator(model, stock_settings, speed)
        reference = build_generator(model, {**method, "implementation": "reference", "autocast": "none"}, speed)
        fast = build_generator(model, method, speed)
        print(f"fast plan: {fast.encoder_batch} crops per encoder forward, {fast.points_per_batch} points per "
              f"decoder call; reference: {reference.points_per_batch} points per call")

        print("-- stock knobs (no level offsets, no RSW)")
        stock_out, t_stock = timed("stock SamAutomaticMaskGenerator", lambda im: stock.generate(im), images)
        fast_out, t_fast_stock = timed("fmwsss fast", fast_stock.generate, images)
        print(f"ratio fast / stock: {t_stock / t_fast_stock:.2f}x")
        stock_masks = [from_stock_records(r, *im.shape[:2]) for r, im in zip(stock_out, images)]
        print("agreement:", agreement(stock_masks, [m for m in fast_out], levels=False))

        print("-- method settings (level offsets, clean-up, RSW)")
        ref_out, t_ref = timed("fmwsss reference", reference.generate, images)
        method_out, t_fast = timed("fmwsss fast", fast.generate, images)
        print(f"ratio fast / reference: {t_ref / t_fast:.2f}x")
        print("agreement:", agreement(ref_out, method_out, levels=True))

        shard = Path(tmp) / "shard.h5"
        with SamShardWriter(shard, {k: method[k] for k in RESULT_SETTINGS}) as writer:
            for path, masks in zip(paths, method_out):
                writer.write(path.stem, masks)
        n_masks = sum(len(m) for m in method_out)
        print(f"storage: {shard.stat().st_size / len(images) / 1024:.1f} kB per image in the SAM shard "
              f"({n_masks / len(images):.1f} masks per image)")
        if device.type == "cuda":
            print(f"peak GPU memory: {torch.cuda.max_memory_allocated() / 2**30:.2f} GiB "
                  f"(fast plan estimate {fast.encoder_batch} crops / {fast.points_per_batch} points)")


if __name__ == "__main__":
    main()
