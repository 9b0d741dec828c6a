"""Content-addressed stage keys.

key = sha256 over the canonical JSON of (stage name, stage version constant, the stage's settings after
defaults, upstream stage keys, identity of raw inputs: the dataset digests the stage reads, from the dataset
index header, and the declared sha256 of every weight file), first 16 hex. The same canonical ``spec`` dict is what the job receives and what it writes to
``spec.json``, so a key can always be traced back to the exact settings that made it.
"""
from __future__ import annotations

import hashlib
import json
from typing import Any

KEY_LENGTH = 16


def stage_key(
    stage: str,
    version: int,
    settings: dict[str, Any],
    upstream: dict[str, str],
    inputs: dict[str, str],
) -> tuple[str, dict[str, Any]]:
    """Return ``(key, spec)`` for one stage of one dataset."""
    spec = {
        "stage": stage,
        "version": version,
        "settings": settings,
        "upstream": dict(sorted(upstream.items())),
        "inputs": dict(sorted(inputs.items())),
    }
    blob = json.dumps(spec, sort_keys=True, separators=(",", ":"), allow_nan=False)
    return hashlib.sha256(blob.encode()).hexdigest()[:KEY_LENGTH], spec
