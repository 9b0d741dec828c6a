"""The fast generator's memory plan: known shapes, the budget respected, explicit knobs winning."""
from __future__ import annotations

import pytest
import torch
from segment_anything import sam_model_registry

from fmwsss.sam.build import SamSpeed, batch_plan
from fmwsss.sam.memory import GIB, MAX_POINTS_PER_BATCH, encoder_bytes_per_crop, plan_batches, weight_bytes


@pytest.fixture(scope="module")
def vit_h():
    with torch.device("meta"):  # the real architecture's shapes, no memory, no weights
        return sam_model_registry["vit_h"]()


@pytest.fixture(scope="module")
def vit_b():
    with torch.device("meta"):
        return sam_model_registry["vit_b"]()


def test_vit_h_default_budget_fits_a_24_gb_card(vit_h):
    plan = plan_batches(vit_h, 20.0, points_per_side=32)
    assert plan.estimated_peak_bytes <= 20 * GIB < 24e9 - 2 * GIB  # room for the CUDA context
    assert plan.encoder_batch == 5 and plan.points_per_batch == MAX_POINTS_PER_BATCH
    assert weight_bytes(vit_h) == pytest.approx(2.39 * GIB, rel=0.01)


def test_plan_grows_with_the_budget_and_stays_under_it(vit_h):
    plans = [plan_batches(vit_h, gb, points_per_side=32) for gb in (8, 12, 20, 40)]
    for gb, plan in zip((8, 12, 20, 40), plans):
        assert plan.estimated_peak_bytes <= gb * GIB
    assert [p.encoder_batch for p in plans] == sorted(p.encoder_batch for p in plans)
    assert [p.points_per_batch for p in plans] == sorted(p.points_per_batch for p in plans)


def test_encoder_estimate_matches_the_cpu_measurement(vit_b):
    """ViT-B at 1024 px on the CPU took 2.50 GB (batch 1) and 5.06 GB (batch 2) of ru_maxrss."""
    assert 2.3e9 <= encoder_bytes_per_crop(vit_b) <= 2.9e9


def test_too_small_a_budget_is_named(vit_h):
    with pytest.raises(ValueError, match=r"runtime.sam_memory_gb = 3.0 is too small"):
        plan_batches(vit_h, 3.0, points_per_side=32)


def test_points_never_exceed_the_grid(tiny_sam):
    assert plan_batches(tiny_sam, 20.0, points_per_side=8).points_per_batch == 64


def test_explicit_runtime_values_win(tiny_sam):
    plan = batch_plan(tiny_sam, {"points_per_side": 8}, SamSpeed(points_per_batch=5, encoder_batch=2))
    assert (plan.points_per_batch, plan.encoder_batch) == (5, 2)
