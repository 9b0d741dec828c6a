"""benchmarks/seed_digests.py: digests of decoded seed labels, the per-set check, and the committed demo digests."""
from __future__ import annotations

import hashlib
import sys
from pathlib import Path

import numpy as np
from PIL import Image

from tests.benchmarks.scripts import load
from tests.processes import run

REPO = Path(__file__).resolve().parents[2]
SCRIPT = REPO / "benchmarks" / "seed_digests.py"
COMMITTED = REPO / "benchmarks" / "demo_seed_digests.json"

seed_digests = load("seed_digests")


def save_seed(path: Path, labels: np.ndarray, compress_level: int = 6) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    image = Image.fromarray(labels.astype(np.uint8), mode="P")
    image.putpalette([0, 0, 0, 128, 0, 0, 0, 128, 0] + [0] * (253 * 3))
    image.save(path, compress_level=compress_level)


def test_a_digest_is_of_the_decoded_labels_not_the_png_bytes(tmp_path):
    labels = np.array([[0, 1, 2], [2, 1, 0]])
    save_seed(tmp_path / "fast.png", labels, compress_level=1)
    save_seed(tmp_path / "small.png", labels, compress_level=9)
    assert (tmp_path / "fast.png").read_bytes() != (tmp_path / "small.png").read_bytes()
    # by hand: shape "2x3", numpy's dtype string of uint8 "|u1", then the six label bytes row by row
    expected = hashlib.sha256(b"2x3 |u1\n" + bytes([0, 1, 2, 2, 1, 0])).hexdigest()
    assert seed_digests.label_digest(tmp_path / "fast.png") == expected
    assert seed_digests.label_digest(tmp_path / "small.png") == expected


def test_the_check_counts_each_seed_set_and_names_the_ids_that_disagree(tmp_path, capsys):
    results = tmp_path / "results" / "demo"
    for alias in ("seeds_coarse", "seeds"):
        for value, image_id in enumerate(("a", "b", "c")):
            save_seed(results / alias / f"{image_id}.png", np.full((4, 5), value))
    reference = tmp_path / "digests.json"
    assert seed_digests.main(["--results", str(results), "--write", str(reference)]) == 0
    assert seed_digests.main(["--results", str(results), "--check", str(reference)]) == 0
    assert capsys.readouterr().out.splitlines()[-2:] == ["coarse seeds: 3/3 match", "fine seeds: 3/3 match"]

    (results / "seeds_coarse" / "b.png").unlink()
    save_seed(results / "seeds_coarse" / "d.png", np.zeros((4, 5)))
    save_seed(results / "seeds" / "c.png", np.full((4, 5), 7))
    assert seed_digests.main(["--results", str(results), "--check", str(reference)]) == 1
    assert capsys.readouterr().out.splitlines() == [
        "coarse seeds: 2/3 match", "  missing: b", "  extra: d",
        "fine seeds: 2/3 match", "  differ: c",
    ]


def test_a_run_without_seeds_is_an_error_naming_the_folder(tmp_path, capsys):
    reference = tmp_path / "digests.json"
    assert seed_digests.main(["--results", str(tmp_path / "results" / "demo"), "--write", str(reference)]) == 1
    assert f"{tmp_path / 'results' / 'demo' / 'seeds_coarse'}: no seed PNGs" in capsys.readouterr().err
    assert not reference.exists()


def test_the_shared_demo_run_makes_the_committed_seeds(demo_run):
    result = run([sys.executable, str(SCRIPT), "--results", str(demo_run.path / "results" / "demo"),
                  "--check", str(COMMITTED)], 120)
    assert result.returncode == 0, (
        f"the demo run's seeds differ from {COMMITTED.name}:\n{result.stdout}{result.stderr}\n"
        "The GPU suite checks its own demo run against this file, so it must hold what the shipped config's demo "
        "makes on a CPU now. If a change moved the demo's seeds on purpose (a stage version, the demo preset, the "
        "tiny models), regenerate it from a CPU run: make demo && .venv/bin/python benchmarks/seed_digests.py "
        "--results results/demo --write benchmarks/demo_seed_digests.json. If nothing should have moved them, the "
        "seeds are no longer deterministic: that is the bug."
    )
