"""Data-parallel stage II training on CPU (gloo): each rank loads its half of every global batch, ranks stay
identical, 2 processes equal 1 up to float order, a killed 2-process run resumes at 1 or 2 processes, and a
failing worker ends the run naming its rank, leaving no process behind."""
from __future__ import annotations

import csv
import json
import multiprocessing
import os
import shutil
from pathlib import Path

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from PIL import Image
from torch import nn

from fmwsss.segmentation import distributed
from fmwsss.segmentation.dataset import item_index
from fmwsss.segmentation.models import load_segmenter
from fmwsss.segmentation.train import _accumulate, train_segmenter

NUM_CLASSES = 3
SETTINGS = {"arch": "tiny", "pretrained_backbone": False, "crop": 32, "scale_range": [0.75, 1.25], "flip": True,
            "color_jitter": 0.1, "batch_size": 4, "iterations": 4, "lr": 0.02, "backbone_lr_mult": 0.1,
            "momentum": 0.9, "weight_decay": 1e-4, "poly_power": 0.9, "seed": 3, "optimizer": "sgd",
            "grad_clip": 1.0, "mask2former": {"precision": "fp32"}}
"""Tiny DeepLab (its ASPP dropout is model randomness), batch 4 = two shares of 2 = one micro-batch each."""
RUN = {"log": lambda line: None, "micro_batch": 2, "checkpoint_every": 2}


def _params(model_path: Path) -> dict[str, torch.Tensor]:
    """The trained parameters (BatchNorm running statistics are buffers: per rank on CPU, averaged)."""
    model, _ = load_segmenter(model_path)
    return {name: p.detach() for name, p in model.named_parameters()}


def _assert_close(a: dict, b: dict) -> None:
    assert a.keys() == b.keys()
    for name in a:
        torch.testing.assert_close(a[name], b[name], rtol=1e-4, atol=1e-6, msg=name)


def _losses(work: Path) -> list[tuple[int, float, float]]:
    with open(work / "loss.csv", newline="") as fh:
        return [(int(r[0]), float(r[1]), float(r[2])) for r in list(csv.reader(fh))[1:]]


def _children() -> list[str]:
    """Command lines of the live child processes of this test process (from /proc), but multiprocessing's
    resource tracker (started once per process with the first spawn, ends with it)."""
    kids = []
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = stat.read_text().rsplit(")", 1)[1].split()
            cmdline = (stat.parent / "cmdline").read_bytes().replace(b"\0", b" ").decode()
        except OSError:
            continue
        if int(fields[1]) == os.getpid() and fields[0] != "Z" and "resource_tracker" not in cmdline:
            kids.append(cmdline)
    return kids


@pytest.fixture(scope="module")
def reference(twelve_items, tmp_path_factory):
    """An uninterrupted 2-process run with the rank trace on."""
    root = tmp_path_factory.mktemp("ddp_ref")
    (root / "trace").mkdir()
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv(distributed.TRACE_ENV, str(root / "trace"))
        train_segmenter(twelve_items, SETTINGS, NUM_CLASSES, root / "out" / "model.pt", root / "work",
                        processes=2, **RUN)
    return root


def _jsonl(path: Path) -> list:
    return [json.loads(line) for line in path.read_text().splitlines()]


@pytest.mark.slow
def test_each_rank_loads_its_half_of_every_batch_and_ranks_stay_identical(reference):
    loads = {r: _jsonl(reference / "trace" / f"loads-rank{r}.jsonl") for r in (0, 1)}
    assert loads[0] == [[it, s] for it in range(4) for s in (0, 1)]
    assert loads[1] == [[it, s] for it in range(4) for s in (2, 3)]
    digests = {r: _jsonl(reference / "trace" / f"digests-rank{r}.jsonl") for r in (0, 1)}
    assert [d[0] for d in digests[0]] == [1, 2, 3, 4] and digests[0] == digests[1]
    assert len({d[1] for d in digests[0]}) == 4  # the model changed at every step
    assert not list((reference / "work").glob(".rendezvous-*"))


@pytest.mark.slow
def test_two_processes_equal_one_up_to_float_order(reference, twelve_items, tmp_path):
    one = train_segmenter(twelve_items, SETTINGS, NUM_CLASSES, tmp_path / "model.pt", tmp_path / "work", **RUN)
    _assert_close(_params(one), _params(reference / "out" / "model.pt"))
    two_rows, one_rows = _losses(reference / "work"), _losses(tmp_path / "work")
    assert [r[0] for r in two_rows] == [1, 2, 3, 4] and [r[2] for r in two_rows] == [r[2] for r in one_rows]
    assert [r[1] for r in two_rows] == pytest.approx([r[1] for r in one_rows], rel=1e-5)


def _bad_label(path: Path) -> Path:
    label = np.zeros((32, 40), np.uint8)
    label[5:9, 5:9] = 7  # no such class: the dataset refuses it
    Image.fromarray(label).save(path)
    return path


@pytest.mark.slow
def test_failing_worker_names_its_rank_and_a_killed_run_resumes_at_one_or_two_processes(
        reference, twelve_items, tmp_path):
    # The item of iteration 3, slot 3 (rank 1's share) is first read at iteration 3, after checkpoint 2.
    bad = item_index(2, 3, len(twelve_items), 4, SETTINGS["seed"])
    items = list(twelve_items)
    items[bad] = (items[bad][0], items[bad][1], _bad_label(tmp_path / "bad.png"))
    with pytest.raises(RuntimeError, match=r"rank 1 failed: ValueError: .*bad\.png: labels \[7\]") as err:
        train_segmenter(items, SETTINGS, NUM_CLASSES, tmp_path / "x" / "model.pt", tmp_path / "killed",
                        processes=2, **RUN)
    assert "Traceback" in str(err.value)
    assert multiprocessing.active_children() == [] and _children() == []
    assert torch.load(tmp_path / "killed" / "last.pth", weights_only=True)["iteration"] == 2
    assert not (tmp_path / "x" / "model.pt").exists()

    expected = _params(reference / "out" / "model.pt")
    for processes in (1, 2):
        work = tmp_path / f"resume{processes}"
        shutil.copytree(tmp_path / "killed", work)
        logs = []
        out = train_segmenter(twelve_items, SETTINGS, NUM_CLASSES, work / "model.pt", work, processes=processes,
                              **{**RUN, "log": logs.append})
        assert "starting at iteration 3/4" in logs[0]
        _assert_close(_params(out), expected)
        assert [r[0] for r in _losses(work)] == [1, 2, 3, 4]
    a = torch.load(tmp_path / "resume2" / "model.pt", weights_only=True)["state_dict"]
    b = torch.load(reference / "out" / "model.pt", weights_only=True)["state_dict"]
    assert all(torch.equal(a[k], b[k]) for k in a)  # same process count, same float order: bit-identical


def test_processes_must_divide_the_global_batch(twelve_items, tmp_path):
    with pytest.raises(ValueError, match="processes 3 must be >= 1 and divide segmenter.batch_size 4"):
        train_segmenter(twelve_items, SETTINGS, NUM_CLASSES, tmp_path / "m.pt", tmp_path / "w", processes=3)
    with pytest.raises(ValueError, match="micro_batch 4 must divide the per-process share 2"):
        train_segmenter(twelve_items, SETTINGS, NUM_CLASSES, tmp_path / "m.pt", tmp_path / "w", processes=2,
                        micro_batch=4)


class FakeMask2Former(nn.Module):
    """The Mask2Former contract on two 1x1 convs: the loss is the mean over the global batch's target masks
    (one per present class per image) of each mask's mean -log p(class)."""

    def __init__(self) -> None:
        super().__init__()
        self.backbone = nn.Conv2d(3, 4, 1)
        self.head = nn.Conv2d(4, NUM_CLASSES, 1)

    def forward(self, x: torch.Tensor) -> dict[str, torch.Tensor]:
        return {"out": F.log_softmax(self.head(torch.relu(self.backbone(x))), dim=1)}

    def count_targets(self, labels: torch.Tensor) -> dict[str, float]:
        masks = sum(len(set(torch.unique(y).tolist()) - {255}) for y in labels)
        return {"masks": float(masks), "class_weight": masks + 0.1 * (len(labels) * 8 - masks)}

    def loss(self, x: torch.Tensor, labels: torch.Tensor, totals: dict[str, float]) -> torch.Tensor:
        return self.mask_terms(x, labels) / totals["masks"]

    def mask_terms(self, x: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
        logp = self(x)["out"]
        terms = [-logp[i, c][labels[i] == c].mean() for i in range(len(labels))
                 for c in sorted(set(torch.unique(labels[i]).tolist()) - {255})]
        return torch.stack(terms).sum()


def _batch() -> tuple[torch.Tensor, torch.Tensor]:
    gen = torch.Generator().manual_seed(5)
    labels = torch.randint(0, NUM_CLASSES, (4, 6, 6), generator=gen)
    labels[0] = 0  # images with 1, 3, 3, 3 present classes: shares of 4 and 6 masks
    labels[:, 0] = 255
    return torch.randn(4, 3, 6, 6, generator=gen), labels


def _m2f_share(device: torch.device, send, images: torch.Tensor, labels: torch.Tensor) -> None:
    """One rank's gradient of the fake Mask2Former on its share (chunks of 1), summed over the ranks."""
    rank, size = distributed.world()
    torch.manual_seed(0)
    model = FakeMask2Former()
    share = distributed.rank_slots(rank, size, len(labels))
    loss = _accumulate(model, images[share.start:share.stop], labels[share.start:share.stop], 1, share.start, 0, 0,
                       device, (False, torch.float32, torch.amp.GradScaler("cpu", enabled=False)))
    if size > 1:
        distributed.all_reduce_grads(model)
        loss = distributed.all_reduce_values({"loss": loss}, device)["loss"]
    if rank == 0:
        send((loss, {name: p.grad for name, p in model.named_parameters()}))


@pytest.mark.slow
def test_mask2former_chunks_are_normalised_by_the_global_counts(tmp_path):
    images, labels = _batch()
    torch.manual_seed(0)
    whole = FakeMask2Former()
    direct = whole.mask_terms(images, labels) / 10.0  # 1 + 3 + 3 + 3 target masks in the global batch
    direct.backward()
    expected = {name: p.grad for name, p in whole.named_parameters()}
    one, two = [], []
    _m2f_share(torch.device("cpu"), one.append, images, labels)
    distributed.launch(_m2f_share, (images, labels), [torch.device("cpu")] * 2, tmp_path / "rdv", two.append)
    for loss, grads in (one[0], two[0]):
        assert loss == pytest.approx(float(direct.detach()), rel=1e-6)
        _assert_close(grads, expected)


class RecordingMask2Former(FakeMask2Former):
    """Records what the loop gives ``loss``: the totals, the chunk's own counts, the autocast state."""

    def __init__(self) -> None:
        super().__init__()
        self.calls: list[tuple] = []

    def loss(self, x: torch.Tensor, labels: torch.Tensor, totals: dict[str, float]) -> torch.Tensor:
        self.calls.append((dict(totals), self.count_targets(labels)["masks"], torch.is_autocast_enabled("cpu"),
                           torch.get_autocast_dtype("cpu")))
        return super().loss(x, labels, totals)


def test_mask2former_arch_gets_settings_backbone_path_totals_and_bf16(twelve_items, tmp_path, monkeypatch):
    from fmwsss.segmentation import train

    built = []

    def build(arch, num_classes, pretrained, weights_dir, settings, backbone_path):
        built.append((arch, num_classes, settings["mask2former"]["precision"], backbone_path))
        built.append(RecordingMask2Former())
        return built[-1]

    monkeypatch.setattr(train, "build_segmenter", build)
    settings = {**SETTINGS, "arch": "tiny_mask2former", "iterations": 2, "optimizer": "adamw",
                "mask2former": {"precision": "bf16"}}
    train_segmenter(twelve_items, settings, NUM_CLASSES, tmp_path / "model.pt", tmp_path / "w", log=lambda s: None,
                    micro_batch=1, backbone_path="swin.pth")
    assert built[0] == ("tiny_mask2former", NUM_CLASSES, "bf16", "swin.pth")
    calls = built[1].calls
    assert len(calls) == 8 and all(c[2] and c[3] == torch.bfloat16 for c in calls)  # 2 iterations x 4 chunks
    for it in (0, 1):
        chunks = calls[4 * it:4 * it + 4]
        assert all(c[0] == chunks[0][0] for c in chunks)  # one totals per iteration, the sum over its chunks
        assert chunks[0][0]["masks"] == sum(c[1] for c in chunks)
    with pytest.raises(ValueError, match="segmenter.mask2former.precision: 'fp16'"):
        train_segmenter(twelve_items, {**settings, "mask2former": {"precision": "fp16"}}, NUM_CLASSES,
                        tmp_path / "m2.pt", tmp_path / "w2", log=lambda s: None, micro_batch=1)
