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
