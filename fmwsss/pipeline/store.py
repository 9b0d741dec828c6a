"""The content-addressed store on disk: spec.json, aliases, completion checks and garbage listing."""
from __future__ import annotations

import os
import shutil
from dataclasses import dataclass
from pathlib import Path
from typing import Iterable

from fmwsss import __version__
from fmwsss.io.atomic import atomic_write_json


def write_spec(store_dir: str | os.PathLike, key: str, spec: dict, dataset: str) -> Path:
    """Write ``spec.json``: the hashed spec plus what is needed to read it (never a timestamp)."""
    path = Path(store_dir) / "spec.json"
    atomic_write_json(path, {"key": key, "dataset": dataset, "fmwsss_version": __version__, **spec})
    return path


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


def link_scores(entry: str | os.PathLike, target: str) -> list[str]:
    """Point ``metrics.json`` and ``scores*.json`` of a store ``entry`` at those of its score entry.

    ``target`` is the score entry's folder relative to ``entry`` (``../../score_<stage>/<key>``). Each link is
    swapped atomically, so a reader sees the old or the new score, never none; a score file the new score entry
    lacks (ground truth gone) loses its link. Returns the names linked.
    """
    entry = Path(entry)
    if os.path.isabs(target):
        raise ValueError(f"score links must be relative (clusters mount paths differently): {target}")
    source = entry / target
    if not (source / "spec.json").is_file():
        raise FileNotFoundError(f"{entry}: score entry {source} is not complete (no spec.json)")
    names = sorted(p.name for p in source.glob("*.json") if _is_score_file(p.name))
    for name in names:
        tmp = entry / f".{name}.tmp-{os.getpid()}"
        tmp.unlink(missing_ok=True)
        os.symlink(f"{target}/{name}", tmp)
        os.replace(tmp, entry / name)
    for stale in entry.glob("*.json"):
        if _is_score_file(stale.name) and stale.name not in names and stale.is_symlink():
            stale.unlink()
    return names


def _is_score_file(name: str) -> bool:
    return name == "metrics.json" or (name.startswith("scores") and name.endswith(".json"))


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
