"""`make rehearsal`: the full-size rehearsal's plan, and its smoke run (SMOKE=1: the demo's tiny models)."""
from __future__ import annotations

import os
import re

from tests.processes import run
from tests.workflow.conftest import BIN, ROOT, make_workdir

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


def test_make_rehearsal_smoke_runs_the_demo_and_costs_voc_and_coco(demo_run, tmp_path):
    """On the suite's finished demo run (a copy), `make rehearsal SMOKE=1` has nothing left to compute and
    prints both projections, each with a figure for every stage it measured."""
    wd = demo_run.copy(tmp_path / "wd")
    snakemake = f"{BIN / 'snakemake'} -s {ROOT / 'Snakefile'}"
    proc = run(["make", "-f", str(ROOT / "Makefile"), "rehearsal", "SMOKE=1", f"BIN={BIN}", "CORES=2",
                f"SNAKEMAKE={snakemake}"], 600, cwd=wd.path, env=dict(os.environ))
    assert proc.returncode == 0, proc.stdout + proc.stderr
    out = proc.stdout
    assert "== make rehearsal (demo): random-weight TEST models" in out
    for dataset, images in (("voc", "10,582"), ("coco", "82,081")):
        section = out.split(f"fmwsss cost {dataset} --from demo", 1)[1]
        assert f"{dataset}: {images} images" in section
        assert "WARNING: demo ran with test models" in section
        for stage in STAGE_JOBS[:7]:
            assert re.search(rf"^{stage} \*? *[\d.]+ s/(image|iteration) ", section, re.M), (stage, section)
