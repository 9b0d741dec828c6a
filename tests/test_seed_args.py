"""``fmwsss seed`` checks its arguments before it imports torch or any model code: each mistake is reported
naming the bad file, tag or folder, by a process in which torch was never imported."""
from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from fmwsss.data.classes import VOC_CLASS_NAMES

ROOT = Path(__file__).resolve().parents[1]
# `fmwsss` as the console script runs it, then a report of whether torch was imported on the way.
SCRIPT = (
    "import sys\n"
    "from fmwsss.cli.main import main\n"
    "code = main(sys.argv[1:])\n"
    "print('torch imported:', 'torch' in sys.modules, file=sys.stderr)\n"
    "sys.exit(code)\n"
)


def _fmwsss(cwd: Path, *argv: str) -> subprocess.CompletedProcess:
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(ROOT), os.environ.get("PYTHONPATH", "")])}
    return subprocess.run([sys.executable, "-c", SCRIPT, *argv], cwd=cwd, env=env, capture_output=True,
                          text=True, timeout=120)


@pytest.fixture
def workdir(tmp_path, voc_sample) -> Path:
    """The shipped config and one real VOC image, in an empty working directory."""
    shutil.copy(ROOT / "config.yaml", tmp_path / "config.yaml")
    shutil.copy(voc_sample / "JPEGImages" / "2007_000032.jpg", tmp_path / "photo.jpg")
    return tmp_path


@pytest.mark.parametrize(
    ("argv", "named"),
    [
        (["missing.jpg", "--tags", "cat", "-o", "x.png"], ["missing.jpg: image file not found"]),
        (["photo.jpg", "--tags", "person,catt", "-o", "x.png"], ["unknown tag 'catt'", ", ".join(VOC_CLASS_NAMES)]),
        (["photo.jpg", "--tags", "cat", "-o", "x.png", "--prompts", "nope.pt"], ["--prompts nope.pt"]),
        (["photo.jpg", "--tags", "cat", "-o", "x.png", "--run", "results/demo"], ["--run results/demo"]),
        (["photo.jpg", "--tags", "cat", "-o", "out/x.png"], ["-o out/x.png: folder out does not exist"]),
        (["photo.jpg", "--tags", "cat", "-o", "x.png", "--overlay", "out/o.png"], ["--overlay out/o.png"]),
    ],
    ids=["missing-image", "mistyped-tag", "missing-prompts", "missing-run", "no-output-folder", "no-overlay-folder"],
)
def test_a_bad_argument_is_named_before_torch_is_imported(workdir, argv, named):
    proc = _fmwsss(workdir, "seed", *argv)
    assert proc.returncode == 2, proc.stderr
    error = proc.stderr.splitlines()[0]
    assert error.startswith("fmwsss: error: ") and all(n in error for n in named), proc.stderr
    assert "torch imported: False" in proc.stderr, proc.stderr
    assert not (workdir / "x.png").exists()
