"""`make rehearsal`: the full-size rehearsal's plan (its smoke run, SMOKE=1 on the demo: the GPU suite's smoke
test in tests/benchmarks/test_bench_smoke.py)."""
from __future__ import annotations

import re

from tests.workflow.conftest import make_workdir

STAGE_JOBS = ("sam_masks", "prompts_cls_train", "cams_coarse_dump", "seeds_coarse", "prompts_seg_train",
              "cams_fine_dump", "seeds_fine", "deeplab_train", "deeplab_eval")


def _job_counts(dry_run_output: str) -> dict[str, int]:
    table = dry_run_output.split("Job stats:", 1)[1]
    return {m[1]: int(m[2]) for m in re.finditer(r"^(\w+)\s+(\d+)$", table, re.M)}


def test_the_rehearsal_plans_the_full_size_models_and_one_job_per_stage(tmp_path):
    """24 images in one shard: one job per compute stage (each job's start-up would otherwise cost more than
    its images on a GPU), and the two full-size random models made and verified first."""
    wd = make_workdir(tmp_path / "wd")
    proc = wd.snakemake("-n", "results/rehearsal/deeplab")
    counts = _job_counts(proc.stdout)
    assert counts["weights_random"] == 2 and counts["weights_verify"] == 2, counts
    assert {stage: counts[stage] for stage in STAGE_JOBS} == {stage: 1 for stage in STAGE_JOBS}
    assert "random_sam_vit_h.pth" in proc.stdout and "random_clip_vit_b16.pt" in proc.stdout
