"""Where the tests find the real data samples: the repository's ``samples/`` (shipped with the code), or the
folder ``$FMWSSS_SHARED_DATA`` names, holding ``voc_sample/`` and ``coco_sample/`` in the same layout."""
from __future__ import annotations

import os
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
SAMPLES = Path(os.environ.get("FMWSSS_SHARED_DATA") or ROOT / "samples")


def sample_dir(name: str) -> Path:
    """``SAMPLES / name``, resolved. A missing sample fails the test rather than skipping it: the samples ship
    with the repository, so their absence means a broken checkout or a wrong ``FMWSSS_SHARED_DATA``."""
    path = SAMPLES / name
    if not (path / "labels.json").is_file():
        pytest.fail(f"{path}: no labels.json; the tests read the repository's samples/{name}, or "
                    f"$FMWSSS_SHARED_DATA/{name} when that is set", pytrace=False)
    return path.resolve()
