"""Build VOC and COCO trees with the real file counts and layouts from the shared samples, for planning benchmarks.

    .venv/bin/python benchmarks/make_synthetic_trees.py DEST [--smoke] [--samples DIR] [--force]

``DEST/voc``: VOC2012 + SBD layout: ``JPEGImages/<id>.jpg`` symlinks to the 24 sample images,
``SegmentationClassAug/<id>.png`` symlinks to the matching sample masks re-saved as mode-L PNGs (as the real
SegmentationClassAug is), ``ImageSets/SegmentationAug/train_aug.txt`` (10,582 ids), ``ImageSets/Segmentation/
train.txt`` (1,464 of those) and ``val.txt`` (1,449 other ids). The ``voc`` type derives tags from these
masks, so each id's tags are its sample image's classes.

``DEST/coco``: COCO train2014 layout: ``train2014/COCO_train2014_%012d.jpg`` symlinks to the 12 sample images
and ``annotations/instances_train2014.json`` with 82,783 image records and 500,000 annotations (~300 MB):
each image gets 6-7 of its sample image's real annotations (polygons and the sample's crowd RLEs) under fresh
ids, and the 80 categories. The JSON is streamed from pre-serialised fragments (a few seconds).

Image bytes are never copied, so the trees cost ~110k symlinks plus the JSON. Planning reads file lists,
masks and the JSON, never image pixels, so the symlinks give real planning cost. ``DEST/config-snippet.yaml``
holds the ``datasets`` entries to merge into a copy of config.yaml. ``--smoke`` builds trees of under 100
ids each (a second). The sample folder defaults to ``$FMWSSS_SHARED_DATA`` or the repository's ``samples/``,
as the test fixtures do.
"""
from __future__ import annotations

import argparse
import json
import os
import shutil
import sys
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from PIL import Image

FULL = {"voc_ids": 10582, "voc_train": 1464, "voc_val": 1449, "coco_images": 82783, "coco_annotations": 500_000}
SMOKE = {"voc_ids": 48, "voc_train": 16, "voc_val": 24, "coco_images": 60, "coco_annotations": 390}


@dataclass(frozen=True)
class Sizes:
    """File counts of the trees: VOC train_aug / train / val ids, COCO images and annotations."""

    voc_ids: int
    voc_train: int
    voc_val: int
    coco_images: int
    coco_annotations: int


def default_samples() -> Path:
    """The real samples, located as the tests do: ``$FMWSSS_SHARED_DATA`` or the repository's ``samples/``."""
    env = os.environ.get("FMWSSS_SHARED_DATA")
    return Path(env) if env else Path(__file__).resolve().parents[1] / "samples"


def voc_ids(n: int) -> list[str]:
    """``n`` distinct VOC-style ids (``2007_000000`` ...), sorted."""
    return [f"{2007 + i // 2000}_{i % 2000:06d}" for i in range(n)]


def _fresh(path: Path, force: bool) -> Path:
    """A temporary sibling of ``path`` to build into (renamed over ``path`` when complete)."""
    if path.exists() and not force:
        raise SystemExit(f"{path} exists; pass --force to rebuild it")
    tmp = path.with_name(path.name + ".building")
    shutil.rmtree(tmp, ignore_errors=True)
    tmp.mkdir(parents=True)
    return tmp


def _publish(tmp: Path, path: Path) -> None:
    if path.exists():
        shutil.rmtree(path)
    tmp.rename(path)


def build_voc(dest: Path, sample: Path, sizes: Sizes, force: bool = False) -> Path:
    """Write the VOC tree at ``dest`` (see module doc); returns ``dest``."""
    stems = sorted(p.stem for p in (sample / "JPEGImages").glob("*.jpg"))
    if not stems:
        raise SystemExit(f"no sample images in {sample / 'JPEGImages'}")
    tmp = _fresh(dest, force)
    masks = tmp / ".sample_masks"  # the sample's palette masks as mode L, as SegmentationClassAug stores them
    masks.mkdir()
    for stem in stems:
        labels = np.asarray(Image.open(sample / "SegmentationClass" / f"{stem}.png"))
        Image.fromarray(labels, mode="L").save(masks / f"{stem}.png")
    ids = voc_ids(sizes.voc_ids + sizes.voc_val)
    rng = np.random.default_rng(0)
    val_pos = set(rng.choice(len(ids), sizes.voc_val, replace=False).tolist())
    val = [i for k, i in enumerate(ids) if k in val_pos]
    train_aug = [i for k, i in enumerate(ids) if k not in val_pos]
    train = sorted(rng.choice(train_aug, sizes.voc_train, replace=False).tolist())
    for sub in ("JPEGImages", "SegmentationClassAug", "ImageSets/Segmentation", "ImageSets/SegmentationAug"):
        (tmp / sub).mkdir(parents=True)
    for k, id_ in enumerate(ids):
        stem = stems[k % len(stems)]
        os.symlink(sample.resolve() / "JPEGImages" / f"{stem}.jpg", tmp / "JPEGImages" / f"{id_}.jpg")
        os.symlink(f"../.sample_masks/{stem}.png", tmp / "SegmentationClassAug" / f"{id_}.png")
    for name, lst in (("SegmentationAug/train_aug", train_aug), ("Segmentation/train", train),
                      ("Segmentation/val", val)):
        (tmp / "ImageSets" / f"{name}.txt").write_text("".join(f"{i}\n" for i in lst))
    _publish(tmp, dest)
    return dest


def _annotation_fragments(sample_json: dict) -> dict[int, list[tuple[str, str]]]:
    """Per sample image id, its annotations as (text before image_id, text between image_id and id)."""
    out: dict[int, list[tuple[str, str]]] = {}
    for ann in sample_json["annotations"]:
        head = {k: ann[k] for k in ("segmentation", "area", "iscrowd")}
        tail = {k: ann[k] for k in ("bbox", "category_id")}
        out.setdefault(ann["image_id"], []).append(
            (json.dumps(head)[:-1] + ', "image_id": ', ", " + json.dumps(tail)[1:-1] + ', "id": ')
        )
    return out


def build_coco(dest: Path, sample: Path, sizes: Sizes, force: bool = False) -> Path:
    """Write the COCO train2014 tree at ``dest`` (see module doc); returns ``dest``."""
    sample_json = json.loads((sample / "annotations" / "instances_sample.json").read_text())
    records = sorted(sample_json["images"], key=lambda r: r["id"])
    frags = _annotation_fragments(sample_json)
    records = [r for r in records if r["id"] in frags]
    tmp = _fresh(dest, force)
    (tmp / "train2014").mkdir()
    (tmp / "annotations").mkdir()
    image_ids = [9 + 7 * i for i in range(sizes.coco_images)]  # sparse like the real ids
    per_image, extra = divmod(sizes.coco_annotations, sizes.coco_images)
    ann_id = 1
    with open(tmp / "annotations" / "instances_train2014.json", "w") as fh:
        head = {k: sample_json[k] for k in ("info", "licenses")}
        fh.write(json.dumps(head)[:-1] + ', "images": [')
        for i, image_id in enumerate(image_ids):
            rec = records[i % len(records)]
            name = f"COCO_train2014_{image_id:012d}.jpg"
            os.symlink(sample.resolve() / "val2014" / rec["file_name"], tmp / "train2014" / name)
            new = {**rec, "file_name": name, "id": image_id,
                   "coco_url": f"http://images.cocodataset.org/train2014/{name}"}
            fh.write((", " if i else "") + json.dumps(new))
        fh.write('], "annotations": [')
        for i, image_id in enumerate(image_ids):
            pool = frags[records[i % len(records)]["id"]]
            n = per_image + (i < extra)
            start = (i // len(records)) * n
            parts = []
            for j in range(start, start + n):
                before, between = pool[j % len(pool)]
                parts.append(f"{before}{image_id}{between}{ann_id}}}")
                ann_id += 1
            fh.write((", " if i else "") + ", ".join(parts))
        fh.write('], "categories": ' + json.dumps(sample_json["categories"]) + "}")
    _publish(tmp, dest)
    return dest


def config_snippet(voc: Path, coco: Path) -> str:
    """The ``datasets`` entries that point ``voc`` and ``coco`` at the trees (merge into config.yaml)."""
    return (
        "# Merge into a copy of config.yaml (replaces the voc entry, adds coco).\n"
        "datasets:\n"
        f"  voc:\n    type: voc\n    root: {voc.resolve()}\n    preset: voc\n"
        f"  coco:\n    type: coco\n    root: {coco.resolve()}\n    preset: coco\n"
    )


def build_trees(dest: Path, sample_root: Path, sizes: Sizes, force: bool = False) -> tuple[Path, Path]:
    """Both trees under ``dest`` plus ``dest/config-snippet.yaml``; returns (voc root, coco root)."""
    for name in ("voc_sample", "coco_sample"):
        if not (sample_root / name / "labels.json").is_file():
            raise SystemExit(f"{sample_root / name} is not the shared sample (set --samples or FMWSSS_SHARED_DATA)")
    dest.mkdir(parents=True, exist_ok=True)
    voc = build_voc(dest / "voc", sample_root / "voc_sample", sizes, force)
    coco = build_coco(dest / "coco", sample_root / "coco_sample", sizes, force)
    (dest / "config-snippet.yaml").write_text(config_snippet(voc, coco))
    return voc, coco


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0], epilog=__doc__.split("\n\n", 2)[2],
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("dest", type=Path, help="folder to create voc/, coco/ and config-snippet.yaml in")
    ap.add_argument("--samples", type=Path, default=None,
                    help="folder holding voc_sample/ and coco_sample/ (default: $FMWSSS_SHARED_DATA or the repository's samples/)")
    ap.add_argument("--smoke", action="store_true", help="tiny trees (under 100 ids each) for tests")
    ap.add_argument("--force", action="store_true", help="replace existing trees")
    for key, value in FULL.items():
        ap.add_argument(f"--{key.replace('_', '-')}", type=int, default=None, help=f"default {value}")
    args = ap.parse_args(argv)
    base = SMOKE if args.smoke else FULL
    sizes = Sizes(**{k: getattr(args, k) if getattr(args, k) is not None else v for k, v in base.items()})
    if sizes.voc_train > sizes.voc_ids:
        raise SystemExit("--voc-train must not exceed --voc-ids (train.txt is a subset of train_aug)")
    tic = time.perf_counter()
    voc, coco = build_trees(args.dest, args.samples or default_samples(), sizes, args.force)
    ann = coco / "annotations" / "instances_train2014.json"
    print(f"{voc}: {sizes.voc_ids} train_aug + {sizes.voc_val} val ids; {coco}: {sizes.coco_images} images, "
          f"{sizes.coco_annotations} annotations ({ann.stat().st_size / 1e6:.0f} MB); "
          f"{time.perf_counter() - tic:.1f} s", file=sys.stderr)
    print(args.dest / "config-snippet.yaml")


if __name__ == "__main__":
    main()
