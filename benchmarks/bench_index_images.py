"""What the planning-time image check costs the dataset index: header probes on a full-size VOC tree.

    .venv/bin/python benchmarks/bench_index_images.py --trees /work/synth [--repeat 3]   # VOC, 12,031 images
    .venv/bin/python benchmarks/bench_index_images.py --smoke                          # tiny tree, seconds

The index reads each image's header (``fmwsss.data.images.probe_header``) when it hashes the file, so the
check costs one ``PIL.Image.open`` per new or changed image and nothing on a warm run. Measured in one
process, against a baseline with the probe replaced by a constant (``off``: the index before the check),
in wall and CPU seconds (CPU: all threads of the process, less inflated by a loaded machine):
1. hashing every image with and without the probe (the added work alone, best of ``--repeat``);
2. a cold index build (open the dataset, hash, write) with and without the probe;
3. a warm refresh with the probe on: wall time and how many image headers it opened (0 expected).
The synthetic trees link every image to one of the 24 sample files, so the files are in the page cache: a cold
disk adds seek time to both columns (the probe reads the first kilobytes the sha256 pass reads anyway).
"""
from __future__ import annotations

import argparse
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

import fmwsss.data.index as index_module  # noqa: E402
from fmwsss.data.base import open_dataset  # noqa: E402
from make_synthetic_trees import SMOKE, Sizes, build_voc, default_samples  # noqa: E402


def _no_probe(_path) -> tuple[int, int]:
    return 500, 375


class Counting:
    """The real header probe, counting its calls."""

    def __init__(self):
        self.calls = 0
        self.real = index_module.probe_header

    def __call__(self, path):
        self.calls += 1
        return self.real(path)


def _best(fn, repeat: int) -> tuple[float, float]:
    """Best wall and best CPU seconds (all threads of this process) of ``repeat`` calls."""
    walls, cpus = [], []
    for _ in range(repeat):
        wall, cpu = time.perf_counter(), time.process_time()
        fn()
        walls.append(time.perf_counter() - wall)
        cpus.append(time.process_time() - cpu)
    return min(walls), min(cpus)


def _row(name: str, plain: tuple[float, float], probe: tuple[float, float]) -> str:
    cells = "".join(f"{a:9.2f}{b:9.2f}{b - a:9.2f}{b / a:7.2f}x" for a, b in zip(plain, probe))
    return f"{name:26}{cells}"


def measure(voc: Path, scratch: Path, repeat: int, cold_repeat: int) -> list[str]:
    quiet = lambda _m: None  # noqa: E731
    dataset = open_dataset("voc", voc, name="voc")
    images = sorted({str(dataset.image_path(i)) for i in sorted(set(dataset.ids).union(*dataset.splits.values()))})
    probe = index_module.probe_header

    def hash_all(with_probe: bool) -> None:
        index_module.hash_files(images, {}, quiet, "images", images=set(images) if with_probe else ())

    hashed_plain = _best(lambda: hash_all(False), repeat)
    hashed_probe = _best(lambda: hash_all(True), repeat)

    entry = {"type": "voc", "root": str(voc), "options": {}}

    def cold(tag: str) -> None:
        path = scratch / tag / index_module.INDEX_NAME
        path.unlink(missing_ok=True)
        index_module.refresh_index(path, "voc", entry, quiet)

    try:
        index_module.probe_header = _no_probe
        cold_plain = _best(lambda: cold("plain"), cold_repeat)
        index_module.probe_header = counting = Counting()
        cold_probe = _best(lambda: cold("probe"), cold_repeat)
        counted_cold = counting.calls // cold_repeat
        counting.calls = 0
        warm = _best(lambda: index_module.refresh_index(scratch / "probe" / index_module.INDEX_NAME, "voc", entry,
                                                        quiet), 1)
        counted_warm = counting.calls
    finally:
        index_module.probe_header = probe

    n = len(images)
    def head(first: str) -> str:
        return "".join(f"{h:>9}" for h in (first, "probe", "added")) + f"{'ratio':>8}"

    return [
        f"VOC tree {voc}: {n} images ({len(dataset.ids)} ids + val); best of {repeat} hashing passes, "
        f"{cold_repeat} cold builds",
        f"{'seconds':26}{head('wall:off')}{head('cpu:off')}",
        _row("hash every image", hashed_plain, hashed_probe),
        _row("cold index build", cold_plain, cold_probe),
        f"added per image: {(hashed_probe[0] - hashed_plain[0]) / n * 1e6:.0f} us wall, "
        f"{(hashed_probe[1] - hashed_plain[1]) / n * 1e6:.0f} us cpu; headers opened: cold {counted_cold}, "
        f"warm refresh {counted_warm} ({warm[0]:.2f} s wall, {warm[1]:.2f} s cpu)",
    ]


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--trees", type=Path, help="folder from make_synthetic_trees.py (its voc/ is used)")
    ap.add_argument("--smoke", action="store_true", help="a tiny VOC tree built in a temporary folder: seconds")
    ap.add_argument("--repeat", type=int, default=3, help="hashing passes per variant, best kept (default 3)")
    ap.add_argument("--cold-repeat", type=int, default=2, help="cold index builds per variant (default 2)")
    ap.add_argument("--samples", type=Path, default=None, help="shared sample folder (default as make_synthetic_trees)")
    args = ap.parse_args(argv)
    if args.trees is None and not args.smoke:
        ap.error("give --trees (built by benchmarks/make_synthetic_trees.py) or --smoke")
    with tempfile.TemporaryDirectory(prefix="bench_index_images-") as tmp:
        scratch = Path(tmp)
        if args.trees is not None:
            voc = args.trees / "voc"
        else:
            voc = build_voc(scratch / "voc", (args.samples or default_samples()) / "voc_sample", Sizes(**SMOKE))
        repeats = (1, 1) if args.smoke else (args.repeat, args.cold_repeat)
        for line in measure(voc, scratch / "indexes", *repeats):
            print(line)


if __name__ == "__main__":
    main()
