"""Issue 15, point 1, in the workflow: every GPU job declares its weights' verification sidecar; touching a
weight file and re-verifying it reruns nothing; random bytes placed by hand at the CLIP path stop the verify
rule with the file, the expected and found sha256 and the fetch command."""
from __future__ import annotations

import hashlib
import json
import os
import shutil
import time

import pytest

from fmwsss.models.weights import WEIGHTS
from fmwsss.pipeline.stages import STAGES

from .conftest import BIN, ROOT, Workdir
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
