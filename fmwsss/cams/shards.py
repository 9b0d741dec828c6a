"""CAM shard store: one HDF5 file per shard, one group per image, patch-resolution float16 maps.

Per image: ``cam_raw`` and ``cam_caa`` float16 (P, h, w), ``classes`` int16 (P,) dataset class ids 1..C,
group attrs ``height``, ``width`` (original image) and ``stride``. No HW x HW attention is stored: CAA runs at
dump time, which is what keeps a VOC-scale dump at a few GB instead of the reference's ~13 GB.

Writing is resumable: a group is written under a temporary name, then moved to its id and flushed, so a
killed job leaves only whole images; ``finish`` sets the file's ``complete`` attribute and renames the
partial file onto its final name.
"""
from __future__ import annotations

import json
import os
from dataclasses import dataclass
from pathlib import Path

import h5py
import numpy as np
import torch
import torch.nn.functional as F

TMP_PREFIX = ".partial-"


class CamShardError(RuntimeError):
    """A CAM shard is incomplete, missing or lacks an image."""


@dataclass
class CamRecord:
    cam_raw: np.ndarray  # float32 (P, h, w)
    cam_caa: np.ndarray  # float32 (P, h, w)
    classes: np.ndarray  # int (P,)
    height: int
    width: int
    stride: int

    def upsampled(self, kind: str = "cam_caa", size: tuple[int, int] | None = None) -> np.ndarray:
        """Bilinear resize (align_corners False) of ``kind`` to ``size`` (default: the original H x W)."""
        cam = torch.from_numpy(getattr(self, kind))
        size = size or (self.height, self.width)
        if cam.shape[0] == 0:
            return np.zeros((0, *size), np.float32)
        return F.interpolate(cam[None], size=size, mode="bilinear", align_corners=False)[0].numpy()


class CamShardWriter:
    """Append images to ``partial_path``; ``finish`` marks it complete and renames it to ``final_path``."""

    def __init__(self, partial_path: str | os.PathLike, final_path: str | os.PathLike, settings: dict):
        self.partial_path, self.final_path = Path(partial_path), Path(final_path)
        self.partial_path.parent.mkdir(parents=True, exist_ok=True)
        try:
            self._file = h5py.File(self.partial_path, "a")
        except OSError:  # a kill during an HDF5 metadata write: the partial file is unreadable, start over
            self.partial_path.unlink()
            self._file = h5py.File(self.partial_path, "a")
        for name in [k for k in self._file if k.startswith(TMP_PREFIX)]:
            del self._file[name]
        self._file.attrs["settings"] = json.dumps(settings, sort_keys=True)

    @property
    def done(self) -> set[str]:
        return set(self._file.keys())

    def write(self, image_id: str, cam_raw: np.ndarray, cam_caa: np.ndarray, classes: np.ndarray,
              height: int, width: int, stride: int) -> None:
        """Commit one image (overwrites nothing: an id already present is an error)."""
        if image_id in self._file:
            raise CamShardError(f"{self.partial_path}: image {image_id!r} already written")
        tmp = TMP_PREFIX + image_id
        grp = self._file.create_group(tmp)
        grp.create_dataset("cam_raw", data=np.asarray(cam_raw, np.float16))
        grp.create_dataset("cam_caa", data=np.asarray(cam_caa, np.float16))
        grp.create_dataset("classes", data=np.asarray(classes, np.int16))
        grp.attrs.update(height=int(height), width=int(width), stride=int(stride))
        self._file.move(tmp, image_id)
        self._file.flush()

    def finish(self) -> Path:
        self._file.attrs["complete"] = True
        self._file.close()
        os.replace(self.partial_path, self.final_path)
        return self.final_path

    def close(self) -> None:
        if self._file.id.valid:
            self._file.close()


class CamShardReader:
    """Read a complete CAM shard; refuses a file without the ``complete`` attribute."""

    def __init__(self, path: str | os.PathLike):
        self.path = Path(path)
        if not self.path.is_file():
            raise CamShardError(f"CAM shard not found: {self.path}")
        self._file = h5py.File(self.path, "r")
        if not self._file.attrs.get("complete", False):
            self._file.close()
            raise CamShardError(f"CAM shard {self.path} is incomplete (no 'complete' attribute)")

    def __enter__(self) -> "CamShardReader":
        return self

    def __exit__(self, *exc) -> None:
        self._file.close()

    @property
    def settings(self) -> dict:
        return json.loads(self._file.attrs["settings"])

    def ids(self) -> list[str]:
        return sorted(self._file.keys())

    def read(self, image_id: str) -> CamRecord:
        if image_id not in self._file:
            raise CamShardError(f"CAM shard {self.path} has no image {image_id!r}")
        g = self._file[image_id]
        return CamRecord(cam_raw=g["cam_raw"][()].astype(np.float32), cam_caa=g["cam_caa"][()].astype(np.float32),
                         classes=g["classes"][()].astype(np.int64), height=int(g.attrs["height"]),
                         width=int(g.attrs["width"]), stride=int(g.attrs["stride"]))
