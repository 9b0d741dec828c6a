"""Build results/{dataset}/report/: collect, draw what is missing, render, then swap the folder in whole.

The thumbnail cache (``results/{dataset}/.report-cache/``) lives outside report/ so that Snakemake, which
removes a directory output before rerunning its job, cannot throw it away; report/thumbs/ holds hard links
into it (no second copy on disk). The new report is written beside the old one and renamed over it, so a
killed build never leaves a half-written report.
"""
from __future__ import annotations

import os
import shutil
import time
from dataclasses import dataclass
from importlib import resources
from pathlib import Path
from typing import Callable

from fmwsss.io.atomic import atomic_write_bytes
from fmwsss.pipeline.stages import STAGES
from fmwsss.report import collect, html, svg
from fmwsss.report.gallery import ThumbCache, build_gallery, link_thumbs

CONFUSION_PLOTS = ("seeds coarse", "seeds fine", "segmenter ms+flip")


@dataclass(frozen=True)
class BuildResult:
    path: Path  # report/index.html
    images: int
    drawn: int  # thumbnails drawn in this build
    reused: int  # thumbnails found in the cache
    seconds: float


def _write(path: Path, text: str) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text)


def _swap_in(tmp: Path, out: Path) -> None:
    old = out.with_name(f".{out.name}.old-{os.getpid()}")
    if out.exists():
        os.replace(out, old)
    os.replace(tmp, out)
    shutil.rmtree(old, ignore_errors=True)


def _legend(class_names: list[str]) -> list[tuple[str, tuple[int, int, int]]]:
    from fmwsss.data.palette import palette_for

    pal = palette_for(len(class_names) - 1)
    rgb = [tuple(pal[3 * i: 3 * i + 3]) for i in range(256)]
    return [(name, rgb[i]) for i, name in enumerate(class_names)] + [("void / ignored", rgb[255])]


def build_report(run: collect.RunView, out: Path | None = None, cache_dir: Path | None = None,
                 log: Callable[[str], None] = print) -> BuildResult:
    """Write the report of ``run`` to ``out`` (default ``results/{dataset}/report``); returns what it did."""
    tic = time.perf_counter()
    out = Path(out or run.results / "report")
    cache = ThumbCache(Path(cache_dir or run.results / ".report-cache"))
    tmp = out.with_name(f".{out.name}.tmp-{os.getpid()}")
    shutil.rmtree(tmp, ignore_errors=True)
    tmp.mkdir(parents=True)
    try:
        current = collect.current_entries(run)
        variants = {stage: collect.entries(run, stage) for stage in STAGES}
        scores = collect.scores(run)
        class_names = ["background", *run.dataset.class_names]
        gallery = build_gallery(run, cache, {s: e.done for s, e in current.items()}, scores, log=log)
        link_thumbs(cache, tmp / "thumbs")
        (tmp / "specs").mkdir()
        for found in variants.values():
            for e in found:
                shutil.copyfile(e.path / "spec.json", tmp / html.spec_link(e))
        curves = []
        for title, points in collect.loss_curves(run).items():
            name = f"plots/loss-{len(curves)}.svg"
            _write(tmp / name, svg.line_plot(points, title))
            curves.append((name, f"loss curve: {title}"))
        heatmaps = []
        for label in CONFUSION_PLOTS:
            if label in scores:
                name = f"plots/confusion-{label.replace(' ', '-').replace('+', '')}.svg"
                _write(tmp / name, svg.confusion_heatmap(scores[label]["confusion"], class_names,
                                                         f"confusion: {label}"))
                heatmaps.append((name, f"confusion matrix: {label}"))
        tables, mious = collect.per_class_iou(current)
        scored = {label: f"{collect.split_name(data['split'])}, {len(data['images'])} images"
                  for label, data in scores.items()}
        note = html.segmenter_note(run, scores)
        sections = [
            html.summary_section(run, current, len(run.dataset.ids), note),
            html.iou_section(tables, class_names, mious, scored),
            html.plots_section("Confusion matrices", "confusion", heatmaps, "No ground truth scored yet."),
            html.plots_section("Training curves", "curves", curves, "No training stage has a loss.csv yet."),
            html.variants_section(variants, run.specs),
        ]
        _write(tmp / "index.html", html.index_page(run, sections))
        _write(tmp / "gallery.html", html.gallery_page(run, _legend(class_names), note))
        _write(tmp / "gallery-data.js", html.gallery_data_js(gallery))
        static = resources.files("fmwsss.report") / "static"
        for name in ("report.css", "gallery.js"):
            atomic_write_bytes(tmp / name, (static / name).read_bytes())
        _swap_in(tmp, out)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    seconds = time.perf_counter() - tic
    log(f"report: {out / 'index.html'} ({len(run.dataset.ids)} images, {cache.drawn} thumbnails drawn, "
        f"{cache.reused} reused, {seconds:.1f} s)")
    return BuildResult(out / "index.html", len(run.dataset.ids), cache.drawn, cache.reused, seconds)


def report_job(plan, dataset: str, out: str, log_path: str) -> None:
    """The Snakemake rule ``report``: build the report of ``dataset`` into ``out``, logging to ``log_path``."""
    Path(log_path).parent.mkdir(parents=True, exist_ok=True)
    with open(log_path, "w", buffering=1) as fh:
        run = collect.RunView.from_plan(plan, dataset, Path(out).parent.parent)
        build_report(run, Path(out), log=lambda msg: print(msg, file=fh, flush=True))
