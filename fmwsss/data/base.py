"""The ``Dataset`` every dataset type returns, its shared validation, and the ``open_dataset`` factory.

A dataset is fully validated when it is opened: every id is a safe file-name stem, unique, has an existing
image and a non-empty tag list of known classes. Later stages can then trust it; every failure is a
``DatasetError`` naming the file, id or key at fault.
"""
from __future__ import annotations

import inspect
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path


class DatasetError(ValueError):
    """A dataset that fails validation; the message names the bad file, id or key."""


@dataclass(frozen=True, eq=False)
class Dataset:
    """Image ids with their image files, image-level tags and (optional) ground-truth label PNGs.

    ``class_names`` are the foreground classes: class id ``i + 1`` is ``class_names[i]`` (0 = background).
    ``ids`` are the images the pipeline runs on, sorted. ``splits`` names further id lists (e.g. train/val)
    for evaluation and bookkeeping; ``image_path`` and ``gt_path`` answer for every id of every split,
    ``tags`` for every id in ``ids``. ``sources`` are the files the loader read to make the ids, splits,
    tags and class names, ``source_dirs`` the folders whose listing it read; ``fmwsss.data.index`` checks
    them to know when the dataset must be opened again. ``gt_recipe`` (datasets whose ground truth is painted
    on request, COCO): id -> (where the map goes, the bytes it is painted from), without painting it.
    """

    name: str
    type: str
    root: Path
    class_names: tuple[str, ...]
    ids: list[str]
    splits: dict[str, list[str]]
    _images: Mapping[str, Path] = field(repr=False)
    _tags: Mapping[str, tuple[int, ...]] = field(repr=False)
    _gt: Callable[[str], Path | None] = field(repr=False)
    sources: tuple[Path, ...] = ()
    source_dirs: tuple[Path, ...] = ()
    gt_recipe: Callable[[str], tuple[Path, bytes] | None] | None = field(default=None, repr=False)

    @property
    def num_classes(self) -> int:
        """Number of foreground classes C (labels 1..C)."""
        return len(self.class_names)

    def _check(self, id_: str, table: Mapping[str, object], what: str) -> None:
        if id_ not in table:
            raise DatasetError(f"dataset {self.name!r}: unknown image id {id_!r} (no {what})")

    def image_path(self, id_: str) -> Path:
        """Path of the image file of ``id_``."""
        self._check(id_, self._images, "image")
        return self._images[id_]

    def tags(self, id_: str) -> tuple[int, ...]:
        """Sorted class ids (1..C) present in image ``id_``."""
        self._check(id_, self._tags, "tags")
        return self._tags[id_]

    def gt_path(self, id_: str) -> Path | None:
        """Ground-truth label PNG of ``id_`` (values 0..C, 255 void), or None when the dataset has none."""
        self._check(id_, self._images, "image")
        return self._gt(id_)


def check_id(id_: object, where: str) -> str:
    """Return ``id_`` if it is a safe file-name stem, else raise ``DatasetError`` naming it and ``where``."""
    if not isinstance(id_, str) or not id_ or id_ != id_.strip():
        raise DatasetError(f"{where}: id {id_!r} must be a non-empty string without surrounding spaces")
    if "/" in id_ or "\\" in id_ or ".." in id_ or id_.startswith("."):
        raise DatasetError(f"{where}: id {id_!r} must not contain '/', '\\' or '..' nor start with '.'")
    return id_


def check_ids(ids: Iterable[object], where: str) -> list[str]:
    """Validate every id and reject duplicates; returns the ids as a list in the given order."""
    out: list[str] = []
    seen: set[str] = set()
    for id_ in ids:
        id_ = check_id(id_, where)
        if id_ in seen:
            raise DatasetError(f"{where}: duplicate id {id_!r}")
        seen.add(id_)
        out.append(id_)
    return out


def tag_ids_from_names(names: Sequence[str], class_names: Sequence[str], id_: str, where: str) -> tuple[int, ...]:
    """Map tag names of image ``id_`` to sorted class ids; unknown names raise naming tag, id and ``where``."""
    index = {n: i + 1 for i, n in enumerate(class_names)}
    unknown = [n for n in names if n not in index]
    if unknown:
        raise DatasetError(
            f"{where}: image {id_!r} has unknown tag {unknown[0]!r}; known classes: {', '.join(class_names)}"
        )
    return tuple(sorted({index[n] for n in names}))


def check_image_files(name: str, ids: Iterable[str], images: Mapping[str, Path]) -> None:
    """Every id has an existing image file; the error names the id and the expected path."""
    for id_ in ids:
        if id_ not in images:
            raise DatasetError(f"dataset {name!r}: image id {id_!r} has no image file entry")
        if not images[id_].is_file():
            raise DatasetError(f"dataset {name!r}: image of id {id_!r} not found at {images[id_]}")


def make_dataset(
    *,
    name: str,
    type: str,
    root: Path,
    class_names: Sequence[str],
    ids: Sequence[str],
    splits: Mapping[str, Sequence[str]],
    images: Mapping[str, Path],
    tags: Mapping[str, Sequence[int]],
    gt: Callable[[str], Path | None],
    tags_source: str,
    sources: Sequence[Path] = (),
    source_dirs: Sequence[Path] = (),
    gt_recipe: Callable[[str], tuple[Path, bytes] | None] | None = None,
) -> Dataset:
    """Validate and build a ``Dataset``; ``tags_source`` names the file the tags came from, for messages.

    ``sources``/``source_dirs``: the files and folders whose content or listing made the dataset.
    """
    class_names = tuple(class_names)
    if not class_names or len(set(class_names)) != len(class_names):
        raise DatasetError(f"dataset {name!r}: class names must be non-empty and unique, got {class_names}")
    ids = sorted(check_ids(ids, f"dataset {name!r} ({root})"))
    splits = {k: check_ids(v, f"dataset {name!r} split {k!r}") for k, v in splits.items()}
    check_image_files(name, sorted({i for s in splits.values() for i in s}.union(ids)), images)
    num = len(class_names)
    clean: dict[str, tuple[int, ...]] = {}
    for id_ in ids:
        if id_ not in tags:
            raise DatasetError(f"{tags_source}: no tags for image id {id_!r}")
        t = tuple(sorted({int(c) for c in tags[id_]}))
        if not t:
            raise DatasetError(
                f"{tags_source}: image {id_!r} has an empty tag list; an image without any class tag cannot "
                "be used for weakly supervised segmentation (remove it or tag it)"
            )
        if t[0] < 1 or t[-1] > num:
            raise DatasetError(f"{tags_source}: image {id_!r} has tag {t[0] if t[0] < 1 else t[-1]} outside 1..{num}")
        clean[id_] = t
    return Dataset(
        name=name, type=type, root=Path(root), class_names=class_names, ids=ids,
        splits={k: list(v) for k, v in splits.items()}, _images=dict(images), _tags=clean, _gt=gt,
        sources=tuple(Path(p) for p in sources), source_dirs=tuple(Path(p) for p in source_dirs),
        gt_recipe=gt_recipe,
    )


DATASET_TYPES: dict[str, Callable[..., Dataset]] = {}
"""Registry: dataset type name -> builder ``(root, *, name, **options) -> Dataset``."""


def register_dataset_type(type_name: str) -> Callable[[Callable[..., Dataset]], Callable[..., Dataset]]:
    """Decorator adding a builder to ``DATASET_TYPES`` under ``type_name``."""

    def deco(builder: Callable[..., Dataset]) -> Callable[..., Dataset]:
        if type_name in DATASET_TYPES:
            raise ValueError(f"dataset type {type_name!r} is registered twice")
        DATASET_TYPES[type_name] = builder
        return builder

    return deco


def open_dataset(type: str, root: Path, *, name: str, **options: object) -> Dataset:
    """Open and validate the dataset of ``type`` at ``root``; unknown types or options raise ``DatasetError``."""
    import fmwsss.data  # noqa: F401  (registers the built-in types)

    if type not in DATASET_TYPES:
        raise DatasetError(f"dataset {name!r}: unknown type {type!r}; known types: {', '.join(sorted(DATASET_TYPES))}")
    builder = DATASET_TYPES[type]
    try:
        inspect.signature(builder).bind(Path(root), name=name, **options)
    except TypeError as exc:
        known = [p for p in inspect.signature(builder).parameters if p not in ("root", "name")]
        raise DatasetError(
            f"dataset {name!r} of type {type!r}: bad options {sorted(options)} ({exc}); known options: {known}"
        ) from exc
    return builder(Path(root), name=name, **options)
