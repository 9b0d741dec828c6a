"""Content digests of files: the one sha256 reader the index, the weight checks and store records share."""
from __future__ import annotations

import hashlib
import os


def file_sha256(path: str | os.PathLike) -> str:
    """Full sha256 of a file, streamed (about 1 s per GB on one core; no size limit in memory)."""
    with open(path, "rb") as fh:
        return hashlib.file_digest(fh, "sha256").hexdigest()
