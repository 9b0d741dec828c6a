"""What `make demo` and `make demo-coco` run, in order, read from make's own dry run (`make -n`): both say first
that the models are tiny random-weight ones, both end with the HTML report, and the report's path is printed
once (by `fmwsss report`, whose log line ends with it), not echoed again by the Makefile; `make demo` then
prints its wall time."""
from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
pytestmark = pytest.mark.skipif(shutil.which("make") is None, reason="no `make` on this machine")


def _dry_run(target: str, tmp_path: Path) -> list[str]:
    """The commands `make -n TARGET` would run, with an installed venv faked so no install step shows."""
    venv = tmp_path / "venv"
    (venv / "bin").mkdir(parents=True)
    (venv / "bin/fmwsss").touch()  # newer than pyproject.toml: `make install` is up to date
    proc = subprocess.run(["make", "-n", "--no-print-directory", target, f"VENV={venv}"], cwd=ROOT,
                          capture_output=True, text=True, timeout=60, check=True)
    return [line.replace(f"{venv}/bin/", "") for line in proc.stdout.splitlines()]


def _index(lines: list[str], start: str) -> int:
    found = [i for i, line in enumerate(lines) if line.startswith(start)]
    assert len(found) == 1, (start, lines)
    return found[0]


@pytest.mark.parametrize(("target", "dataset"), [("demo", "demo"), ("demo-coco", "coco_demo")])
def test_demo_targets_warn_first_and_end_with_the_report_named_once(target, dataset, tmp_path):
    lines = _dry_run(target, tmp_path)
    run = _index(lines, f"snakemake --cores all results/{dataset}/seeds")
    banner = _index(lines, f'echo "== make {target}: TINY RANDOM-WEIGHT test models')
    report = _index(lines, f"fmwsss report {dataset}")
    assert banner < run < report, lines
    after = [line for line in lines[report + 1:] if not line.startswith(f'echo "== make {target}: done in $((')]
    assert after == [], lines  # only the wall time follows the report
    assert target != "demo" or lines[-1].startswith('echo "== make demo: done in $(('), lines
    assert not [line for line in lines if f"results/{dataset}/report" in line], lines
