"""The report's HTML pages as strings: the summary page (index.html) and the gallery shell (gallery.html).

Pure functions of collected data; every value is escaped. The pages link only files beside them.
"""
from __future__ import annotations

from html import escape
from typing import Any, Mapping, Sequence

from fmwsss.models.weights import WEIGHTS
from fmwsss.report.collect import Entry, RunView, background_shares, scored_on, split_name
from fmwsss.report.settings_diff import format_value, settings_diff

VARIANT_DIFF_LIMIT = 12  # settings shown per variant row; the linked spec.json has all of them


def _pct(v: float | None) -> str:
    return "–" if v is None else f"{100 * v:.1f}"


def _seconds(v: float | None) -> str:
    if v is None:
        return "–"
    return f"{v:.1f} s" if v < 120 else f"{v / 60:.1f} min" if v < 7200 else f"{v / 3600:.1f} h"


def _page(title: str, body: str, scripts: Sequence[str] = ()) -> str:
    tags = "".join(f'<script src="{escape(s)}"></script>' for s in scripts)
    return (f'<!DOCTYPE html>\n<html lang="en"><head><meta charset="utf-8"><title>{escape(title)}</title>'
            f'<link rel="icon" href="data:,"><link rel="stylesheet" href="report.css"></head>\n'
            f'<body>{body}{tags}</body></html>\n')


def spec_link(entry: Entry) -> str:
    """Path (relative to report/) of the copy of an entry's spec.json."""
    return f"specs/{entry.stage}-{entry.key}.json"


def _headline(entry: Entry) -> str:
    return ", ".join(f"{escape(k)} {_pct(v)}" for k, v in entry.headline.items()) or "–"


def banner(run: RunView) -> str:
    """The warning atop every page when the run used random-weight test models; says which ones, and for
    full-size ones that times and memory are real while the numbers are not."""
    if not run.test_models:
        return ""
    full_size = [m for m in run.test_models if not WEIGHTS[m].tiny]
    cost = (f" {escape(', '.join(full_size))}: the real architectures, so their times and memory are a real run's; "
            f"their numbers are not." if full_size else "")
    return (f'<div class="banner" id="test-models-banner">This run used random-weight TEST models '
            f'({escape(", ".join(run.test_models))}): it shows the mechanics of the pipeline, not the quality '
            f'of the method (mIoU near chance).{cost}</div>')


def dataset_label(name: str, kind: str, preset: str) -> str:
    """The dataset's name with its type and preset, each word once: "demo (type and preset demo)",
    "voc_x (type voc, preset voc)"; the three equal names of a stock dataset read as one ("voc")."""
    if kind == preset == name:
        return name
    if kind == preset:
        return f"{name} (type and preset {kind})"
    return f"{name} (type {kind}, preset {preset})"


def _scored_on(e: Entry, run: RunView) -> str:
    """Which images a stage's numbers come from: the scored split and count, or the segmenter's training set."""
    if e.stage == "deeplab_train" and e.done:
        held_out = "all but val" if run.dataset.splits.get("val") else "no val split held out"
        arch = ((e.spec or {}).get("settings") or {}).get("segmenter", {}).get("arch")
        return f"{escape(arch) + ' ' if arch else ''}trained on {run.segmenter_train_count} images ({held_out})"
    found = scored_on(e.stage, e.metrics)
    return "–" if found is None else f"scored on {escape(found[0])}, {found[1]} images"


MOSTLY_BACKGROUND = 0.95  # a prediction this much background is (nearly) black: the pages say why


def segmenter_note(run: RunView, scores: Mapping[str, dict]) -> str:
    """A paragraph when the segmenter predicts (nearly) only background on val, so that its black gallery
    cells are explained where they are seen; with random-weight test models, why that is expected."""
    found = background_shares(scores["segmenter"]["confusion"]) if "segmenter" in scores else None
    if found is None or found[0] < MOSTLY_BACKGROUND:
        return ""
    predicted, truth = found
    seeds = background_shares(scores["seeds fine"]["confusion"]) if "seeds fine" in scores else None
    seeds_text = (f"; the fine seeds on {escape(split_name(scores['seeds fine']['split']))}, "
                  f"{len(scores['seeds fine']['images'])} images: {_pct(seeds[0])} %" if seeds else "")
    text = (f"The segmenter predicts background on {_pct(predicted)} % of the "
            f"{escape(split_name(scores['segmenter']['split']))} pixels (ground truth: {_pct(truth)} %{seeds_text}).")
    if run.test_models:
        text += (" Its seeds come from random-weight test models: a seed region's class is one of its image's "
                 "tags, picked by random features, so what decides it is the tags, which the segmenter never sees. "
                 "On images it has not seen it falls back to the seeds' most frequent class, background; trained "
                 "longer it converges there (docs/method.md §14). Expected of the test models; with real weights "
                 "(make demo-pretrained) the seeds follow the objects.")
    return f'<p class="note" id="segmenter-note">{text}</p>'


def summary_section(run: RunView, current: Mapping[str, Entry], num_images: int, note: str = "") -> str:
    ds = run.dataset
    rows = []
    for stage, e in current.items():
        state = "done" if e.done else "not built"
        spec = f'<a href="{spec_link(e)}">spec.json</a>' if e.done else "–"
        rows.append(f'<tr><td>{escape(stage)}</td><td><code>{escape(e.key)}</code></td><td>{state}</td>'
                    f'<td>{spec}</td><td class="num">{_seconds(e.seconds)}</td><td>{_headline(e)}</td>'
                    f'<td>{_scored_on(e, run)}</td></tr>')
    total = sum(e.seconds for e in current.values() if e.seconds is not None)
    return (
        f'<h2 id="summary">Summary</h2><table class="facts">'
        f'<tr><th>dataset</th><td>{escape(dataset_label(run.name, ds.type, run.preset or ds.type))}</td></tr>'
        f'<tr><th>images</th><td>{num_images} (split {escape(run.split)})</td></tr>'
        f'<tr><th>classes</th><td>{ds.num_classes} + background</td></tr>'
        f'<tr><th>models</th><td>{escape(", ".join(f"{k}: {v}" for k, v in run.settings["models"].items()))}</td></tr>'
        f'<tr><th>run time</th><td>{_seconds(total)} (sum of the jobs\' benchmark times)</td></tr></table>'
        f'<table id="stages"><tr><th>stage</th><th>key</th><th>state</th><th>settings</th><th>run time</th>'
        f'<th>metrics (%)</th><th>images</th></tr>{"".join(rows)}</table>{note}'
    )


def iou_section(scores_metrics: Mapping[str, list[dict]], class_names: Sequence[str],
                mious: Mapping[str, float | None], scored: Mapping[str, str] | None = None) -> str:
    """Per-class IoU table: one column per scored prediction set (``label -> metrics per_class list``);
    ``scored`` (label -> "val, 8 images") goes under each column's name, as the columns may differ in split."""
    if not scores_metrics:
        return '<h2 id="iou">Per-class IoU</h2><p class="muted">No ground truth scored yet.</p>'
    labels = list(scores_metrics)
    scored = scored or {}
    head = "".join(f'<th>{escape(label)}' + (f'<br><span class="split">{escape(scored[label])}</span>'
                                             if label in scored else "") + "</th>" for label in labels)
    rows = []
    for c, name in enumerate(class_names):
        cells = "".join(f'<td class="num">{_pct(scores_metrics[label][c]["iou"])}</td>' for label in labels)
        rows.append(f"<tr><td>{c}</td><td>{escape(name)}</td>{cells}</tr>")
    foot = "".join(f'<td class="num"><b>{_pct(mious[label])}</b></td>' for label in labels)
    return (f'<h2 id="iou">Per-class IoU (%)</h2><table id="iou-table"><tr><th>id</th><th>class</th>{head}</tr>'
            f'{"".join(rows)}<tr><td></td><td><b>mIoU</b></td>{foot}</tr></table>')


def plots_section(title: str, anchor: str, images: Sequence[tuple[str, str]], empty: str) -> str:
    if not images:
        return f'<h2 id="{anchor}">{escape(title)}</h2><p class="muted">{escape(empty)}</p>'
    tags = "".join(f'<img src="{escape(src)}" alt="{escape(alt)}">' for src, alt in images)
    return f'<h2 id="{anchor}">{escape(title)}</h2><div class="plots">{tags}</div>'


def variants_section(variants: Mapping[str, list[Entry]], current_specs: Mapping[str, dict]) -> str:
    """The ablation table: per stage, every store entry, its settings that differ from the current
    variant's, and its metrics."""
    parts = ['<h2 id="variants">Variants in the store</h2><p class="muted">Every complete store entry of this '
             'dataset; "differs" lists its settings that are not the current config\'s (this entry → current). '
             'Upstream keys are left out: the upstream stage\'s rows show what changed there.</p>'
             '<table id="variants-table"><tr><th>stage</th><th>key</th><th>differs from current</th>'
             '<th>run time</th><th>metrics (%)</th></tr>']
    for stage, found in variants.items():
        for e in found:
            if e.current:
                diff = "<i>current</i>"
            else:
                rows = settings_diff(e.spec or {}, current_specs[stage])
                shown = [f"<code>{escape(k)}</code>: {escape(format_value(a))} → {escape(format_value(b))}"
                         for k, a, b in rows[:VARIANT_DIFF_LIMIT]]
                if len(rows) > VARIANT_DIFF_LIMIT:
                    shown.append(f"… {len(rows) - VARIANT_DIFF_LIMIT} more")
                diff = "<br>".join(shown) or "settings equal; upstream differs"
            cls = ' class="current"' if e.current else ""
            parts.append(f'<tr{cls} data-stage="{escape(stage)}"><td>{escape(stage)}</td>'
                         f'<td><a href="{spec_link(e)}"><code>{escape(e.key)}</code></a></td><td>{diff}</td>'
                         f'<td class="num">{_seconds(e.seconds)}</td><td>{_headline(e)}</td></tr>')
    parts.append("</table>")
    return "".join(parts)


def index_page(run: RunView, sections: Sequence[str]) -> str:
    nav = ('<nav><a href="#summary">summary</a><a href="#iou">per-class IoU</a><a href="#confusion">confusion</a>'
           '<a href="#curves">training curves</a><a href="#variants">variants</a>'
           '<a href="gallery.html">gallery</a><a href="gallery.html?sort=worst">gallery, worst first</a></nav>')
    body = f"<h1>fmwsss report: {escape(run.name)}</h1>{banner(run)}{nav}{''.join(sections)}"
    return _page(f"fmwsss report: {run.name}", body)


def gallery_page(run: RunView, legend: Sequence[tuple[str, tuple[int, int, int]]], note: str = "") -> str:
    """The gallery shell; gallery.js fills the table from gallery-data.js. ``note``: :func:`segmenter_note`."""
    chips = "".join(f'<span style="background: rgb{rgb}; color: {"#000" if sum(rgb) > 380 else "#fff"}">'
                    f'{escape(name)}</span>' for name, rgb in legend)
    body = (f'<h1>fmwsss gallery: {escape(run.name)}</h1>{banner(run)}<nav><a href="index.html">summary</a></nav>'
            f'<div class="controls"><label>order <select id="sort"><option value="id">by id</option>'
            f'<option value="worst">worst first (the first mIoU column)</option></select></label>'
            f'<label>class <select id="cls"><option value="">all</option></select></label>'
            f'<span id="pager" class="pager"></span></div>'
            f'<div class="legend">labels: {chips}</div><p class="muted">CAM heatmaps: jet colour map over the grey '
            f'photo, each divided by its maximum. SAM masks: red whole, green part, blue sub-part; smaller masks '
            f'on top. A segmenter prediction that is (nearly) all background, which is black, says so '
            f'under it. Click a thumbnail to enlarge it.</p>{note}'
            f'<table id="gallery"><thead><tr></tr></thead><tbody></tbody></table>')
    return _page(f"fmwsss gallery: {run.name}", body, scripts=("gallery-data.js", "gallery.js"))


def gallery_data_js(data: Mapping[str, Any]) -> str:
    """The gallery's data as a script (a JSON file cannot be fetched from a file:// page)."""
    import json

    return "window.FMWSSS_GALLERY = " + json.dumps(data, separators=(",", ":")) + ";\n"
