"""The shared run's failure is reported once (with the run's last lines); the other users are skipped."""
from __future__ import annotations

import subprocess
import sys
import time

import pytest

from tests.processes import run, scaled, timeout_scale
from tests.shared_run import attempt


def test_a_failed_run_fails_one_test_and_skips_its_users():
    def build():
        raise AssertionError("snakemake failed (1):\n" + "\n".join(f"line {i}" for i in range(100)))

    failed = attempt("demo run", build)
    with pytest.raises(pytest.fail.Exception) as reported:
        failed.require()
    assert "snakemake failed (1)" in str(reported.value)
    assert "line 99" in str(reported.value) and "line 59" not in str(reported.value)  # the last 40 lines
    for _ in range(2):
        with pytest.raises(pytest.skip.Exception, match="the shared demo run failed .*: AssertionError: snakemake"):
            failed.get()
    ok = attempt("demo run", lambda: 42)
    ok.require()
    assert ok.get() == 42


def _running(pid: int) -> bool:
    """Whether ``pid`` is a live process (a killed one may linger as a zombie until it is reaped)."""
    try:
        with open(f"/proc/{pid}/stat") as fh:
            return fh.read().rsplit(")", 1)[1].split()[0] not in ("Z", "X")
    except FileNotFoundError:
        return False


def _dies_within(pid: int, seconds: float) -> bool:
    """Whether ``pid`` is gone within ``seconds``: a signalled process exits asynchronously, and on a busy
    machine a grandchild may still be in its exit path when the killer returns."""
    deadline = time.monotonic() + seconds
    while _running(pid):
        if time.monotonic() > deadline:
            return False
        time.sleep(0.05)
    return True


def test_timeout_kills_the_process_group_and_keeps_the_output(tmp_path):
    pid_file = tmp_path / "child.pid"
    script = (f"import subprocess, sys, time; c = subprocess.Popen([sys.executable, '-c', 'import time; "
              f"time.sleep(60)']); open({str(pid_file)!r}, 'w').write(str(c.pid)); "
              f"print('started', flush=True); time.sleep(60)")
    with pytest.raises(subprocess.TimeoutExpired) as err:
        run([sys.executable, "-c", script], timeout=3 / timeout_scale())
    assert "started" in err.value.stdout
    assert _dies_within(int(pid_file.read_text()), scaled(10))  # with its parent's group, not after its sleep
    timed_out = attempt("demo run", lambda: run([sys.executable, "-c", script], timeout=1 / timeout_scale()))
    assert timed_out.error.startswith("timed out after 1 s") and "started" in timed_out.error


def test_timeouts_scale_with_the_environment(monkeypatch):
    monkeypatch.setenv("FMWSSS_TEST_TIMEOUT_SCALE", "2.5")
    assert scaled(100) == 250
    monkeypatch.setenv("FMWSSS_TEST_TIMEOUT_SCALE", "fast")
    with pytest.raises(ValueError, match="FMWSSS_TEST_TIMEOUT_SCALE='fast' is not a number"):
        scaled(1)
