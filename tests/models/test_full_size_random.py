"""LONG (issue 21): the full-size random test models made by the workflow's own rules, equivalent to the stock
libraries' architectures, read by the real loaders, and one VOC image through the SAM and CAM stages'
library calls at full size on CPU.

The models are made once for the module by Snakemake (rules ``weights_random`` then ``weights_verify``, as a
rehearsal run makes them): 2.4 GiB for SAM ViT-H, 334 MiB for CLIP ViT-B/16, a few GB of memory. The SAM
run lowers the ``voc`` preset's points_per_side (32 -> 8) and crop_n_layers (1 -> 0) for CPU time: ViT-H's
encoder still runs once at 1024 x 1024, the one cost the rehearsal is about. Wall time is printed (run with
``pytest -s --durations=0``)."""
from __future__ import annotations

import json
import math
import shutil
import time
from pathlib import Path

import numpy as np
import pytest
import torch

from fmwsss.models import weights
from fmwsss.models.weights import WEIGHTS, require_verified, weight_status
from tests.samples import sample_dir
from tests.workflow.conftest import ROOT, Workdir

pytestmark = pytest.mark.long

CLIP, SAM = WEIGHTS["random_clip_vit_b16"], WEIGHTS["random_sam_vit_h"]
IMAGE_ID = "2007_000032"  # 500 x 281, tags aeroplane (1) and person (15)


@pytest.fixture(scope="module")
def made(tmp_path_factory) -> Path:
    """Both models, made and verified by the workflow in a fresh working directory; their folder."""
    wd = Workdir(tmp_path_factory.mktemp("random_models"))
    shutil.copy(ROOT / "config.yaml", wd.path / "config.yaml")
    targets = [f"resources/weights/{spec.filename}{weights.SIDECAR_SUFFIX}" for spec in (CLIP, SAM)]
    tic = time.perf_counter()
    proc = wd.snakemake("--cores", "2", *targets, timeout=1800)
    print(f"\nmade and verified both full-size random models in {time.perf_counter() - tic:.0f} s")
    jobs = proc.stdout + proc.stderr
    assert jobs.count("rule weights_random:") == 2 and jobs.count("rule weights_verify:") == 2, jobs[-3000:]
    logs = wd.path / "resources" / "weights" / "logs"
    for log in sorted(logs.glob("*.log")):
        print(f"--- {log.name}\n{log.read_text().rstrip()}")
    return wd.path / "resources" / "weights"


def test_the_workflow_leaves_files_jobs_accept_without_hashing(made, monkeypatch):
    hashed: list[Path] = []
    real = weights.sha256_file
    monkeypatch.setattr(weights, "sha256_file", lambda p: hashed.append(Path(p)) or real(p))
    for spec in (CLIP, SAM):
        path = made / spec.filename
        assert require_verified(path) == path
        assert weight_status(spec.name, made) == "present"
        log = (made / "logs" / f"{spec.filename}.random.log").read_text()
        assert f"{spec.name}: building {spec.kind} {spec.arch} with random weights on CPU (seed 0)" in log
    assert hashed == []  # size and mtime trusted, as for a real checkpoint
    monkeypatch.undo()
    for spec in (CLIP, SAM):  # the verify rule checked the file against its creation record, then re-recorded it
        path = made / spec.filename
        record = json.loads(weights.sidecar_path(path).read_text())
        assert record["sha256"] == weights.sha256_file(path) and record["size"] == path.stat().st_size
        assert record["sha256"] in (made / "logs" / f"{spec.filename}.random.log").read_text()


@pytest.mark.filterwarnings("ignore::FutureWarning")
def test_clip_is_open_clip_vit_b16_in_openai_format(made):
    import open_clip

    from fmwsss.models.clip import load_clip

    archive = torch.jit.load(str(made / CLIP.filename), map_location="cpu").state_dict()
    assert {k: int(archive.pop(k)) for k in ("input_resolution", "context_length", "vocab_size")} == {
        "input_resolution": 224, "context_length": 77, "vocab_size": 49408}
    stock = open_clip.create_model("ViT-B-16-quickgelu").state_dict()
    assert {k: tuple(v.shape) for k, v in archive.items()} == {k: tuple(v.shape) for k, v in stock.items()}
    model = load_clip(made / CLIP.filename)
    assert sum(p.numel() for p in model.parameters()) == sum(v.numel() for v in stock.values())
    assert float(model.logit_scale.exp()) == pytest.approx(100.0, rel=1e-3)  # the released scale
    assert all(torch.isfinite(p).all() for p in model.parameters())


def test_sam_is_segment_anything_vit_h_state_dict(made):
    from segment_anything import build_sam_vit_h

    from fmwsss.models.sam import load_sam

    state = torch.load(made / SAM.filename, map_location="cpu", weights_only=True, mmap=True)
    with torch.device("meta"):
        stock = build_sam_vit_h(checkpoint=None)
    assert {k: tuple(v.shape) for k, v in state.items()} == {k: tuple(v.shape) for k, v in stock.state_dict().items()}
    assert all(v.dtype == torch.float32 for v in state.values())  # as sam_vit_h_4b8939.pth
    model = load_sam(made / SAM.filename, "vit_h")
    assert sum(p.numel() for p in model.parameters()) == sum(p.numel() for p in stock.parameters())
    assert all(torch.isfinite(p).all() for p in model.parameters())


@pytest.mark.filterwarnings("ignore::FutureWarning")
def test_one_voc_image_through_sam_and_cams_at_full_size(made, tmp_path):
    from fmwsss.cams.dump import ZeroShot, dump_cams
    from fmwsss.cams.shards import CamShardReader
    from fmwsss.data.classes import VOC_CLASS_NAMES
    from fmwsss.pipeline.config import Config
    from fmwsss.pipeline.stage_settings import caa_settings, prompt_names
    from fmwsss.sam.build import SamSpeed
    from fmwsss.sam.run import run_sam_shard
    from fmwsss.sam.shards import SamShardReader

    voc = sample_dir("voc_sample")
    image = voc / "JPEGImages" / f"{IMAGE_ID}.jpg"
    tags = json.loads((voc / "labels.json").read_text())[IMAGE_ID]
    assert tags == [1, 15]
    settings = Config.from_file(ROOT / "config.yaml").settings("voc")
    sam_settings = {**settings["sam"], "points_per_side": 8, "crop_n_layers": 0}
    speed = SamSpeed(points_per_batch=64, encoder_batch=1)
    lines: list[str] = []

    tic = time.perf_counter()
    run_sam_shard([(IMAGE_ID, image)], made / SAM.filename, "vit_h", sam_settings, tmp_path / "sam" / ".partial.h5",
                  tmp_path / "sam" / "shard-000.h5", "cpu", speed, log=lines.append)
    sam_s = time.perf_counter() - tic
    with SamShardReader(tmp_path / "sam" / "shard-000.h5") as reader:  # refuses a shard not marked complete
        assert reader.ids() == [IMAGE_ID]
        masks = reader.read(IMAGE_ID)
    n = masks.masks.shape[0]
    assert masks.masks.shape == (n, 281, 500) and masks.level.shape == masks.area.shape == (n,)
    assert np.isfinite(masks.predicted_iou).all() and np.isfinite(masks.stability).all()

    caa = settings["cams_coarse"]["caa"]
    tic = time.perf_counter()
    final = dump_cams([(IMAGE_ID, image, tags)], made / CLIP.filename,
                      ZeroShot(*prompt_names(settings, VOC_CLASS_NAMES)), caa_settings(caa),
                      tmp_path / "cams" / ".partial.h5", tmp_path / "cams" / "shard-000.h5", "cpu",
                      log=lines.append, n_attn_layers=caa["last_n_layers"])
    cam_s = time.perf_counter() - tic
    with CamShardReader(final) as reader:
        cam = reader.read(IMAGE_ID)
    # one map per tag at patch resolution: 281 x 500 padded up to 288 x 512, / 16
    assert cam.classes.tolist() == [1, 15] and (cam.height, cam.width, cam.stride) == (281, 500, 16)
    assert cam.cam_raw.shape == cam.cam_caa.shape == (2, math.ceil(281 / 16), math.ceil(500 / 16)) == (2, 18, 32)
    assert np.isfinite(cam.cam_raw).all() and np.isfinite(cam.cam_caa).all()
    print(f"\nfull-size random models on CPU, one {IMAGE_ID} image: SAM ViT-H ({n} masks, 8x8 points, no crop "
          f"layer) {sam_s:.1f} s; CLIP ViT-B/16 CAMs + CAA {cam_s:.1f} s")
