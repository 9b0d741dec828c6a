"""Completion checks shared by every per-shard HDF5 file (SAM masks, CAMs)."""
from __future__ import annotations

import os

COMPLETE_ATTR = "complete"


class IncompleteShardError(RuntimeError):
    """A shard file exists but was not finished (a killed job, or a file from elsewhere)."""


def require_complete(path: str | os.PathLike) -> None:
    """Raise, naming the file, unless it is a readable HDF5 file carrying the completion attribute."""
    import h5py

    try:
        with h5py.File(path, "r") as fh:
            done = bool(fh.attrs.get(COMPLETE_ATTR, False))
    except OSError as exc:
        raise IncompleteShardError(f"{path}: not a readable HDF5 shard ({exc})") from exc
    if not done:
        raise IncompleteShardError(f"{path}: shard is incomplete (no '{COMPLETE_ATTR}' attribute); rerun its job")
