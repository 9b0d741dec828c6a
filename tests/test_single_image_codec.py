"""``fmwsss seed`` seeds from the same CAM values the pipeline stores (the CAM storage codec), so both agree."""
from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch

from fmwsss.cams.shards import CamShardReader, CamShardWriter
from fmwsss.cli.single_image import FineChain
from fmwsss.data.classes import VOC_CLASS_NAMES
from fmwsss.data.images import load_rgb
from fmwsss.pipeline.config import Config
from fmwsss.seeding import seed_image

REPO = Path(__file__).resolve().parents[1]


@pytest.mark.slow
def test_chain_cams_equal_a_stored_and_read_copy(voc_items, tmp_path, monkeypatch):
    from fmwsss.models.clip import create_tiny_clip
    from fmwsss.models.tiny_sam import create_tiny_sam

    create_tiny_clip(tmp_path / "tiny_clip.pt", seed=0)
    create_tiny_sam(tmp_path / "tiny_sam.pth", seed=0)
    monkeypatch.setenv("FMWSSS_WEIGHTS_DIR", str(tmp_path))
    settings = Config.from_file(REPO / "config.yaml").settings("demo")
    settings["sam"]["points_per_side"] = 4
    chain = FineChain.load(settings, VOC_CLASS_NAMES, None, torch.device("cpu"))
    image_id, path, tags = voc_items[0]
    rgb, classes = np.ascontiguousarray(load_rgb(path)[:96, :128]), np.array(tags)  # small: cheap SAM and CLIP
    before = torch.get_num_threads()
    torch.set_num_threads(1)  # tiny tensors: a thread pool only costs here
    try:
        result = chain.run(rgb, classes)
        raw = chain.cams(rgb, classes).float().cpu().numpy()
    finally:
        torch.set_num_threads(before)
    writer = CamShardWriter(tmp_path / "p.h5", tmp_path / "s.h5", {})
    writer.write_cams(image_id, raw, raw, classes, *rgb.shape[:2], 16)  # what cams_fine_dump stores
    with CamShardReader(writer.finish([image_id])) as reader:
        stored = reader.read(image_id).cam_caa
    np.testing.assert_array_equal(result.cams, stored)
    assert not np.array_equal(stored, raw) or np.abs(raw).max() == 0  # the codec really ran (float16 rounding)
    # what seeds_fine computes from the stored copy and the same masks
    seed = seed_image(settings["seeds_fine"], stored, classes, rgb.shape[:2], result.masks, device="cpu")
    np.testing.assert_array_equal(result.seed, seed)
