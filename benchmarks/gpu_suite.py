"""The GPU suite's rows (run it through ``benchmarks/gpu_suite.sh``, which sets up the dependencies).

One table, each row printed as soon as it is measured:

- SAM automatic masks on ``vit_h``-shaped random weights: stock ``SamAutomaticMaskGenerator`` vs the fast
  generator at the stock knobs (paper grid and crop layer, no level offsets, no RSW), images/s, their ratio,
  peak GPU memory of the fast run against ``fmwsss.sam.memory``'s plan, and the fast run again under
  ``sam.autocast: bf16``. Random weights keep few masks under the default thresholds, so the IoU and
  stability filters are switched off (``pred_iou_thresh = stability_score_thresh = 0``); box NMS and the
  small-region clean-up stay. Mask counts are printed beside every timing: a speed-up on fewer masks is no
  speed-up.
- Batched Softmax-Grad-CAM on ``ViT-B-16-quickgelu`` shapes (random weights): images/s, against one backward
  per positive class measured in the same run.
- DeepLabV3-ResNet101 training iterations/s at 512 x 512, batch 16, AMP (bf16 where supported).
- The multi-GPU slot check, where more than one GPU is visible.

``--smoke`` runs every row at tiny sizes (tiny SAM and CLIP, tiny DeepLab, 96 x 64 images) on whatever device
there is, CPU included, so the test suite keeps the script from rotting. Without ``--smoke`` and without a
CUDA device every row prints ``not run: no CUDA device``. Exit status 1 if a row failed.
"""
from __future__ import annotations

import argparse
import sys
import tempfile
import time
import traceback
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

GIB = 1 << 30


@dataclass(frozen=True)
class Sizes:
    sam_model: str
    image_hw: tuple[int, int]
    sam_images: int
    points_per_side: int
    crop_n_layers: int
    clip: str
    clip_batch: int
    clip_size: int
    clip_repeats: int
    deeplab: str
    deeplab_batch: int
    deeplab_size: int
    deeplab_iters: int


FULL = Sizes("vit_h", (375, 500), 3, 32, 1, "ViT-B-16-quickgelu", 16, 224, 5, "deeplabv3_resnet101", 16, 512, 10)
SMOKE = Sizes("tiny", (64, 96), 1, 4, 0, "tiny", 2, 32, 1, "tiny", 2, 32, 1)


def emit(row: str, text: str) -> None:
    print(f"{row:<30} {text}", flush=True)


def sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def blocks_images(n: int, hw: tuple[int, int], seed: int = 0) -> list[np.ndarray]:
    """Flat colour blocks with mild noise: image content barely matters to random weights, but SAM needs
    some edges for masks to differ."""
    rng = np.random.default_rng(seed)
    out = []
    for _ in range(n):
        palette = rng.integers(0, 256, size=(12, 3))
        cells = rng.integers(0, 12, size=(-(-hw[0] // 16), -(-hw[1] // 16)))
        labels = np.kron(cells, np.ones((16, 16), int))[: hw[0], : hw[1]]
        image = palette[labels] + rng.integers(-4, 5, size=(*hw, 3))
        out.append(np.clip(image, 0, 255).astype(np.uint8))
    return out


def timed_per_image(run, images: list[np.ndarray], device: torch.device) -> tuple[float, list]:
    run(images[0])  # warm-up: allocator, kernels, thread pools
    sync(device)
    start = time.perf_counter()
    out = [run(image) for image in images]
    sync(device)
    return len(images) / (time.perf_counter() - start), out


def sam_rows(sizes: Sizes, device: torch.device, tmp: Path) -> None:
    from segment_anything import SamAutomaticMaskGenerator, sam_model_registry

    from fmwsss.models.sam import load_sam
    from fmwsss.models.tiny_sam import create_tiny_sam
    from fmwsss.sam.build import SamSpeed, batch_plan, build_generator

    torch.manual_seed(0)
    if sizes.sam_model == "tiny":
        model = load_sam(create_tiny_sam(tmp / "tiny_sam.pt", seed=0), "tiny", device)
    else:
        model = sam_model_registry[sizes.sam_model]().eval().requires_grad_(False).to(device)
    knobs = dict(points_per_side=sizes.points_per_side, pred_iou_thresh=0.0, stability_score_thresh=0.0,
                 stability_score_offset=1.0, box_nms_thresh=0.7, crop_n_layers=sizes.crop_n_layers,
                 crop_nms_thresh=0.7, crop_overlap_ratio=512 / 1500, crop_n_points_downscale_factor=2,
                 min_mask_region_area=100)
    settings = {**knobs, "level_iou_offsets": [0.0] * 3, "level_nms_offsets": [0.0] * 3,
                "level_stability_bias": [0.0] * 3, "rsw_thresh": None, "implementation": "fast"}
    images = blocks_images(sizes.sam_images, sizes.image_hw)
    setting = (f"{sizes.sam_model}, {len(images)} images {sizes.image_hw[1]}x{sizes.image_hw[0]}, "
               f"{sizes.points_per_side}^2 points, {sizes.crop_n_layers} crop layer(s)")
    emit("sam setting", setting + ", IoU/stability filters off")
    stock = SamAutomaticMaskGenerator(model, **knobs)
    stock_rate, stock_out = timed_per_image(stock.generate, images, device)
    stock_masks = np.mean([len(r) for r in stock_out])
    emit("sam stock fp32", f"{stock_rate:8.3f} images/s  {stock_masks:7.1f} masks/image")
    speed = SamSpeed(memory_gb=20.0)
    for autocast in ("none", "bf16"):
        fast = build_generator(model, {**settings, "autocast": autocast}, speed)
        plan = batch_plan(model, settings, speed)
        if device.type == "cuda":
            torch.cuda.reset_peak_memory_stats(device)
        rate, out = timed_per_image(fast.generate, images, device)
        masks = np.mean([len(m) for m in out])
        peak = (f"peak {torch.cuda.max_memory_allocated(device) / GIB:.1f} GiB vs plan "
                f"{plan.estimated_peak_bytes / GIB:.1f} GiB" if device.type == "cuda" else "peak GPU memory: n/a")
        label = "sam fast fp32" if autocast == "none" else "sam fast bf16 autocast"
        emit(label, f"{rate:8.3f} images/s  {masks:7.1f} masks/image  x{rate / stock_rate:.2f} vs stock  {peak}  "
                    f"({fast.encoder_batch} crops/forward, {fast.points_per_batch} points/call)")
    del model, stock, fast
    if device.type == "cuda":
        torch.cuda.empty_cache()


def gradcam_row(sizes: Sizes, device: torch.device, tmp: Path) -> None:
    from fmwsss.cams.clip_wrapper import ClipCam
    from fmwsss.cams.gradcam import masked_softmax, softmax_gradcam

    torch.manual_seed(0)
    if sizes.clip == "tiny":
        from fmwsss.models.clip import create_tiny_clip, load_clip

        clip = load_clip(create_tiny_clip(tmp / "tiny_clip.pt"))
    else:
        import open_clip

        clip = open_clip.create_model(sizes.clip).eval().requires_grad_(False)
    clip_cam = ClipCam(clip).to(device)
    n_fg, n_bg, positives = 20, 25, 3
    text = torch.randn(n_fg + n_bg, clip_cam.clip.text_projection.shape[1], device=device)
    images = torch.randn(sizes.clip_batch, 3, sizes.clip_size, sizes.clip_size, device=device)
    present = torch.zeros(sizes.clip_batch, n_fg, dtype=torch.bool, device=device)
    present[:, :positives] = True

    def batched():
        out = clip_cam.encode_image(images)
        return softmax_gradcam(out.act, clip_cam.logits(out.feat, text), present, out.grid).cams

    def per_class():
        out = clip_cam.encode_image(images)
        probs = masked_softmax(clip_cam.logits(out.feat, text), present)
        for n, c in present.nonzero().tolist():
            torch.autograd.grad(probs[n, c], out.act, retain_graph=True)

    rates = []
    for fn in (batched, per_class):
        fn()
        sync(device)
        start = time.perf_counter()
        for _ in range(sizes.clip_repeats):
            fn()
        sync(device)
        rates.append(sizes.clip_batch * sizes.clip_repeats / (time.perf_counter() - start))
    emit("gradcam batched", f"{rates[0]:8.1f} images/s  x{rates[0] / rates[1]:.2f} vs one backward per class  "
                            f"({sizes.clip}, batch {sizes.clip_batch}, {sizes.clip_size}^2, {positives} positives)")


def deeplab_row(sizes: Sizes, device: torch.device) -> None:
    from fmwsss.segmentation.models import build_segmenter

    torch.manual_seed(0)
    model = build_segmenter(sizes.deeplab, 21, pretrained_backbone=False).to(device).train()
    optimizer = torch.optim.SGD(model.parameters(), lr=1e-3, momentum=0.9, weight_decay=1e-4)
    amp = device.type == "cuda"
    dtype = torch.bfloat16 if amp and torch.cuda.is_bf16_supported() else torch.float16
    scaler = torch.amp.GradScaler(device.type, enabled=amp and dtype == torch.float16)
    x = torch.randn(sizes.deeplab_batch, 3, sizes.deeplab_size, sizes.deeplab_size, device=device)
    y = torch.randint(0, 21, (sizes.deeplab_batch, sizes.deeplab_size, sizes.deeplab_size), device=device)

    def step():
        optimizer.zero_grad(set_to_none=True)
        with torch.autocast(device.type, dtype=dtype, enabled=amp):
            loss = torch.nn.functional.cross_entropy(model(x)["out"], y, ignore_index=255)
        scaler.scale(loss).backward()
        scaler.step(optimizer)
        scaler.update()

    step()
    sync(device)
    if device.type == "cuda":
        torch.cuda.reset_peak_memory_stats(device)
    start = time.perf_counter()
    for _ in range(sizes.deeplab_iters):
        step()
    sync(device)
    rate = sizes.deeplab_iters / (time.perf_counter() - start)
    peak = f"peak {torch.cuda.max_memory_allocated(device) / GIB:.1f} GiB" if device.type == "cuda" else ""
    emit("deeplab train", f"{rate:8.2f} it/s  ({sizes.deeplab}, batch {sizes.deeplab_batch}, "
                          f"{sizes.deeplab_size}^2, AMP {dtype if amp else 'off'})  {peak}".rstrip())


def slots_row() -> None:
    """Each visible GPU runs a matmul, then as many slots as GPUs are taken at once (as concurrent jobs do):
    they must land on distinct GPUs, and the Snakemake ``gpu`` resource must equal the GPU count."""
    from fmwsss.gpu_slots import acquire_slot, gpu_resource, visible_gpus

    count = torch.cuda.device_count()
    if count < 2:
        emit("multi-gpu slots", f"not run: {count} CUDA device(s) visible, the check needs 2 or more")
        return
    for index in range(count):
        a = torch.randn(256, 256, device=f"cuda:{index}")
        assert torch.isfinite(a @ a).all(), f"cuda:{index}: matmul gave non-finite values"
    names = visible_gpus()
    with tempfile.TemporaryDirectory() as tmp:
        slots = [acquire_slot(names, Path(tmp)) for _ in names]
        taken = sorted(slot.index for slot in slots)
        for slot in slots:
            slot.release()
    distinct = taken == list(range(len(names)))
    emit("multi-gpu slots", f"{count} devices each ran a matmul; gpu resource {gpu_resource()}; {len(names)} "
                            f"concurrent slots -> cuda:{taken} ({'distinct' if distinct else 'NOT DISTINCT'})")
    assert distinct and gpu_resource() == count, "GPU slots or the gpu resource disagree with the visible GPUs"


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--smoke", action="store_true", help="tiny sizes on any device (CPU included): seconds")
    args = parser.parse_args()
    cuda = torch.cuda.is_available()
    device = torch.device("cuda" if cuda else "cpu")
    sizes = SMOKE if args.smoke else FULL
    name = torch.cuda.get_device_name(0) if cuda else "no CUDA device"
    print(f"== fmwsss GPU suite{' (SMOKE: tiny sizes, not a measurement)' if args.smoke else ''}: torch "
          f"{torch.__version__}, {device} ({name}), {torch.cuda.device_count()} CUDA device(s)", flush=True)
    rows = [("sam", lambda tmp: sam_rows(sizes, device, tmp)), ("gradcam", lambda tmp: gradcam_row(sizes, device, tmp)),
            ("deeplab", lambda tmp: deeplab_row(sizes, device)), ("multi-gpu slots", lambda tmp: slots_row())]
    failed = 0
    for row, run in rows:
        if not cuda and not args.smoke:
            emit(row, "not run: no CUDA device")
            continue
        tic = time.perf_counter()
        try:
            with tempfile.TemporaryDirectory() as tmp:
                run(Path(tmp))
        except Exception:  # a broken row must not hide the others; the exit status reports it
            failed += 1
            emit(row, "FAILED:")
            traceback.print_exc(file=sys.stdout)
        emit(f"  ({row} took", f"{time.perf_counter() - tic:.1f} s)")
    print(f"== done: {len(rows) - failed}/{len(rows)} row groups ran without error", flush=True)
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
