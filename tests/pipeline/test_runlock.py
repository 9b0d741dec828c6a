"""Refusing under a live Snakemake run and holding Snakemake's lock (fmwsss.pipeline.runlock)."""
from __future__ import annotations

import os
import subprocess
from pathlib import Path

import pytest

from fmwsss.pipeline.runlock import RunInProgress, hold_lock, live_runs, refuse_if_running

WHAT, RERUN = "repair would change files it reads", "fmwsss repair demo"


def _fake_snakemake(tmp_path: Path) -> subprocess.Popen:
    """`sleep 30` run as an executable named snakemake, in ``tmp_path``: a live run to this host."""
    (tmp_path / "bin").mkdir()
    os.symlink("/bin/sleep", tmp_path / "bin" / "snakemake")
    return subprocess.Popen([str(tmp_path / "bin" / "snakemake"), "30"], cwd=tmp_path)


def _lock(tmp_path: Path, name: str = "0.input.lock") -> Path:
    (tmp_path / ".snakemake/locks").mkdir(parents=True, exist_ok=True)
    lock = tmp_path / ".snakemake/locks" / name
    lock.write_text("results/demo/store/sam_masks/0123/spec.json\n")
    return lock


def test_a_live_run_is_named_and_unlock_is_never_suggested(tmp_path):
    _lock(tmp_path)
    proc = _fake_snakemake(tmp_path)
    try:
        assert [pid for pid, _ in live_runs(tmp_path)] == [proc.pid]
        with pytest.raises(RunInProgress) as err:
            with hold_lock(tmp_path, ["results/demo/seeds"], WHAT, RERUN):
                pytest.fail("the block must not run")
        message = str(err.value)
        assert f"pid {proc.pid}: {tmp_path}/bin/snakemake 30" in message and "--unlock" not in message
        assert f"a Snakemake run is in progress in {tmp_path}" in message and f"`{RERUN}` again" in message
        (tmp_path / ".snakemake/locks/0.input.lock").unlink()  # a --nolock run writes no lock: still refused
        with pytest.raises(RunInProgress, match=f"pid {proc.pid}"):
            refuse_if_running(tmp_path, WHAT, RERUN)
    finally:
        proc.kill()
        proc.wait()
    assert live_runs(tmp_path) == []


def test_lock_files_without_a_live_run_suggest_unlock(tmp_path):
    lock = _lock(tmp_path)
    with pytest.raises(RunInProgress) as err:
        with hold_lock(tmp_path, ["results/demo/seeds"], WHAT, RERUN):
            pytest.fail("the block must not run")
    assert "no longer alive on this host" in str(err.value) and "`snakemake --unlock`" in str(err.value)
    assert "another machine" in str(err.value) and lock.is_file()


def test_hold_lock_writes_an_output_lock_and_removes_only_its_own(tmp_path):
    locks = tmp_path / ".snakemake/locks"
    paths = ["results/demo/store/sam_masks/0123/shard-000.h5", "results/demo/store/sam_masks/0123/spec.json"]
    with hold_lock(tmp_path, paths, WHAT, RERUN) as lock:
        assert lock == locks / "0.output.lock" and lock.read_text().splitlines() == paths
        other = _lock(tmp_path, "1.input.lock")  # a run that locked while we held ours
    assert not lock.exists() and other.is_file()
    other.unlink()
    with hold_lock(tmp_path, paths, WHAT, RERUN):
        pass
    assert not locks.exists()  # the folder we left empty goes too
