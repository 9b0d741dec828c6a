"""The one test that reports a failure of the suite's shared demo run, with the run's last log lines; every
other test that needs the run is skipped naming it (tests/shared_run.py)."""
from __future__ import annotations

import pytest

pytestmark = pytest.mark.e2e


def test_the_shared_demo_run_builds(demo_attempt):
    demo_attempt.require()
    results = demo_attempt.value.path / "results"
    assert (results / "demo/seeds/spec.json").is_file() and (results / "demo/deeplab/metrics.json").is_file()
    assert (results / "coco_demo/seeds/spec.json").is_file()
