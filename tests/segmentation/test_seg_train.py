"""Training loop: the loss falls, the outputs are complete, and a killed run resumes bit-identically."""
from __future__ import annotations

import csv

import pytest
import torch

from fmwsss import hooks
from fmwsss.segmentation.models import load_segmenter
from fmwsss.segmentation.train import train_segmenter

NUM_CLASSES = 3


def _csv_rows(path):
    with open(path, newline="") as fh:
        return list(csv.reader(fh))


def test_short_run_lowers_the_loss_and_writes_model_and_csv(synthetic_items, tiny_settings, tmp_path):
    settings = {**tiny_settings, "iterations": 12, "lr": 0.02, "backbone_lr_mult": 1.0, "scale_range": [1.0, 1.0],
                "color_jitter": 0.0}
    logs = []
    out = train_segmenter(synthetic_items, settings, NUM_CLASSES, tmp_path / "out" / "model.pt", tmp_path / "work",
                          log=logs.append, checkpoint_every=100)
    rows = _csv_rows(tmp_path / "out" / "loss.csv")
    assert rows[0] == ["iteration", "loss", "lr"] and [int(r[0]) for r in rows[1:]] == list(range(1, 13))
    losses = [float(r[1]) for r in rows[1:]]
    assert sum(losses[-3:]) / 3 < 0.7 * losses[0]
    lrs = [float(r[2]) for r in rows[1:]]
    assert lrs[0] == pytest.approx(0.02) and all(a > b for a, b in zip(lrs, lrs[1:]))  # poly decay
    model, record = load_segmenter(out)
    assert record["arch"] == "tiny" and record["num_classes"] == NUM_CLASSES and record["settings"] == settings
    assert model(torch.zeros(1, 3, 32, 32))["out"].shape == (1, NUM_CLASSES, 32, 32)
    assert "iteration 1/12" in logs[0] and any("iteration 12/12" in line for line in logs)


class _Killed(Exception):
    pass


def _kill_after(k):
    def stall(stage, done):
        if stage == "deeplab_train" and done == k:
            raise _Killed
    return stall


def test_killed_run_resumes_bit_identically(synthetic_items, tiny_settings, tmp_path, monkeypatch):
    """Checkpoints every 2 iterations; killed after iteration 3, the resumed run redoes 3.. and ends equal."""
    settings = {**tiny_settings, "iterations": 6}
    full = train_segmenter(synthetic_items, settings, NUM_CLASSES, tmp_path / "a" / "model.pt", tmp_path / "wa",
                           log=lambda s: None, checkpoint_every=2)
    monkeypatch.setattr(hooks, "maybe_stall", _kill_after(3))
    with pytest.raises(_Killed):
        train_segmenter(synthetic_items, settings, NUM_CLASSES, tmp_path / "b" / "model.pt", tmp_path / "wb",
                        log=lambda s: None, checkpoint_every=2)
    assert not (tmp_path / "b" / "model.pt").exists()
    monkeypatch.undo()
    logs = []
    resumed = train_segmenter(synthetic_items, settings, NUM_CLASSES, tmp_path / "b" / "model.pt", tmp_path / "wb",
                              log=logs.append, checkpoint_every=2)
    assert "starting at iteration 3/6" in logs[0] and "iteration 3/6" in logs[1]
    a, b = torch.load(full, weights_only=True)["state_dict"], torch.load(resumed, weights_only=True)["state_dict"]
    assert a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)
    assert _csv_rows(tmp_path / "wb" / "loss.csv") == _csv_rows(tmp_path / "wa" / "loss.csv")


def test_resume_refuses_other_settings_and_names_missing_keys(synthetic_items, tiny_settings, tmp_path):
    settings = {**tiny_settings, "iterations": 2}
    train_segmenter(synthetic_items, settings, NUM_CLASSES, tmp_path / "model.pt", tmp_path / "w", log=lambda s: None)
    with pytest.raises(ValueError, match="last.pth was written for other settings"):
        train_segmenter(synthetic_items, {**settings, "lr": 0.5}, NUM_CLASSES, tmp_path / "m2.pt", tmp_path / "w",
                        log=lambda s: None)
    with pytest.raises(ValueError, match="segmenter.poly_power"):
        train_segmenter(synthetic_items, {k: v for k, v in settings.items() if k != "poly_power"}, NUM_CLASSES,
                        tmp_path / "m3.pt", tmp_path / "w3")
    with pytest.raises(ValueError, match="micro_batch 1"):
        train_segmenter(synthetic_items, settings, NUM_CLASSES, tmp_path / "m4.pt", tmp_path / "w4", micro_batch=1)
