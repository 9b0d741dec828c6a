"""The GPU suite (run it through ``benchmarks/gpu_suite.sh``, which sets up the dependencies).

Rows, measured in this process and printed as soon as they are measured:

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
- Mask2Former Swin-L training iterations/s at 512 x 512, batch 4 (the VOC recipe's loss, clip and AdamW;
  ``benchmarks/bench_mask2former.py``), fp32 then bf16 autocast on the same model, peak memory of each.
- The multi-GPU slot check, where more than one GPU is visible.
- SAM post-processing at a real load (``sam load``): the ``vit_h``-shaped stand-in of
  ``benchmarks/sam_standin.py``, whose masks are colour blobs of the image, so thousands of candidates an
  image reach the filters and 50-150 masks survive, as with real weights. Stock vs fast at the ``voc``
  preset's settings without level offsets and RSW on VOC sample images: both mask counts per image, which
  must be equal (and within 50-150 at full size), then the fast generator at the full method settings.

Then the workflow, in a working folder (``--workdir``, default this checkout): the VOC sample copied into
``data/`` (as ``make data``), the tiny ``demo`` run to its seeds (``snakemake results/demo/seeds``) and its
seeds checked against the CPU run's digests (``benchmarks/seed_digests.py``), the rehearsal (``make
rehearsal``: real-size random-weight models on the 24 sample images, ending with ``fmwsss cost``), then
``fmwsss cost voc --gpus 8`` and ``fmwsss cost coco --gpus 8``. Snakemake and the ``fmwsss`` CLI run as
``python -m snakemake`` / ``python -m fmwsss`` with this interpreter (the GPU machine has no venv).

Every row and step is a part (``benchmarks/suite_parts.py``): its own time limit, its output saved under
``--state`` when it ends well and reprinted by a rerun instead of run again; the last lines give each
part's status and time. ``--smoke`` runs the rows at tiny sizes on whatever device there is, CPU included,
checks an already finished demo run (``--demo-results``) instead of making one, and rehearses the demo
(``make rehearsal SMOKE=1``: in a working folder holding that finished run, nothing is left to compute and
the cost tables are printed from it), so the test suite keeps the script from rotting. Without ``--smoke`` and without a CUDA
device every part prints ``not run: no CUDA device``. Exit status 1 if a part failed or timed out.
"""
from __future__ import annotations

import argparse
import gc
import importlib.util
import inspect
import os
import shutil
import sys
import tempfile
import time
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Callable

import numpy as np
import torch
from PIL import Image

from suite_parts import Part, run_command, run_parts, summary

GIB = 1 << 30
ROOT = Path(__file__).resolve().parents[1]
VOC_SAMPLE = ROOT / "samples" / "voc_sample"
#: Each part's time limit on one H100 (seconds): about twice what it should take (an estimate: no GPU was lent
#: while the workflow parts were written), the rehearsal as the Makefile sizes it. The suite's budget
#: (--budget; gpu_suite.sh's GPU_SUITE_TIMEOUT, 540 s) caps them all together.
LIMITS = {"sam": 120, "gradcam": 45, "deeplab": 60, "mask2former": 90, "multi-gpu slots": 30, "sam load": 120, "workflow data": 60,
          "demo run": 180, "seed check": 30, "rehearsal": 300, "cost voc": 45, "cost coco": 45}
#: Every part's limit under --smoke, on a shared CPU: only a guard against a hang.
SMOKE_LIMIT = 300.0


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
    m2f: str  # Mask2Former arch (benchmarks/bench_mask2former.py)
    m2f_batch: int
    m2f_size: int
    m2f_steps: int  # timed steps per precision, after one warm-up
    load_encoder: str  # the stand-in's image encoder (benchmarks/sam_standin.py)
    load_images: int  # VOC sample images (native size unless load_side)
    load_side: int | None  # long side the images are shrunk to
    load_range: tuple[int, int] | None  # masks per image both generators must keep
    warmup: bool  # one untimed image before each SAM timing


FULL = Sizes("vit_h", (375, 500), 2, 32, 1, "ViT-B-16-quickgelu", 16, 224, 5, "deeplabv3_resnet101", 16, 512, 10,
             "mask2former_swin_large", 4, 512, 4, "vit_h", 2, None, (50, 150), True)
SMOKE = Sizes("tiny", (64, 96), 1, 4, 0, "tiny", 2, 32, 1, "tiny", 2, 32, 1, "tiny_mask2former", 2, 64, 1, "small", 1,
              128, None, False)


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


def timed_per_image(run, images: list[np.ndarray], device: torch.device, warmup: bool) -> tuple[float, list]:
    """Images per second of ``run`` over ``images``, after one untimed image when ``warmup``. The stock SAM
    generator runs without one: at ~20 s an image on an H100 its first-call set-up is noise, and an untimed
    image would cost the suite another 20 s of a 15-minute GPU loan."""
    if warmup:  # allocator, kernels, thread pools
        run(images[0])
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
    stock_rate, stock_out = timed_per_image(stock.generate, images, device, False)  # see timed_per_image
    stock_masks = np.mean([len(r) for r in stock_out])
    emit("sam stock fp32", f"{stock_rate:8.3f} images/s  {stock_masks:7.1f} masks/image")
    speed = SamSpeed(memory_gb=20.0)
    for autocast in ("none", "bf16"):
        fast = build_generator(model, {**settings, "autocast": autocast}, speed)
        plan = batch_plan(model, settings, speed)
        if device.type == "cuda":
            torch.cuda.reset_peak_memory_stats(device)
        rate, out = timed_per_image(fast.generate, images, device, sizes.warmup)
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


def mask2former_row(sizes: Sizes, device: torch.device) -> None:
    absent = [m for m in ("transformers", "scipy") if importlib.util.find_spec(m) is None]
    if absent:
        emit("mask2former", f"not run: {', '.join(absent)} missing on this machine (make gpu-wheels; scipy: "
                            f"GPU_WHEEL_EXTRA=scipy==1.17.1)")
        return
    from bench_mask2former import measure

    params, (fp32, bf16) = measure(sizes.m2f, sizes.m2f_batch, sizes.m2f_size, sizes.m2f_steps, device)

    def peak(rate) -> str:  # a CPU (smoke) has only the process's peak RSS: not this row's
        return f"  peak {rate.peak_bytes / GIB:.1f} GiB" if device.type == "cuda" else ""

    emit("mask2former fp32", f"{fp32.it_per_s:8.3f} it/s  ({sizes.m2f}, {params:,} parameters, batch "
                             f"{sizes.m2f_batch}, {sizes.m2f_size}^2){peak(fp32)}")
    emit("mask2former bf16 autocast", f"{bf16.it_per_s:8.3f} it/s  x{bf16.it_per_s / fp32.it_per_s:.2f} vs fp32"
                                      f"{peak(bf16)}")


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


def voc_sample_images(n: int, side: int | None) -> list[np.ndarray]:
    """The first ``n`` VOC sample images (in this checkout), their long side shrunk to ``side`` if given."""
    images = []
    for path in sorted((VOC_SAMPLE / "JPEGImages").glob("*.jpg"))[:n]:
        with Image.open(path) as image:
            image = image.convert("RGB")
            if side is not None and max(image.size) > side:
                scale = side / max(image.size)
                image = image.resize((round(image.width * scale), round(image.height * scale)), Image.BILINEAR)
            images.append(np.asarray(image))
    if len(images) < n:
        raise FileNotFoundError(f"{VOC_SAMPLE / 'JPEGImages'}: {len(images)} images, the row needs {n}")
    return images


def sam_load_row(sizes: Sizes, device: torch.device) -> None:
    """Stock vs fast on the stand-in SAM (masks from the image): post-processing at a real load."""
    from segment_anything import SamAutomaticMaskGenerator

    from fmwsss.pipeline.config import Config
    from fmwsss.sam.build import SamSpeed, build_generator
    from fmwsss.sam.compare import compare_masks, from_stock_records
    from sam_standin import standin_sam

    model = standin_sam(sizes.load_encoder, device)
    method = dict(Config.from_file(ROOT / "config.yaml").settings("voc")["sam"])
    method.update(points_per_side=sizes.points_per_side, crop_n_layers=sizes.crop_n_layers)
    settings = {**method, "level_iou_offsets": [0.0] * 3, "level_nms_offsets": [0.0] * 3,
                "level_stability_bias": [0.0] * 3, "rsw_thresh": None}
    stock_knobs = inspect.signature(SamAutomaticMaskGenerator).parameters
    images = voc_sample_images(sizes.load_images, sizes.load_side)
    sizes_text = " ".join(f"{im.shape[1]}x{im.shape[0]}" for im in images)
    emit("sam load setting", f"stand-in {sizes.load_encoder} encoder, {len(images)} VOC sample images {sizes_text}, "
                             f"voc preset ({sizes.points_per_side}^2 points, {sizes.crop_n_layers} crop layer(s), "
                             f"IoU {method['pred_iou_thresh']}, stability {method['stability_score_thresh']})")
    stock = SamAutomaticMaskGenerator(model, **{k: v for k, v in settings.items() if k in stock_knobs})
    stock_rate, records = timed_per_image(stock.generate, images, device, False)  # see timed_per_image
    stock_out = [from_stock_records(r, *im.shape[:2]) for r, im in zip(records, images)]
    stock_counts = [len(m) for m in stock_out]
    emit("sam load stock fp32", f"{stock_rate:8.3f} images/s  masks per image {stock_counts}")
    speed = SamSpeed(memory_gb=20.0)
    fast = build_generator(model, settings, speed)
    rate, fast_out = timed_per_image(fast.generate, images, device, sizes.warmup)
    fast_counts = [len(m) for m in fast_out]
    comparisons = [compare_masks(a, b) for a, b in zip(stock_out, fast_out)]  # the stock one has no levels
    matched = sum(c.same_count and bool(np.all(c.matched_iou >= 0.99)) for c in comparisons)
    emit("sam load fast fp32", f"{rate:8.3f} images/s  masks per image {fast_counts}  x{rate / stock_rate:.2f} vs "
                               f"stock  {matched}/{len(images)} images with every mask matched (IoU >= 0.99)")
    full = build_generator(model, method, speed)
    full_rate, full_out = timed_per_image(full.generate, images, device, sizes.warmup)
    emit("sam load fast method", f"{full_rate:8.3f} images/s  masks per image {[len(m) for m in full_out]}  "
                                 f"(level offsets {method['level_iou_offsets']}, RSW {method['rsw_thresh']})")
    assert fast_counts == stock_counts, f"mask counts differ: stock {stock_counts}, fast {fast_counts}"
    if sizes.load_range:
        low, high = sizes.load_range
        assert all(low <= n <= high for n in stock_counts), \
            f"the stand-in must keep {low}-{high} masks per image, stock kept {stock_counts}"


@dataclass(frozen=True)
class Workflow:
    """Where and how the workflow parts run."""

    workdir: Path  # holds config.yaml, data/ and results/ (this checkout by default)
    demo_results: Path | None  # an already finished results/demo to check instead of running the demo
    cores: int
    smoke: bool

    @property
    def rehearsal(self) -> str:
        """The dataset ``make rehearsal`` runs (the Makefile's ``SMOKE=1`` switch, passed explicitly)."""
        return "demo" if self.smoke else "rehearsal"


def prepare_workdir(flow: Workflow) -> int:
    """The shipped config (for a working folder outside the checkout) and the VOC sample in data/."""
    if flow.workdir.resolve() != ROOT:
        flow.workdir.mkdir(parents=True, exist_ok=True)
        shutil.copy(ROOT / "config.yaml", flow.workdir / "config.yaml")
        print(f"copied {ROOT / 'config.yaml'} to {flow.workdir}")
    return run_command([sys.executable, "-m", "fmwsss", "data", "voc-sample", "--source", str(VOC_SAMPLE),
                        "--dest", str(flow.workdir / "data" / "voc_sample")])


def workflow_parts(flow: Workflow, skip: str | None) -> list[Part]:
    """The data, the demo to its seeds and their check, the rehearsal and the cost projections."""
    py = sys.executable
    snakemake = [py, "-m", "snakemake", "-s", str(ROOT / "Snakefile")]
    fmwsss = [py, "-m", "fmwsss"]
    demo = flow.demo_results or flow.workdir / "results" / "demo"

    def command(*cmd: str) -> Callable[[], int]:
        return lambda: run_command(cmd, cwd=flow.workdir)

    # -o: the Makefile's venv target is never built here; the suite passes its own commands instead.
    rehearsal = ["make", "--no-print-directory", "-C", str(flow.workdir), "-f", str(ROOT / "Makefile"),
                 "-o", ".venv/bin/fmwsss", "rehearsal", f"SNAKEMAKE={' '.join(snakemake)}",
                 f"FMWSSS={' '.join(fmwsss)}", f"CORES={flow.cores}", f"SMOKE={int(flow.smoke)}",
                 f"REHEARSAL={flow.rehearsal}"]
    demo_skip = skip or (f"--demo-results {flow.demo_results} is checked instead" if flow.demo_results else None)
    return [
        Part("workflow data", LIMITS["workflow data"], lambda: prepare_workdir(flow), skip),
        Part("demo run", LIMITS["demo run"],
             command(*snakemake, "--cores", str(flow.cores), "results/demo/seeds"), demo_skip),
        Part("seed check", LIMITS["seed check"],
             command(py, str(ROOT / "benchmarks" / "seed_digests.py"), "--results", str(demo),
                     "--check", str(ROOT / "benchmarks" / "demo_seed_digests.json")), skip),
        Part("rehearsal", LIMITS["rehearsal"], command(*rehearsal), skip),
        *(Part(f"cost {target}", LIMITS[f"cost {target}"],
               command(*fmwsss, "cost", target, "--from", flow.rehearsal, "--gpus", "8"), skip)
          for target in ("voc", "coco")),
    ]


def row_part(name: str, run: Callable[[Path], None], skip: str | None) -> Part:
    """A measured row: run in a temporary folder, then the GPU memory it cached is handed back."""

    def measured() -> None:
        try:
            with tempfile.TemporaryDirectory() as tmp:
                run(Path(tmp))
        finally:
            gc.collect()
            if torch.cuda.is_available():
                torch.cuda.empty_cache()

    return Part(name, LIMITS[name], measured, skip)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--smoke", action="store_true", help="tiny sizes on any device (CPU included)")
    parser.add_argument("--state", type=Path, default=ROOT / "benchmarks" / ".gpu-suite",
                        help="where finished parts keep their output (a subfolder per mode)")
    parser.add_argument("--budget", type=float, required=True,
                        help="seconds for all parts together (gpu_suite.sh: GPU_SUITE_TIMEOUT)")
    parser.add_argument("--workdir", type=Path, default=ROOT, help="the workflow parts' working folder")
    parser.add_argument("--demo-results", type=Path, help="a finished results/demo to check (no demo run)")
    parser.add_argument("--cores", type=int, default=os.cpu_count(), help="Snakemake --cores")
    args = parser.parse_args()
    cuda = torch.cuda.is_available()
    device = torch.device("cuda" if cuda else "cpu")
    sizes = SMOKE if args.smoke else FULL
    name = torch.cuda.get_device_name(0) if cuda else "no CUDA device"
    print(f"== fmwsss GPU suite{' (SMOKE: tiny sizes, not a measurement)' if args.smoke else ''}: torch "
          f"{torch.__version__}, {device} ({name}), {torch.cuda.device_count()} CUDA device(s)", flush=True)
    skip = None if cuda or args.smoke else "no CUDA device"
    flow = Workflow(args.workdir, args.demo_results, args.cores, args.smoke)
    parts = [
        row_part("sam", lambda tmp: sam_rows(sizes, device, tmp), skip),
        row_part("gradcam", lambda tmp: gradcam_row(sizes, device, tmp), skip),
        row_part("deeplab", lambda tmp: deeplab_row(sizes, device), skip),
        row_part("mask2former", lambda tmp: mask2former_row(sizes, device), skip),
        row_part("multi-gpu slots", lambda tmp: slots_row(), skip),
        row_part("sam load", lambda tmp: sam_load_row(sizes, device), skip),
        *workflow_parts(flow, skip),
    ]
    if args.smoke:
        parts = [replace(part, limit=SMOKE_LIMIT) for part in parts]
    outcomes = run_parts(parts, args.state / ("smoke" if args.smoke else "full"), args.budget)
    print(summary(outcomes), flush=True)
    return 1 if any(o.bad for o in outcomes) else 0


if __name__ == "__main__":
    sys.exit(main())
