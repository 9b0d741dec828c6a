"""Issue 15, point 1, in the workflow: every GPU job declares its weights' verification sidecar; touching a
weight file and re-verifying it reruns nothing; random bytes placed by hand at the CLIP path stop the verify
rule with the file, the expected and found sha256 and the fetch command. Issue 21: a config naming the
full-size random models gets them made (one job per file) and verified before its GPU jobs."""
from __future__ import annotations

import hashlib
import json
import os
import shutil
import time

import pytest

from fmwsss.models.weights import WEIGHTS
from fmwsss.pipeline.stages import STAGES

from .conftest import BIN, ROOT, Workdir, make_workdir
from tests.processes import run

pytestmark = pytest.mark.e2e

TINY = [WEIGHTS["tiny_clip"].filename, WEIGHTS["tiny_sam"].filename]


def _recorded_inputs(wd) -> dict[str, list[list[str]]]:
    """Rule -> the input lists Snakemake recorded for each of its finished jobs (.snakemake/metadata)."""
    found: dict[str, list[list[str]]] = {}
    for meta in (wd.path / ".snakemake" / "metadata").iterdir():
        record = json.loads(meta.read_text())
        found.setdefault(record["rule"], []).append(record["input"])
    return found


def test_gpu_jobs_declare_the_sidecar_and_reverifying_reruns_nothing(demo_run, tmp_path):
    wd = demo_run.copy(tmp_path / "wd")
    recorded = _recorded_inputs(wd)
    gpu_rules = [name for name, stage in STAGES.items() if stage.weights]
    assert set(gpu_rules) <= set(recorded), sorted(recorded)
    for rule in gpu_rules:
        for inputs in recorded[rule]:
            assert any(i.endswith(tuple(f"{f}.sha256" for f in TINY)) for i in inputs), (rule, inputs)
    weights = wd.path / "resources" / "weights"
    later = time.time() + 5
    for name in TINY:
        os.utime(weights / name, (later, later))
    verify = run([str(BIN / "fmwsss"), "weights", "verify", "tiny_clip", "tiny_sam"], 120, cwd=wd.path)
    assert verify.returncode == 0, verify.stderr
    for name in TINY:
        assert json.loads((weights / f"{name}.sha256").read_text())["mtime_ns"] == (weights / name).stat().st_mtime_ns
    assert wd.updated("results/demo/seeds") == []  # every GPU rule is upstream of the seeds


def test_random_bytes_at_the_clip_path_stop_the_verify_rule(tmp_path):
    wd = Workdir(tmp_path)  # the verify rule needs no data: config.yaml and the file
    shutil.copy(ROOT / "config.yaml", tmp_path / "config.yaml")
    path = tmp_path / "resources" / "weights" / "ViT-B-16.pt"
    path.parent.mkdir(parents=True)
    path.write_bytes(os.urandom(4096))
    proc = wd.snakemake("--cores", "1", "resources/weights/ViT-B-16.pt.sha256", check=False, timeout=300)
    out = proc.stdout + proc.stderr
    assert proc.returncode != 0
    spec = WEIGHTS["clip_vit_b16_openai"]
    assert f"resources/weights/ViT-B-16.pt: wrong bytes for {spec.name}" in out, out[-3000:]
    assert f"expected sha256 {spec.sha256}" in out and f"found    sha256 {hashlib.sha256(path.read_bytes()).hexdigest()}" in out
    assert f"fmwsss weights fetch {spec.name}" in out and "weights_only" not in out
    assert not path.with_name("ViT-B-16.pt.sha256").exists()


def _jobs(dry_run: str) -> dict[str, int]:
    """Rule -> job count from the ``Job stats`` table of a dry run's output."""
    table = dry_run.split("Job stats:", 1)[1].split("\n\n", 1)[0].splitlines()[3:]
    return {rule: int(count) for rule, count in (line.split() for line in table) if rule != "total"}


def test_random_models_are_made_one_job_per_file_and_verified_first(tmp_path):
    wd = make_workdir(tmp_path / "wd")
    tiny = "    models: {clip: tiny_clip, sam: tiny_sam}\n    data: {shard_size: 24}\n"
    assert wd.config_text().count(tiny) == 1  # the demo preset
    wd.write_config(wd.config_text().replace(
        tiny, tiny.replace("tiny_clip, sam: tiny_sam", "random_clip_vit_b16, sam: random_sam_vit_h")))
    proc = wd.snakemake("-n", "--cores", "1", "results/demo/sam_masks", "results/demo/cams_coarse")
    out = proc.stdout + proc.stderr
    jobs = _jobs(out)
    assert (jobs["weights_random"], jobs["weights_verify"]) == (2, 2) and "weights_tiny" not in jobs, jobs
    assert "weights_fetch" not in jobs  # never downloaded
    for spec in (WEIGHTS["random_sam_vit_h"], WEIGHTS["random_clip_vit_b16"]):
        path = f"resources/weights/{spec.filename}"
        assert f"output: {path}\n" in out and f"output: {path}.sha256 (update)" in out
    sam_job = out.split("rule sam_masks:", 1)[1].split("\nrule ", 1)[0]
    assert "input: resources/weights/random_sam_vit_h.pth, resources/weights/random_sam_vit_h.pth.sha256" in sam_job
