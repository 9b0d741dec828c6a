"""Benchmark: vectorised SAMS (``fmwsss.seeding.sams_seed``) vs a straightforward per-mask Python loop.

Two input sets, each timed per image (best of ``--repeat``) with identical seeds and labels asserted:

- real: if a finished demo run exists under ``--store`` (``results/demo/store``), the tiny-SAM masks of
  ``sam_masks/<key>/shard-*.h5`` and the refined CAMs of ``cams_fine_dump/<key>/shard-*.h5`` that the
  ``seeds_fine`` variant was made from (keys from its ``spec.json``), with its gamma. Both implementations
  start from what ``SamShardReader.read`` returns (bool masks), as the pipeline does. The vectorised seeds
  are also compared with the stored ``seeds_fine`` PNGs (reported, not asserted: with the tiny random CLIP
  some CAMs are constant per class, and SAMS's min-max normalisations then amplify float rounding of the
  bilinear resize, which depends on the thread count the run used).
- synthetic: the 24 real VOC demo images' sizes and tags, 60 masks per image at 3 levels (GT class regions
  as "whole" masks, random boxes as "part", random blobs as "sub-part") and CAMs as random smooth fields at
  patch resolution ``ceil(H/16) x ceil(W/16)``; both start from bit-packed masks (the loop pays its unpack).

It also prints the store's size per image (seed PNGs, SAM mask shards, CAM shards). Runs on one CPU thread
(fair on a shared machine) unless ``--device cuda``.

``--smoke`` (seconds, run by the test suite): the first 2 images, 20 masks each, one repeat; the "real" set
is then a throw-away store of those synthetic inputs written with the shard writers, so the benchmark's
reading path is exercised without a demo run.

    .venv/bin/python benchmarks/bench_sams.py [--data samples/voc_sample] [--store results/demo/store]
                                              [--device cpu] [--repeat 3] [--smoke]
"""
from __future__ import annotations

import argparse
import json
import os
import tempfile
import time
from pathlib import Path

import cv2
import numpy as np
import torch
import torch.nn.functional as F
from PIL import Image

from fmwsss.cams.shards import CamShardReader, CamShardWriter
from fmwsss.sam.shards import SamShardReader, SamShardWriter
from fmwsss.sam.types import ImageMasks
from fmwsss.seeding import sams_seed

EPS = 1e-7
ROOT = Path(__file__).resolve().parents[1]
DEFAULT_DATA = Path(os.environ.get("FMWSSS_SHARED_DATA") or ROOT / "samples")


def sams_loop(masks: np.ndarray, levels: np.ndarray, cams: np.ndarray, classes: np.ndarray, gamma: float):
    """The obvious implementation: one mask at a time, for the mean and for the painting."""
    n, height, width = masks.shape
    x = F.interpolate(torch.as_tensor(cams, dtype=torch.float64)[None], size=(height, width), mode="bilinear",
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
    parser.add_argument("--store", type=Path, default=ROOT / "results" / "demo" / "store")
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--repeat", type=int, default=3, help="best of this many runs per image and method")
    parser.add_argument("--gamma", type=float, default=0.7, help="for the synthetic set (real: the run's gamma)")
    parser.add_argument("--images", type=int, default=None, help="synthetic set: the first N images (default all)")
    parser.add_argument("--masks", type=int, default=60, help="synthetic set: masks per image")
    parser.add_argument("--smoke", action="store_true",
                        help="2 images, 20 masks, 1 repeat, a throw-away store instead of --store: seconds")
    args = parser.parse_args()
    if args.device == "cpu":
        torch.set_num_threads(1)
    if args.smoke:
        args.images, args.masks, args.repeat = 2, 20, 1
        with tempfile.TemporaryDirectory() as tmp:
            cases = list(_synthetic_cases(args.data, args.gamma, args.images, args.masks))
            args.store = _smoke_store(Path(tmp), args.data, cases)
            _run(args, "smoke store: the synthetic inputs read back from the shards")
        return
    _run(args, "real tiny-SAM masks + fine CAMs")


def _run(args, real_title: str) -> None:
    fine = _finished_variant(args.store / "seeds_fine")
    if fine is None:
        print(f"no finished demo run under {args.store}: real-input benchmark and storage figures skipped")
    else:
        _storage(args.store, fine)
        _bench(real_title, _real_cases(args.store, fine), args)
    _bench("synthetic masks + CAMs", _synthetic_cases(args.data, args.gamma, args.images, args.masks), args)


def _smoke_store(root: Path, data: Path, cases: list) -> Path:
    """A one-shard store laid out as a finished run (sam_masks, cams_fine_dump, seeds_fine) from ``cases``."""
    store = root / "store"
    sam_path, cam_path = store / "sam_masks" / "s" / "shard-000.h5", store / "cams_fine_dump" / "c" / "shard-000.h5"
    ids, gamma = [c[0] for c in cases], cases[0][5]
    cams = CamShardWriter(cam_path.with_suffix(".partial.h5"), cam_path, {})
    with SamShardWriter(sam_path, {}) as sam:
        for image_id, packed, levels, cam, classes, _, _ in cases:
            height, width = _size_of(image_id, data)
            masks = np.unpackbits(packed, axis=1, count=height * width).reshape(-1, height, width).view(bool)
            n = len(masks)
            sam.write(image_id, ImageMasks(masks, levels, np.ones(n), np.ones(n), np.zeros((n, 4)), masks.sum((1, 2))))
            cams.write_cams(image_id, cam, cam, classes, height, width, 16)
        sam.mark_complete(ids)
    cams.finish(ids)
    fine = store / "seeds_fine" / "f"
    fine.mkdir(parents=True)
    with SamShardReader(sam_path) as sam, CamShardReader(cam_path) as reader:
        for image_id in ids:
            masks, cam = sam.read(image_id), reader.read(image_id)
            seed, _ = sams_seed(masks.masks, masks.level, cam.cam_caa, cam.classes, (cam.height, cam.width), gamma)
            Image.fromarray(seed).save(fine / f"{image_id}.png")
    spec = {"upstream": {"sam_masks": "s", "cams_fine_dump": "c"}, "settings": {"seeds_fine": {"gamma": gamma}}}
    (fine / "spec.json").write_text(json.dumps(spec))
    return store


def _finished_variant(stage_dir: Path) -> Path | None:
    """The newest finished variant folder of a stage (has spec.json, not a ``.partial`` scratch folder)."""
    done = [d for d in stage_dir.glob("*") if d.is_dir() and not d.name.startswith(".") and (d / "spec.json").exists()]
    return max(done, key=lambda d: d.stat().st_mtime) if done else None


def _storage(store: Path, fine: Path) -> None:
    """Bytes per image of the seed PNGs and of the shards the fine seeds were made from."""
    upstream = json.loads((fine / "spec.json").read_text())["upstream"]
    coarse = _finished_variant(store / "seeds_coarse")
    groups = {
        "seeds_fine PNGs": sorted(fine.glob("*.png")),
        "seeds_coarse PNGs": sorted(coarse.glob("*.png")) if coarse else [],
        "sam_masks shards": sorted((store / "sam_masks" / upstream["sam_masks"]).glob("shard-*.h5")),
        "cams_fine_dump shards": sorted((store / "cams_fine_dump" / upstream["cams_fine_dump"]).glob("shard-*.h5")),
    }
    n_images = len(groups["seeds_fine PNGs"])
    print(f"storage ({n_images} images, {store}):")
    for name, files in groups.items():
        total = sum(f.stat().st_size for f in files)
        print(f"  {name:<22} {len(files):>3} files {total / 1024:>8.1f} KiB  {total / max(n_images, 1):>9.0f} B/image")


def _real_cases(store: Path, fine: Path):
    """(image id, masks as SamShardReader returns them, levels, CAMs, classes, gamma, stored seed)."""
    spec = json.loads((fine / "spec.json").read_text())
    gamma = float(spec["settings"]["seeds_fine"]["gamma"])
    sam_dir = store / "sam_masks" / spec["upstream"]["sam_masks"]
    cam_dir = store / "cams_fine_dump" / spec["upstream"]["cams_fine_dump"]
    for sam_path in sorted(sam_dir.glob("shard-*.h5")):
        with SamShardReader(sam_path) as sam, CamShardReader(cam_dir / sam_path.name) as cams:
            for image_id in sam.ids():
                masks, cam = sam.read(image_id), cams.read(image_id)
                stored = np.array(Image.open(fine / f"{image_id}.png"))
                yield image_id, masks.masks, masks.level, cam.cam_caa, cam.classes, gamma, stored


def _synthetic_cases(data: Path, gamma: float, n_images: int | None = None, n_masks: int = 60):
    """Synthetic masks (bit-packed, as on disk) and smooth random CAMs on the real images' sizes and tags."""
    tags = json.loads((data / "labels.json").read_text())
    rng = np.random.default_rng(0)
    for image_id, classes in sorted(tags.items())[:n_images]:
        gt = np.array(Image.open(data / "SegmentationClass" / f"{image_id}.png"))
        masks, levels = synth_masks(gt, rng, n_masks)
        cams = synth_cams(len(classes), *gt.shape, rng)
        yield image_id, np.packbits(masks.reshape(len(masks), -1), axis=1), levels, cams, np.array(classes), gamma, None


def _bench(title: str, cases, args) -> None:
    print(f"\n{title}\n{'image':<13} {'HxW':>9} {'N':>3} {'P':>2} {'loop ms':>8} {'vec ms':>7} {'ratio':>6}")
    total_vec = total_loop = 0.0
    n_images, mismatches = 0, []
    for image_id, masks, levels, cams, classes, gamma, stored in cases:
        height, width = stored.shape if stored is not None else (None, None)
        if stored is None:
            height, width = _size_of(image_id, args.data)

        def run_vec():
            return sams_seed(masks, levels, cams, classes, (height, width), gamma, device=args.device)

        def run_loop():
            unpacked = masks
            if masks.dtype == np.uint8:
                unpacked = np.unpackbits(masks, axis=1, count=height * width).reshape(-1, height, width).view(bool)
            return sams_loop(unpacked, levels, cams, classes, gamma)

        t_vec, (seed_vec, info) = _best_time(run_vec, args.repeat, args.device)
        t_loop, (seed_loop, labels_loop) = _best_time(run_loop, args.repeat, "cpu")
        assert np.array_equal(info.label, labels_loop), f"{image_id}: mask labels differ"
        assert np.array_equal(seed_vec, seed_loop), f"{image_id}: seeds differ"
        if stored is not None and not np.array_equal(seed_vec, stored):
            flat = np.ptp(cams.reshape(len(cams), -1), axis=1) == 0
            mismatches.append(f"{image_id}{' (a constant CAM)' if flat.any() else ''}")
        total_vec, total_loop, n_images = total_vec + t_vec, total_loop + t_loop, n_images + 1
        print(f"{image_id:<13} {height:>4}x{width:<4} {len(masks):>3} {len(classes):>2} "
              f"{t_loop * 1e3:>8.1f} {t_vec * 1e3:>7.2f} {t_loop / t_vec:>5.1f}x")
    print(f"total: loop {total_loop * 1e3:.0f} ms, vectorised {total_vec * 1e3:.0f} ms "
          f"on {args.device} -> {total_loop / total_vec:.1f}x (identical seeds on all {n_images} images)")
    if mismatches:
        print(f"differs from the stored seed PNG on {len(mismatches)}/{n_images}: {', '.join(mismatches)}")


def _size_of(image_id: str, data: Path) -> tuple[int, int]:
    with Image.open(data / "SegmentationClass" / f"{image_id}.png") as png:
        return png.height, png.width


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
