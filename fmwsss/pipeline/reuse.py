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
import re
import sqlite3
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path

from fmwsss.pipeline.keys import image_result_key
from fmwsss.pipeline.stages import DATASET_INPUTS, STAGES

MANIFEST = "manifest.sqlite"
_KEY = re.compile(r"[0-9a-f]+")


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


def _finished_entries(stage_dir: Path, exclude: str) -> list[Path]:
    """Finished entries of a stage folder (spec.json and manifest written), in name order."""
    if not stage_dir.is_dir():
        return []
    return [
        entry for entry in sorted(stage_dir.iterdir())
        if _KEY.fullmatch(entry.name) and entry.name != exclude
        and (entry / "spec.json").is_file() and (entry / MANIFEST).is_file()
    ]


def find_reusable(stage_dir: str | os.PathLike, own_key: str, wanted: Mapping[str, str]) -> dict[str, Holder]:
    """For image id -> per-image key ``wanted``, the holders of identical results in the other finished
    entries of ``stage_dir`` (never a ``.partial`` folder, never the asking entry itself). Costs one indexed
    query per finished entry of the stage; a holder whose shard file is gone is skipped."""
    by_key: dict[str, list[str]] = {}
    for image_id, key in wanted.items():
        by_key.setdefault(key, []).append(image_id)
    found: dict[str, Holder] = {}
    stage_dir = Path(stage_dir)
    for entry in _finished_entries(stage_dir, own_key):
        todo = [k for k in by_key if by_key[k][0] not in found]
        if not todo:
            break
        con = sqlite3.connect(f"file:{entry / MANIFEST}?mode=ro", uri=True)
        try:
            for start in range(0, len(todo), 500):
                chunk = todo[start : start + 500]
                rows = con.execute(
                    f"SELECT image_key, entry, shard, grp FROM results WHERE image_key IN ({','.join('?' * len(chunk))})",
                    chunk,
                )
                for key, holder_entry, shard, group in rows:
                    holder = Holder(holder_entry, shard, group)
                    if (stage_dir / holder_entry / shard).is_file():
                        for image_id in by_key[key]:
                            found.setdefault(image_id, holder)
        finally:
            con.close()
    return found


def manifest_rows(entry_key: str, shard_files: Iterable[str | os.PathLike], keys: Mapping[str, str]):
    """(image key, image id, holder entry, holder shard, group) of every image of an entry's shards: a
    linked image names the entry its link points to, an image computed here names this entry."""
    from fmwsss.io.shards import external_target, open_complete

    for shard in shard_files:
        shard = Path(shard)
        with open_complete(shard) as fh:
            for image_id in fh:
                target = external_target(fh, image_id)
                if target is None:
                    holder = Holder(entry_key, shard.name, image_id)
                else:
                    filename, group = target
                    parent, name = Path(filename).parent.name, Path(filename).name
                    holder = Holder(parent, name, group)
                yield keys[image_id], image_id, holder.entry, holder.shard, holder.group


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
    from fmwsss.pipeline.store import make_alias

    if link.is_symlink() and (link.parent / os.readlink(link) / "spec.json").is_file():
        return
    link.parent.mkdir(parents=True, exist_ok=True)
    make_alias(os.path.relpath(entry_dir, link.parent), link)
