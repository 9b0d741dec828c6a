"""``fmwsss seed IMAGE --tags ... --run results/demo`` writes the pipeline's fine seed, byte for byte, for every
demo image of the shared session run (issue 15: with CAMs stored as plain float16 and the chain seeding from
float32 ones, 2007_000032 agreed on 58 % of its pixels)."""
from __future__ import annotations

from pathlib import Path
from typing import Callable

import pytest
import torch

from fmwsss.cli import seed as seed_cli
from fmwsss.cli import single_image
from fmwsss.cli.main import main
from fmwsss.data.classes import VOC_CLASS_NAMES
from fmwsss.pipeline.config import Config
from fmwsss.pipeline.plan import Plan

pytestmark = pytest.mark.e2e


def once(fn: Callable, key: Callable) -> Callable:
    """``fn`` run on its first call only; later calls must ask for the same thing (``key`` of the arguments)."""
    first: dict = {}

    def cached(*args, **kwargs):
        if not first:
            first.update(result=fn(*args, **kwargs), key=key(*args, **kwargs))
        assert key(*args, **kwargs) == first["key"], "every image must use the same models, settings and prompts"
        return first["result"]

    return cached


@pytest.mark.slow
def test_seed_cli_equals_pipeline_fine_seed_on_every_demo_image(demo_run, tmp_path, monkeypatch):
    """Each image runs the whole command (tags parsed from names, given in reverse order; the config's settings,
    runtime and device; the PNG writer). The per-process setup is done once for all images: the models loaded
    by the command's own ``FineChain.load`` and the --run folder's current prompts entry found by its own
    ``run_prompts`` (the lookup re-checks the dataset index; tests/test_single_image.py covers it)."""
    monkeypatch.chdir(demo_run.path)
    dataset = Plan(Config.from_file("config.yaml"), refresh=False).get("demo").dataset
    monkeypatch.setattr(single_image.FineChain, "load", staticmethod(once(
        single_image.FineChain.load, lambda *args, **kwargs: (args, kwargs))))
    monkeypatch.setattr(seed_cli, "run_prompts", once(seed_cli.run_prompts, lambda run, config, name: (run, name)))
    threads = torch.get_num_threads()
    torch.set_num_threads(1)  # tiny models: a thread pool only costs here; seeds do not depend on the count
    try:
        differing = []
        for image_id in dataset.ids:
            tags = ",".join(VOC_CLASS_NAMES[c - 1] for c in sorted(set(dataset.tags(image_id)), reverse=True))
            out = tmp_path / f"{image_id}.png"
            argv = ["seed", str(dataset.image_path(image_id)), "--tags", tags, "-o", str(out), "--run", "results/demo"]
            assert main(argv) == 0, argv
            if out.read_bytes() != Path(f"results/demo/seeds/{image_id}.png").read_bytes():
                differing.append(image_id)
    finally:
        torch.set_num_threads(threads)
    assert len(dataset.ids) == 24
    assert not differing, f"fmwsss seed differs from the pipeline's fine seed on {differing}"
