"""Content-addressed keys: stage entry keys, layout-independent set keys and per-image result keys.

Entry and set keys (``stage_key``; docs/architecture.md, "Three kinds of key"): key = sha256 over the canonical JSON of (stage name, stage version constant, the stage's settings after
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
    return _digest(spec), spec


def image_spec_key(
    stage: str, version: int, settings: dict[str, Any], global_upstream: dict[str, str], inputs: dict[str, str]
) -> str:
    """The part of a sharded stage's per-image result keys shared by every image: its version, result
    settings (no job layout), the keys of the whole-set products it reads (trained prompts) and the non-image
    inputs (weights, class names). Ids and shard layout are not in it."""
    blob = {"stage": stage, "version": version, "settings": settings, "global": global_upstream, "inputs": inputs}
    return _digest(blob)


def image_result_key(image_spec: str, image: str | None, tags: tuple[int, ...] | None, upstream: dict[str, str]) -> str:
    """One image's result key at one stage: the stage's ``image_spec``, the image's content digest and tags
    where the stage reads them, and the image's result keys at its per-image upstream stages."""
    return _digest({"spec": image_spec, "image": image, "tags": list(tags) if tags is not None else None,
                    "upstream": upstream})


def _digest(blob: dict[str, Any]) -> str:
    text = json.dumps(blob, sort_keys=True, separators=(",", ":"), allow_nan=False)
    return hashlib.sha256(text.encode()).hexdigest()[:KEY_LENGTH]
