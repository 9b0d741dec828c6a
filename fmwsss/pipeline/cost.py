"""What a full run costs, projected from the timing records of a finished small run (``fmwsss cost``).

Why: a VOC or COCO run takes GPU days, and its cost is known only after it. A rehearsal (the 24 sample images
with the target's settings, fewer iterations) on the same GPU measures each stage's seconds per image or per
iteration (:mod:`fmwsss.io.timing`); the full run needs a known number of those. Pure: records, image counts
and settings in, rows out; ``fmwsss/cli/cost.py`` reads the disk and prints them.

Projection of one stage (``project``): unit cost × items DATASET needs + start-up × jobs, on one GPU. A
sharded stage runs one job per shard, each with its start-up, spread over N GPUs (at most one job a GPU at a
time, so never more than its number of jobs); training, DeepLab evaluation and the CPU score jobs are one job
each, which ``--gpus`` does not divide. The total adds the stages up, one after the other.
"""
from __future__ import annotations

import json
import math
from dataclasses import dataclass
from typing import Any, Mapping, Sequence

from fmwsss.io.timing import TimingRecord
from fmwsss.models.weights import get_weight
from fmwsss.pipeline.plan import LAYOUT_SECTIONS
from fmwsss.pipeline.stages import SCORES, STAGES

STANDARD_SPLITS: dict[tuple[str, str], int] = {
    ("voc", "train_aug"): 10_582,  # VOC 2012 + SBD SegmentationAug/train_aug.txt
    ("voc", "train"): 1_464,  # VOC 2012 Segmentation/train.txt
    ("voc", "val"): 1_449,  # VOC 2012 Segmentation/val.txt
    ("coco", "train2014"): 82_081,  # COCO 2014 train: 82,783 images less the 702 without annotations (no tags),
    ("coco", "val2014"): 40_137,  # which the loader skips; val: 40,504 less 367
}
"""Standard split sizes, used for a dataset that has no index on this machine (a GPU machine without the data):
(dataset type, split) -> images."""
DEFAULT_SPLIT = {"voc": "train_aug", "coco": "train2014"}
"""The split a dataset type runs on when its ``options`` name none (VOC: train_aug when its list exists)."""
VAL_SPLIT = {"voc": "val"}
"""The split a dataset type holds out as ``val`` for DeepLab (a COCO dataset is one split: it has none)."""

IMAGE_FAMILY = {"demo": "voc"}
"""Dataset types whose images are another type's (the demo is 24 VOC 2012 images)."""


def other_images(source_type: str, target_type: str) -> bool:
    """Whether two dataset types hold other images (sizes, objects and class counts differ, and with them the
    cost of an image): VOC-to-COCO per-image costs are estimates at best."""
    return IMAGE_FAMILY.get(source_type, source_type) != IMAGE_FAMILY.get(target_type, target_type)


ITERATIONS: dict[str, tuple[str, str]] = {
    "prompts_cls_train": ("prompts_cls", "iterations"),
    "prompts_seg_train": ("prompts_seg", "iterations"),
    "deeplab_train": ("segmenter", "iterations"),
}
"""Training stages: the setting that gives the iterations they run (their items)."""
ITERATION_COUNTS = frozenset({"iterations", "warmup_iters"})
"""Settings that only set how long a training runs: a source may cut them without changing the unit cost."""
COST_NEUTRAL = ITERATION_COUNTS | {"pretrained_backbone", "seed"}
"""Settings a source may change without changing the unit cost: iteration counts, and initialisation only
(the same architecture from ImageNet weights or from random ones; another random seed)."""
VAL_STAGES = ("deeplab_train", "deeplab_eval")
"""Stages that run only for a dataset with a 'val' split (as ``fmwsss status`` says: optional otherwise)."""


@dataclass(frozen=True)
class Counts:
    """How many images DATASET has: its run ids and its 'val' split (None: it has none), and from where."""

    run: int
    val: int | None
    source: str


def standard_counts(name: str, dataset_type: str, split: str | None) -> Counts:
    """DATASET's counts from ``STANDARD_SPLITS``; ``ValueError`` when the table has no such split."""
    split = split or DEFAULT_SPLIT.get(dataset_type, "")
    if (dataset_type, split) not in STANDARD_SPLITS:
        raise ValueError(f"no index for {name} on this machine and no standard split size for a {dataset_type} "
                         f"dataset's split {split!r}: run `fmwsss index {name}` where its data is")
    val = STANDARD_SPLITS[(dataset_type, VAL_SPLIT[dataset_type])] if dataset_type in VAL_SPLIT else None
    return Counts(STANDARD_SPLITS[(dataset_type, split)], val, f"standard split size, no index for {name}")


def row_names() -> list[str]:
    """The rows of the table: every compute stage in pipeline order, then every score job."""
    return list(STAGES) + [score.name for score in SCORES.values()]


@dataclass(frozen=True)
class Need:
    """What DATASET needs of one stage: ``items`` (None: the stage does not run, ``why``), in ``jobs`` jobs."""

    unit: str
    items: int | None
    jobs: int
    splits: bool  # its jobs spread over GPUs
    why: str = ""


def need(row: str, settings: Mapping[str, Any], counts: Counts) -> Need:
    """Items and jobs of ``row`` (a stage or score name) for a dataset with ``settings`` and ``counts``.

    Per-image stages run on the run's ids in ceil(ids / data.shard_size) shard jobs; the score jobs read the
    run's ids (those with ground truth); training runs its configured iterations (none in zero_shot mode);
    DeepLab evaluation predicts the 'val' split, and both DeepLab stages run only where there is one."""
    if row not in STAGES:
        return Need("image", counts.run, 1, False)
    if row in VAL_STAGES and counts.val is None:
        return Need("iteration" if row in ITERATIONS else "image", None, 1, False, "not run: no 'val' split")
    if row in ITERATIONS:
        section, key = ITERATIONS[row]
        if settings[section].get("mode") == "zero_shot":
            return Need("iteration", 0, 1, False, "zero_shot: nothing trained")
        return Need("iteration", int(settings[section][key]), 1, False)
    if row == "deeplab_eval":
        return Need("image", counts.val, 1, False)
    jobs = math.ceil(counts.run / settings["data"]["shard_size"])
    return Need("image", counts.run, jobs, True)


@dataclass(frozen=True)
class Measured:
    """A stage's figures from the source's records of jobs that computed something."""

    unit: str
    items: int
    seconds: float
    startup_seconds: float  # mean over those jobs
    jobs: int
    peak_memory_bytes: int  # the largest of those jobs'
    peak_memory_kind: str  # gpu when any job ran on a GPU, else rss

    @property
    def seconds_per_item(self) -> float:
        return self.seconds / self.items


def measured(records: Sequence[TimingRecord]) -> Measured | None:
    """The unit cost of a stage's jobs (their seconds over their items, a resumed job counting what it
    computed); None when no job computed an item (records of 0 items say nothing of the cost)."""
    done = [r for r in records if r.items > 0]
    if not done:
        return None
    kind = "gpu" if any(r.peak_memory_kind == "gpu" for r in done) else "rss"
    return Measured(
        unit=done[0].unit, items=sum(r.items for r in done), seconds=sum(r.seconds for r in done),
        startup_seconds=sum(r.startup_seconds for r in done) / len(done), jobs=len(done),
        peak_memory_bytes=max(r.peak_memory_bytes for r in done if r.peak_memory_kind == kind),
        peak_memory_kind=kind,
    )


def project(m: Measured, n: Need, gpus: int) -> tuple[float, float]:
    """(seconds on one GPU, seconds on ``gpus`` GPUs) of ``n`` at the cost ``m``: see the module docstring."""
    one = m.seconds_per_item * (n.items or 0) + m.startup_seconds * n.jobs
    return one, one / (min(gpus, n.jobs) if n.splits else 1)


def _leaves(value: Any, path: str) -> dict[str, Any]:
    if isinstance(value, dict):
        return {k: v for key in sorted(value) for k, v in _leaves(value[key], f"{path}.{key}").items()}
    return {path: value}


def model_architecture(name: str) -> str:
    """What of a model bears on cost: its architecture, not its weights (a full-size random test model costs
    what the real checkpoint of its architecture does)."""
    spec = get_weight(name)
    return f"{spec.kind} {spec.arch}"


def compared_settings(row: str, settings: Mapping[str, Any]) -> dict[str, Any]:
    """The settings of ``row`` whose values bear on its unit cost, as dotted paths: the stage's hashed sections
    but the shard layout, and its models' architectures; cost-neutral settings left out (``COST_NEUTRAL``)."""
    if row in STAGES:
        stage = STAGES[row]
        sections = [s for s in stage.sections if s not in LAYOUT_SECTIONS]
        found = {f"models.{w}": model_architecture(settings["models"][w]) for w in stage.weights}
    else:
        sections, found = list(SCORES[row.removeprefix("score_")].sections), {}
    for section in sections:
        found.update(_leaves(settings[section], section))
    return {path: v for path, v in found.items() if path.rsplit(".", 1)[-1] not in COST_NEUTRAL}


def setting_differences(row: str, source: Mapping[str, Any], target: Mapping[str, Any]) -> list[str]:
    """``"path: source value vs target value"`` for each compared setting of ``row`` that differs."""
    a, b = compared_settings(row, source), compared_settings(row, target)
    return [f"{path}: {_text(a.get(path))} vs {_text(b.get(path))}"
            for path in sorted(a.keys() | b.keys()) if a.get(path) != b.get(path)]


SHOWN_CHARS = 40
"""A longer list is shown by its length (two lists of background names that differ somewhere say little more)."""


def _text(value: Any) -> str:
    """A setting as config.yaml writes it (``true``, ``[0.5, 1.0]``, a bare string); a long list by its length."""
    text = value if isinstance(value, str) else json.dumps(value)
    return f"[{len(value)} items]" if isinstance(value, list) and len(text) > SHOWN_CHARS else text


def inputs_of(row: str) -> tuple[str, ...]:
    """The stages whose results ``row`` reads (a score reads the stage it scores)."""
    return STAGES[row].upstream if row in STAGES else (row.removeprefix("score_"),)


def made_differently(stage: str, source: Mapping[str, Any], target: Mapping[str, Any]) -> bool:
    """Whether ``stage``'s results come from other settings in ``source`` than in ``target``: its own, or those
    of any stage upstream of it."""
    return bool(setting_differences(stage, source, target)) or any(
        made_differently(u, source, target) for u in STAGES[stage].upstream)


def differences(row: str, source: Mapping[str, Any], target: Mapping[str, Any]) -> list[str]:
    """Why ``row``'s projection may not transfer from ``source`` to ``target`` settings: its own settings that
    differ (``setting_differences``), then its inputs made with other settings (a stage's cost depends on its
    inputs too: the seeds' on the number of SAM masks)."""
    inputs = [u for u in inputs_of(row) if made_differently(u, source, target)]
    named = [f"inputs from {', '.join(inputs)} made with other settings"] if inputs else []
    return setting_differences(row, source, target) + named


@dataclass(frozen=True)
class Row:
    """One line of the table; ``one_gpu`` / ``n_gpus`` None when there is no projection (``why`` says)."""

    stage: str
    need: Need
    measured: Measured | None
    one_gpu: float | None
    n_gpus: float | None
    why: str
    differs: tuple[str, ...]


def rows(source: Mapping[str, Any], target: Mapping[str, Any], counts: Counts,
         records: Mapping[str, Sequence[TimingRecord]], absent: Mapping[str, str], gpus: int) -> list[Row]:
    """The table: for every row, DATASET's need (``target`` settings, ``counts``) at the source's measured cost
    (``records`` by row name; ``absent``: rows the source did not run, with why)."""
    out = []
    for name in row_names():
        n = need(name, target, counts)
        m = measured(records.get(name, ()))
        differs = tuple(differences(name, source, target))
        if n.items is None:
            out.append(Row(name, n, m, None, None, n.why, differs))
        elif name in absent:
            out.append(Row(name, n, None, None, None, f"not measured: {absent[name]}", differs))
        elif m is None:
            why = ("not measured: its jobs computed nothing (their results were reused)" if records.get(name)
                   else "not measured: no timing record")
            out.append(Row(name, n, None, None, None, why, differs))
        else:
            one, many = project(m, n, gpus)
            out.append(Row(name, n, m, one, many, n.why, differs))
    return out


def total(table: Sequence[Row]) -> tuple[float, float]:
    """The projected stages one after the other: (one GPU, N GPUs) seconds."""
    projected = [r for r in table if r.one_gpu is not None]
    return sum(r.one_gpu for r in projected), sum(r.n_gpus for r in projected)
