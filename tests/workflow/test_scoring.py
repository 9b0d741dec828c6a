"""Scoring lives in entries of its own (store/score_<stage>/): an eval setting or a corrected training mask
reruns only scoring jobs (dry runs with the shipped rerun triggers, on copies of the shared demo run), and the
stable metrics paths follow the current score."""
from __future__ import annotations

import json
from pathlib import Path

import pytest

from fmwsss.data.demo import demo_splits
from fmwsss.pipeline.stages import SCORES

from .conftest import Workdir
from .test_dataset_index import _change_gt

pytestmark = pytest.mark.e2e

TARGETS = ("results/demo/seeds", "results/demo/deeplab")
SCORE_ENTRIES = {s.name for s in SCORES.values()}
CAM_SCORES = {"score_cams_coarse_dump", "score_cams_fine_dump"}
# A new score re-points the metrics links of its stage's alias (the alias rule's `scores` param); an alias
# whose upstream alias was re-made is re-made too (alias_inputs), down the alias chain to the targets.
CAM_ALIASES = {"cams_coarse", "seeds_coarse", "cams_fine", "seeds", "deeplab"}
DEMO_PRESET_END = "    segmenter:\n      arch: tiny\n"


def _scheduled(wd: Workdir) -> tuple[set[str], set[str]]:
    """(store folders a dry run writes into, other paths it writes), for the two main targets."""
    updated = wd.updated(*TARGETS)
    store = {p.split("/")[3] for p in updated if p.startswith("results/demo/store/")}
    return store, {p for p in updated if not p.startswith("results/demo/store/")}


def _compute_files(wd: Workdir) -> dict[Path, int]:
    """mtime of every file of every compute entry (score links excluded)."""
    store = wd.path / "results/demo/store"
    return {p: p.stat().st_mtime_ns for p in store.rglob("*")
            if p.is_file() and not p.is_symlink() and not p.relative_to(store).parts[0].startswith("score_")}


def _metrics(wd: Workdir, alias: str) -> dict:
    return json.loads((wd.path / "results/demo" / alias / "metrics.json").read_text())


@pytest.mark.slow
def test_eval_change_reruns_only_cam_scoring_and_repoints_metrics(demo_run, tmp_path):
    wd = demo_run.copy(tmp_path / "wd")
    original = wd.config_text()
    assert DEMO_PRESET_END in original
    compute = _compute_files(wd)
    seeds_before = _metrics(wd, "seeds")
    wd.write_config(original.replace(DEMO_PRESET_END, "    eval: {cam_bg_power: 2.0}\n" + DEMO_PRESET_END))
    store, other = _scheduled(wd)
    assert store == CAM_SCORES  # seed scores read no eval setting; nothing is recomputed
    assert other == {f"results/demo/{a}" for a in CAM_ALIASES}

    wd.snakemake("--cores", "2", *TARGETS)
    assert _metrics(wd, "cams_coarse")["cam_bg_power"] == _metrics(wd, "cams_fine")["cam_bg_power"] == 2.0
    assert _metrics(wd, "seeds") == seeds_before
    assert _compute_files(wd) == compute  # no compute file rewritten or re-timestamped

    wd.write_config(original)  # back: the old score entries exist, only the links are re-pointed
    store, other = _scheduled(wd)
    assert store == set() and other == {f"results/demo/{a}" for a in CAM_ALIASES}


def test_corrected_training_mask_reruns_only_scoring(demo_run, tmp_path):
    wd = demo_run.copy(tmp_path / "wd")
    train_id = demo_splits()["train"][0]  # a val mask would also move deeplab_eval (val_gt): it scores val
    _change_gt(wd.path / "data/voc_sample/SegmentationClass" / f"{train_id}.png")
    store, other = _scheduled(wd)
    assert store == SCORE_ENTRIES
    assert other == {f"results/demo/{a}" for a in ("cams_coarse", "seeds_coarse", "cams_fine", "seeds", "deeplab")}
