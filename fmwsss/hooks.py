"""Test hooks that let tests interrupt a stage at a known point.

``FMWSSS_TEST_STALL=<stage>:<k>`` makes ``maybe_stall(stage, k)`` sleep forever once ``k`` work items
(images, iterations) are committed, so a test can kill the job and be sure the kill lands mid-stage.
Several stages may be listed, comma-separated. Unset (the default) it costs one dict lookup.
"""
from __future__ import annotations

import os
import sys
import time

STALL_ENV = "FMWSSS_TEST_STALL"


def _stall_points() -> dict[str, int]:
    points = {}
    for item in filter(None, os.environ.get(STALL_ENV, "").split(",")):
        stage, _, k = item.partition(":")
        points[stage.strip()] = int(k)
    return points


def maybe_stall(stage: str, done: int) -> None:
    """Block forever if the test hook asks ``stage`` to stall after ``done`` committed items."""
    if _stall_points().get(stage) == done:
        print(f"[test hook] {STALL_ENV}: {stage} stalled after {done} items", file=sys.stderr, flush=True)
        while True:
            time.sleep(3600)
