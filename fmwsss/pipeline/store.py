"""The content-addressed store on disk: spec.json, aliases, completion checks and garbage listing."""
from __future__ import annotations

import os
import shutil
from dataclasses import dataclass
from pathlib import Path
from typing import Iterable

from fmwsss import __version__
from fmwsss.io.atomic import atomic_write_json
from fmwsss.pipeline.integrity import RECORD_KEY, record_files


def write_spec(store_dir: str | os.PathLike, key: str, spec: dict, dataset: str) -> Path:
    """Write ``spec.json``: the hashed spec plus what is needed to read it (never a timestamp), and the size
    and sha256 of every file the entry holds (``fmwsss.pipeline.integrity``: what later reads check)."""
    path = Path(store_dir) / "spec.json"
    files = record_files(store_dir)
    atomic_write_json(path, {"key": key, "dataset": dataset, "fmwsss_version": __version__, **spec, RECORD_KEY: files})
    drop_empty_partial(store_dir)
    return path


def partial_dir(store_dir: str | os.PathLike) -> Path:
    """The resumable state of the entry ``store_dir``: its sibling ``.{key}.partial`` folder."""
    store_dir = Path(store_dir)
    return store_dir.parent / f".{store_dir.name}.partial"


def drop_empty_partial(store_dir: str | os.PathLike) -> None:
    """Remove the entry's ``.partial`` folder once its shard jobs have emptied it (left alone when not empty)."""
    try:
        partial_dir(store_dir).rmdir()
    except OSError:
        pass


def make_alias(target: str, link: str | os.PathLike) -> None:
    """Point ``link`` at the relative ``target`` atomically (a temp link renamed over the old one)."""
    link = Path(link)
    if os.path.isabs(target):
        raise ValueError(f"alias targets must be relative (clusters mount paths differently): {target}")
    if not (link.parent / target).is_dir():
        raise FileNotFoundError(f"alias {link} -> {target}: target does not exist")
    tmp = link.with_name(f".{link.name}.tmp-{os.getpid()}")
    tmp.unlink(missing_ok=True)
    os.symlink(target, tmp)
    os.replace(tmp, link)


def clean_stale_temps(directory: str | os.PathLike) -> None:
    """Remove temp files a killed job left in ``directory`` (``.<name>.tmp-<pid>``)."""
    for stale in Path(directory).glob(".*.tmp-*"):
        if stale.is_dir() and not stale.is_symlink():
            shutil.rmtree(stale, ignore_errors=True)
        else:
            stale.unlink(missing_ok=True)


@dataclass(frozen=True)
class StoreEntry:
    dataset: str
    stage: str
    key: str
    path: Path
    size: int
    partial: bool


def _tree_size(path: Path) -> int:
    if path.is_file():
        return path.stat().st_size
    return sum(f.stat().st_size for f in path.rglob("*") if f.is_file() and not f.is_symlink())


def store_entries(results: str | os.PathLike) -> Iterable[StoreEntry]:
    """Every store entry (and leftover partial state) under ``results/*/store/*/``."""
    for stage_dir in sorted(Path(results).glob("*/store/*")):
        dataset, stage = stage_dir.parent.parent.name, stage_dir.name
        for entry in sorted(stage_dir.iterdir()):
            partial = entry.name.startswith(".") and entry.name.endswith(".partial")
            key = entry.name[1 : -len(".partial")] if partial else entry.name
            yield StoreEntry(dataset, stage, key, entry, _tree_size(entry), partial)


def unreachable_entries(results: str | os.PathLike, reachable: set[tuple[str, str, str]]) -> list[StoreEntry]:
    """Store entries not reachable from any configured dataset's current keys.

    Partial state of a current key is kept (it is what a resumed job continues from).
    """
    return [e for e in store_entries(results) if (e.dataset, e.stage, e.key) not in reachable]
