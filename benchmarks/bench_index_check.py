"""What checking the dataset index whole on every open costs: one sha256 of the file against its record.

    .venv/bin/python benchmarks/bench_index_check.py --trees /work/synth [--index PATH] [--repeat 7]
    .venv/bin/python benchmarks/bench_index_check.py --smoke                    # tiny COCO tree, seconds

``check_record`` (``fmwsss.data.index``) hashes the index file and compares it with ``index.sqlite.sha256``,
written after each write of the index; the main process does it before reading the index on every run,
every job before opening it. Measured in one process on a copy of the index (the source is never modified;
``--trees DIR`` uses ``DIR/results/coco/index.sqlite``, built from ``DIR/coco`` first when missing), best of
``--repeat`` with the file in the page cache, against baselines measured in the same run:
1. opening the index without the check, as a job did before it (``DatasetIndex``: the header), and the same
   plus one shard's rows (500 ids and their image digests);
2. ``read_freshness``, what the main process reads on every run;
3. the alternatives SQLite offers, ``PRAGMA quick_check`` and ``PRAGMA integrity_check`` over every table.
Ratios are the check's time over each baseline's. A cold file (a job's first read on a network file system)
adds one read of the whole file, as a full ``quick_check`` would.
"""
from __future__ import annotations

import argparse
import shutil
import sqlite3
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from fmwsss.data.index import (  # noqa: E402
    INDEX_NAME, DatasetIndex, check_record, fix_hint, read_freshness, refresh_index, write_record,
)
from make_synthetic_trees import SMOKE, Sizes, build_coco, default_samples  # noqa: E402

SHARD = 500


def _best(fn: Callable[[], object], repeat: int) -> float:
    """Best wall seconds of ``repeat`` calls."""
    times = []
    for _ in range(repeat):
        tic = time.perf_counter()
        fn()
        times.append(time.perf_counter() - tic)
    return min(times)


def _pragma(path: Path, pragma: str) -> None:
    con = sqlite3.connect(f"file:{path}?mode=ro", uri=True)
    try:
        found = con.execute(pragma).fetchone()[0]
    finally:
        con.close()
    if found != "ok":
        raise SystemExit(f"{path}: {pragma} says {found}")


def _open(path: Path, shard: bool) -> None:
    index = DatasetIndex(path, fix_hint("coco"), verify=True)
    if shard:
        index.ids_range(0, SHARD)
        index.image_digests(0, SHARD)
    index._con.close()


def measure(path: Path, repeat: int, source: Path) -> list[str]:
    """Time the check and its baselines on ``path`` (an index with its record, a copy of ``source``)."""
    path.read_bytes()  # into the page cache: every row below reads a warm file
    check = _best(lambda: check_record(path), repeat)
    rows = [
        ("open without the check (job)", _best(lambda: _open(path, False), repeat)),
        (f"  + one shard's rows ({SHARD} ids)", _best(lambda: _open(path, True), repeat)),
        ("read_freshness (main, every run)", _best(lambda: read_freshness(path), repeat)),
        ("PRAGMA quick_check (all tables)", _best(lambda: _pragma(path, "PRAGMA quick_check"), repeat)),
        ("PRAGMA integrity_check", _best(lambda: _pragma(path, "PRAGMA integrity_check"), repeat)),
    ]
    record = _best(lambda: write_record(path), repeat)
    num_ids = DatasetIndex(path, fix_hint("coco")).num_ids
    out = [
        f"index {source}: {path.stat().st_size / 1e6:.1f} MB, {num_ids} ids; best of {repeat}, warm page cache",
        f"{'ms':36}{'best':>9}{'check / this':>14}",
        f"{'sha256 check on open (check_record)':36}{check * 1e3:9.1f}",
        f"{'record written after each write':36}{record * 1e3:9.1f}",
    ]
    out += [f"{name:36}{t * 1e3:9.1f}{check / t:13.2f}x" for name, t in rows]
    fresh = rows[2][1]
    out.append(f"main process, every run: read_freshness {fresh * 1e3:.1f} ms + check {check * 1e3:.1f} ms "
               f"-> {(fresh + check) / fresh:.2f}x")
    return out


def _build(trees_coco: Path, dest: Path) -> None:
    print(f"building {dest} from {trees_coco} (opens the annotation JSON and hashes every image)", flush=True)
    refresh_index(dest, "coco", {"type": "coco", "root": str(trees_coco), "options": {}}, lambda _m: None)


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--trees", type=Path, help="folder from make_synthetic_trees.py (its coco/ and results/coco/)")
    ap.add_argument("--index", type=Path, help="an index file to measure instead (copied, never modified)")
    ap.add_argument("--smoke", action="store_true", help="a tiny COCO tree built in a temporary folder: seconds")
    ap.add_argument("--repeat", type=int, default=7, help="calls per row, best kept (default 7)")
    ap.add_argument("--samples", type=Path, default=None, help="shared sample folder (default as make_synthetic_trees)")
    args = ap.parse_args(argv)
    if args.trees is None and args.index is None and not args.smoke:
        ap.error("give --trees (built by benchmarks/make_synthetic_trees.py), --index PATH or --smoke")
    with tempfile.TemporaryDirectory(prefix="bench_index_check-") as tmp:
        scratch = Path(tmp)
        if args.smoke:
            coco = build_coco(scratch / "coco", (args.samples or default_samples()) / "coco_sample", Sizes(**SMOKE))
            source = scratch / "results" / "coco" / INDEX_NAME
            _build(coco, source)
        else:
            source = args.index or args.trees / "results" / "coco" / INDEX_NAME
            if not source.is_file():
                _build(args.trees / "coco", source)
        path = scratch / "copy" / INDEX_NAME
        path.parent.mkdir()
        shutil.copyfile(source, path)
        write_record(path)
        for line in measure(path, 3 if args.smoke else args.repeat, source):
            print(line)


if __name__ == "__main__":
    main()
