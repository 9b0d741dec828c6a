import numpy as np
import pytest
import torch
from segment_anything import SamPredictor

from fmwsss.models.sam import load_sam
from fmwsss.models.tiny_sam import DEFAULT_ARCH, TINY_SAM_FORMAT, TinySam, create_tiny_sam
from fmwsss.sam.generator import LeveledMaskGenerator

from .conftest import DEMO_SETTINGS, load_image


def test_tiny_sam_is_tiny_and_deterministic(tmp_path, tiny_sam):
    assert 50_000 < sum(p.numel() for p in tiny_sam.parameters()) < 300_000
    a = torch.load(create_tiny_sam(tmp_path / "a.pt", seed=0), weights_only=True)
    b = torch.load(create_tiny_sam(tmp_path / "b.pt", seed=0), weights_only=True)
    c = torch.load(create_tiny_sam(tmp_path / "c.pt", seed=1), weights_only=True)
    assert a["format"] == TINY_SAM_FORMAT and a["version"] == 1 and a["arch"] == DEFAULT_ARCH
    assert all(torch.equal(a["state_dict"][k], b["state_dict"][k]) for k in a["state_dict"])
    assert not all(torch.equal(a["state_dict"][k], c["state_dict"][k]) for k in a["state_dict"])
    assert sorted(tmp_path.iterdir()) == [tmp_path / n for n in ("a.pt", "b.pt", "c.pt")]  # no temporaries left


def test_predictor_gives_nested_colour_regions(tiny_sam, blocks_image):
    predictor = SamPredictor(tiny_sam)
    predictor.set_image(blocks_image)
    # Centre of the 16x16 block at row 2, col 3 of the block grid.
    masks, iou, low_res = predictor.predict(np.array([[56.0, 40.0]]), np.array([1]), multimask_output=True)
    assert masks.shape == (3, 96, 128) and iou.shape == (3,) and low_res.shape == (3, 64, 64)
    assert masks[:, 40, 56].all()  # every level contains the clicked pixel
    areas = masks.sum(axis=(1, 2))
    assert 0 < areas[0] <= areas[1] <= areas[2] < masks[0].size
    # Its flat 16x16 block (but for the blur of upsampling at its rim) is inside the sub-part mask.
    assert masks[0, 35:45, 51:61].all()
    single, _, _ = predictor.predict(np.array([[56.0, 40.0]]), np.array([1]), multimask_output=False)
    assert single.shape == (1, 96, 128)


@pytest.mark.slow
def test_demo_images_give_diverse_masks(tiny_sam, voc_jpegs):
    generator = LeveledMaskGenerator(tiny_sam, points_per_batch=64, **DEMO_SETTINGS)
    counts = []
    for path in voc_jpegs[:24:4]:
        result = generator.generate(load_image(path))
        counts.append(len(result))
        assert np.ptp(result.predicted_iou) > 0.01 and np.ptp(result.stability) > 0.005
    assert min(counts) >= 20, counts


def test_tiny_arch_rejects_bad_patch():
    with pytest.raises(ValueError, match="patch_size"):
        TinySam(**{**DEFAULT_ARCH, "patch_size": 10})


def test_load_sam_round_trip(tiny_sam_path, tiny_sam):
    model = load_sam(tiny_sam_path, "tiny", "cpu")
    assert not model.training and not any(p.requires_grad for p in model.parameters())
    ref = torch.load(tiny_sam_path, weights_only=True)["state_dict"]
    assert all(torch.equal(model.state_dict()[k], v) for k, v in ref.items())
