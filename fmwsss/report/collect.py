"""Everything the report shows, read from disk: the plan's current keys, the store entries of every variant
with their spec.json and metrics, scores (confusion matrices, per-image IoU), benchmark times, loss curves.
Metrics and scores of a CAM or seed stage live in its score entry (``store/score_<stage>/<key>/``).

Nothing here draws or writes; the plan is read once into a :class:`RunView` so the rest of the report
depends only on plain data (the store layout ``results/{dataset}/store/{stage}/{key}/``).
"""
from __future__ import annotations

import csv
import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from fmwsss.models.weights import is_test_model
from fmwsss.pipeline.stages import SCORES, STAGES

# (stage, scores file, label) of every scored prediction set, in pipeline order
SCORED = (
    ("cams_coarse_dump", "scores_cam_raw.json", "CAM coarse (raw)"),
    ("cams_coarse_dump", "scores_cam_caa.json", "CAM coarse (CAA)"),
    ("seeds_coarse", "scores.json", "seeds coarse"),
    ("cams_fine_dump", "scores_cam_raw.json", "CAM fine (raw)"),
    ("cams_fine_dump", "scores_cam_caa.json", "CAM fine (CAA)"),
    ("seeds_fine", "scores.json", "seeds fine"),
    ("deeplab_eval", "scores_single_scale.json", "segmenter"),
    ("deeplab_eval", "scores_ms_flip.json", "segmenter ms+flip"),
)
LOSS_STAGES = (("prompts_cls_train", "prompt learning, classification"),
               ("prompts_seg_train", "prompt learning, segmentation"),
               ("deeplab_train", "segmenter training"))


@dataclass
class RunView:
    """The plan's view of one dataset: what the current config asks for."""

    name: str
    results: Path  # results/{dataset}
    dataset: Any  # fmwsss.data.Dataset
    settings: dict[str, Any]
    keys: dict[str, str]
    specs: dict[str, dict]
    score_keys: dict[str, str] = field(default_factory=dict)  # scored stage -> current score entry's key
    preset: str = ""  # the config preset the settings start from

    @classmethod
    def from_plan(cls, plan, name: str, results: str | Path = "results") -> "RunView":
        ds = plan.get(name)
        return cls(name, Path(results) / name, ds.dataset, ds.settings, dict(ds.keys), dict(ds.specs),
                   dict(ds.score_keys), preset=plan.config.datasets[name]["preset"])

    def entry(self, stage: str, key: str | None = None) -> Path:
        return self.results / "store" / stage / (key or self.keys[stage])

    def scored(self, stage: str, key: str | None = None) -> Path:
        """Where an entry's metrics.json and scores*.json are read: the current score entry for the current
        entry of a scored stage; else the entry itself (an older variant: links to the score it last had)."""
        if stage in self.score_keys and key in (None, self.keys[stage]):
            return self.results / "store" / SCORES[stage].name / self.score_keys[stage]
        return self.entry(stage, key)

    @property
    def test_models(self) -> list[str]:
        """The random-weight test models (tiny or full-size) the settings name: the pages say so."""
        return sorted(v for v in self.settings.get("models", {}).values() if is_test_model(str(v)))

    @property
    def split(self) -> str:
        ids = list(self.dataset.ids)
        return next((n for n, s in self.dataset.splits.items() if list(s) == ids), "all ids")

    @property
    def segmenter_train_count(self) -> int:
        """How many ids train the segmenter: every id outside the held-out val split (as deeplab_train)."""
        val = set(self.dataset.splits.get("val", []))
        return sum(1 for i in self.dataset.ids if i not in val)


@dataclass
class Entry:
    """One store entry (a variant of a stage) and what it reports."""

    stage: str
    key: str
    path: Path
    spec: dict | None
    metrics: dict | None
    seconds: float | None  # summed job time of its benchmark TSVs
    current: bool
    done: bool
    headline: dict[str, float | None] = field(default_factory=dict)


def read_json(path: Path) -> Any:
    """A JSON file, or None when it does not exist (a stage not built yet)."""
    if not path.is_file():
        return None
    try:
        return json.loads(path.read_text())
    except json.JSONDecodeError as exc:
        raise ValueError(f"{path}: not valid JSON ({exc})") from None


def bench_seconds(results: Path, stage: str, key: str) -> float | None:
    """Sum of the ``s`` column of a stage entry's Snakemake benchmark TSVs (one per job), None without any."""
    base = results / "benchmarks" / stage
    files = [base / f"{key}.tsv", *sorted((base / key).glob("*.tsv"))] if base.is_dir() else []
    total, found = 0.0, False
    for path in files:
        if not path.is_file():
            continue
        with open(path, newline="") as fh:
            for row in csv.DictReader(fh, delimiter="\t"):
                total += float(row["s"])
                found = True
    return total if found else None


def headline(stage: str, metrics: dict | None) -> dict[str, float | None]:
    """The mIoU figures a stage's metrics.json holds, by label (empty without ground truth)."""
    if not metrics:
        return {}
    if stage in ("cams_coarse_dump", "cams_fine_dump"):
        return {f"{kind.removeprefix('cam_')} mIoU": metrics[kind].get("miou")
                for kind in ("cam_raw", "cam_caa") if isinstance(metrics.get(kind), dict)
                and metrics[kind].get("ground_truth")}
    if stage == "deeplab_eval":
        return {f"{mode} mIoU": v for mode, v in (metrics.get("miou") or {}).items()}
    return {"mIoU": metrics["miou"]} if metrics.get("ground_truth") else {}


def scored_on(stage: str, metrics: dict | None) -> tuple[str, int] | None:
    """(split, images scored) behind a stage's metrics, None when it has no ground-truth scores.

    The split is :func:`split_name` of what the scoring wrote; the count is the images actually scored
    (those with ground truth), which is what the mIoU averages over.
    """
    if not metrics:
        return None
    if stage in ("cams_coarse_dump", "cams_fine_dump"):
        metrics = next((metrics[k] for k in ("cam_raw", "cam_caa") if isinstance(metrics.get(k), dict)), None)
        if not metrics:
            return None
    if stage != "deeplab_eval" and not metrics.get("ground_truth"):
        return None
    count = metrics.get("num_scored", metrics.get("num_images"))
    if not count or "split" not in metrics:
        return None
    return split_name(metrics["split"]), int(count)


def split_name(written: str) -> str:
    """The bare split of a split as the scoring writes it: "demo: all (24 images with ground truth)" → "all"."""
    return str(written).split(": ", 1)[-1].split(" (", 1)[0]


def _entry(run: RunView, stage: str, key: str) -> Entry:
    path = run.entry(stage, key)
    spec = read_json(path / "spec.json")
    metrics = read_json(run.scored(stage, key) / "metrics.json")
    return Entry(stage, key, path, spec, metrics, bench_seconds(run.results, stage, key),
                 current=key == run.keys[stage], done=spec is not None, headline=headline(stage, metrics))


def entries(run: RunView, stage: str) -> list[Entry]:
    """Every complete store entry of ``stage`` (spec.json written), current variant first."""
    root = run.results / "store" / stage
    keys = sorted(p.name for p in root.iterdir() if p.is_dir() and not p.name.startswith(".")) if root.is_dir() else []
    found = [_entry(run, stage, k) for k in keys]
    found = [e for e in found if e.done]
    return sorted(found, key=lambda e: (not e.current, e.key))


def current_entries(run: RunView) -> dict[str, Entry]:
    """Each stage's current entry (``done`` False when the current config's variant is not built)."""
    return {stage: _entry(run, stage, run.keys[stage]) for stage in STAGES}


def scores(run: RunView) -> dict[str, dict]:
    """label -> scores JSON (confusion matrix, per-image IoU) of each current scored prediction set."""
    found = {}
    for stage, filename, label in SCORED:
        data = read_json(run.scored(stage) / filename)
        if data is not None:
            found[label] = data
    return found


def background_shares(confusion: list[list[int]]) -> tuple[float, float] | None:
    """(share of the predicted pixels that are background, share of the ground-truth pixels that are) of a
    confusion matrix (rows ground truth, columns prediction); None when it counts no pixel."""
    total = sum(map(sum, confusion))
    if not total:
        return None
    return sum(row[0] for row in confusion) / total, sum(confusion[0]) / total


def loss_curves(run: RunView) -> dict[str, list[tuple[int, float]]]:
    """title -> (iteration, loss) rows of each current training stage's loss.csv."""
    curves = {}
    for stage, title in LOSS_STAGES:
        path = run.entry(stage) / "loss.csv"
        if path.is_file():
            with open(path, newline="") as fh:
                curves[title] = [(int(r["iteration"]), float(r["loss"])) for r in csv.DictReader(fh)]
    return curves


def per_class_iou(current: dict[str, Entry]) -> tuple[dict[str, list[dict]], dict[str, float | None]]:
    """label -> metrics.json ``per_class`` rows and label -> mIoU, for each scored current prediction set."""
    tables, mious = {}, {}
    for stage, filename, label in SCORED:
        m = current[stage].metrics
        if not m:
            continue
        if stage in ("cams_coarse_dump", "cams_fine_dump"):
            m = m.get(filename.removeprefix("scores_").removesuffix(".json"))
        elif stage == "deeplab_eval":
            m = (m.get("metrics") or {}).get(filename.removeprefix("scores_").removesuffix(".json"))
        if m and m.get("per_class"):
            tables[label], mious[label] = m["per_class"], m.get("miou")
    return tables, mious
