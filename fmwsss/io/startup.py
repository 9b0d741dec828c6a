"""A job's start-up, phase by phase: where the seconds go before its first image or iteration is done.

Why: a tiny-model job of the demo spends most of its wall time starting (interpreter, Snakemake's script
preamble, ``import torch``, the index, the weight check, model load), and a slow start hides in the total.
A job calls :func:`begin` once; the code it runs calls :func:`mark` after each phase, in order (each phase is
the time since the previous mark, so the phases add up to the total); the first ``Progress`` line of the
process (:func:`first_item`) closes the record and logs one line::

    startup: python 0.31 s, torch 1.52 s, imports 0.40 s, index 0.05 s, ..., first image 0.20 s;
    total 2.61 s, beyond torch 1.09 s

A job that computes nothing (every image reused) logs it when it ends (:func:`end`). Outside a job (tests,
the ``run:`` rules inside the main Snakemake process, the CLI) nothing is recorded: every call is a no-op.
Cost: one clock read per mark.
"""
from __future__ import annotations

import os
import time
from collections.abc import Callable

LINE_PREFIX = "startup: "
"""What a log line of the record starts with (``benchmarks/bench_startup.py`` parses it)."""


def process_age() -> float:
    """Seconds since this process started (Linux: ``/proc``, 10 ms resolution; elsewhere 0, so the record
    starts at :func:`begin` and its first phase holds only the time since then)."""
    try:
        with open("/proc/self/stat") as fh:
            fields = fh.read().rsplit(")", 1)[1].split()
        with open("/proc/uptime") as fh:
            uptime = float(fh.read().split()[0])
    except (OSError, IndexError, ValueError):
        return 0.0
    return max(0.0, uptime - int(fields[19]) / os.sysconf("SC_CLK_TCK"))


class Startup:
    """Named phases of a start-up, each the time since the previous mark (a repeated name adds up)."""

    def __init__(self, age: float = 0.0, clock: Callable[[], float] = time.monotonic):
        self._clock = clock
        self._origin = self._last = clock() - age
        self.phases: dict[str, float] = {}

    def elapsed(self) -> float:
        """Seconds since the start the record measures from (the process start, for a job)."""
        return self._clock() - self._origin

    def mark(self, phase: str) -> None:
        now = self._clock()
        self.phases[phase] = self.phases.get(phase, 0.0) + now - self._last
        self._last = now

    def line(self, note: str = "") -> str:
        """The record as one log line; ``beyond torch`` is the total less the ``torch`` phase."""
        total = sum(self.phases.values())
        parts = ", ".join(f"{name} {seconds:.2f} s" for name, seconds in self.phases.items())
        beyond = total - self.phases.get("torch", 0.0)
        return f"{LINE_PREFIX}{parts}; total {total:.2f} s, beyond torch {beyond:.2f} s{note}"


def parse_line(line: str) -> dict[str, float] | None:
    """The phases of a log line written by :meth:`Startup.line` (timestamp prefix allowed), else None."""
    start = line.find(LINE_PREFIX)
    if start < 0 or "; total " not in line:
        return None
    body = line[start + len(LINE_PREFIX):].split("; total ")[0]
    phases = {}
    for part in body.split(", "):
        name, _, value = part.rpartition(" ")[0].rpartition(" ")
        phases[name] = float(value)
    return phases


_active: Startup | None = None
_log: Callable[[str], None] | None = None


def begin(log: Callable[[str], None]) -> None:
    """Start recording this process's start-up (measured from the process start), logging to ``log``."""
    global _active, _log
    _active, _log = Startup(age=process_age()), log
    _active.mark("python")


def mark(phase: str) -> None:
    """End phase ``phase`` of the active record (a no-op when no job is recording)."""
    if _active is not None:
        _active.mark(phase)


def elapsed() -> float | None:
    """Seconds from the process start to now by the active record (a job's timing record takes its
    start-up from here when its loop starts); None outside a job or once the record is closed."""
    return None if _active is None else _active.elapsed()


def first_item(what: str) -> None:
    """The first item of the job is done: close the record with phase ``what`` and log it (once)."""
    global _active
    if _active is not None and _log is not None:
        _active.mark(what)
        _log(_active.line())
    _active = None


def end() -> None:
    """The job ends: log a record no item closed (nothing was computed), then stop recording."""
    global _active
    if _active is not None and _log is not None:
        _active.mark("rest")
        _log(_active.line(note=" (no item computed)"))
    _active = None
