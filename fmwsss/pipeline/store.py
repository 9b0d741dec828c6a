"""The content-addressed store on disk: spec.json, aliases, completion checks and garbage listing."""
from __future__ import annotations

import json
import os
import re
import shutil
from dataclasses import dataclass
from pathlib import Path
from typing import Iterable

from fmwsss import __version__
from fmwsss.io.atomic import atomic_write_json
from fmwsss.pipeline.integrity import RECORD_KEY, record_files


def write_spec(store_dir: str | os.PathLike, key: str, spec: dict, dataset: str, refs: list[str] | None = None) -> Path:
    """Write ``spec.json``: the hashed spec plus what is needed to read it (never a timestamp), the size and
    sha256 of every file the entry holds (``fmwsss.pipeline.integrity``: what later reads check) and ``refs``:
    the other entries of the stage whose files this entry links to (reused per-image results; kept by gc)."""
    path = Path(store_dir) / "spec.json"
    extra = {"refs": refs} if refs is not None else {}
    files = record_files(store_dir)
    atomic_write_json(
        path, {"key": key, "dataset": dataset, "fmwsss_version": __version__, **spec, **extra, RECORD_KEY: files}
    )
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


def linked_key(link: str | os.PathLike) -> str:
    """The entry key a store symlink (an alias or a set link, ``.../<stage>/<key>``) points at."""
    return os.readlink(link).rstrip("/").rsplit("/", 1)[-1]


_ENTRY = re.compile(r"(\.)?([0-9a-f]+)(\.partial)?")


def store_entries(results: str | os.PathLike) -> Iterable[StoreEntry]:
    """Every store entry (and leftover partial state) under ``results/*/store/*/`` (not the ``sets`` links)."""
    for stage_dir in sorted(Path(results).glob("*/store/*")):
        dataset, stage = stage_dir.parent.parent.name, stage_dir.name
        for entry in sorted(stage_dir.iterdir()):
            found = _ENTRY.fullmatch(entry.name)
            if not found or bool(found[1]) != bool(found[3]):
                continue
            yield StoreEntry(dataset, stage, found[2], entry, _tree_size(entry), bool(found[3]))


def with_references(results: str | os.PathLike, roots: set[tuple[str, str, str]]) -> set[tuple[str, str, str]]:
    """``roots`` plus every entry they need, read from spec.json (one small file per entry, never a
    manifest): the upstream entries each was made from (an upstream set key counts through its set link)
    and the entries whose files it links to (``refs``: reused per-image results)."""
    results = Path(results)
    found, todo = set(roots), list(roots)
    while todo:
        dataset, stage, key = todo.pop()
        store = results / dataset / "store"
        try:
            spec = json.loads((store / stage / key / "spec.json").read_text())
        except (OSError, ValueError):
            continue
        needed = [(stage, ref) for ref in spec.get("refs", [])]
        for upstream, up_key in spec.get("upstream", {}).items():
            link = store / upstream / "sets" / up_key
            if link.is_symlink():
                needed.append((upstream, linked_key(link)))
            needed.append((upstream, up_key))
        for item in ((dataset, s, k) for s, k in needed):
            if item not in found and (store / item[1] / item[2]).is_dir():
                found.add(item)
                todo.append(item)
    return found


def unreachable_entries(results: str | os.PathLike, reachable: set[tuple[str, str, str]]) -> list[StoreEntry]:
    """Store entries not reachable from any configured dataset's current keys.

    Partial state of a current key is kept (it is what a resumed job continues from).
    """
    return [e for e in store_entries(results) if (e.dataset, e.stage, e.key) not in reachable]
