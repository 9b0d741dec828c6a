"""Stage II with the tiny Mask2Former through the workflow: two gloo processes, killed and resumed, scored.

Runs on a copy of the suite's shared demo run with the demo preset's segmenter switched to
``tiny_mask2former`` (its backbone from the tiny Swin test checkpoint in the released file format), so only
the segmenter's two jobs (and the tiny weights) run.
"""
from __future__ import annotations

import csv
import json
import os
import signal
import subprocess

import pytest

from tests.workflow.conftest import BIN, ROOT, Workdir
from tests.workflow.test_workflow import _wait_for

DEMO_SEGMENTER = "    segmenter:\n      arch: tiny\n      pretrained_backbone: false\n"
TINY_M2F = """    segmenter:
      arch: tiny_mask2former
      pretrained_backbone: true
      optimizer: adamw
      lr: 1.0e-3
      weight_decay: 0.05
      grad_clip: 0.01
      mask2former: {num_queries: 8, train_points: 1024}
"""
STALL_AT = 15


def _tiny_mask2former(wd: Workdir) -> None:
    text = wd.config_text()
    assert text.count(DEMO_SEGMENTER) == 1, "the demo preset's segmenter block moved: update this test"
    text = text.replace(DEMO_SEGMENTER, TINY_M2F)
    text = text.replace("  checkpoint_every: 100\n  segmenter_gpus: 1\n", "  checkpoint_every: 10\n  segmenter_gpus: 2\n")
    assert "segmenter_gpus: 2" in text
    wd.write_config(text)


@pytest.mark.slow
@pytest.mark.e2e
def test_tiny_mask2former_trains_on_two_processes_resumes_after_a_kill_and_is_scored(demo_run, tmp_path):
    wd = demo_run.copy(tmp_path / "wd")
    _tiny_mask2former(wd)
    proc = subprocess.Popen(
        [str(BIN / "snakemake"), "-s", str(ROOT / "Snakefile"), "--cores", "2", "results/demo/segmenter"],
        cwd=wd.path, env={**os.environ, "FMWSSS_TEST_STALL": f"deeplab_train:{STALL_AT}"},
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True,
    )
    try:
        stalled = _wait_for(f"stalled after {STALL_AT}", wd.path / "results/demo/logs/deeplab_train", timeout=600)
    finally:
        os.killpg(proc.pid, signal.SIGKILL)
        proc.wait()
    first = stalled.read_text()
    assert "tiny_mask2former" in first and "2 processes" in first, first

    wd.snakemake("--unlock", "--cores", "1")
    wd.snakemake("--cores", "2", "--rerun-incomplete", "results/demo/segmenter", "results/demo/deeplab", timeout=900)
    resumed = stalled.read_text()
    assert "resuming from" in resumed and "starting at iteration 11/40" in resumed, resumed

    store = (wd.path / "results/demo/segmenter").resolve()
    assert (wd.path / "results/demo/deeplab").resolve() == store  # one entry, both stable names
    assert store.parent.name == "deeplab_eval" and store.name != (demo_run.path / "results/demo/deeplab").resolve().name
    metrics = json.loads((store / "metrics.json").read_text())
    assert metrics["miou"]["single_scale"] is not None and metrics["num_scored"] == 8
    assert metrics["test_models"] == ["tiny_clip", "tiny_sam", "tiny_swin"]
    model_dir = (store / "model.pt").resolve().parent
    spec = json.loads((model_dir / "spec.json").read_text())
    assert spec["settings"]["segmenter"]["arch"] == "tiny_mask2former" and "momentum" not in spec["settings"]["segmenter"]
    assert spec["inputs"]["weights.segmenter_backbone"].startswith("tiny-v")
    with open(model_dir / "loss.csv", newline="") as fh:
        rows = list(csv.DictReader(fh))
    assert [int(r["iteration"]) for r in rows] == list(range(1, 41))  # the resumed rows continue the first ones
    losses = [float(r["loss"]) for r in rows]
    assert sum(losses[-5:]) < sum(losses[:5]), losses  # it learns: the last iterations' loss is below the first's
