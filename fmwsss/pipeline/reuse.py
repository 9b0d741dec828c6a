"""Per-image results reused across store entries: per-image result keys, entry manifests, lookups.

A sharded stage's entry (``store/<stage>/<entry key>/``) depends on the id list and the shard layout; the
result of one image does not. Its *per-image result key* hashes only what that result is made of (the
stage's version and result settings, the whole-set products it reads, the image's content digest and tags
where the stage reads them, and the image's result keys upstream; ``fmwsss.pipeline.keys``). When an
entry is finished, ``manifest.sqlite`` records, for each of its images, the per-image key and where the
bytes live (the entry and shard file that computed them). A shard job of a new entry looks its images up in
the manifests of the other finished entries of the same stage and links the ones it finds (an HDF5 external
link, ``fmwsss.io.shards.link_group``) instead of computing them. Bytes are stored once, in the entry that
computed them; links always point at that holder (never at another link), and the holder's files are never
rewritten or re-timestamped. spec.json lists the entries an entry links into (``refs``), so ``fmwsss gc``
keeps them while a current entry needs them, reading one small file per entry, never a manifest.
"""
from __future__ import annotations

import os
import sqlite3
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path

from fmwsss.pipeline.integrity import (
    MANIFEST, SPEC_NAME, DamagedEntryError, Problem, check_files, query_manifest, read_record, read_spec,
    readable_record,
)
from fmwsss.pipeline.keys import image_result_key
from fmwsss.pipeline.store import ENTRY_KEY, make_alias
from fmwsss.pipeline.stages import DATASET_INPUTS, STAGES

@dataclass(frozen=True)
class Holder:
    """Where one image's result bytes live: the entry that computed them, its shard file and the group."""

    entry: str
    shard: str
    group: str

    def link_target(self) -> tuple[str, str]:
        """(file relative to any entry folder of the same stage, group): what a new shard links to."""
        return f"../{self.entry}/{self.shard}", self.group


def image_keys(ds, stage: str, start: int, stop: int) -> dict[str, str]:
    """Per-image result keys at ``stage`` of the ids at positions ``start <= pos < stop`` (one shard's rows
    of the dataset index, or all of them for a finalize), computed from the index: no file opened."""
    ids = ds.dataset.ids_range(start, stop)
    images = ds.dataset.image_digests(start, stop)
    memo: dict[str, dict[str, str]] = {}

    def keys_at(name: str) -> dict[str, str]:
        if name not in memo:
            reads = DATASET_INPUTS[name]
            per_image = [u for u in STAGES[name].upstream if STAGES[u].sharded]
            upstream = {u: keys_at(u) for u in per_image}
            memo[name] = {
                i: image_result_key(
                    ds.image_specs[name],
                    images[i] if "images" in reads else None,
                    ds.dataset.tags(i) if "tags" in reads else None,
                    {u: upstream[u][i] for u in per_image},
                )
                for i in ids
            }
        return memo[name]

    return keys_at(stage)


def finished_entries(stage_dir: Path, exclude: str = "") -> list[Path]:
    """Finished entries of a stage folder (spec.json and manifest written), in name order."""
    if not stage_dir.is_dir():
        return []
    return [
        entry for entry in sorted(stage_dir.iterdir())
        if ENTRY_KEY.fullmatch(entry.name) and entry.name != exclude
        and (entry / "spec.json").is_file() and (entry / MANIFEST).is_file()
    ]


def manifest_problem(entry: Path) -> Problem | None:
    """Why a finished entry's manifest cannot be trusted (None: it has the size and sha256 its spec.json
    recorded). A manifest is one row per image (~15 MB at COCO size), so it is hashed on every read: an edit
    that keeps it valid SQLite (two rows' groups swapped) is caught as surely as a torn page."""
    try:
        record = read_record(entry)
    except DamagedEntryError as exc:
        return Problem(entry / SPEC_NAME, str(exc).removeprefix(f"{entry / SPEC_NAME}: "))
    if record is None or MANIFEST not in record:
        return Problem(entry / MANIFEST, f"not in {entry / SPEC_NAME}'s file record (an unfinished or older entry)")
    problems = check_files(entry, record, full=True, names=[MANIFEST])
    return problems[0] if problems else None


def holder_manifest_problems(entry: Path) -> list[Problem]:
    """The damaged manifests of the entries a complete ``entry`` links into (spec.json ``refs``). Not damage of
    ``entry`` itself (its links read the holders' shards, not their manifests), but a holder is a source of
    reuse for every later entry, and no current entry's finalize rewrites its manifest: status lists these and
    ``fmwsss repair`` rebuilds them from the holders' shards."""
    try:
        refs = (read_spec(entry) or {}).get("refs") or []
    except DamagedEntryError:
        return []
    found = []
    for ref in refs:
        holder = entry.parent / ref
        if (holder / SPEC_NAME).is_file() and (problem := manifest_problem(holder)) is not None:
            found.append(Problem(problem.path, f"{problem.reason} (an entry {entry.name} links into; its manifest "
                                 f"offers reuse)"))
    return found


class _Holders:
    """Checks of holder shards, each entry's spec.json read once: a holder is used only while its shard has
    the size its entry recorded and the group it names records the per-image key that is wanted."""

    def __init__(self, stage_dir: Path, log: Callable[[str], None]):
        self.stage_dir, self.log = stage_dir, log
        self._records: dict[str, dict | None] = {}
        self._shard_ok: dict[tuple[str, str], bool] = {}

    def shard_ok(self, holder: Holder) -> bool:
        at = (holder.entry, holder.shard)
        if at not in self._shard_ok:
            entry = self.stage_dir / holder.entry
            if holder.entry not in self._records:  # at COCO size a seed entry's record lists 83k files
                self._records[holder.entry] = readable_record(entry)
            record = self._records[holder.entry]
            ok = record is not None and holder.shard in record and not check_files(entry, record, names=[holder.shard])
            self._shard_ok[at] = ok and (entry / holder.shard).is_file()
        return self._shard_ok[at]

    def verified(self, found: Mapping[str, Holder], wanted: Mapping[str, str]) -> dict[str, Holder]:
        """``found`` (image id -> holder) less every holder whose shard is gone or damaged, or whose group is
        missing, is itself a link, or records another key than ``wanted[id]`` (each refusal logged)."""
        import h5py

        from fmwsss.io.shards import group_key

        by_shard: dict[tuple[str, str], list[str]] = {}
        for image_id, holder in found.items():
            by_shard.setdefault((holder.entry, holder.shard), []).append(image_id)
        kept: dict[str, Holder] = {}
        for (entry, shard), image_ids in sorted(by_shard.items()):
            path = self.stage_dir / entry / shard
            if not self.shard_ok(found[image_ids[0]]):
                self.log(f"not linking {len(image_ids)} image(s) to {path}: gone or not the size its entry recorded")
                continue
            try:
                with h5py.File(path, "r") as fh:
                    for image_id in image_ids:
                        group = found[image_id].group
                        hard = isinstance(fh.get(group, getlink=True), h5py.HardLink)
                        key = group_key(fh[group]) if hard else None
                        if key == wanted[image_id]:
                            kept[image_id] = found[image_id]
                        else:
                            self.log(f"not linking image {image_id!r} to {group} of {path}: it records key {key}, "
                                     f"this entry wants {wanted[image_id]}; computed here")
            except OSError as exc:
                self.log(f"not linking {len(image_ids)} image(s) to {path}: unreadable ({exc})")
        return kept


def find_reusable(
    stage_dir: str | os.PathLike, own_key: str, wanted: Mapping[str, str], log: Callable[[str], None] = print,
) -> dict[str, Holder]:
    """For image id -> per-image key ``wanted``, the holders of identical results in the other finished
    entries of ``stage_dir`` (never a ``.partial`` folder, never the asking entry itself). Costs one hashed
    manifest and one indexed query per finished entry of the stage, then one open per holder shard to check
    the keys its groups record. A damaged manifest or holder is skipped with a log line (its images are then
    computed), never trusted."""
    by_key: dict[str, list[str]] = {}
    for image_id, key in wanted.items():
        by_key.setdefault(key, []).append(image_id)
    found: dict[str, Holder] = {}
    stage_dir = Path(stage_dir)
    holders = _Holders(stage_dir, log)
    for entry in finished_entries(stage_dir, own_key):
        todo = [k for k in by_key if by_key[k][0] not in found]
        if not todo:
            break
        problem = manifest_problem(entry)
        if problem is not None:
            log(f"not reusing results of {entry}: {problem} (`fmwsss repair` rebuilds it)")
            continue
        for start in range(0, len(todo), 500):
            chunk = todo[start : start + 500]
            try:
                rows = query_manifest(
                    entry, f"SELECT image_key, entry, shard, grp FROM results WHERE image_key IN "
                           f"({','.join('?' * len(chunk))})", chunk)
            except DamagedEntryError as exc:
                log(f"not reusing results of {entry}: {exc}")
                break
            for key, holder_entry, shard, group in rows:
                holder = Holder(holder_entry, shard, group)
                if holders.shard_ok(holder):
                    for image_id in by_key[key]:
                        found.setdefault(image_id, holder)
    return holders.verified(found, wanted)


def own_links(entry: Path, image_ids: Iterable[str], wanted: Mapping[str, str],
              log: Callable[[str], None] = print) -> dict[str, Holder]:
    """For a repair inside the finished ``entry``: the images of ``image_ids`` that its (intact) manifest says
    it linked into another entry, with that holder, where the holder is still whole and records the key
    ``wanted``. Images it computed itself, and those whose holder is gone or damaged, are left out (the repair
    computes them here). Linking only to the holders the entry already used never chains links."""
    problem = manifest_problem(entry)
    if problem is not None:
        log(f"{entry}: {problem}: every image of the repaired shard is computed here")
        return {}
    ids = list(image_ids)
    rows = []
    for start in range(0, len(ids), 500):
        chunk = ids[start : start + 500]
        rows += query_manifest(entry, f"SELECT image_id, entry, shard, grp FROM results WHERE entry != ? AND "
                                      f"image_id IN ({','.join('?' * len(chunk))})", [entry.name, *chunk])
    found = {image_id: Holder(e, shard, group) for image_id, e, shard, group in rows}
    return _Holders(entry.parent, log).verified(found, wanted)


def manifest_rows(entry_key: str, shard_files: Iterable[str | os.PathLike], keys: Mapping[str, str] | None = None):
    """(image key, image id, holder entry, holder shard, group) of every image of an entry's shards: a
    linked image names the entry its link points to, an image computed here names this entry.

    The key is the one each group records (a linked image: its holder's group), so a manifest can be rebuilt
    from the shards alone; ``keys`` (image id -> the key the plan computes) fills in groups written without one
    by an older fmwsss, and a recorded key that differs from it is an error (the shard was made for other
    inputs)."""
    from fmwsss.io.shards import ShardError, external_target, group_key, open_complete, read_group

    for shard in shard_files:
        shard = Path(shard)
        with open_complete(shard) as fh:
            for image_id in fh:
                recorded = group_key(read_group(fh, image_id))
                expected = None if keys is None else keys[image_id]
                if recorded is not None and expected is not None and recorded != expected:
                    raise ShardError(f"{shard}: image {image_id!r} records key {recorded}, its inputs give {expected}")
                if recorded is None and expected is None:
                    raise ShardError(f"{shard}: image {image_id!r} records no per-image key (written by an older "
                                     f"fmwsss): its entry's manifest can be rebuilt only while it is current")
                target = external_target(fh, image_id)
                if target is None:
                    holder = Holder(entry_key, shard.name, image_id)
                else:
                    filename, group = target
                    holder = Holder(Path(filename).parent.name, Path(filename).name, group)
                yield recorded or expected, image_id, holder.entry, holder.shard, holder.group


def rebuild_manifest(entry_dir: str | os.PathLike, keys: Mapping[str, str] | None = None) -> set[str]:
    """Write ``entry_dir``'s manifest anew from its shards (see ``manifest_rows``); returns its refs."""
    entry_dir = Path(entry_dir)
    shards = sorted(entry_dir.glob("shard-*.h5"))
    return write_manifest(entry_dir, manifest_rows(entry_dir.name, shards, keys))


def write_manifest(entry_dir: str | os.PathLike, rows: Iterable[tuple[str, str, str, str, str]]) -> set[str]:
    """Write ``manifest.sqlite`` atomically (temp file, then rename); returns the other entries it refers to."""
    entry_dir = Path(entry_dir)
    path = entry_dir / MANIFEST
    tmp = entry_dir / f".{MANIFEST}.tmp-{os.getpid()}"
    tmp.unlink(missing_ok=True)
    refs: set[str] = set()
    try:
        con = sqlite3.connect(tmp)
        with con:
            con.execute(
                "CREATE TABLE results (image_key TEXT PRIMARY KEY, image_id TEXT NOT NULL, entry TEXT NOT NULL, "
                "shard TEXT NOT NULL, grp TEXT NOT NULL)"
            )
            for row in rows:
                con.execute("INSERT OR IGNORE INTO results VALUES (?, ?, ?, ?, ?)", row)
                refs.add(row[2])
        con.close()
        os.replace(tmp, path)
    finally:
        tmp.unlink(missing_ok=True)
    refs.discard(entry_dir.name)
    return refs


def point_set_link(link: Path, entry_dir: Path) -> None:
    """Let ``store/<stage>/sets/<set key>`` name ``entry_dir`` unless it already names a finished entry:
    the first finished entry of a set is what whole-set stages read, whatever shard layout comes later."""
    if link.is_symlink() and (link.parent / os.readlink(link) / "spec.json").is_file():
        return
    link.parent.mkdir(parents=True, exist_ok=True)
    make_alias(os.path.relpath(entry_dir, link.parent), link)
