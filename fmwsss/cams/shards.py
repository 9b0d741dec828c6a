"""CAM shard store: one HDF5 file per shard, one group per image, patch-resolution maps in the CAM codec.

Per image: ``cam_raw`` and ``cam_caa`` float16 (P, h, w) scaled per map, with ``cam_raw_scale`` and
``cam_caa_scale`` float32 (P,) (:mod:`fmwsss.cams.codec`: any magnitude keeps ~3 significant digits; the
reader undoes the scaling), ``classes`` int16 (P,) dataset class ids 1..C, group attrs ``height``, ``width``
(original image) and ``stride``. No HW x HW attention is stored: CAA runs at
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

from fmwsss.cams import codec
from fmwsss.io.shards import GroupShardWriter, ShardError, read_group

CamShardError = ShardError


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


class CamShardWriter(GroupShardWriter):
    """Append images to ``partial_path``; ``finish`` marks it complete and renames it to ``final_path``."""

    def write_cams(self, image_id: str, cam_raw: np.ndarray, cam_caa: np.ndarray, classes: np.ndarray,
                   height: int, width: int, stride: int) -> None:
        """Commit one image (an id already present is an error; so is a NaN or inf CAM, named by image)."""
        datasets = {"classes": np.asarray(classes, np.int16)}
        for kind, cams in (("cam_raw", cam_raw), ("cam_caa", cam_caa)):
            try:
                datasets[kind], datasets[f"{kind}_scale"] = codec.encode(cams)
            except ValueError as exc:
                raise ValueError(f"{self.partial_path}: image {image_id!r}: {kind}: {exc}") from exc
        self.write(image_id, datasets, {"height": int(height), "width": int(width), "stride": int(stride)})


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
        g = read_group(self._file, image_id)
        if g is None:
            raise CamShardError(f"CAM shard {self.path} has no image {image_id!r}")
        if "cam_raw_scale" not in g:
            raise CamShardError(f"CAM shard {self.path}: image {image_id!r} has no per-map scales (written by an "
                                "older fmwsss as plain float16); rerun its CAM stage")
        return CamRecord(cam_raw=codec.decode(g["cam_raw"][()], g["cam_raw_scale"][()]),
                         cam_caa=codec.decode(g["cam_caa"][()], g["cam_caa_scale"][()]),
                         classes=g["classes"][()].astype(np.int64), height=int(g.attrs["height"]),
                         width=int(g.attrs["width"]), stride=int(g.attrs["stride"]))
