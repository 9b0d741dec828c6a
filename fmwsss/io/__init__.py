"""File I/O at the edges: atomic writes and HDF5 helpers."""
from fmwsss.io.atomic import atomic_path, atomic_write_bytes, atomic_write_json
from fmwsss.io.shards import COMPLETE_ATTR, IncompleteShardError, require_complete

__all__ = [
    "COMPLETE_ATTR",
    "IncompleteShardError",
    "atomic_path",
    "atomic_write_bytes",
    "atomic_write_json",
    "require_complete",
]
