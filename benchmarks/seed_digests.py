"""Per-image digests of a finished run's seeds: did another machine (a GPU) make the same pseudo labels?

A digest is the sha256 of each seed PNG's DECODED label array, its shape and dtype first
(``b"<H>x<W> <dtype>\\n"`` then the row-major bytes), never of the PNG file: the same labels compress to
other bytes under another zlib or Pillow build. The seeds are the stable names ``results/<dataset>/seeds_coarse``
(SAMS on the coarse CAMs) and ``results/<dataset>/seeds`` (the fine ones), one ``<id>.png`` per image.

    python benchmarks/seed_digests.py --results results/demo --write benchmarks/demo_seed_digests.json
    python benchmarks/seed_digests.py --results results/demo --check benchmarks/demo_seed_digests.json

``--check`` prints ``coarse seeds: 24/24 match`` and ``fine seeds: 24/24 match``, then the ids that differ,
are missing or are extra; exit status 1 when anything does. ``benchmarks/demo_seed_digests.json`` holds
the digests of a CPU run of the shipped config's ``demo`` dataset (tiny models, deterministic), which the GPU
suite checks its own demo run against.
"""
from __future__ import annotations

import argparse
import hashlib
import json
import sys
from pathlib import Path

import numpy as np
from PIL import Image

from fmwsss.io.atomic import atomic_write_json

#: Printed name -> stable name under results/<dataset>/.
SEED_SETS = {"coarse": "seeds_coarse", "fine": "seeds"}


def label_digest(path: Path) -> str:
    """sha256 of the label array a seed PNG decodes to (palette indices of a mode P image)."""
    with Image.open(path) as image:
        if image.mode not in ("P", "L"):
            raise ValueError(f"{path}: a seed PNG is mode P (palette indices), this one is mode {image.mode}")
        labels = np.ascontiguousarray(np.asarray(image))
    header = f"{labels.shape[0]}x{labels.shape[1]} {labels.dtype.str}\n".encode()
    return hashlib.sha256(header + labels.tobytes()).hexdigest()


def run_digests(results: Path) -> dict[str, dict[str, str]]:
    """{stable name: {image id: digest}} of every seed set of a finished run."""
    out = {}
    for alias in SEED_SETS.values():
        folder = results / alias
        pngs = sorted(folder.glob("*.png"))
        if not pngs:
            raise FileNotFoundError(f"{folder}: no seed PNGs (is the run finished? snakemake {folder})")
        out[alias] = {png.stem: label_digest(png) for png in pngs}
    return out


def compare(expected: dict[str, str], found: dict[str, str]) -> tuple[int, list[str], list[str], list[str]]:
    """(matching ids, differing ids, ids missing from ``found``, ids ``found`` has beyond ``expected``)."""
    differ = sorted(k for k in expected.keys() & found.keys() if expected[k] != found[k])
    missing = sorted(expected.keys() - found.keys())
    extra = sorted(found.keys() - expected.keys())
    return len(expected) - len(differ) - len(missing), differ, missing, extra


def check(results: Path, reference: Path) -> bool:
    """Print one line per seed set (and the ids that disagree); True when every digest matches."""
    expected = json.loads(reference.read_text())
    found = run_digests(results)
    ok = True
    for name, alias in SEED_SETS.items():
        if alias not in expected:
            raise KeyError(f"{reference}: no {alias!r} digests (rewrite it with --write)")
        matched, differ, missing, extra = compare(expected[alias], found[alias])
        print(f"{name} seeds: {matched}/{len(expected[alias])} match")
        for what, ids in (("differ", differ), ("missing", missing), ("extra", extra)):
            if ids:
                print(f"  {what}: {' '.join(ids)}")
        ok &= not (differ or missing or extra)
    return ok


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--results", type=Path, required=True, help="a finished run's results/<dataset> folder")
    action = parser.add_mutually_exclusive_group(required=True)
    action.add_argument("--write", type=Path, metavar="FILE", help="write the run's digests to FILE")
    action.add_argument("--check", type=Path, metavar="FILE", help="compare the run's digests with FILE")
    args = parser.parse_args(argv)
    try:
        if args.write:
            atomic_write_json(args.write, run_digests(args.results))
            print(f"wrote {args.write}")
            return 0
        return 0 if check(args.results, args.check) else 1
    except (OSError, KeyError, ValueError) as error:  # each names its file
        print(f"seed_digests: {error}", file=sys.stderr)
        return 1


if __name__ == "__main__":
    sys.exit(main())
