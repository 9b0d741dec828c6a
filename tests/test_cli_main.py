"""Edges of the `fmwsss` command: exit status of `status` for unusable datasets, and a closed stdout pipe."""
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
    out = io.StringIO()
    with contextlib.chdir(cwd), contextlib.redirect_stdout(out):
        code = main(["status", *args])
    return code, out.getvalue()


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
