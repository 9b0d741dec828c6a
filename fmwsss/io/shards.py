"""Completion checks shared by every per-shard HDF5 file (SAM masks, CAMs)."""
from __future__ import annotations

import os
from pathlib import Path
from typing import TYPE_CHECKING, Any, Mapping

if TYPE_CHECKING:
    import numpy as np

COMPLETE_ATTR = "complete"
# The per-image result key (``fmwsss.pipeline.reuse``) an image's group was computed for: an entry that links the
# group later checks it against the key it wants, so a swapped or stale manifest row can never link other bytes.
KEY_ATTR = "image_key"


class ShardError(RuntimeError):
    """A shard file is missing, incomplete, or lacks or repeats an image."""


class IncompleteShardError(ShardError):
    """A shard file exists but was not finished (a killed job, or a file from elsewhere)."""


class BrokenLinkError(ShardError):
    """An image of a shard links into another entry's shard that is gone or lacks the group."""


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


_TMP_PREFIX = "__partial__"


class GroupShardWriter:
    """One HDF5 group per image, committed one by one: the resumable core of every per-shard stage.

    Each image's group is written under a temporary name, moved to its id and flushed, so a kill between
    images loses at most the image in progress; reopening the file resumes (``done``). ``finish`` sets the
    completion attribute and renames the partial file onto its final name.
    """

    def __init__(self, partial_path: str | os.PathLike, final_path: str | os.PathLike, settings: dict,
                 image_keys: Mapping[str, str] | None = None):
        import json

        import h5py

        self.partial_path, self.final_path = Path(partial_path), Path(final_path)
        self.image_keys = image_keys or {}
        self.partial_path.parent.mkdir(parents=True, exist_ok=True)
        try:
            self._file = h5py.File(self.partial_path, "a")
        except OSError:  # killed during an HDF5 metadata write: the partial file is unreadable, start over
            self.partial_path.unlink()
            self._file = h5py.File(self.partial_path, "a")
        wanted, stored = json.dumps(settings, sort_keys=True), self._file.attrs.get("settings")
        if stored is not None and stored != wanted:
            self._file.close()
            raise ShardError(f"{self.partial_path}: partial shard was written with other settings: {stored}")
        for name in [k for k in self._file if k.startswith(_TMP_PREFIX)]:
            del self._file[name]
        self._file.attrs["settings"] = wanted

    @property
    def done(self) -> set[str]:
        return {k for k in self._file if not k.startswith(_TMP_PREFIX)}

    def done_ids(self) -> set[str]:
        return self.done

    def link(self, image_id: str, filename: str, group: str) -> None:
        """Commit one image as a link to its identical result in another shard (see ``link_reused``)."""
        link_group(self._file, image_id, filename, group)

    def write(self, image_id: str, datasets: dict[str, "np.ndarray"], attrs: dict, compression: str | None = None):
        if image_id in self._file:
            raise ShardError(f"{self.partial_path}: image {image_id!r} already written")
        grp = self._file.create_group(_TMP_PREFIX + image_id)
        for name, data in datasets.items():
            grp.create_dataset(name, data=data, compression=compression)
        grp.attrs.update(attrs)
        record_key(grp, self.image_keys.get(image_id))
        self._file.move(_TMP_PREFIX + image_id, image_id)
        self._file.flush()

    def finish(self, expected_ids: list[str]) -> Path:
        missing = sorted(set(expected_ids) - self.done)
        if missing:
            raise ShardError(f"{self.partial_path}: cannot finish, images missing: {missing[:5]}")
        self._file.attrs[COMPLETE_ATTR] = True
        self._file.close()
        os.replace(self.partial_path, self.final_path)
        return self.final_path

    def close(self) -> None:
        if self._file.id.valid:
            self._file.close()

    def __enter__(self) -> "GroupShardWriter":
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def record_key(group: Any, key: str | None) -> None:
    """Store ``key`` (an image's per-image result key, or None when the caller has none) on its group."""
    if key is not None:
        group.attrs[KEY_ATTR] = key


def group_key(group: Any) -> str | None:
    """The per-image result key a group records (None: written without one, e.g. by an older fmwsss)."""
    key = group.attrs.get(KEY_ATTR)
    return None if key is None else str(key)


def open_complete(path: str | os.PathLike):
    """Open a finished shard read-only (an ``h5py.File``), refusing an incomplete one by name."""
    import h5py

    require_complete(path)
    return h5py.File(path, "r")


def link_group(fh: Any, image_id: str, filename: str, group: str) -> None:
    """Add ``image_id`` to the open shard ``fh`` as an HDF5 external link to ``group`` of ``filename``
    (relative to the shard's folder: HDF5 resolves it from the linking file's folder, so the store may move).
    Readers follow it transparently; nothing is copied and the linked file is never rewritten or touched."""
    import h5py

    if image_id in fh:
        raise ShardError(f"{fh.filename}: image {image_id!r} already written")
    fh[image_id] = h5py.ExternalLink(filename, "/" + group)
    fh.flush()


def link_reused(writer: Any, reused: Mapping[str, tuple[str, str]]) -> int:
    """Link each reused image (``id -> (HDF5 file relative to the shard's folder, group)``) into the shard
    ``writer`` (anything with ``done_ids()`` and ``link()``) unless a resumed job linked it already.

    Returns how many of the shard's images are reused links.
    """
    done = writer.done_ids()
    for image_id, (filename, group) in reused.items():
        if image_id not in done:
            writer.link(image_id, filename, group)
    return len(reused)


def _repair_hint(path: Path) -> str:
    """``fmwsss repair DATASET`` for a store shard (``results/<dataset>/store/<stage>/<key>/<shard>.h5``)."""
    parts = path.parts
    dataset = parts[-5] if len(parts) >= 5 and parts[-4] == "store" else "DATASET"
    return f"fmwsss repair {dataset}"


def read_group(fh: Any, image_id: str) -> Any:
    """The group of ``image_id`` in the open shard ``fh``, following a link into another entry's shard.

    None when the shard has no such image. A link whose target file or group is gone (its holder entry was
    deleted by hand, or damaged) raises ``BrokenLinkError`` naming both files and the command that mends it,
    never HDF5's "can't open file"."""
    import h5py

    link = fh.get(image_id, getlink=True)
    if link is None:
        return None
    try:
        return fh[image_id]
    except KeyError as exc:
        if not isinstance(link, h5py.ExternalLink):
            raise
        path = Path(fh.filename)
        raise BrokenLinkError(
            f"{path}: image {image_id!r} links to {link.path} in {path.parent / link.filename}, which is gone "
            f"(its entry was deleted or damaged); run `{_repair_hint(path)}` to recompute it"
        ) from exc


def external_target(fh: Any, image_id: str) -> tuple[str, str] | None:
    """``(file, group)`` an image of an open shard links to, or None when the shard holds its bytes."""
    import h5py

    found = fh.get(image_id, getlink=True)
    if isinstance(found, h5py.ExternalLink):
        return found.filename, found.path.lstrip("/")
    return None
