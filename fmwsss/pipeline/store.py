"""The content-addressed store on disk: spec.json, aliases, completion checks and what gc keeps and collects."""
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
from fmwsss.io.timing import FOLDER as TIMING_FOLDER
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
        remove_path(stale)


def remove_path(path: Path) -> None:
    """Remove a file, a symlink (never what it points at) or a folder tree; gone already is fine."""
    if path.is_dir() and not path.is_symlink():
        shutil.rmtree(path, ignore_errors=True)
    else:
        path.unlink(missing_ok=True)


@dataclass(frozen=True)
class StoreEntry:
    dataset: str
    stage: str
    key: str
    path: Path
    size: int
    partial: bool


def tree_size(path: Path) -> int:
    """Bytes of a file or of the regular files under a folder (a symlink counts 0: nothing is followed)."""
    if path.is_symlink():
        return 0
    if path.is_file():
        return path.stat().st_size
    return sum(f.stat().st_size for f in path.rglob("*") if f.is_file() and not f.is_symlink())


def linked_key(link: str | os.PathLike) -> str:
    """The entry key a store symlink (an alias or a set link, ``.../<stage>/<key>``) points at."""
    return os.readlink(link).rstrip("/").rsplit("/", 1)[-1]


_ENTRY = re.compile(r"(\.)?([0-9a-f]+)(\.partial)?")
ENTRY_KEY = re.compile(r"[0-9a-f]+")  # a store entry folder's name


def store_entries(results: str | os.PathLike) -> Iterable[StoreEntry]:
    """Every store entry (and leftover partial state) under ``results/*/store/*/`` (not the ``sets`` links)."""
    for stage_dir in sorted(Path(results).glob("*/store/*")):
        dataset, stage = stage_dir.parent.parent.name, stage_dir.name
        for entry in sorted(stage_dir.iterdir()):
            found = _ENTRY.fullmatch(entry.name)
            if not found or bool(found[1]) != bool(found[3]):
                continue
            yield StoreEntry(dataset, stage, found[2], entry, tree_size(entry), bool(found[3]))


def with_references(results: str | os.PathLike, roots: set[tuple[str, str, str]]) -> set[tuple[str, str, str]]:
    """``roots`` plus every entry they need, read from spec.json (one small file per entry, never a
    manifest): the upstream entries each was made from (an upstream set key counts through its set link),
    the entries whose files it links to (``refs``: reused per-image results) and the score entries its
    ``metrics.json`` / ``scores*.json`` links point at (a few ``readlink`` calls)."""
    results = Path(results)
    found, todo = set(roots), list(roots)
    while todo:
        dataset, stage, key = todo.pop()
        store = results / dataset / "store"
        try:
            spec = json.loads((store / stage / key / "spec.json").read_text())
        except (OSError, ValueError):
            continue
        needed = [(stage, ref) for ref in spec.get("refs", [])] + score_link_targets(store / stage / key)
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


def score_link_targets(entry: Path) -> list[tuple[str, str]]:
    """(stage, key) of the score entries an entry's score links (``../../score_<stage>/<key>/<name>``) name."""
    found = []
    for link in entry.glob("*.json"):
        if _is_score_file(link.name) and link.is_symlink():
            parts = os.readlink(link).split("/")
            if len(parts) == 5 and parts[:2] == ["..", ".."]:
                found.append((parts[2], parts[3]))
    return found


@dataclass(frozen=True)
class StoreLink:
    """A stable name (``results/<dataset>/<alias>``) or a set link (``store/<stage>/sets/<set key>``) and
    the entry it names; ``dangling`` when that entry is gone (Snakemake then fails on the name)."""

    path: Path
    dataset: str
    stage: str
    key: str
    is_set_link: bool

    @property
    def dangling(self) -> bool:
        return not self.path.exists()

    @property
    def entry(self) -> tuple[str, str, str]:
        return self.dataset, self.stage, self.key


def _store_link(link: Path, dataset_dir: Path, is_set_link: bool) -> StoreLink | None:
    """The entry of ``dataset_dir``'s store that the symlink ``link`` names, if it names one."""
    if link.name.startswith(".") or not link.is_symlink():  # a temp is no link of the store
        return None
    target = Path(os.path.normpath(link.parent / os.readlink(link)))
    if target.parent.parent != dataset_dir / "store" or not ENTRY_KEY.fullmatch(target.name):
        return None
    return StoreLink(link, dataset_dir.name, target.parent.name, target.name, is_set_link)


def store_links(results: str | os.PathLike) -> list[StoreLink]:
    """Every stable name and set link of every dataset under ``results``, whatever config made them: a
    symlink in ``results/<dataset>/`` into the dataset's store, and every ``store/<stage>/sets/*`` link.
    Costs one directory listing per dataset and per stage, no spec.json read."""
    found = []
    for dataset_dir in sorted(p for p in Path(results).glob("*") if (p / "store").is_dir()):
        names = [_store_link(path, dataset_dir, False) for path in sorted(dataset_dir.iterdir())]
        sets = [_store_link(path, dataset_dir, True) for path in sorted(dataset_dir.glob("store/*/sets/*"))]
        found += [link for link in names + sets if link]
    return found


def kept_entries(
    results: str | os.PathLike, current: set[tuple[str, str, str]], links: Iterable[StoreLink]
) -> set[tuple[str, str, str]]:
    """What gc keeps: the ``current`` config's entries (``Plan.reachable``), the entry every stable name
    names, whatever config made it (after a config change or revert Snakemake still reads the name), and
    everything those need (``with_references``: upstream entries, through the set links they name too).

    A set link is no root of its own: every finished sharded entry is the target of its set's link, so
    such a root would keep every old variant for ever; a set link nothing kept names is only read by a
    future run of its exact set, which recomputes (or re-links) when its entry is gone."""
    named = {link.entry for link in links if not link.is_set_link and not link.dangling}
    return with_references(results, current | named)


@dataclass(frozen=True)
class Collection:
    """What ``fmwsss gc`` lists: unreachable entries and partial state, stale temps, the set links that
    name a collected entry (removed with it: they would dangle), and links already dangling (reported)."""

    entries: list[StoreEntry]
    temps: list[Path]
    links: list[StoreLink]
    dangling: list[StoreLink]


def collect(results: str | os.PathLike, current: set[tuple[str, str, str]], skip: set[str]) -> Collection:
    """gc's list for ``results``, leaving the datasets in ``skip`` (unavailable ones) alone. Costs one
    spec.json read per kept entry, a listing per dataset, stage and entry folder, and the size of each
    collected entry (a walk of its files)."""
    links = [link for link in store_links(results) if link.dataset not in skip]
    kept = kept_entries(results, current, links)
    entries = [e for e in unreachable_entries(results, kept) if e.dataset not in skip]
    gone = {(e.dataset, e.stage, e.key) for e in entries if not e.partial}
    temps = [t for t in stale_temps(results) if t.relative_to(results).parts[0] not in skip]
    return Collection(
        entries=entries,
        temps=[t for t in temps if not any(e.path in t.parents for e in entries)],  # go with their entry
        links=[link for link in links if link.is_set_link and link.entry in gone],
        dangling=[link for link in links if link.dangling],
    )


_TEMP = re.compile(r"\..+\.tmp-(\d+)")


def pid_alive(pid: int) -> bool:
    """Whether a process ``pid`` exists on this host (signal 0 sends nothing): a process of another user
    counts as alive (PermissionError), only ProcessLookupError as gone."""
    if pid <= 0:
        return False
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def _temp_dirs(results: Path) -> Iterable[Path]:
    """Where writers leave ``.<name>.tmp-<pid>`` temps: ``results/<dataset>/`` (aliases, the index, the
    report), each ``store/<stage>/sets/`` folder, the top level of each store entry folder and its
    ``timing/`` folder (the jobs' timing records)."""
    for dataset_dir in sorted(p for p in results.glob("*") if p.is_dir()):
        yield dataset_dir
        for stage_dir in sorted(dataset_dir.glob("store/*")):
            yield stage_dir / "sets"
            for entry in sorted(stage_dir.iterdir()):
                if ENTRY_KEY.fullmatch(entry.name) and entry.is_dir():
                    yield from (entry, entry / TIMING_FOLDER)


def stale_temps(results: str | os.PathLike) -> list[Path]:
    """Temps (``.<name>.tmp-<pid>``) whose writer is no longer alive on this host: what a job or finalize
    killed with kill -9 leaves (a 0-byte ``.manifest.sqlite.tmp-<pid>``). A live pid's temp is kept: its
    writer may still rename it into place. A pid is only meaningful on this host: a temp that a job on
    another cluster node is writing looks stale here, so run gc while no run is going on (gc checks this
    host only, ``fmwsss.pipeline.runlock``)."""
    found = []
    for directory in _temp_dirs(Path(results)):
        for temp in sorted(directory.glob(".*.tmp-*")):
            pid = _TEMP.fullmatch(temp.name)
            if pid and not pid_alive(int(pid[1])):
                found.append(temp)
    return found


def unreachable_entries(results: str | os.PathLike, reachable: set[tuple[str, str, str]]) -> list[StoreEntry]:
    """Store entries not in ``reachable`` (``kept_entries``).

    Partial state of a kept key is kept (it is what a resumed job continues from).
    """
    return [e for e in store_entries(results) if (e.dataset, e.stage, e.key) not in reachable]
