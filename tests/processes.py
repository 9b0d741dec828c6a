"""Subprocesses of the suite: time limits that scale with the machine, and no orphans when one runs out.

``FMWSSS_TEST_TIMEOUT_SCALE`` (default 1) multiplies every time limit of the suite (Snakemake runs, CLI
calls, benchmark smoke runs, waits for a log line): on a slow or busy machine, ``FMWSSS_TEST_TIMEOUT_SCALE=3
make test`` passes where it only runs slower. :func:`run` starts the command in a session of its own and, when
the limit passes, kills the whole process group: a timed-out Snakemake takes its running jobs with it instead
of leaving them to compete with the rest of the suite.
"""
from __future__ import annotations

import os
import signal
import subprocess
from collections.abc import Sequence

SCALE_VARIABLE = "FMWSSS_TEST_TIMEOUT_SCALE"


def timeout_scale() -> float:
    """The factor of ``FMWSSS_TEST_TIMEOUT_SCALE`` (1 when unset); a bad value is an error naming it."""
    raw = os.environ.get(SCALE_VARIABLE, "1")
    try:
        scale = float(raw)
    except ValueError:
        raise ValueError(f"{SCALE_VARIABLE}={raw!r} is not a number") from None
    if not scale > 0:
        raise ValueError(f"{SCALE_VARIABLE}={raw!r} must be positive")
    return scale


def scaled(seconds: float) -> float:
    """``seconds`` times ``FMWSSS_TEST_TIMEOUT_SCALE``."""
    return seconds * timeout_scale()


def kill_group(proc: subprocess.Popen, grace: float = 10.0) -> None:
    """SIGTERM the process group of ``proc`` (started with ``start_new_session``), then SIGKILL whatever of
    the group is left after ``grace`` seconds (children outlive a parent that exits on SIGTERM)."""
    try:
        os.killpg(proc.pid, signal.SIGTERM)
    except ProcessLookupError:
        return
    try:
        proc.wait(timeout=grace)
    except subprocess.TimeoutExpired:
        pass
    try:
        os.killpg(proc.pid, signal.SIGKILL)
    except ProcessLookupError:
        pass
    proc.wait()


def run(cmd: Sequence[str], timeout: float, *, cwd=None, env=None, input: str | None = None
        ) -> subprocess.CompletedProcess:
    """``subprocess.run(cmd, capture_output=True, text=True)`` with ``scaled(timeout)``; on time-out the
    command's whole process group is killed and ``TimeoutExpired`` carries the output it had written."""
    limit = scaled(timeout)
    proc = subprocess.Popen(cmd, cwd=cwd, env=env, text=True, start_new_session=True,
                            stdin=subprocess.PIPE if input is not None else subprocess.DEVNULL,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    try:
        out, err = proc.communicate(input, timeout=limit)
    except subprocess.TimeoutExpired:
        kill_group(proc)
        out, err = proc.communicate()
        raise subprocess.TimeoutExpired(cmd, limit, output=out, stderr=err) from None
    except BaseException:
        kill_group(proc)
        raise
    return subprocess.CompletedProcess(cmd, proc.returncode, out, err)


def wait_for_text(path, text: str, proc: subprocess.Popen, timeout: float = 600) -> None:
    """Wait until the file ``path`` contains ``text`` (a job's log line), while ``proc`` (the run writing it)
    is alive, for at most ``scaled(timeout)`` seconds."""
    import time
    from pathlib import Path

    path, deadline = Path(path), time.monotonic() + scaled(timeout)
    while not (path.is_file() and text in path.read_text()):
        assert proc.poll() is None, proc.communicate()
        assert time.monotonic() < deadline, f"{path} never said {text!r}"
        time.sleep(0.3)
