"""Benchmark: the HTML report's build time and size, per image, extrapolated to VOC train_aug.

Runs on a finished run (default: the demo, ``make demo``) in ``--workdir`` (the folder holding config.yaml
and results/). Builds the report into a temporary folder three ways, each timed (wall and process CPU):

- cold: an empty thumbnail cache, every thumbnail drawn (best of ``--repeat`` fresh caches);
- warm: the same cache again, nothing changed (pages re-rendered, every thumbnail reused) -- the baseline;
- one column: the cache without the fine-seed thumbnails, as after a new seeds variant.

Prints per-image figures (CPU ms and kB on disk of the thumbnails) against the issue's targets (50 ms,
40 kB) and their extrapolation to VOC train_aug's 10,582 images, and the cold / warm ratio. The tiny demo
models make fewer SAM masks than the real SAM at paper settings, so the SAM column costs more there.

    .venv/bin/python benchmarks/bench_report.py [--workdir .] [--dataset demo] [--repeat 3] [--smoke]
"""
from __future__ import annotations

import argparse
import os
import shutil
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
VOC_TRAIN_AUG = 10_582


def _build(run, out: Path, cache: Path):
    from fmwsss.report.build import build_report

    wall, cpu = time.perf_counter(), time.process_time()
    result = build_report(run, out=out, cache_dir=cache, log=lambda msg: None)
    return result, time.perf_counter() - wall, time.process_time() - cpu


def _size(folder: Path) -> int:
    return sum(p.stat().st_size for p in folder.rglob("*") if p.is_file())


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--workdir", default=".", help="folder with config.yaml and a finished run's results/")
    parser.add_argument("--dataset", default="demo")
    parser.add_argument("--repeat", type=int, default=3, help="cold builds timed (best kept)")
    parser.add_argument("--smoke", action="store_true", help="one build of each kind (seconds)")
    args = parser.parse_args(argv)
    sys.path.insert(0, str(ROOT))
    workdir = Path(args.workdir).resolve()
    os.chdir(workdir)
    from fmwsss.pipeline.config import Config
    from fmwsss.pipeline.plan import Plan
    from fmwsss.report.collect import RunView
    import fmwsss.cams.shards  # noqa: F401  (imported before timing: the packages' imports are a fixed cost
    import fmwsss.sam.shards  # noqa: F401   of seconds per build, not a per-image one)

    run = RunView.from_plan(Plan(Config.from_file("config.yaml")), args.dataset, "results")
    if not (run.entry("seeds_fine") / "spec.json").is_file():
        print(f"no finished seeds_fine entry of {args.dataset} under {workdir}/results: "
              f"run `make demo` (or the pipeline) first", file=sys.stderr)
        return 2
    n = len(run.dataset.ids)
    repeat = 1 if args.smoke else max(1, args.repeat)
    scratch = Path(tempfile.mkdtemp(prefix=".bench-report-", dir=run.results))  # same file system: hard links
    try:
        cold = []
        for r in range(repeat):
            cold.append(_build(run, scratch / "report", scratch / f"cache-{r}"))
        result, cold_wall, cold_cpu = min(cold, key=lambda c: c[2])
        cache = scratch / f"cache-{cold.index((result, cold_wall, cold_cpu))}"
        report = scratch / "report"
        thumbs = _size(cache)
        total = _size(report)
        warm, warm_wall, warm_cpu = _build(run, report, cache)
        shutil.rmtree(cache / "seeds_fine")
        one, one_wall, one_cpu = _build(run, report, cache)
    finally:
        shutil.rmtree(scratch, ignore_errors=True)

    per_cpu, per_kb = 1000 * cold_cpu / n, thumbs / n / 1024
    print(f"report of {args.dataset}: {n} images, {result.drawn} thumbnails ({workdir})")
    print(f"cold build   : {cold_wall:6.2f} s wall, {cold_cpu:6.2f} s CPU (best of {repeat}), "
          f"{result.drawn} drawn")
    print(f"warm rebuild : {warm_wall:6.2f} s wall, {warm_cpu:6.2f} s CPU, {warm.drawn} drawn, "
          f"{warm.reused} reused  [baseline]")
    print(f"new seeds    : {one_wall:6.2f} s wall, {one_cpu:6.2f} s CPU, {one.drawn} drawn (one column)")
    print(f"ratio cold / warm CPU: {cold_cpu / max(warm_cpu, 1e-9):.1f}x; "
          f"one column / warm: {one_cpu / max(warm_cpu, 1e-9):.1f}x")
    print(f"size: report {total / 1024:.0f} kB, thumbnails {thumbs / 1024:.0f} kB")
    print(f"per image: {per_cpu:.1f} ms CPU (target 50), {per_kb:.1f} kB thumbnails (target 40), "
          f"{1000 * warm_cpu / n:.1f} ms CPU warm")
    print(f"VOC train_aug ({VOC_TRAIN_AUG} images), extrapolated linearly: cold {per_cpu * VOC_TRAIN_AUG / 60000:.1f} "
          f"CPU min, {per_kb * VOC_TRAIN_AUG / 1024:.0f} MB of thumbnails, warm rebuild "
          f"{warm_cpu / n * VOC_TRAIN_AUG / 60:.1f} CPU min")
    return 0


if __name__ == "__main__":
    sys.exit(main())
