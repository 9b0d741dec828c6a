"""HDF5 shard store for SAM masks: one file per shard, one group per image (docs/architecture.md).

The writer commits image by image (group written under a temporary name, renamed, file flushed), so a job
killed between images loses at most the image in progress and a rerun resumes. Readers refuse a file
without the ``complete`` attribute, which the writer sets only once every image of the shard is in.
"""
from __future__ import annotations

import json
import os
import warnings
from pathlib import Path
from typing import Any, Iterable, Mapping

import h5py
import numpy as np

from fmwsss.io.shards import link_group, read_group, record_key
from fmwsss.sam.encoding import pack_masks, unpack_masks
from fmwsss.sam.types import ImageMasks

_TMP_PREFIX = "__partial__"
_FIELDS = ("level", "predicted_iou", "stability", "bbox", "area")


def _check_id(image_id: str) -> str:
    if not image_id or "/" in image_id or image_id.startswith(_TMP_PREFIX) or image_id in (".", ".."):
        raise ValueError(f"image id {image_id!r} cannot name an HDF5 group")
    return image_id


class SamShardWriter:
    """Append-only writer of one shard; ``settings`` (JSON-able generator settings) are stored as a file attr.

    Reopening a partial file resumes it (stale half-written groups are dropped); a partial file with other
    settings is an error, and one that HDF5 cannot open (killed mid-write) is started afresh with a warning.
    """

    def __init__(self, path: str | os.PathLike, settings: dict[str, Any],
                 image_keys: Mapping[str, str] | None = None) -> None:
        self.path = Path(path)
        self.image_keys = image_keys or {}
        self.settings_json = json.dumps(settings, sort_keys=True)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        try:
            self._file = h5py.File(self.path, "a")
        except OSError as exc:
            warnings.warn(f"{self.path}: unreadable partial SAM shard ({exc}); starting it again")
            self.path.unlink()
            self._file = h5py.File(self.path, "a")
        stored = self._file.attrs.get("settings")
        if stored is None:
            self._file.attrs["settings"] = self.settings_json
        elif stored != self.settings_json:
            self._file.close()
            raise ValueError(f"{self.path}: partial SAM shard was written with other settings: {stored}")
        if self._file.attrs.get("complete"):
            self._file.close()
            raise ValueError(f"{self.path}: SAM shard is already complete; refusing to append")
        for name in [n for n in self._file if n.startswith(_TMP_PREFIX)]:
            del self._file[name]
        self._file.flush()

    def done_ids(self) -> set[str]:
        """Image ids committed so far."""
        return {name for name in self._file if not name.startswith(_TMP_PREFIX)}

    def link(self, image_id: str, filename: str, group: str) -> None:
        """Commit one image as a link to its identical masks in another shard (no bytes copied)."""
        link_group(self._file, _check_id(image_id), filename, group)

    def write(self, image_id: str, masks: ImageMasks) -> None:
        """Commit one image's masks durably (replacing nothing: an id is written once)."""
        _check_id(image_id)
        if image_id in self._file:
            raise ValueError(f"{self.path}: image {image_id!r} is already in the shard")
        tmp = _TMP_PREFIX + image_id
        group = self._file.create_group(tmp)
        group.attrs["height"] = masks.height
        group.attrs["width"] = masks.width
        record_key(group, self.image_keys.get(image_id))
        packed = pack_masks(masks.masks)
        # Packed masks are mostly zero bytes: lzf shrinks them several-fold at ~no CPU cost.
        group.create_dataset("masks", data=packed, compression="lzf" if packed.size else None)
        for name in _FIELDS:
            group.create_dataset(name, data=getattr(masks, name))
        self._file.move(tmp, image_id)
        self._file.flush()

    def mark_complete(self, expected_ids: Iterable[str]) -> None:
        """Set ``complete`` once the shard holds exactly ``expected_ids``; then close the file."""
        expected, done = set(expected_ids), self.done_ids()
        if expected != done:
            missing, extra = sorted(expected - done), sorted(done - expected)
            raise ValueError(f"{self.path}: cannot mark complete; missing {missing[:5]}, unexpected {extra[:5]}")
        self._file.attrs["complete"] = True
        self.close()

    def close(self) -> None:
        if self._file.id.valid:
            self._file.flush()
            self._file.close()

    def __enter__(self) -> "SamShardWriter":
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


class SamShardReader:
    """Reader of a complete shard (refuses partial files)."""

    def __init__(self, path: str | os.PathLike) -> None:
        self.path = Path(path)
        if not self.path.is_file():
            raise FileNotFoundError(f"SAM shard not found: {self.path}")
        try:
            self._file = h5py.File(self.path, "r")
        except OSError as exc:
            raise ValueError(f"{self.path}: not a readable HDF5 SAM shard ({exc})") from exc
        if not self._file.attrs.get("complete"):
            self._file.close()
            raise ValueError(f"{self.path}: SAM shard is incomplete (no 'complete' attribute)")

    @property
    def settings(self) -> dict[str, Any]:
        return json.loads(self._file.attrs["settings"])

    def ids(self) -> list[str]:
        return sorted(self._file)

    def __contains__(self, image_id: str) -> bool:
        return image_id in self._file

    def read(self, image_id: str) -> ImageMasks:
        group = read_group(self._file, image_id)
        if group is None:
            raise KeyError(f"{self.path}: no SAM masks for image {image_id!r}")
        height, width = int(group.attrs["height"]), int(group.attrs["width"])
        fields = {name: np.asarray(group[name]) for name in _FIELDS}
        return ImageMasks(masks=unpack_masks(np.asarray(group["masks"]), height, width), **fields)

    def close(self) -> None:
        if self._file.id.valid:
            self._file.close()

    def __enter__(self) -> "SamShardReader":
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
