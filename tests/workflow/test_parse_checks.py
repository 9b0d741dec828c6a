"""The Snakefile checks every stage's settings of every dataset before it plans or runs anything."""
from __future__ import annotations

import pytest

from .conftest import ROOT, Workdir

pytestmark = pytest.mark.e2e


def test_unsupported_stage_setting_stops_the_parse_naming_dataset_and_key(tmp_path):
    wd = Workdir(tmp_path)  # no data fetched: the parse stops before any dataset is opened
    text = (ROOT / "config.yaml").read_text()
    old = "    prompts_seg:\n      iterations: 40\n"
    assert text.count(old) == 1
    wd.write_config(text.replace(old, "    prompts_seg:\n      loss: contrastive\n      positives: crop_labels\n"
                                      "      iterations: 40\n"))
    # a target of the first stage: the bad key belongs to a late stage, and still nothing runs
    bad = wd.snakemake("-n", "--cores", "1", "results/demo/sam_masks", check=False)
    out = bad.stdout + bad.stderr
    assert bad.returncode != 0 and "datasets.demo (preset demo): prompts_seg.positives" in out, out[-2000:]
    assert "sam_masks" not in bad.stdout


def _shipped_with(old: str, new: str) -> str:
    text = (ROOT / "config.yaml").read_text()
    assert text.count(old) == 1
    return text.replace(old, new)


def test_bad_runtime_device_stops_the_parse_naming_the_key(tmp_path):
    wd = Workdir(tmp_path)
    wd.write_config(_shipped_with("  device: auto\n", "  device: gpu0\n"))
    bad = wd.snakemake("-n", "--cores", "1", "results/demo/sam_masks", check=False)
    out = bad.stdout + bad.stderr
    assert bad.returncode != 0 and "config.yaml: runtime.device: 'gpu0' does not match" in out, out[-2000:]
    assert "sam_masks" not in bad.stdout


def test_duplicate_config_key_stops_the_parse_naming_key_and_lines(tmp_path):
    """Snakemake has already loaded config.yaml (the last `root` won); the Snakefile re-reads it strictly."""
    wd = Workdir(tmp_path)
    old = "  demo:\n    type: demo\n    root: data/voc_sample\n"
    text = _shipped_with(old, old + "    root: data/elsewhere\n")
    line = text[: text.index(old)].count("\n") + 3  # 1-based line of the first `root:`
    wd.write_config(text)
    bad = wd.snakemake("-n", "--cores", "1", "results/demo/sam_masks", check=False)
    out = bad.stdout + bad.stderr
    assert bad.returncode != 0, out[-2000:]
    assert f"config.yaml: duplicate key datasets.demo.root at lines {line} and {line + 1}" in out, out[-2000:]
