"""The dataset index: a dataset opened once, kept in one SQLite file that planning and jobs read.

Opening VOC with tags derived from its ground truth reads ~10k PNGs, opening COCO parses a ~330 MB JSON;
doing that on every Snakemake invocation and again inside every job made planning and job starts cost
minutes. The index holds what the loader found (ids, splits, image and GT paths, tags, class names) plus a
content digest of every image and GT file, and a header with one digest per input kind, so stage keys are
computed from the header alone.

Why SQLite (stdlib): a job reads the header and only its shard's rows through an index on the row position,
without parsing the whole file; the file is built under a temporary name and renamed into place, so a reader
sees either the old or the new index; jobs open it read-only and ``immutable`` (no locks, safe on network
file systems, since it is only ever replaced, never edited in place).

Freshness, checked by the main Snakemake process (``refresh_index``) on every run that targets the dataset:
- the files the loader read (split files, tag/label files, the COCO annotation JSON, class lists; for VOC
  without ``cls_labels`` every GT PNG of the run's ids): size + mtime_ns, confirmed by sha256 when either
  moved. A content change re-opens the dataset (the cost the index exists to avoid: ~55 s for VOC train_aug
  with derived tags, ~20 s and ~2.5 GB for COCO train2014).
- the folders whose listing the loader read (VOC root, split and GT folders; a custom dataset's image
  folder): the sorted list of names, not the entries' stats: every file whose content matters is tracked
  on its own (below), so the listing only has to catch entries added or removed, and a touch inside a
  folder never re-opens the dataset. A change re-opens the dataset.
- every image and GT file: size + mtime_ns, git-index style. Only a file whose stat moved is re-hashed
  (sha256); a touched file keeps its digest (no key moves), a replaced one gets a new digest (its stages'
  keys move). A file replaced with the same size and the same mtime_ns is not noticed, as in git.
First-build cost: one sha256 pass over every image and GT file (~0.8 GB/s per core here, hashed on all cores):
about 13 GB for COCO train2014, i.e. ~10-20 s on warm disks, bounded by disk speed on cold ones.

Image headers: when an image is hashed, its header is parsed too (``probe_header``: size without decoding
pixels) and its width and height, or why it is refused, are recorded with its stat, so a warm run re-opens
no image. An unreadable header or a side under 16 px refuses the whole dataset at planning with one
``BadImages`` error listing every bad file (the index is still written, so fixing one file re-probes only
that file). A truncated pixel stream has a fine header: jobs catch it with a full decode before any model
(``require_decodable``).

Ground truth painted on request (COCO with ``cache_dir``): the index stores each image's paint recipe (its
annotations in paint order and its size, zlib'd; its sha256 is the image's GT identity), so no job parses
the annotation JSON: a scoring job paints the maps it lacks into the shared cache from the recipes.
Painting is not done at index build: at 0.2 s per sample image (measured here, loaded machine) it would put
hours into a dry run at COCO size.

The index is rewritten only when its content changes (a touched file updates its recorded stat). Each write
(``IndexContent.write`` and ``patch``) is followed by a record of the file's own sha256 and size in
``index.sqlite.sha256``, and the file is checked whole against it on every open (``check_record``): by the
main process before it reads the index, by every job before it opens it. A file truncated, overwritten in
part, edited into other valid SQLite (a swapped value, which SQLite's ``quick_check`` cannot see), or without
its record (an index written before records existed: rebuilt once) is damaged: the main process (also
``fmwsss index``/``status``) rebuilds it with a log line naming the file and why, re-hashing every file (a
damaged index's digests are not reused); a job raises ``IndexStale``. A job may race a main process that
renamed a new index into place before writing its record, so a mismatch is read again once after
``RECHECK_AFTER_S``. Cost, measured on a synthetic COCO train2014 index (82,783 ids, 39 MB, page cache warm;
``benchmarks/bench_index_check.py``): 25 ms a check (and a record write), i.e. +12 % on the main process's
215 ms of ``read_freshness`` a run, and a job's open with its shard's rows goes from 2 ms to 27 ms. The
SQLite alternatives cost more and see less: ``PRAGMA quick_check`` over every table 39 ms,
``integrity_check`` 120 ms. An index with paint recipes (COCO with ``cache_dir``, ~150 MB) costs about four
times that; a cold file (a job's first open on a network file system) adds one read of it, as any whole
check would. Any SQLite error while reading rows (a file damaged after it was opened) is an ``IndexStale``
naming the file and the command, never a bare ``DatabaseError``. Jobs never build or refresh the index
(``open_index``): a missing, damaged or mismatching index, or a file a job reads that changed since, is an
``IndexStale`` error naming the command that refreshes it.
"""
from __future__ import annotations

import hashlib
import json
import os
import shutil
import sqlite3
import sys
import time
import zlib
from collections.abc import Callable, Collection, Iterable, Iterator, Sequence
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

from fmwsss.data.base import Dataset, DatasetError, open_dataset
from fmwsss.data.images import BadImages, probe_header
from fmwsss.data.shards import ids_digest
from fmwsss.io.digest import file_sha256

INDEX_VERSION = 3
"""Bump when a loader's output or this file's layout changes: older indexes are then rebuilt."""

INDEX_NAME = "index.sqlite"
DIGESTS = ("ids", "class_names", "tags", "images", "gt", "val_ids", "val_images", "val_gt")
"""Header digests: over the run's ids (``ids``), or over the ``val`` split (``val_*``, for DeepLab)."""

Log = Callable[[str], None]


RECHECK_AFTER_S = 0.5
"""A record that does not match is read again after this long before the index is called damaged: a main
process may have renamed a new index into place and not yet written its record (costs only a damaged open)."""


class IndexStale(DatasetError):
    """The index cannot be trusted inside a job (missing, corrupt, or older than the files it describes)."""


def fix_hint(name: str) -> str:
    """What mends a missing, stale or damaged index: only the main process builds it, never a job."""
    return (f"run `fmwsss index {name}` (or any snakemake command from the main process, which refreshes "
            f"it) and start the job again")


def stderr_log(msg: str) -> None:
    print(f"fmwsss index: {msg}", file=sys.stderr, flush=True)


def _digest(lines: Iterable[str]) -> str:
    h = hashlib.sha256()
    for line in lines:
        h.update(line.encode())
        h.update(b"\n")
    return h.hexdigest()[:16]


def folder_listing(path: Path) -> str:
    """Digest of a folder's sorted entry names ('-' when it does not exist)."""
    try:
        return _digest(sorted(os.listdir(path)))
    except FileNotFoundError:
        return "-"


def config_identity(entry: dict) -> str:
    """What of a ``datasets.NAME`` entry the index depends on (never the preset: settings are not data)."""
    return json.dumps({k: entry.get(k) for k in ("type", "root", "options")}, sort_keys=True)


@dataclass(frozen=True)
class FileStat:
    size: int
    mtime_ns: int
    sha256: str
    width: int | None = None  # images only: the header's size, or ``problem`` when the header is refused
    height: int | None = None
    problem: str | None = None

    @property
    def is_image(self) -> bool:
        return self.width is not None or self.problem is not None


def _hash_and_probe(path: str) -> tuple[str, int | None, int | None, str | None]:
    """sha256 of an image file and its header's (width, height) or problem, read while the file is cached."""
    found = probe_header(path)
    if isinstance(found, str):
        return file_sha256(path), None, None, found
    return file_sha256(path), *found, None


def bad_images(files: dict[str, FileStat]) -> list[tuple[str, str]]:
    """(path, reason) of every recorded image whose header was refused, sorted by path."""
    return sorted((p, f.problem) for p, f in files.items() if f.problem is not None)


def refuse_bad_images(files: dict[str, FileStat], name: str) -> None:
    """The planning-time image check: one ``BadImages`` error naming every refused image of the dataset."""
    bad = bad_images(files)
    if bad:
        raise BadImages(bad, f"dataset {name!r}", "fix or remove these files (image headers are checked at planning)")


def _stat(path: str) -> tuple[int, int]:
    st = os.stat(path)
    return st.st_size, st.st_mtime_ns


def hash_files(
    paths: Sequence[str], cache: dict[str, FileStat], log: Log, what: str, images: Collection[str] = ()
) -> dict[str, FileStat]:
    """Stat every path; re-hash only those whose (size, mtime_ns) differ from ``cache`` (threads: hashlib
    releases the GIL). A missing file raises ``FileNotFoundError`` naming it. Of the re-hashed paths, those in
    ``images`` also get their header recorded (``_hash_and_probe``)."""
    out: dict[str, FileStat] = {}
    todo: dict[str, tuple[int, int]] = {}  # the stat taken before hashing: a file written meanwhile is re-hashed next time
    for path in paths:
        stat = _stat(path)
        old = cache.get(path)
        if old is not None and (old.size, old.mtime_ns) == stat and (old.is_image or path not in images):
            out[path] = old
        else:
            todo[path] = stat
    if todo:
        rest = len(paths) - len(todo)
        log(f"hashing {len(todo)} {what}" + (f" ({rest} more unchanged since the last index)" if rest else ""))
        tic, last, done = time.monotonic(), time.monotonic(), 0
        paths_todo = list(todo)
        chunks = [paths_todo[i : i + 256] for i in range(0, len(paths_todo), 256)]  # few futures, not one a file

        def read(p: str) -> tuple:
            return _hash_and_probe(p) if p in images else (file_sha256(p),)

        with ThreadPoolExecutor(max_workers=os.cpu_count() or 1) as pool:
            for chunk, found in zip(chunks, pool.map(lambda c: [read(p) for p in c], chunks)):
                out.update((path, FileStat(*todo[path], *f)) for path, f in zip(chunk, found))
                done += len(chunk)
                if time.monotonic() - last > 10:
                    last = time.monotonic()
                    log(f"  {done}/{len(todo)} hashed ({time.monotonic() - tic:.0f} s)")
    return out


# -- the record of the file's own sha256 ------------------------------------------------------------------
def record_path(path: Path) -> Path:
    """The sidecar holding the index file's sha256 and size as last written (``index.sqlite.sha256``)."""
    return path.with_name(path.name + ".sha256")


def write_record(path: Path) -> None:
    """Record the sha256 and size of the index just renamed into place (atomically: a reader sees the old
    record or the new one)."""
    record = record_path(path)
    tmp = record.with_name(f".{record.name}.tmp-{os.getpid()}")
    try:
        tmp.write_text(json.dumps({"sha256": file_sha256(path), "size": os.path.getsize(path)}) + "\n")
        os.replace(tmp, record)
    finally:
        tmp.unlink(missing_ok=True)


def _record_problem(path: Path) -> str | None:
    """Why ``path`` is not the file its record describes, or None when its size and sha256 match."""
    record = record_path(path)
    try:
        want = json.loads(record.read_text())
        size, sha = int(want["size"]), str(want["sha256"])
    except FileNotFoundError:
        return f"no {record.name} records its sha256 (written with every index)"
    except (OSError, ValueError, KeyError, TypeError) as exc:
        return f"its record {record.name} is unreadable ({exc})"
    found = os.path.getsize(path)
    if found != size:
        return f"{found} bytes, {record.name} records {size} (truncated or overwritten)"
    got = file_sha256(path)
    if got != sha:
        return f"sha256 {got[:16]} differs from {sha[:16]} recorded in {record.name} (damaged or edited)"
    return None


def check_record(path: Path) -> None:
    """Refuse an index file whose bytes are not those last written: ``ValueError`` saying why.

    One sha256 pass over the file (25 ms for a 39 MB COCO index, warm): it catches any change, also one
    that leaves valid SQLite (a swapped value) that ``PRAGMA quick_check`` cannot see. A mismatch is read
    again once after ``RECHECK_AFTER_S`` (a new index renamed in before its record was written).
    """
    problem = _record_problem(path)
    if problem is not None:
        time.sleep(RECHECK_AFTER_S)
        problem = _record_problem(path)
    if problem is not None:
        raise ValueError(problem)


# -- writing --------------------------------------------------------------------------------------------
_SCHEMA = """
CREATE TABLE header (k TEXT PRIMARY KEY, v TEXT NOT NULL);
CREATE TABLE files (path TEXT PRIMARY KEY, size INTEGER, mtime_ns INTEGER, sha256 TEXT, source INTEGER,
                    width INTEGER, height INTEGER, problem TEXT);
CREATE TABLE folders (path TEXT PRIMARY KEY, listing TEXT);
CREATE TABLE images (id TEXT PRIMARY KEY, pos INTEGER, image TEXT NOT NULL, gt TEXT, tags TEXT);
CREATE INDEX images_pos ON images (pos);
CREATE TABLE splits (name TEXT, pos INTEGER, id TEXT, PRIMARY KEY (name, pos));
CREATE TABLE recipes (id TEXT PRIMARY KEY, sha256 TEXT NOT NULL, blob BLOB NOT NULL);
"""


@dataclass
class IndexContent:
    """Everything an index file holds, in memory (built from a ``Dataset`` or read back from a file)."""

    name: str
    type: str
    root: str
    config: str
    class_names: tuple[str, ...]
    ids: list[str]
    splits: dict[str, list[str]]
    rows: dict[str, tuple[str, str | None, str | None]]  # id -> (image, gt, tags "1,5" or None)
    files: dict[str, FileStat]
    sources: set[str]
    folders: dict[str, str]
    recipes: dict[str, str]  # id -> sha256 of its ground truth's paint recipe (GT painted on request: COCO)
    blobs: dict[str, bytes] | None = None  # id -> zlib'd recipe; only when built from a dataset

    def digests(self) -> dict[str, str]:
        def sha(path: str | None) -> str:
            return "-" if path is None else self.files[path].sha256

        def gt(i: str) -> str:
            return self.recipes[i] if i in self.recipes else sha(self.rows[i][1])

        val = self.splits.get("val", [])
        return {
            "ids": ids_digest(self.ids),
            "class_names": hashlib.sha256("\n".join(self.class_names).encode()).hexdigest()[:16],
            "tags": _digest(f"{i}\t{self.rows[i][2]}" for i in self.ids),
            "images": _digest(f"{i}\t{sha(self.rows[i][0])}" for i in self.ids),
            "gt": _digest(f"{i}\t{gt(i)}" for i in self.ids),
            "val_ids": ids_digest(val),
            "val_images": _digest(f"{i}\t{sha(self.rows[i][0])}" for i in val),
            "val_gt": _digest(f"{i}\t{gt(i)}" for i in val),
        }

    def header(self) -> dict[str, str]:
        return {
            "version": str(INDEX_VERSION), "name": self.name, "type": self.type, "root": self.root,
            "config": self.config, "class_names": json.dumps(list(self.class_names)),
            "num_ids": str(len(self.ids)), "digests": json.dumps(self.digests(), sort_keys=True),
        }

    def patch(self, path: Path, old: "IndexContent") -> None:
        """Rewrite ``path`` (read as ``old``) with this content's file stats and header, atomically: a copy
        updated in place, then renamed; everything else (rows, recipes) is carried over unread."""
        tmp = path.with_name(f".{path.name}.tmp-{os.getpid()}")
        try:
            shutil.copyfile(path, tmp)
            con = sqlite3.connect(tmp)
            with con:
                con.executemany(
                    "UPDATE files SET size = ?, mtime_ns = ?, sha256 = ?, width = ?, height = ?, problem = ? "
                    "WHERE path = ?",
                    ((f.size, f.mtime_ns, f.sha256, f.width, f.height, f.problem, p)
                     for p, f in self.files.items() if old.files[p] != f),
                )
                con.executemany("UPDATE header SET v = ? WHERE k = ?", ((v, k) for k, v in self.header().items()))
            con.close()
            os.replace(tmp, path)
        finally:
            tmp.unlink(missing_ok=True)
        write_record(path)

    def write(self, path: Path) -> None:
        """Write atomically: a temporary file in the same folder, renamed over ``path``."""
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_name(f".{path.name}.tmp-{os.getpid()}")
        tmp.unlink(missing_ok=True)
        try:
            con = sqlite3.connect(tmp)
            with con:
                con.executescript(_SCHEMA)
                con.executemany("INSERT INTO header VALUES (?, ?)", self.header().items())
                con.executemany(
                    "INSERT INTO files VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
                    ((p, f.size, f.mtime_ns, f.sha256, int(p in self.sources), f.width, f.height, f.problem)
                     for p, f in self.files.items()),
                )
                con.executemany("INSERT INTO folders VALUES (?, ?)", self.folders.items())
                pos = {i: n for n, i in enumerate(self.ids)}
                con.executemany(
                    "INSERT INTO images VALUES (?, ?, ?, ?, ?)",
                    ((i, pos.get(i), *row) for i, row in self.rows.items()),
                )
                con.executemany(
                    "INSERT INTO splits VALUES (?, ?, ?)",
                    ((name, n, i) for name, ids in self.splits.items() for n, i in enumerate(ids)),
                )
                con.executemany(
                    "INSERT INTO recipes VALUES (?, ?, ?)", ((i, sha, self.blobs[i]) for i, sha in self.recipes.items())
                )
            con.close()
            os.replace(tmp, path)
        finally:
            tmp.unlink(missing_ok=True)
        write_record(path)


def content_from_dataset(
    dataset: Dataset, config: str, cache: dict[str, FileStat], log: Log
) -> IndexContent:
    """Index content of an opened dataset; file digests reuse ``cache`` where the stat did not move.

    Asking every id for its GT path paints COCO label maps into the cache (once per annotation file).
    """
    all_ids = sorted(set(dataset.ids).union(*dataset.splits.values()))
    in_ids = set(dataset.ids)
    rows: dict[str, tuple[str, str | None, str | None]] = {}
    recipes: dict[str, str] = {}
    blobs: dict[str, bytes] = {}
    for i in all_ids:
        recipe = dataset.gt_recipe(i) if dataset.gt_recipe is not None else None
        if recipe is not None:
            gt = recipe[0]
            recipes[i] = hashlib.sha256(recipe[1]).hexdigest()
            blobs[i] = zlib.compress(recipe[1])
        else:
            gt = dataset.gt_path(i)
        tags = ",".join(map(str, dataset.tags(i))) if i in in_ids else None
        rows[i] = (str(dataset.image_path(i)), None if gt is None else str(gt), tags)
    sources = {str(p) for p in dataset.sources}
    images = sorted({r[0] for r in rows.values()})
    gts = sorted({r[1] for i, r in rows.items() if r[1] is not None and i not in recipes})
    files = hash_files(sorted(sources), cache, log, "source files")
    files.update(hash_files([p for p in images if p not in files], cache, log, "images", images=set(images)))
    files.update(hash_files([p for p in gts if p not in files], cache, log, "ground-truth files"))
    return IndexContent(
        name=dataset.name, type=dataset.type, root=str(dataset.root), config=config,
        class_names=tuple(dataset.class_names), ids=list(dataset.ids),
        splits={k: list(v) for k, v in dataset.splits.items()}, rows=rows, files=files, sources=sources,
        folders={str(p): folder_listing(p) for p in dataset.source_dirs}, recipes=recipes, blobs=blobs,
    )


@dataclass
class Freshness:
    """What the main process reads on every run: the header and the recorded stats, not the rows."""

    header: dict[str, str]
    files: dict[str, FileStat]
    sources: set[str]
    folders: dict[str, str]


def _check_size(con: sqlite3.Connection, path: Path) -> None:
    """A truncated file: fewer bytes than the pages its header counts (SQLite itself often refuses it first)."""
    expected = con.execute("PRAGMA page_size").fetchone()[0] * con.execute("PRAGMA page_count").fetchone()[0]
    if os.path.getsize(path) != expected:
        raise ValueError(f"truncated: {os.path.getsize(path)} bytes, its header says {expected}")


def _connect_checked(path: Path) -> sqlite3.Connection:
    """A read-only connection to an untruncated index of the current format. Its bytes are checked by its
    caller (``check_record``), so no ``quick_check`` here: it would read the file a second time."""
    con = sqlite3.connect(f"file:{path}?mode=ro", uri=True)
    try:
        _check_size(con, path)
        version = dict(con.execute("SELECT k, v FROM header")).get("version")
        if version != str(INDEX_VERSION):
            raise ValueError(f"format version {version} is not {INDEX_VERSION}")
    except BaseException:
        con.close()
        raise
    return con


def read_freshness(path: Path) -> Freshness:
    """Header, file stats and folder listings of an index whose record was checked (``check_record``);
    raises ``sqlite3.DatabaseError`` or ``ValueError`` when damaged."""
    con = _connect_checked(path)
    try:
        files, sources = {}, set()
        for p, size, mtime, sha, source, width, height, problem in con.execute("SELECT * FROM files"):
            files[p] = FileStat(size, mtime, sha, width, height, problem)
            if source:
                sources.add(p)
        return Freshness(dict(con.execute("SELECT k, v FROM header")), files, sources,
                         dict(con.execute("SELECT * FROM folders")))
    finally:
        con.close()


def read_content(path: Path) -> IndexContent:
    """Read a whole index back (main process only, after ``check_record``); raises ``sqlite3.DatabaseError``
    or ``ValueError``."""
    fresh = read_freshness(path)
    head = fresh.header
    con = _connect_checked(path)
    try:
        rows, by_pos = {}, []
        for i, pos, image, gt, tags in con.execute("SELECT * FROM images"):
            rows[i] = (image, gt, tags)
            if pos is not None:
                by_pos.append((pos, i))
        splits: dict[str, list[str]] = {}
        for name, _, i in con.execute("SELECT * FROM splits ORDER BY name, pos"):
            splits.setdefault(name, []).append(i)
        content = IndexContent(
            name=head["name"], type=head["type"], root=head["root"], config=head["config"],
            class_names=tuple(json.loads(head["class_names"])), ids=[i for _, i in sorted(by_pos)],
            splits=splits, rows=rows, files=fresh.files, sources=fresh.sources, folders=fresh.folders,
            recipes=dict(con.execute("SELECT id, sha256 FROM recipes")),
        )
        if len(content.ids) != int(head["num_ids"]) or json.loads(head["digests"]) != content.digests():
            raise ValueError("rows do not match the header")
        return content
    finally:
        con.close()


# -- the main process: build or refresh ------------------------------------------------------------------
def index_path(results: str | os.PathLike, name: str) -> Path:
    return Path(results) / name / INDEX_NAME


def refresh_index(path: Path, name: str, entry: dict, log: Log = stderr_log) -> "DatasetIndex":
    """Bring the index at ``path`` up to date with the dataset's files and return a reader.

    Called by the main Snakemake process (and ``fmwsss index``/``status``/``gc``) only. ``entry`` is the
    dataset's config entry (type, root, options). Loader errors (``DatasetError``, ``OSError``) propagate.
    Each run reads the header and the recorded stats, stats every file, and reads the rows only when
    something changed. An image whose header is refused raises ``BadImages`` naming every such file, after
    the index is written.
    """
    refuse_bad_images(_refresh(path, name, entry, log), name)
    return DatasetIndex(path, fix_hint(name))


def _refresh(path: Path, name: str, entry: dict, log: Log) -> dict[str, FileStat]:
    """``refresh_index`` without the image check: the index's files as now recorded."""
    config = config_identity(entry)
    fresh, cache, why = None, {}, "no index yet"
    if path.exists():
        try:
            check_record(path)  # a damaged file's stats are not reused either: the rebuild re-hashes every file
            fresh = read_freshness(path)
            cache = fresh.files
        except (sqlite3.DatabaseError, ValueError, KeyError) as exc:
            log(f"{path} is unreadable, corrupt or of an older format ({exc}); rebuilding it")
            why = "corrupt index"
    if fresh is not None and fresh.header.get("config") != config:
        why = f"datasets.{name} changed in the config"
    elif fresh is not None:
        files = _current_files(fresh, log)
        if files == fresh.files:
            return files
        if files is not None:
            cache = files  # a rebuild below reuses the digests just computed
            try:
                old = read_content(path)
            except (sqlite3.DatabaseError, ValueError, KeyError) as exc:
                log(f"{path} is corrupt ({exc}); rebuilding it")
                why = "corrupt index"
            else:
                new = IndexContent(**{**old.__dict__, "files": files})
                new.patch(path, old)
                log(f"{path}: refreshed ({_what_moved(old, new)})")
                return files
        else:
            why = "its sources changed"
    log(f"{name}: opening the dataset ({why}); the index {path} is then read by every later run and job")
    tic = time.monotonic()
    dataset = open_dataset(entry["type"], Path(entry["root"]), name=name, **entry["options"])
    content = content_from_dataset(dataset, config, cache, log)
    content.write(path)
    log(f"{name}: {len(content.ids)} ids indexed in {time.monotonic() - tic:.1f} s")
    return content.files


def _what_moved(old: IndexContent, new: IndexContent) -> str:
    a, b = old.digests(), new.digests()
    moved = [k for k in DIGESTS if a[k] != b[k]]
    return f"digests moved: {', '.join(moved)}" if moved else "file stats updated, no digest moved"


def _current_files(fresh: Freshness, log: Log) -> dict[str, FileStat] | None:
    """The recorded files with their current stats and digests (re-hashing only those whose stat moved), or
    None when a source file or folder changed or a file vanished (the dataset must be opened again)."""
    for folder, listing in fresh.folders.items():
        if folder_listing(Path(folder)) != listing:
            log(f"{folder}: its listing changed")
            return None
    try:
        images = {p for p, f in fresh.files.items() if f.is_image}
        files = hash_files(list(fresh.files), fresh.files, log, "changed files", images)
    except FileNotFoundError as exc:
        log(f"{exc.filename}: no longer exists")
        return None
    for p in fresh.sources:
        if files[p].sha256 != fresh.files[p].sha256:
            log(f"{p}: content changed")
            return None
    return files


# -- reading (planning and jobs) -------------------------------------------------------------------------
def open_index(path: Path, name: str, entry: dict) -> "DatasetIndex":
    """Open an existing index inside a job: never builds; anything amiss is ``IndexStale``."""
    fix = fix_hint(name)
    if not path.is_file():
        raise IndexStale(f"{path}: no dataset index; jobs never build it: {fix}")
    try:
        check_record(path)
        index = DatasetIndex(path, fix, verify=True)
    except IndexStale:
        raise
    except (sqlite3.DatabaseError, ValueError, KeyError) as exc:
        raise IndexStale(f"{path}: unreadable dataset index ({exc}): {fix}") from exc
    if index.header["config"] != config_identity(entry):
        raise IndexStale(f"{path} was built for {index.header['config']}, config.yaml now says "
                         f"{config_identity(entry)}: {fix}")
    return index


class DatasetIndex:
    """Read side of one index: the ``Dataset`` read interface (name, class_names, ids, splits, image_path,
    tags, gt_path) answered from SQLite, loading only the rows asked for.

    With ``verify`` (jobs), every image or GT path handed out is first checked against its recorded
    stat (re-hashed when the stat moved): a job never computes under a key that describes other bytes.
    Every read goes through ``_query``: SQLite's ``DatabaseError`` (a file damaged after it was opened) is
    an ``IndexStale`` naming the file and ``fix``, the command that mends it.
    """

    def __init__(self, path: Path, fix: str, verify: bool = False):
        self.path = Path(path)
        self.verify = verify
        self._fix = fix
        self._con = sqlite3.connect(f"file:{self.path}?mode=ro&immutable=1", uri=True, check_same_thread=False)
        with self._reading():
            _check_size(self._con, self.path)
        self.header = dict(self._query("SELECT k, v FROM header"))
        if self.header.get("version") != str(INDEX_VERSION):
            raise ValueError(f"format version {self.header.get('version')} is not {INDEX_VERSION}")
        self.name = self.header["name"]
        self.type = self.header["type"]
        self.root = Path(self.header["root"])
        self.class_names = tuple(json.loads(self.header["class_names"]))
        self.num_ids = int(self.header["num_ids"])
        self.digests: dict[str, str] = json.loads(self.header["digests"])
        self._rows: dict[str, tuple[str, str | None, str | None]] = {}
        self._ids: list[str] | None = None
        self._splits: dict[str, list[str]] | None = None
        self._checked: set[str] = set()

    @contextmanager
    def _reading(self) -> Iterator[None]:
        try:
            yield
        except sqlite3.DatabaseError as exc:
            raise IndexStale(f"{self.path}: damaged dataset index ({exc}): {self._fix}") from exc

    def _query(self, sql: str, args: tuple = ()) -> list[tuple]:
        """All rows of one read (fetched inside the guard: a damaged page may surface on any row)."""
        with self._reading():
            return self._con.execute(sql, args).fetchall()

    @property
    def num_classes(self) -> int:
        return len(self.class_names)

    def _select(self, where: str, args: tuple) -> list[str]:
        out = []
        for i, image, gt, tags in self._query(f"SELECT id, image, gt, tags FROM images WHERE {where} ORDER BY pos",
                                              args):
            self._rows[i] = (image, gt, tags)
            out.append(i)
        return out

    @property
    def ids(self) -> list[str]:
        if self._ids is None:
            self._ids = self._select("pos IS NOT NULL", ())
        return self._ids

    def ids_range(self, start: int, stop: int) -> list[str]:
        """Ids at positions ``start <= pos < stop`` of the sorted id list (one shard's rows only)."""
        return self._select("pos >= ? AND pos < ?", (start, stop))

    @property
    def splits(self) -> dict[str, list[str]]:
        if self._splits is None:
            self._splits = {}
            for name, i in self._query("SELECT name, id FROM splits ORDER BY name, pos"):
                self._splits.setdefault(name, []).append(i)
        return self._splits

    def _row(self, id_: str) -> tuple[str, str | None, str | None]:
        if id_ not in self._rows:
            self._select("id = ?", (id_,))
        if id_ not in self._rows:
            raise DatasetError(f"dataset {self.name!r}: unknown image id {id_!r} (not in {self.path})")
        return self._rows[id_]

    def _checked_path(self, path: str) -> Path:
        if self.verify and path not in self._checked:
            size, mtime, sha = self._query("SELECT size, mtime_ns, sha256 FROM files WHERE path = ?", (path,))[0]
            try:
                moved = _stat(path) != (size, mtime) and file_sha256(path) != sha
            except FileNotFoundError:
                moved = True
            if moved:
                raise IndexStale(f"{path} changed since the dataset index {self.path} was built: {self._fix}")
            self._checked.add(path)
        return Path(path)

    def image_path(self, id_: str) -> Path:
        return self._checked_path(self._row(id_)[0])

    def gt_path(self, id_: str) -> Path | None:
        """The GT label PNG; a painted one (COCO) is painted from its stored recipe when not cached yet."""
        gt = self._row(id_)[1]
        if gt is None:
            return None
        found = self._query("SELECT blob FROM recipes WHERE id = ?", (id_,))
        if not found:
            return self._checked_path(gt)
        if not os.path.isfile(gt):
            from fmwsss.data.coco import paint_from_recipe

            paint_from_recipe(zlib.decompress(found[0][0]), Path(gt), str(self.path))
        return Path(gt)

    def image_digests(self, start: int, stop: int) -> dict[str, str]:
        """Image content sha256 of the ids at positions ``start <= pos < stop`` (per-image result keys):
        one query over the index, no image opened."""
        return dict(self._query(
            "SELECT images.id, files.sha256 FROM images JOIN files ON files.path = images.image "
            "WHERE images.pos >= ? AND images.pos < ? ORDER BY images.pos",
            (start, stop),
        ))

    def tags(self, id_: str) -> tuple[int, ...]:
        tags = self._row(id_)[2]
        if tags is None:
            raise DatasetError(f"dataset {self.name!r}: unknown image id {id_!r} (no tags)")
        return tuple(int(t) for t in tags.split(","))
