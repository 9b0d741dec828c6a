"""Batched Softmax-Grad-CAM (one vectorised VJP) vs one backward per positive class, and CAM bytes per image.

    .venv/bin/python benchmarks/bench_gradcam.py [--model tiny|vit-b-16] [--batch 4] [--positives 3] [--smoke]

``vit-b-16`` builds open_clip's ViT-B-16-quickgelu with random weights (no download): the real shapes and
cost. Prints both timings and their ratio, measured in the same run, then the bytes one image's CAMs take
in a CAM shard (32 x 24 grid, as for a 500 x 375 VOC image) against the reference's npz, which also
carries the fp16 HW x HW attention.
"""
from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path

import numpy as np
import torch

from fmwsss.cams.clip_wrapper import ClipCam
from fmwsss.cams.gradcam import masked_softmax, softmax_gradcam
from fmwsss.cams.shards import CamShardWriter


def build(model: str, tmp: Path) -> ClipCam:
    if model == "tiny":
        from fmwsss.models.clip import create_tiny_clip, load_clip

        return ClipCam(load_clip(create_tiny_clip(tmp / "tiny.pt")))
    import open_clip

    clip = open_clip.create_model("ViT-B-16-quickgelu").eval().requires_grad_(False)
    return ClipCam(clip)


def per_class(clip_cam: ClipCam, images, text, present) -> torch.Tensor:
    out = clip_cam.encode_image(images)
    probs = masked_softmax(clip_cam.logits(out.feat, text), present)
    cams = []
    for n, c in present.nonzero().tolist():
        (g,) = torch.autograd.grad(probs[n, c], out.act, retain_graph=True)
        cams.append(out.act.detach()[n, 1:] @ g[n, 1:].mean(0))
    return torch.stack(cams)


def batched(clip_cam: ClipCam, images, text, present) -> torch.Tensor:
    out = clip_cam.encode_image(images)
    return softmax_gradcam(out.act, clip_cam.logits(out.feat, text), present, out.grid).cams


def timed(fn, repeats: int) -> float:
    fn()  # warm-up
    tic = time.perf_counter()
    for _ in range(repeats):
        fn()
    return (time.perf_counter() - tic) / repeats


def shard_bytes_per_image(n_images: int, positives: int, grid=(24, 32)) -> float:
    rng = np.random.default_rng(0)
    with tempfile.TemporaryDirectory() as tmp:
        writer = CamShardWriter(Path(tmp) / "p.h5", Path(tmp) / "f.h5", {})
        for i in range(n_images):
            cam = rng.standard_normal((positives, *grid)).astype(np.float32)
            writer.write_cams(f"{i:06d}", cam, cam, np.arange(1, positives + 1), 375, 500, 16)
        return writer.finish([f"{i:06d}" for i in range(n_images)]).stat().st_size / n_images


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--model", choices=["tiny", "vit-b-16"], default="tiny")
    ap.add_argument("--batch", type=int, default=4)
    ap.add_argument("--positives", type=int, default=3, help="positive classes per image")
    ap.add_argument("--size", type=int, default=224)
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--shard-images", type=int, default=200, help="images written to measure shard bytes")
    ap.add_argument("--smoke", action="store_true",
                    help="tiny sizes (tiny model, 2 images of 64 x 64, 1 repeat): seconds, for the test suite")
    args = ap.parse_args()
    if args.smoke:
        args.model, args.batch, args.positives, args.size, args.repeats, args.shard_images = "tiny", 2, 2, 64, 1, 4
    torch.manual_seed(0)
    with tempfile.TemporaryDirectory() as tmp:
        clip_cam = build(args.model, Path(tmp))
    device = "cuda" if torch.cuda.is_available() else "cpu"
    clip_cam = clip_cam.to(device)
    n_fg, n_bg = 20, 25
    text = torch.randn(n_fg + n_bg, clip_cam.clip.text_projection.shape[1], device=device)
    images = torch.randn(args.batch, 3, args.size, args.size, device=device)
    present = torch.zeros(args.batch, n_fg, dtype=torch.bool, device=device)
    present[:, :args.positives] = True
    torch.testing.assert_close(batched(clip_cam, images, text, present), per_class(clip_cam, images, text, present)
                               .reshape(-1, args.size // 16, args.size // 16), rtol=1e-4, atol=1e-6)
    t_loop = timed(lambda: per_class(clip_cam, images, text, present), args.repeats)
    t_batch = timed(lambda: batched(clip_cam, images, text, present), args.repeats)
    print(f"model={args.model} device={device} batch={args.batch} positives/image={args.positives} "
          f"size={args.size}")
    print(f"per-class backward: {t_loop * 1e3:.1f} ms   batched VJP: {t_batch * 1e3:.1f} ms   "
          f"speed-up x{t_loop / t_batch:.2f}")
    hw = 24 * 32
    ours = shard_bytes_per_image(args.shard_images, 2)
    reference = hw * hw * 2 + 2 * hw * 4  # fp16 HW x HW attention + float32 CAMs (npz headers ignored)
    print(f"CAM bytes/image (32x24 grid, 2 classes): shard {ours / 1e3:.1f} kB vs reference npz "
          f"{reference / 1e6:.2f} MB  -> x{reference / ours:.0f} smaller")


if __name__ == "__main__":
    main()
