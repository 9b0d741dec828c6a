"""Fill the git-ignored demo folders (``data/voc_sample``, ``data/coco_sample``) from a local copy or a URL.

Both fetchers are idempotent (a complete destination is left alone) and atomic (everything is assembled in a
temporary sibling folder and renamed into place), so an interrupted fetch never leaves a half-filled folder.
"""
from __future__ import annotations

import http.client
import json
import os
import shutil
import tarfile
import urllib.error
import urllib.request
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

from tqdm import tqdm

from fmwsss.data.classes import VOC_CLASS_NAMES
from fmwsss.data.demo import demo_splits
from fmwsss.data.images import ImageError, load_rgb
from fmwsss.data.voc import classes_in_mask
from fmwsss.io.atomic import atomic_path, atomic_write_json

DEFAULT_VOC_URL = "http://host.robots.ox.ac.uk/pascal/VOC/voc2012/VOCtrainval_11-May-2012.tar"
VOC_TAR_PREFIX = "VOCdevkit/VOC2012/"
COCO_SAMPLE_ANNOTATIONS = "annotations/instances_sample.json"
_CHUNK = 1 << 20


class FetchError(RuntimeError):
    """A fetch that cannot complete; the message names the source, file or ids at fault."""


@dataclass(frozen=True)
class FetchResult:
    """What a fetch did: ``action`` is ``"fetched"`` or ``"already present"``."""

    dest: Path
    count: int
    action: str
    source: str


def _is_url(source: str) -> bool:
    return source.startswith(("http://", "https://", "file://"))


def _voc_members(ids: Sequence[str]) -> dict[str, Path]:
    """Relative path inside a VOC2012 folder -> relative path in the demo folder (the same)."""
    rels = [f"JPEGImages/{i}.jpg" for i in ids] + [f"SegmentationClass/{i}.png" for i in ids]
    return {r: Path(r) for r in rels}


def _voc_complete(dest: Path, ids: Sequence[str]) -> bool:
    try:
        labels = json.loads((dest / "labels.json").read_text())
    except (OSError, json.JSONDecodeError):
        return False
    return sorted(labels) == sorted(ids) and all((dest / p).is_file() for p in _voc_members(ids).values())


def _refuse_foreign(dest: Path) -> None:
    if dest.exists() and (not dest.is_dir() or any(dest.iterdir())):
        raise FetchError(f"{dest} exists but is not a complete sample; remove it and fetch again")


def _download(url: str, out: Path, progress: bool) -> None:
    """Stream ``url`` into ``out`` with a progress bar; errors name the URL."""
    got, total = 0, None
    try:
        with urllib.request.urlopen(url, timeout=60) as resp, out.open("wb") as fh:
            length = resp.headers.get("Content-Length")
            total = int(length) if length else None
            with tqdm(total=total, unit="B", unit_scale=True, desc=f"download {url.rsplit('/', 1)[-1]}",
                      disable=not progress) as bar:
                while chunk := resp.read(_CHUNK):
                    fh.write(chunk)
                    got += len(chunk)
                    bar.update(len(chunk))
    except urllib.error.HTTPError as exc:
        raise FetchError(f"{url}: HTTP error {exc.code} ({exc.reason})") from exc
    except (urllib.error.URLError, http.client.HTTPException, OSError) as exc:
        raise FetchError(f"{url}: download failed after {got} bytes ({exc})") from exc
    if total is not None and got != total:
        raise FetchError(f"{url}: download truncated: got {got} of {total} bytes")


def _extract_voc_tar(tar_path: Path, label: str, members: Mapping[str, Path], out: Path) -> None:
    """Copy the wanted members (under ``VOCdevkit/VOC2012/``) out of a (possibly compressed) tar."""
    left = dict(members)
    try:
        with tarfile.open(tar_path, "r:*") as tf:
            for m in tf:  # headers are read sequentially; stop as soon as everything is found
                name = m.name.removeprefix("./")
                rel = name.removeprefix(VOC_TAR_PREFIX) if name.startswith(VOC_TAR_PREFIX) else None
                if rel in left and m.isfile():
                    target = out / left.pop(rel)
                    target.parent.mkdir(parents=True, exist_ok=True)
                    with tf.extractfile(m) as src, target.open("wb") as dst:
                        shutil.copyfileobj(src, dst, _CHUNK)
                    if not left:
                        break
    except (tarfile.TarError, EOFError, OSError) as exc:
        raise FetchError(f"{label}: not a complete, readable tar archive ({exc})") from exc


def _voc_base(source: Path) -> Path:
    for base in (source, source / "VOC2012", source / "VOCdevkit" / "VOC2012"):
        if (base / "JPEGImages").is_dir():
            return base
    raise FetchError(f"{source}: no JPEGImages/ folder (nor VOC2012/ or VOCdevkit/VOC2012/ holding one)")


def _copy_members(base: Path, members: Mapping[str, Path], out: Path) -> None:
    for rel, target in members.items():
        if (base / rel).is_file():
            (out / target).parent.mkdir(parents=True, exist_ok=True)
            shutil.copyfile(base / rel, out / target)


def fetch_voc_sample(
    source: str = DEFAULT_VOC_URL,
    dest: Path = Path("data/voc_sample"),
    *,
    splits: Mapping[str, Sequence[str]] | None = None,
    progress: bool = True,
) -> FetchResult:
    """Fill ``dest`` with the demo images: ``JPEGImages/``, ``SegmentationClass/``, ``labels.json``, ``ImageSets/``.

    ``source``: a folder laid out like VOC2012 (or the shared sample), a local VOC tar, or a URL of the
    official VOC2012 trainval tar (streamed to a temporary file, ~2 GB, then only the demo members are read).
    ``splits``: split -> ids (default: the packaged ``demo_ids.json`` train/val). ``labels.json`` is derived
    from the masks. Every id must arrive and every image must decode, else ``FetchError`` naming them.
    """
    dest = Path(dest)
    splits = {k: sorted(v) for k, v in (splits or {k: v for k, v in demo_splits().items() if k != "all"}).items()}
    ids = sorted({i for v in splits.values() for i in v})
    if _voc_complete(dest, ids):
        return FetchResult(dest, len(ids), "already present", str(source))
    _refuse_foreign(dest)
    members = _voc_members(ids)
    source = str(source)
    with atomic_path(dest) as tmp:
        tmp.mkdir()
        if _is_url(source):
            download = dest.with_name(f".{dest.name}.download-{os.getpid()}.tar")
            try:
                _download(source, download, progress)
                _extract_voc_tar(download, source, members, tmp)
            finally:
                download.unlink(missing_ok=True)
        elif Path(source).is_file():
            _extract_voc_tar(Path(source), source, members, tmp)
        elif Path(source).is_dir():
            base = _voc_base(Path(source))
            _copy_members(base, members, tmp)
            if (base / "MANIFEST.md").is_file():
                shutil.copyfile(base / "MANIFEST.md", tmp / "MANIFEST.md")
        else:
            raise FetchError(f"{source}: neither a URL, a tar file nor a folder")
        missing = sorted({Path(r).stem for r, t in members.items() if not (tmp / t).is_file()})
        if missing:
            raise FetchError(f"{source}: {len(missing)} of the {len(ids)} listed ids did not arrive: {missing}")
        try:
            for i in ids:
                load_rgb(tmp / "JPEGImages" / f"{i}.jpg")
        except ImageError as exc:
            raise FetchError(f"{source}: {exc}") from exc
        labels = {i: list(classes_in_mask(tmp / "SegmentationClass" / f"{i}.png", len(VOC_CLASS_NAMES))) for i in ids}
        atomic_write_json(tmp / "labels.json", labels)
        for split, split_ids in splits.items():
            (tmp / "ImageSets" / "Segmentation").mkdir(parents=True, exist_ok=True)
            (tmp / "ImageSets" / "Segmentation" / f"{split}.txt").write_text("".join(f"{i}\n" for i in split_ids))
    return FetchResult(dest, len(ids), "fetched", source)


def _coco_files(data: dict) -> list[str]:
    return sorted(f"val2014/{rec['file_name']}" for rec in data["images"])


def _coco_complete(dest: Path) -> bool:
    try:
        data = json.loads((dest / COCO_SAMPLE_ANNOTATIONS).read_text())
    except (OSError, json.JSONDecodeError, KeyError):
        return False
    return (dest / "labels.json").is_file() and all((dest / f).is_file() for f in _coco_files(data))


def fetch_coco_sample(source: Path, dest: Path = Path("data/coco_sample")) -> FetchResult:
    """Copy the COCO sample layout (``val2014/``, ``annotations/instances_sample.json``, ``labels.json``)."""
    source, dest = Path(source), Path(dest)
    ann = source / COCO_SAMPLE_ANNOTATIONS
    try:
        data = json.loads(ann.read_text())
        files = _coco_files(data)
    except (OSError, json.JSONDecodeError, KeyError, TypeError) as exc:
        raise FetchError(f"{ann}: cannot read the sample's annotations ({exc})") from exc
    if _coco_complete(dest):
        return FetchResult(dest, len(files), "already present", str(source))
    _refuse_foreign(dest)
    needed = [COCO_SAMPLE_ANNOTATIONS, "labels.json", *files]
    missing = [f for f in needed if not (source / f).is_file()]
    if missing:
        raise FetchError(f"{source}: {len(missing)} sample files missing: {missing}")
    with atomic_path(dest) as tmp:
        tmp.mkdir()
        for rel in needed + (["MANIFEST.md"] if (source / "MANIFEST.md").is_file() else []):
            (tmp / rel).parent.mkdir(parents=True, exist_ok=True)
            shutil.copyfile(source / rel, tmp / rel)
    return FetchResult(dest, len(files), "fetched", str(source))
