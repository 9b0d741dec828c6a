"""The tiny random-weight test models (``tiny=True`` registry entries), made by one function for the CLI
(``fmwsss weights make-tiny``) and the workflow (rule ``weights_tiny``), so the two never drift apart."""
from __future__ import annotations

import os
from pathlib import Path

from fmwsss.models.weights import get_weight, record_creation


def create_tiny_model(name: str, path: str | os.PathLike, seed: int = 0) -> Path:
    """Make the tiny test model ``name`` at ``path`` (atomically, from ``seed``) and record its sha256 in the
    sidecar: the reference every later check hashes it against."""
    from fmwsss.models.clip import create_tiny_clip
    from fmwsss.models.swin import create_tiny_swin
    from fmwsss.models.tiny_sam import create_tiny_sam

    makers = {"tiny_clip": create_tiny_clip, "tiny_sam": create_tiny_sam, "tiny_swin": create_tiny_swin}
    if not get_weight(name).tiny or name not in makers:
        raise ValueError(f"{name!r} is not a tiny test model ({', '.join(sorted(makers))})")
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    makers[name](path, seed)
    record_creation(path)
    return path
