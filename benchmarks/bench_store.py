"""Benchmark: the store's size with per-image reuse, against copying the reused results, and at COCO size.

Reads a finished run (``--workdir``, the folder holding results/; default: the demo of ``make demo``, best
after a second variant such as a new ``data.shard_size``). For each stage of ``--dataset`` it prints the
store entries, their files and bytes: a file's bytes count once however many entries hard-link it, an
image linked from another entry's shard costs only the link. The baseline, measured on the same store, is
what the same entries would take if every reused image had been copied (bytes per image of the entry that
holds it, times the images that link to it). Then it extrapolates the current entries to COCO train2014
(82,783 images, shard_size 500 by default): file count and bytes, from this run's bytes per image -- with
the demo's tiny models and 8x8 SAM points, real SAM ViT-H masks are several times larger per image.

    .venv/bin/python benchmarks/bench_store.py [--workdir .] [--dataset demo] [--images 82783] [--smoke]
"""
from __future__ import annotations

import argparse
import json
import sqlite3
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
COCO_TRAIN2014 = 82_783


def _unique_bytes(files: list[Path], seen: set[tuple[int, int]]) -> int:
    total = 0
    for f in files:
        st = f.stat()
        if (st.st_dev, st.st_ino) not in seen:
            seen.add((st.st_dev, st.st_ino))
            total += st.st_size
    return total


def _manifest(entry: Path) -> list[tuple[str, str]]:
    """(holder entry, shard) of every image of a finished entry."""
    con = sqlite3.connect(f"file:{entry / 'manifest.sqlite'}?mode=ro", uri=True)
    try:
        return list(con.execute("SELECT entry, shard FROM results"))
    finally:
        con.close()


def measure(store: Path) -> list[dict]:
    """One row per stage: entries, files, bytes on disk (unique inodes), images held / linked."""
    rows, seen = [], set()
    for stage_dir in sorted(p for p in store.iterdir() if p.is_dir()):
        entries = [e for e in sorted(stage_dir.iterdir()) if (e / "spec.json").is_file()]
        files = [f for e in entries for f in e.rglob("*") if f.is_file() and not f.is_symlink()]
        row = {"stage": stage_dir.name, "entries": len(entries), "files": len(files),
               "bytes": _unique_bytes(files, seen), "held": 0, "linked": 0, "copied": 0}
        held_bytes: dict[str, float] = {}  # holder entry -> bytes per image it holds
        for e in entries:
            if (e / "manifest.sqlite").is_file():
                rows_ = _manifest(e)
                own = [r for r in rows_ if r[0] == e.name]
                size = sum(f.stat().st_size for f in e.iterdir() if f.is_file() and f.name != "manifest.sqlite"
                           and f.name != "spec.json" and not f.is_symlink())
                held_bytes[e.name] = size / max(1, len(own))
                row["held"] += len(own)
                row["linked"] += len(rows_) - len(own)
        for e in entries:
            if (e / "manifest.sqlite").is_file():
                row["copied"] += sum(held_bytes.get(holder, 0.0) for holder, _ in _manifest(e) if holder != e.name)
        row["per_image"] = (sum(held_bytes.values()) / len(held_bytes)) if held_bytes else None
        rows.append(row)
    return rows


def _mb(n: float) -> str:
    return f"{n / 1e6:,.2f} MB"


def report(store: Path, images: int, shard_size: int, out=sys.stdout) -> None:
    rows = measure(store)
    print(f"store {store}", file=out)
    print(f"{'stage':<20}{'entries':>8}{'files':>8}{'on disk':>14}{'images held':>13}{'linked':>8}"
          f"{'if copied':>14}", file=out)
    for r in rows:
        print(f"{r['stage']:<20}{r['entries']:>8}{r['files']:>8}{_mb(r['bytes']):>14}{r['held']:>13}"
              f"{r['linked']:>8}{_mb(r['bytes'] + r['copied']):>14}", file=out)
    disk = sum(r["bytes"] for r in rows)
    copied = disk + sum(r["copied"] for r in rows)
    print(f"total: {_mb(disk)} on disk; {_mb(copied)} if reused images were copied -> ratio copies / reuse "
          f"{copied / max(1, disk):.2f}x", file=out)
    shards = -(-images // shard_size)
    print(f"extrapolated to {images:,} images, shard_size {shard_size} ({shards} shards per sharded stage), "
          f"one entry per stage, this run's bytes per image:", file=out)
    total_files = total_bytes = 0
    for r in rows:
        if r["per_image"] is None:
            continue
        pngs = images if r["stage"].startswith("seeds") else 0  # seed stages also write one PNG per image
        files = shards + pngs + 2  # shards, PNGs, spec.json, manifest.sqlite
        size = r["per_image"] * images
        total_files += files
        total_bytes += size
        print(f"  {r['stage']:<18}{files:>10,} files {_mb(size):>16}  ({r['per_image'] / 1e3:.1f} kB/image)", file=out)
    print(f"  total {total_files:,} files, {_mb(total_bytes)} (whole-set products: prompts and models do not "
          f"grow with the images)", file=out)


def _smoke_store(folder: Path) -> Path:
    """Two entries of one stage: the second links every image to the first (as after a new shard size)."""
    import numpy as np

    from fmwsss.io.shards import GroupShardWriter
    from fmwsss.pipeline.reuse import manifest_rows, write_manifest

    stage = folder / "store" / "sam_masks"
    for key, link in (("aaaa", False), ("bbbb", True)):
        entry = stage / key
        entry.mkdir(parents=True)
        with GroupShardWriter(stage / f".{key}.partial" / "shard-000.h5", entry / "shard-000.h5", {}) as w:
            for i in range(4):
                if link:
                    w.link(f"img{i}", "../aaaa/shard-000.h5", f"img{i}")
                else:
                    w.write(f"img{i}", {"x": np.random.default_rng(i).random(5000)}, {})
            w.finish([f"img{i}" for i in range(4)])
        rows = manifest_rows(key, [entry / "shard-000.h5"], {f"img{i}": f"k{i}" for i in range(4)})
        write_manifest(entry, rows)
        (entry / "spec.json").write_text(json.dumps({"key": key}))
    return folder / "store"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--workdir", type=Path, default=None, help="folder holding results/ (default: .)")
    parser.add_argument("--dataset", default="demo", help="dataset whose store is measured (default: demo)")
    parser.add_argument("--images", type=int, default=COCO_TRAIN2014, help="images to extrapolate to")
    parser.add_argument("--shard-size", type=int, default=500, help="shard size to extrapolate with")
    parser.add_argument("--smoke", action="store_true", help="measure a tiny synthetic store (unless --workdir)")
    args = parser.parse_args()
    sys.path.insert(0, str(ROOT))
    if args.smoke and args.workdir is None:
        import tempfile

        store = _smoke_store(Path(tempfile.mkdtemp(prefix="bench_store-")))
    else:
        store = (args.workdir or Path(".")) / "results" / args.dataset / "store"
    if not store.is_dir():
        parser.error(f"{store}: no store (run the pipeline first, e.g. make demo)")
    report(store, args.images, args.shard_size)


if __name__ == "__main__":
    main()
