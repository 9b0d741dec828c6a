"""Splitting a dataset's id list into shards: the unit of work (and of caching) of per-image stages."""
from __future__ import annotations

import hashlib
from collections.abc import Sequence


def shard_ids(ids: Sequence[str], shard_size: int) -> list[list[str]]:
    """Contiguous chunks of ``ids`` of ``shard_size`` (the last may be shorter), in order.

    Larger shards mean fewer files and jobs but more work lost when one fails.
    """
    if shard_size < 1:
        raise ValueError(f"shard_size must be >= 1, got {shard_size}")
    ids = list(ids)
    return [ids[i : i + shard_size] for i in range(0, len(ids), shard_size)]


def ids_digest(ids: Sequence[str]) -> str:
    """16 hex digits of the sha256 of the newline-joined ids: changes whenever the id list or order does."""
    return hashlib.sha256("\n".join(ids).encode()).hexdigest()[:16]


def shard_name(index: int) -> str:
    """File-name stem of shard ``index``: ``shard-000``, ``shard-001``, ..."""
    if index < 0:
        raise ValueError(f"shard index must be >= 0, got {index}")
    return f"shard-{index:03d}"
