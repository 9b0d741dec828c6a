"""A user's own dataset: a folder of images, a tag file and a class-name list; no ground truth needed.

- images: ``root/<images>/<id>.<ext>`` (jpg, jpeg, png, bmp, webp, tif, tiff; case-insensitive). Images
  without tags are ignored; two files with the same stem are an error (the id would be ambiguous).
- tags: CSV with header ``id,tags`` and tags separated by ``;`` or ``|``, or JSON ``{id: [names]}``.
- classes: one name per line (``.txt``; blank lines and ``#`` comments skipped) or a YAML/JSON list.
Relative option paths are under ``root``. Class id ``i + 1`` is the i-th name of the class list.
"""
from __future__ import annotations

import csv
import json
import re
from pathlib import Path

import yaml

from fmwsss.data.base import Dataset, DatasetError, check_id, make_dataset, register_dataset_type, tag_ids_from_names

# Spreadsheets and Windows editors save UTF-8 with a byte-order mark (Excel's "CSV UTF-8"): read it as text,
# never as part of the first header cell or class name.
SPREADSHEET_TEXT = "utf-8-sig"
IMAGE_EXTENSIONS = (".jpg", ".jpeg", ".png", ".bmp", ".webp", ".tif", ".tiff")


def read_class_names(path: Path) -> list[str]:
    """Class names from a text file (one per line) or a YAML/JSON list; must be non-empty and unique."""
    if not path.is_file():
        raise DatasetError(f"{path}: class-name file not found")
    text = path.read_text(encoding=SPREADSHEET_TEXT)
    if path.suffix.lower() in (".yaml", ".yml", ".json"):
        try:
            names = yaml.safe_load(text)  # JSON is YAML
        except yaml.YAMLError as exc:
            raise DatasetError(f"{path}: cannot parse class-name list ({exc})") from exc
        if not isinstance(names, list) or not all(isinstance(n, str) for n in names):
            raise DatasetError(f"{path}: expected a list of class-name strings")
        names = [n.strip() for n in names]
    else:
        names = [ln.strip() for ln in text.splitlines() if ln.strip() and not ln.lstrip().startswith("#")]
    if not names or any(not n for n in names):
        raise DatasetError(f"{path}: class names must be non-empty strings, and at least one is needed")
    dup = sorted({n for n in names if names.count(n) > 1})
    if dup:
        raise DatasetError(f"{path}: duplicate class name {dup[0]!r}")
    return names


def _no_dup_pairs(path: Path):
    def hook(pairs: list[tuple[str, object]]) -> dict[str, object]:
        out: dict[str, object] = {}
        for k, v in pairs:
            if k in out:
                raise DatasetError(f"{path}: duplicate id {k!r}")
            out[k] = v
        return out

    return hook


def read_tag_file(path: Path) -> dict[str, list[str]]:
    """``{id: [tag names]}`` from a CSV (``id,tags``; ``;`` or ``|`` separated) or JSON tag file."""
    if not path.is_file():
        raise DatasetError(f"{path}: tag file not found")
    out: dict[str, list[str]] = {}
    if path.suffix.lower() == ".json":
        try:
            raw = json.loads(path.read_text(encoding=SPREADSHEET_TEXT), object_pairs_hook=_no_dup_pairs(path))
        except json.JSONDecodeError as exc:
            raise DatasetError(f"{path}: cannot parse tag JSON ({exc})") from exc
        if not isinstance(raw, dict):
            raise DatasetError(f"{path}: tag JSON must map image id -> list of class names")
        for id_, names in raw.items():
            check_id(id_, str(path))
            if not isinstance(names, list) or not all(isinstance(n, str) for n in names):
                raise DatasetError(f"{path}: tags of {id_!r} must be a list of class-name strings")
            out[id_] = [n.strip() for n in names if n.strip()]
        return out
    with path.open(newline="", encoding=SPREADSHEET_TEXT) as fh:
        rows = list(csv.reader(fh))
    if not rows or [c.strip() for c in rows[0]] != ["id", "tags"]:
        raise DatasetError(f"{path}: CSV must start with the header 'id,tags'")
    for lineno, row in enumerate(rows[1:], 2):
        if not row or not "".join(row).strip():
            continue
        if len(row) != 2:
            raise DatasetError(f"{path}:{lineno}: expected 2 columns 'id,tags', got {len(row)}")
        id_ = check_id(row[0].strip(), f"{path}:{lineno}")
        if id_ in out:
            raise DatasetError(f"{path}:{lineno}: duplicate id {id_!r}")
        out[id_] = [t.strip() for t in re.split(r"[;|]", row[1]) if t.strip()]
    return out


def _index_images(folder: Path) -> dict[str, Path]:
    if not folder.is_dir():
        raise DatasetError(f"{folder}: image folder not found")
    found: dict[str, Path] = {}
    for p in sorted(folder.iterdir()):
        if p.suffix.lower() in IMAGE_EXTENSIONS and p.is_file():
            if p.stem in found:
                raise DatasetError(f"{folder}: two image files for id {p.stem!r}: {found[p.stem].name}, {p.name}")
            found[p.stem] = p
    return found


@register_dataset_type("custom")
def open_custom(
    root: Path,
    *,
    name: str,
    images: str = "images",
    tags: str = "tags.csv",
    classes: str = "classes.txt",
) -> Dataset:
    """Open a custom dataset; ``images``/``tags``/``classes`` are paths under ``root`` (or absolute)."""
    root = Path(root)
    image_dir, tag_file, class_file = (root / images), (root / tags), (root / classes)
    class_names = read_class_names(class_file)
    raw = read_tag_file(tag_file)
    files = _index_images(image_dir)
    missing = [i for i in raw if i not in files]
    if missing:
        raise DatasetError(
            f"{tag_file}: image id {missing[0]!r} has no image file {image_dir / missing[0]}.<"
            f"{'|'.join(e[1:] for e in IMAGE_EXTENSIONS)}>"
        )
    tag_ids = {i: tag_ids_from_names(n, class_names, i, str(tag_file)) for i, n in raw.items()}
    return make_dataset(
        name=name, type="custom", root=root, class_names=class_names, ids=list(raw), splits={"all": sorted(raw)},
        images={i: files[i] for i in raw}, tags=tag_ids, gt=lambda _id: None, tags_source=str(tag_file),
        sources=[class_file, tag_file], source_dirs=[image_dir],
    )
