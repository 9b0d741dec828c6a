"""Content digests of files: the one sha256 reader the index, the weight checks and store records share, and
the hashing writer for files whose digest is recorded as they are made."""
from __future__ import annotations

import hashlib
import os
from collections.abc import Callable
from typing import BinaryIO


def file_sha256(path: str | os.PathLike) -> str:
    """Full sha256 of a file, streamed (about 1 s per GB on one core; no size limit in memory)."""
    with open(path, "rb") as fh:
        return hashlib.file_digest(fh, "sha256").hexdigest()


class HashingWriter:
    """A binary file wrapper that hashes what passes through it, so a file written once needs no second read
    for its sha256 (a 2.5 GB checkpoint: seconds saved). ``on_write(total_bytes)`` is called after each write
    (progress lines)."""

    def __init__(self, fh: BinaryIO, on_write: Callable[[int], None] | None = None):
        self._fh, self._on_write = fh, on_write
        self._sha = hashlib.sha256()
        self.written = 0

    def write(self, data: bytes) -> int:
        n = self._fh.write(data)
        self._sha.update(memoryview(data)[:n])
        self.written += n
        if self._on_write is not None:
            self._on_write(self.written)
        return n

    def flush(self) -> None:
        self._fh.flush()

    def hexdigest(self) -> str:
        """The sha256 of everything written so far."""
        return self._sha.hexdigest()
