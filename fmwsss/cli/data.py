"""``fmwsss data ...``: fetch the sample datasets into git-ignored folders."""
from __future__ import annotations

import argparse
from pathlib import Path

from fmwsss.data.fetch import DEFAULT_VOC_URL, FetchResult, fetch_coco_sample, fetch_voc_sample


def _report(what: str, res: FetchResult) -> int:
    if res.action == "already present":
        print(f"{what}: {res.dest} already holds all {res.count} images; nothing to do")
    else:
        print(f"{what}: fetched {res.count} images from {res.source} into {res.dest}")
    return 0


def _voc_sample(args: argparse.Namespace) -> int:
    return _report("voc-sample", fetch_voc_sample(args.source, args.dest, progress=not args.quiet))


def _coco_sample(args: argparse.Namespace) -> int:
    return _report("coco-sample", fetch_coco_sample(args.source, args.dest))


def register(subparsers: argparse._SubParsersAction) -> argparse.ArgumentParser:
    """Add ``data`` with its subcommands; each sets ``func(args) -> exit code`` (``FetchError`` on failure)."""
    data = subparsers.add_parser("data", help="fetch the sample datasets", description=__doc__)
    sub = data.add_subparsers(dest="data_command", required=True, metavar="{voc-sample,coco-sample}")
    voc = sub.add_parser(
        "voc-sample", help="fill the 24-image VOC demo folder",
        description="Copy or download the 24 demo VOC 2012 images and masks, derive labels.json from the masks.",
    )
    voc.add_argument(
        "--source", required=True,
        help="a folder laid out like VOC2012 (e.g. the repository's samples/voc_sample), a local VOC tar, or the URL of "
        f"the official VOC2012 trainval tar ({DEFAULT_VOC_URL}, ~2 GB, only 48 files are kept)",
    )
    voc.add_argument("--dest", type=Path, default=Path("data/voc_sample"),
                     help="demo folder to fill (default: data/voc_sample)")
    voc.add_argument("--quiet", action="store_true", help="no download progress bar")
    voc.set_defaults(func=_voc_sample)
    coco = sub.add_parser("coco-sample", help="copy the 12-image COCO sample",
                          description="Copy the COCO 2014 sample (images, instances JSON, labels.json).")
    coco.add_argument("--source", type=Path, required=True,
                      help="folder laid out like the repository's samples/coco_sample")
    coco.add_argument("--dest", type=Path, default=Path("data/coco_sample"),
                      help="folder to fill (default: data/coco_sample)")
    coco.set_defaults(func=_coco_sample)
    return data

