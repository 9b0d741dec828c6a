"""The gallery: one row per image, thumbnails drawn once and kept in a cache keyed by what they show.

A thumbnail's name is ``<stage>/<store key>/<image id>[_<class>].<ext>`` (the photo and the ground truth:
``image|gt/<id>-<file size and mtime>``), so a new variant of one stage gets new names and only its column
is drawn; everything else is found in the cache. The returned data (``gallery-data.js``) lists, per row,
the image's tags, its own mIoU per scored stage, which columns it has and the foreground share of its
FOREGROUND_SHARE columns (the page captions a nearly all-background one); the page builds the paths.
"""
from __future__ import annotations

import contextlib
import hashlib
import os
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable

import numpy as np

from fmwsss.report import thumbs
from fmwsss.report.collect import RunView

# gallery columns: (name, title, stage whose entry it shows, extension, one thumbnail per tagged class)
COLUMNS = (
    ("image", "image", None, ".jpg", False),
    ("gt", "ground truth", None, ".png", False),
    ("cam_coarse", "coarse CAM (CAA)", "cams_coarse_dump", ".jpg", True),
    ("cam_fine", "fine CAM (CAA)", "cams_fine_dump", ".jpg", True),
    ("sam", "SAM masks by level", "sam_masks", ".png", False),
    ("seeds_coarse", "coarse seed", "seeds_coarse", ".png", False),
    ("seeds_fine", "fine seed", "seeds_fine", ".png", False),
    ("segmenter", "segmenter (val)", "deeplab_eval", ".png", False),
)
# label-map columns whose thumbnails' foreground share is in the data (the page captions a nearly black one):
# the segmenter's, whose val ids are few (re-decoding every seed thumbnail of a VOC train_aug rebuild: ~10 s)
FOREGROUND_SHARE = ("segmenter",)
# per-image mIoU shown in a row: (name, scores label of collect.SCORED)
ROW_SCORES = (("seeds_fine", "seeds fine"), ("seeds_coarse", "seeds coarse"), ("segmenter", "segmenter ms+flip"))


@dataclass
class ThumbCache:
    """Files under ``root`` drawn only when absent; counts what was drawn and what was reused."""

    root: Path
    drawn: int = 0
    reused: int = 0
    used: list[str] = field(default_factory=list)

    def ensure(self, rel: str, draw: Callable[[], bytes]) -> None:
        """Draw ``rel`` unless cached. Written to a temp name and renamed (a killed build leaves no torn
        thumbnail), without fsync: a cache file lost to a power cut is simply drawn again."""
        path = self.root / rel
        if path.is_file():
            self.reused += 1
        else:
            path.parent.mkdir(parents=True, exist_ok=True)
            tmp = path.with_name(f".{path.name}.tmp-{os.getpid()}")
            tmp.write_bytes(draw())
            os.replace(tmp, path)
            self.drawn += 1
        self.used.append(rel)

    def read(self, rel: str) -> bytes:
        return (self.root / rel).read_bytes()


def _file_tag(path: Path) -> str:
    """Short hash of a source file's size and mtime: a replaced photo gets a new thumbnail name."""
    st = path.stat()
    return hashlib.sha256(f"{st.st_size}:{st.st_mtime_ns}".encode()).hexdigest()[:8]


class _Shards:
    """Lazy id -> reader lookup over a sharded store entry (opened on first use)."""

    def __init__(self, entry: Path, reader_cls):
        self.entry, self.reader_cls, self._by_id = entry, reader_cls, None
        self._open = contextlib.ExitStack()

    def read(self, image_id: str):
        if self._by_id is None:
            self._by_id = {}
            for shard in sorted(self.entry.glob("shard-*.h5")):
                reader = self._open.enter_context(self.reader_cls(shard))
                self._by_id.update({i: reader for i in reader.ids()})
        return self._by_id[image_id].read(image_id)

    def close(self) -> None:
        self._open.close()


def column_dirs(run: RunView, built: dict[str, bool]) -> dict[str, str]:
    """Column name -> thumbnail folder (relative to the cache and to report/thumbs) for the built columns."""
    dirs = {}
    for name, _, stage, _, _ in COLUMNS:
        if stage is None:
            dirs[name] = name
        elif built.get(stage):
            dirs[name] = f"{stage}/{run.keys[stage]}"
    return dirs


def build_gallery(run: RunView, cache: ThumbCache, built: dict[str, bool], scores: dict[str, dict],
                  log: Callable[[str], None] = print) -> dict[str, Any]:
    """Draw the missing thumbnails of every image of the run; return the gallery's data.

    ``built`` says which stages' current entries exist; ``scores`` are :func:`collect.scores`.
    """
    from fmwsss.cams.shards import CamShardReader
    from fmwsss.sam.shards import SamShardReader

    ds = run.dataset
    dirs = column_dirs(run, built)
    cams = {s: _Shards(run.entry(s), CamShardReader) for s in ("cams_coarse_dump", "cams_fine_dump") if built.get(s)}
    sam = _Shards(run.entry("sam_masks"), SamShardReader) if built.get("sam_masks") else None
    val = set(ds.splits.get("val", []))
    seg_dir = run.entry("deeplab_eval") / "single_scale"
    try:
        rows = _rows(run, cache, dirs, cams, sam, val, seg_dir, scores, log)
    finally:
        for shards in (*cams.values(), sam):
            if shards is not None:
                shards.close()
    columns = [{"name": name, "title": title, "dir": dirs[name], "ext": ext, "per_class": per_class}
               for name, title, _, ext, per_class in COLUMNS if name in dirs]
    return {"dataset": run.name, "classes": ["background", *ds.class_names], "columns": columns,
            "scores": [name for name, label in ROW_SCORES if label in scores], "rows": rows,
            "page_size": 100}


def _rows(run: RunView, cache: ThumbCache, dirs: dict[str, str], cams: dict[str, _Shards], sam: _Shards | None,
          val: set[str], seg_dir: Path, scores: dict[str, dict], log: Callable[[str], None]) -> list[dict]:
    """One gallery row per image id, drawing its missing thumbnails on the way."""
    from fmwsss.data.images import load_rgb
    from fmwsss.data.palette import load_label_png, palette_for

    ds = run.dataset
    palette = palette_for(ds.num_classes)
    sam_palette = thumbs.sam_palette()
    rows, tic = [], time.perf_counter()
    for n, image_id in enumerate(ds.ids, start=1):
        photo_path = Path(ds.image_path(image_id))
        gt_path = ds.gt_path(image_id)
        gt_path = Path(gt_path) if gt_path is not None and Path(gt_path).is_file() else None
        tags = list(ds.tags(image_id))
        memo: dict[str, Any] = {}

        def photo() -> np.ndarray:
            if "photo" not in memo:
                rgb = load_rgb(photo_path)
                memo["photo"] = thumbs.photo_thumb(rgb, thumbs.thumb_size(*rgb.shape[:2]))
            return memo["photo"]

        def size_of(height: int, width: int) -> tuple[int, int]:
            return thumbs.thumb_size(height, width)

        have = {}
        file_tag = _file_tag(photo_path)
        image_rel = f"image/{image_id}-{file_tag}.jpg"
        cache.ensure(image_rel, lambda: thumbs.encode_jpeg(photo(), thumbs.PHOTO_QUALITY))
        have["image"] = f"-{file_tag}"
        if gt_path is not None:
            gt_tag = _file_tag(gt_path)

            def draw_gt():
                labels = load_label_png(gt_path)
                return thumbs.label_thumb(labels, size_of(*labels.shape), palette)

            cache.ensure(f"gt/{image_id}-{gt_tag}.png", draw_gt)
            have["gt"] = f"-{gt_tag}"
        for column, stage in (("cam_coarse", "cams_coarse_dump"), ("cam_fine", "cams_fine_dump")):
            if stage not in cams:
                continue
            for cls in tags:
                def draw_cam(stage=stage, cls=cls):
                    if stage not in memo:  # one read per image and stage, not per class
                        memo[stage] = cams[stage].read(image_id)
                    record = memo[stage]
                    where = np.flatnonzero(np.asarray(record.classes) == cls)
                    cam = record.cam_caa[where[0]] if len(where) else np.zeros((1, 1), np.float32)
                    return thumbs.heatmap_thumb(cam, photo())

                cache.ensure(f"{dirs[column]}/{image_id}_{cls}.jpg", draw_cam)
            have[column] = ""
        if sam is not None:
            def draw_sam():
                m = sam.read(image_id)
                size = size_of(*m.masks.shape[1:]) if len(m.masks) else photo().shape[:2]
                return thumbs.encode_palette_png(thumbs.sam_levels_map(m.masks, m.level, m.area, size), sam_palette)

            cache.ensure(f"{dirs['sam']}/{image_id}.png", draw_sam)
            have["sam"] = ""
        foreground: dict[str, float] = {}
        label_sources = [("seeds_coarse", run.entry("seeds_coarse") / f"{image_id}.png"),
                         ("seeds_fine", run.entry("seeds_fine") / f"{image_id}.png")]
        if image_id in val:
            label_sources.append(("segmenter", seg_dir / f"{image_id}.png"))
        for column, source in label_sources:
            if column not in dirs or not source.is_file():
                continue

            def draw_labels(source=source):
                labels = load_label_png(source)
                return thumbs.label_thumb(labels, size_of(*labels.shape), palette)

            rel = f"{dirs[column]}/{image_id}.png"
            cache.ensure(rel, draw_labels)
            have[column] = ""
            if column in FOREGROUND_SHARE:
                foreground[column] = round(thumbs.foreground_share(cache.read(rel)), 4)
        miou = {name: scores[label]["images"].get(image_id, {}).get("miou")
                for name, label in ROW_SCORES if label in scores}
        rows.append({"id": image_id, "tags": tags, "val": image_id in val, "miou": miou, "have": have,
                     "foreground": foreground})
        if n % 500 == 0 or n == len(ds.ids):
            log(f"report gallery: {n}/{len(ds.ids)} images ({time.perf_counter() - tic:.1f} s, "
                f"{cache.drawn} thumbnails drawn, {cache.reused} reused)")
    return rows


def link_thumbs(cache: ThumbCache, dest: Path) -> None:
    """Make each used cached thumbnail appear under ``dest`` (a hard link: no extra disk; a copy across
    file systems)."""
    import shutil

    for rel in dict.fromkeys(cache.used):
        target = dest / rel
        target.parent.mkdir(parents=True, exist_ok=True)
        try:
            os.link(cache.root / rel, target)
        except OSError:
            shutil.copyfile(cache.root / rel, target)
