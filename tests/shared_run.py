"""A session-wide run shared by many tests, whose failure is reported once.

Why: when the suite's one end-to-end run failed (a timeout on a busy machine), pytest re-raised it in every
test that used it: 41 errors for one cause, with the cause buried. An :class:`Attempt` builds the run once
and never raises from the session fixture: one test (``tests/workflow/test_shared_run_builds.py``) fails with
the run's last log lines, and every test or module fixture that asks for the failed run is skipped naming
the failure.
"""
from __future__ import annotations

import fcntl
import json
import os
import subprocess
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

TAIL_LINES = 40


def tail(text: str | bytes | None, lines: int = TAIL_LINES) -> str:
    if isinstance(text, bytes):
        text = text.decode(errors="replace")
    return "\n".join((text or "").rstrip().splitlines()[-lines:])


def describe(exc: BaseException) -> str:
    """What went wrong, with the last lines the run wrote."""
    if isinstance(exc, subprocess.TimeoutExpired):
        return (f"timed out after {exc.timeout:.0f} s (on a slow or busy machine raise FMWSSS_TEST_TIMEOUT_SCALE, "
                f"see README 'Development'); the run was killed with its jobs.\nLast lines:\n"
                f"{tail(exc.stdout)}\n{tail(exc.stderr)}")
    first, _, rest = str(exc).partition("\n")
    return f"{type(exc).__name__}: {first}" + (f"\n...\n{tail(rest)}" if rest else "")


@dataclass
class Attempt:
    """The outcome of building a shared run: its value, or the description of its failure."""

    name: str
    value: Any = None
    error: str | None = None

    def get(self) -> Any:
        """The value; a failed run skips the caller (a test or a fixture of any scope), naming the failure."""
        if self.error is not None:
            pytest.skip(f"the shared {self.name} failed (tests/workflow/test_shared_run_builds.py has its log): "
                        f"{self.error.splitlines()[0]}")
        return self.value

    def require(self) -> None:
        """Fail with the whole description if the run failed: the one test that reports it."""
        if self.error is not None:
            pytest.fail(f"the shared {self.name} failed: {self.error}", pytrace=False)


def attempt(name: str, build: Callable[[], Any]) -> Attempt:
    """Run ``build`` once; an exception becomes the attempt's error instead of propagating."""
    try:
        return Attempt(name, value=build())
    except Exception as exc:  # noqa: BLE001 - reported through Attempt.get, once
        return Attempt(name, error=describe(exc))


def shared_attempt(name: str, tmp_path_factory: pytest.TempPathFactory, build: Callable[[], Path],
                   wrap: Callable[[Path], Any]) -> Attempt:
    """:func:`attempt` of a run that ``build`` makes in a folder, once per test session also under
    pytest-xdist: the first worker to ask builds it under a lock in the session's shared temp folder and
    records the folder (or the failure); the others wait on the lock and read the record."""
    worker = os.environ.get("PYTEST_XDIST_WORKER")
    if worker is None:
        return attempt(name, lambda: wrap(build()))
    shared = tmp_path_factory.getbasetemp().parent  # pytest-N/, the parent of every worker's popen-gwK/
    record = shared / f"{name.replace(' ', '_')}.json"
    with open(shared / f"{record.name}.lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        if not record.is_file():
            built = attempt(name, build)
            record.write_text(json.dumps({"path": None if built.error else str(built.value), "error": built.error,
                                          "worker": worker}))
        state = json.loads(record.read_text())
    if state["error"] is not None:
        return Attempt(name, error=f"{state['error']} (built by xdist worker {state['worker']})")
    return Attempt(name, value=wrap(Path(state["path"])))
