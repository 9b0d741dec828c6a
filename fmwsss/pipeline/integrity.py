"""Store entries that check themselves: the size and sha256 of every file an entry holds, recorded in its
``spec.json`` when the entry completes, and the checks that compare the disk against that record.

Why sha256: it is the hash ``sha256sum`` checks by hand, and with the SHA extensions of current x86 and ARM
CPUs it runs at about 1.4 GB/s on one core (faster than blake2b there), so recording a COCO-size SAM entry
(tens of GB) costs tens of seconds once, at completion, against hours of GPU work. Checks come in two costs:
by size (one ``stat`` per file: jobs, DAG building and ``fmwsss status`` do this on every read) and by hash
(reads every byte: ``fmwsss status --verify`` and ``fmwsss repair --verify``).

What is recorded: every regular file under the entry at completion, except ``spec.json`` itself, hidden
temporaries (``.name.tmp-pid``), symlinks and the jobs' timing records (the ``timing/`` folder,
:mod:`fmwsss.io.timing`: they differ from run to run while the results do not, and a repaired job rewrites
its own). Files or symlinks added to the entry afterwards (a scoring rule's ``metrics.json``, a reused
result) are not in the record and are never checked here.
"""
from __future__ import annotations

import json
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Iterable, Sequence

from fmwsss.io.digest import file_sha256 as sha256_file
from fmwsss.io.timing import FOLDER as TIMING_FOLDER

RECORD_KEY = "files"
SPEC_NAME = "spec.json"
MANIFEST = "manifest.sqlite"
# Files hashed on every check, not only with ``full``: a manifest is one row per image (~15 MB, ~15 ms at COCO
# size) and an edit that keeps it valid SQLite and its size (two rows' groups swapped) must not pass as whole.
ALWAYS_HASHED = frozenset({MANIFEST})


class DamagedEntryError(RuntimeError):
    """A complete store entry's file is missing or differs from its spec.json record."""


@dataclass(frozen=True)
class Problem:
    """One recorded file that is missing or differs from its record; for a problem of another entry that this
    one links into (a holder, see ``reference_problems``), ``linked`` names this entry's images it affects."""

    path: Path
    reason: str
    linked: tuple[str, ...] = ()

    def __str__(self) -> str:
        return f"{self.path}: {self.reason}"


def entry_files(entry_dir: str | os.PathLike) -> list[str]:
    """The files an entry holds: relative POSIX names of regular files, sorted (see the module docstring)."""
    root = Path(entry_dir)
    found = []
    for folder, dirs, files in os.walk(root):  # os.walk does not follow symlinked folders
        dirs[:] = [d for d in dirs if not d.startswith(".") and not (folder == str(root) and d == TIMING_FOLDER)]
        for name in files:
            path = Path(folder, name)
            if name.startswith(".") or path.is_symlink() or (folder == str(root) and name == SPEC_NAME):
                continue
            found.append(path.relative_to(root).as_posix())
    return sorted(found)


def file_record(path: str | os.PathLike) -> dict:
    return {"size": os.stat(path).st_size, "sha256": sha256_file(path)}


def record_files(entry_dir: str | os.PathLike, names: Iterable[str] | None = None) -> dict[str, dict]:
    """``{name: {"size", "sha256"}}`` for ``names`` (default: every file the entry holds)."""
    root = Path(entry_dir)
    return {name: file_record(root / name) for name in (entry_files(root) if names is None else names)}


def read_spec(entry_dir: str | os.PathLike) -> dict | None:
    """An entry's spec.json; None when it has none (not complete). Unreadable JSON is damage, by name."""
    path = Path(entry_dir) / SPEC_NAME
    try:
        return json.loads(path.read_text())
    except FileNotFoundError:
        return None
    except ValueError as exc:
        raise DamagedEntryError(f"{path}: not readable JSON ({exc})") from exc


def readable_record(entry_dir: str | os.PathLike) -> dict[str, dict] | None:
    """``read_record``, with an unreadable spec.json as None too: for checks of other entries (holders), where
    an entry that cannot say what it holds is one that cannot be trusted."""
    try:
        return read_record(entry_dir)
    except DamagedEntryError:
        return None


def read_record(entry_dir: str | os.PathLike) -> dict[str, dict] | None:
    """The file record of a complete entry; None when the entry is not complete or predates records."""
    spec = read_spec(entry_dir)
    return None if spec is None else spec.get(RECORD_KEY)


def check_files(
    entry_dir: str | os.PathLike, record: dict[str, dict], full: bool = False, names: Iterable[str] | None = None
) -> list[Problem]:
    """Recorded files that are missing or differ in size (and, with ``full``, in sha256).

    ``names`` limits the check to those recorded names (names not in the record are not checked).
    """
    root = Path(entry_dir)
    problems = []
    for name in record if names is None else [n for n in names if n in record]:
        want, path = record[name], root / name
        try:
            size = os.stat(path).st_size
        except FileNotFoundError:
            problems.append(Problem(path, f"missing (spec.json records {want['size']} bytes)"))
            continue
        if size != want["size"]:
            problems.append(Problem(path, f"{size} bytes, spec.json records {want['size']}"))
        elif (full or name in ALWAYS_HASHED) and (found := sha256_file(path)) != want["sha256"]:
            problems.append(Problem(path, f"sha256 {found}, spec.json records {want['sha256']}"))
    return problems


def query_manifest(entry: Path, sql: str, args: Sequence[str] = ()) -> list[tuple]:
    """Rows of ``sql`` over an entry's manifest (read-only); SQLite errors become ``DamagedEntryError`` naming
    the file, never a bare ``DatabaseError``."""
    import sqlite3

    con = sqlite3.connect(f"file:{entry / MANIFEST}?mode=ro", uri=True)
    try:
        return con.execute(sql, args).fetchall()
    except sqlite3.DatabaseError as exc:
        raise DamagedEntryError(f"{entry / MANIFEST}: unreadable ({exc})") from exc
    finally:
        con.close()


def _linked_shards(entry: Path) -> list[tuple[str, str, tuple[str, ...]]]:
    """(holder entry, holder shard, this entry's image ids) of every shard another entry holds for this one,
    from its manifest (checked by the caller)."""
    rows = query_manifest(entry, "SELECT entry, shard, image_id FROM results WHERE entry != ? "
                                 "ORDER BY entry, shard, image_id", (entry.name,))
    found: dict[tuple[str, str], list[str]] = {}
    for holder, shard, image_id in rows:
        found.setdefault((holder, shard), []).append(image_id)
    return [(holder, shard, tuple(ids)) for (holder, shard), ids in found.items()]


def reference_problems(entry_dir: str | os.PathLike, spec: dict, own: list[Problem], full: bool = False) -> list[Problem]:
    """What is wrong with the entries a complete entry links into (spec.json ``refs``): a holder that is gone
    or unfinished, and every holder shard that its manifest names and that is missing or differs from its
    holder's record (by size; with ``full`` also sha256). Each problem names the images of this entry it
    affects, which is what ``fmwsss repair`` recomputes. One indexed manifest query (~83k rows at COCO size,
    tens of ms) plus one stat per holder shard; nothing when the entry links nowhere."""
    entry = Path(entry_dir)
    refs = spec.get("refs") or []
    if not refs or any(p.path == entry / MANIFEST for p in own):  # a damaged manifest is repaired first
        return [Problem(entry.parent / ref, f"gone: {entry} links into it (spec.json refs)")
                for ref in refs if not (entry.parent / ref / SPEC_NAME).is_file()]
    problems: list[Problem] = []
    records: dict[str, dict | None] = {}
    try:
        linked = _linked_shards(entry)
    except DamagedEntryError as exc:
        return [Problem(entry / MANIFEST, str(exc).removeprefix(f"{entry / MANIFEST}: "))]
    for holder, shard, image_ids in linked:
        holder_dir = entry.parent / holder
        if holder not in records:
            records[holder] = readable_record(holder_dir)
        record = records[holder]
        if record is None or shard not in record:
            why = "its entry has no record of it" if (holder_dir / SPEC_NAME).is_file() else "its entry is gone"
            problems.append(Problem(holder_dir / shard, f"gone ({why}); {len(image_ids)} image(s) of {entry} link "
                                    f"into it", image_ids))
            continue
        problems += [Problem(p.path, f"{p.reason}; {len(image_ids)} image(s) of {entry} link into it", image_ids)
                     for p in check_files(holder_dir, record, full, [shard])]
    return problems


def entry_problems(
    entry_dir: str | os.PathLike, full: bool = False, names: Iterable[str] | None = None
) -> list[Problem] | None:
    """The problems of a complete entry (of its recorded ``names``, default all, and then also those of the
    entries it links into: ``reference_problems``); None when it is not complete or has no record. An
    unreadable spec.json is itself the problem."""
    spec_path = Path(entry_dir) / SPEC_NAME
    try:
        spec = read_spec(entry_dir)
    except DamagedEntryError as exc:
        return [Problem(spec_path, str(exc).removeprefix(f"{spec_path}: "))]
    record = None if spec is None else spec.get(RECORD_KEY)
    if record is None:
        return None
    own = check_files(entry_dir, record, full, names)
    return own if names is not None else own + reference_problems(entry_dir, spec, own, full)


def repair_command(dataset: str) -> str:
    return f"fmwsss repair {dataset}"


def damage_message(problems: list[Problem], dataset: str, limit: int = 5) -> str:
    """One error naming the damaged files (the first ``limit``) and the command that repairs them."""
    shown = "; ".join(str(p) for p in problems[:limit])
    more = f" (and {len(problems) - limit} more)" if len(problems) > limit else ""
    return (
        f"damaged store entry: {shown}{more}. Run `{repair_command(dataset)}` to recompute exactly the damaged "
        f"files (README, 'Repairing the store')"
    )


def _dataset_of(entry_dir: Path) -> str:
    """results/{dataset}/store/{stage}/{key} -> dataset."""
    return entry_dir.parent.parent.parent.name


_INTACT: set[tuple[str, int]] = set()  # (entry, spec.json mtime) already checked by size in this process


def require_entries_intact(entry_dirs: Iterable[str | os.PathLike], names: Iterable[str] | None = None) -> None:
    """Raise DamagedEntryError unless every complete entry's recorded files (or ``names`` of them) have
    their recorded sizes. Used at DAG-building time, where a damaged upstream entry would otherwise look done.

    Each entry is checked once per process (memoised on its spec.json's mtime): a dry run builds one job per
    shard, and every one of them asks about the same upstream entries.
    """
    names = None if names is None else list(names)
    for entry in map(Path, entry_dirs):
        try:
            stamp = (str(entry), os.stat(entry / SPEC_NAME).st_mtime_ns)
        except FileNotFoundError:
            continue
        if names is None and stamp in _INTACT:
            continue
        problems = entry_problems(entry, names=names)
        if problems:
            raise DamagedEntryError(damage_message(problems, _dataset_of(entry)))
        if names is None:
            _INTACT.add(stamp)


def require_intact(paths: Iterable[str | os.PathLike], full: bool = False) -> None:
    """Raise DamagedEntryError naming every file of ``paths`` that differs from its entry's record.

    What a job calls on the store files it is about to read (size only, unless ``full``). Files of
    entries without a record, and files the record does not list, pass unchecked.
    """
    by_entry: dict[Path, list[str]] = {}
    for path in map(Path, paths):
        by_entry.setdefault(path.parent, []).append(path.name)
    problems: list[Problem] = []
    dataset = ""
    for entry, names in by_entry.items():
        found = entry_problems(entry, full, names) or []
        problems += found
        dataset = dataset or (_dataset_of(entry) if found else "")
    if problems:
        raise DamagedEntryError(damage_message(problems, dataset))
