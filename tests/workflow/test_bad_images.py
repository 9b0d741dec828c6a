"""Bad images in the 24-image demo dataset: a 10x10 image is refused by the dry run (its header, at
planning); a truncated JPEG (fine header) fails its first job before any model, with the file and the
reason on one line on the terminal and at the end of the job's log."""
from __future__ import annotations

import shutil

import pytest
from PIL import Image

from fmwsss.data.demo import demo_splits

from .conftest import Workdir

pytestmark = pytest.mark.e2e

DEMO_ENTRY = "  demo:\n    type: demo\n    root: data/voc_sample\n    preset: demo\n"


@pytest.mark.slow
def test_small_image_refused_at_planning_truncated_jpeg_named_before_any_model(demo_run, tmp_path):
    wd: Workdir = demo_run.copy(tmp_path / "wd")
    text = wd.config_text()
    assert text.count(DEMO_ENTRY) == 1
    # one SAM shard for all 24 images, so the one job that runs holds the truncated file
    wd.write_config(text.replace(DEMO_ENTRY, DEMO_ENTRY + "    overrides: {data: {shard_size: 24}}\n"))
    truncated_id, small_id = demo_splits()["all"][:2]
    images = wd.path / "data" / "voc_sample" / "JPEGImages"
    truncated, small = f"data/voc_sample/JPEGImages/{truncated_id}.jpg", f"data/voc_sample/JPEGImages/{small_id}.jpg"
    original_small = (images / f"{small_id}.jpg").read_bytes()
    data = (images / f"{truncated_id}.jpg").read_bytes()
    (images / f"{truncated_id}.jpg").write_bytes(data[: len(data) // 2])
    Image.new("RGB", (10, 10), (90, 20, 30)).save(images / f"{small_id}.jpg")

    planned = wd.snakemake("-n", "--cores", "1", "results/demo/sam_masks", check=False)
    out = planned.stdout + planned.stderr
    assert planned.returncode != 0, out[-3000:]
    assert f"{small} (image is 10x10 pixels; both sides must be at least 16)" in out, out[-3000:]
    assert truncated not in out  # its header is fine: the dry run cannot know
    assert "rule sam_masks:" not in out  # nothing planned

    (images / f"{small_id}.jpg").write_bytes(original_small)
    run = wd.snakemake("--cores", "1", "results/demo/sam_masks", check=False)
    out = run.stdout + run.stderr
    assert run.returncode != 0, out[-3000:]
    line = next((ln for ln in out.splitlines() if ln.startswith("fmwsss error: BadImages: ")), None)
    assert line is not None, out[-3000:]
    assert f"1 unusable image(s): {truncated} (cannot decode image (image file is truncated" in line, line
    logs = list(wd.path.glob("results/demo/logs/sam_masks/*/shard-000.log"))
    log = max(logs, key=lambda p: p.stat().st_mtime).read_text()
    assert log.splitlines()[-1].endswith(line.removeprefix("fmwsss ").rsplit(" (log: ", 1)[0]), log[-2000:]
    assert "generator" not in log  # failed before the SAM model was loaded (it logs its generator)
    assert not list(wd.path.glob("results/demo/store/sam_masks/.*.partial/shard-000.h5"))
    shutil.rmtree(wd.path)
