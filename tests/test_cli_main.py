"""Edges of the `fmwsss` command: what `status` opens, says and exits with, and a closed stdout pipe."""
from __future__ import annotations

import contextlib
import io
import os
import shutil
import signal
import subprocess
import sys
from pathlib import Path

from fmwsss.cli.main import main
from tests.workflow.conftest import ROOT

BIN = Path(sys.executable).parent


def _status(cwd: Path, *args: str) -> tuple[int, str]:
    code, out, _ = _status_streams(cwd, *args)
    return code, out


def _status_streams(cwd: Path, *args: str) -> tuple[int, str, str]:
    """Exit status, stdout and stderr of `fmwsss status ARGS` run in ``cwd``."""
    out, err = io.StringIO(), io.StringIO()
    with contextlib.chdir(cwd), contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
        code = main(["status", *args])
    return code, out.getvalue(), err.getvalue()


def _states(out: str) -> dict[str, dict[str, str]]:
    """Dataset -> stage -> state, from `fmwsss status` output (problem and repair lines left out)."""
    found: dict[str, dict[str, str]] = {}
    for line in out.splitlines():
        if not line.startswith(" "):
            current = found.setdefault(line.split(":")[0], {})
        elif not line.startswith("    ") and not line.strip().startswith("repair:"):
            stage, _key, state = line.split(None, 2)
            current[stage] = state
    return found


def _fetched_samples(tmp_path: Path, voc_sample: Path, coco_sample: Path) -> Path:
    """The shipped config with both samples fetched as `make data` does: demo has a val split, coco_demo none."""
    shutil.copy(ROOT / "config.yaml", tmp_path / "config.yaml")
    with contextlib.chdir(tmp_path), contextlib.redirect_stdout(io.StringIO()):
        assert main(["data", "voc-sample", "--source", str(voc_sample), "--dest", "data/voc_sample"]) == 0
        assert main(["data", "coco-sample", "--source", str(coco_sample), "--dest", "data/coco_sample"]) == 0
    return tmp_path


def test_status_fails_only_for_an_unusable_dataset_named_on_the_command_line(tmp_path):
    shutil.copy(ROOT / "config.yaml", tmp_path / "config.yaml")  # no data fetched: demo's root is missing
    code, out = _status(tmp_path)
    assert code == 0 and "voc: unavailable: datasets.voc.root is not set" in out, out
    for name in ("voc", "demo"):
        code, out = _status(tmp_path, name)
        assert code == 1 and out.startswith(f"{name}: unavailable: datasets.{name}"), out


def test_status_of_an_unknown_dataset_is_an_error_naming_it(tmp_path, capsys):
    shutil.copy(ROOT / "config.yaml", tmp_path / "config.yaml")
    with contextlib.chdir(tmp_path):
        assert main(["status", "nope"]) == 2
    assert "datasets.nope: no such dataset (known: demo," in capsys.readouterr().err


def test_status_opens_only_the_datasets_named(tmp_path, voc_sample, coco_sample):
    wd = _fetched_samples(tmp_path, voc_sample, coco_sample)
    code, out, err = _status_streams(wd, "coco_demo")
    assert code == 0 and out.startswith("coco_demo: 12 images in 1 shards"), out
    assert (wd / "results/coco_demo/index.sqlite").is_file()
    assert not (wd / "results/demo").exists() and not (wd / "results/demo_pretrained").exists()
    assert "fmwsss status:" not in err  # the dataset asked for is read without an announcement
    code, out, _ = _status_streams(wd, "coco_demo", "demo")
    assert code == 0 and list(_states(out)) == ["coco_demo", "demo"], out


def test_status_of_every_dataset_announces_each_index_before_reading_it(tmp_path, voc_sample, coco_sample):
    wd = _fetched_samples(tmp_path, voc_sample, coco_sample)
    code, out, err = _status_streams(wd)
    assert code == 0, out
    announced = [line for line in err.splitlines() if line.startswith("fmwsss status: ")]
    assert [line.split(":")[1].strip() for line in announced] == ["demo", "demo_pretrained", "coco_demo"], err
    assert "reading results/demo/index.sqlite (built or refreshed first" in announced[0]
    # the announcement comes before the index build it announces
    assert err.index(announced[0]) < err.index("fmwsss index: demo: opening the dataset"), err
    assert "voc: unavailable: datasets.voc.root is not set" in out  # skipped with its reason, nothing read


def test_status_marks_deeplab_optional_only_without_a_val_split(tmp_path, voc_sample, coco_sample):
    """coco_demo (COCO val2014 sample, no 'val' split) is run to its seeds only: its DeepLab stages are not
    reported as pending forever; demo's are, until its val split has been scored."""
    wd = _fetched_samples(tmp_path, voc_sample, coco_sample)
    code, out, _ = _status_streams(wd, "coco_demo", "demo")
    assert code == 0, out
    states = _states(out)
    coco, demo = states["coco_demo"], states["demo"]
    optional = "not run (optional: no 'val' split)"
    assert coco["deeplab_train"] == coco["deeplab_eval"] == optional, coco
    assert coco["seeds_fine"] == coco["score_seeds_fine"] == "pending", coco
    assert set(demo.values()) == {"pending"}, demo


def test_closed_stdout_ends_like_sigpipe_without_a_traceback():
    """`fmwsss config demo | head -1`: the reader is gone before the write; no BrokenPipeError traceback, and
    the process ends by SIGPIPE as `seq 1 100000 | head -1` does (a shell reports 141)."""
    read_end, write_end = os.pipe()
    os.close(read_end)
    proc = subprocess.run(
        [str(BIN / "fmwsss"), "config", "demo", "--config", str(ROOT / "config.yaml")],
        stdout=write_end, stderr=subprocess.PIPE, text=True, timeout=120,
    )
    os.close(write_end)
    assert proc.returncode == -signal.SIGPIPE and proc.stderr == "", proc.stderr
