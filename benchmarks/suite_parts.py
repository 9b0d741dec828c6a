"""The GPU suite's parts: each under its own time limit, its output kept so that a rerun need not redo it.

GPU time is lent by the minute and a lease can end mid-suite, so ``benchmarks/gpu_suite.py`` runs its rows
and workflow steps as parts. A part is a function of this process (a measured row) or a command in its own
process group (a Snakemake run, a check, ``fmwsss cost``). Each runs under the smaller of its own limit and
what is left of the suite's budget (``SIGALRM``; a command's whole group is killed when it runs out). A part
that ends well leaves its printed output in the state folder, and a later run reprints it marked ``(saved
from an earlier run)`` instead of running it again; a failed or timed-out part leaves nothing, so the next
run tries it again (a Snakemake part resumes where it stopped). One part's failure never stops the next.
Delete the state folder to measure everything again.
"""
from __future__ import annotations

import io
import json
import os
import re
import signal
import subprocess
import sys
import time
import traceback
from contextlib import contextmanager, redirect_stdout
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Iterator, Sequence

from fmwsss.io.atomic import atomic_write_bytes, atomic_write_json

#: Seconds a command's process group gets between SIGTERM and SIGKILL once its time is up.
KILL_GRACE = 10.0


@dataclass(frozen=True)
class Part:
    """``run`` prints the part's output and returns its exit status (None counts as 0); ``skip``, when set,
    says why the part is not run here (nothing is run or saved)."""

    name: str
    limit: float
    run: Callable[[], int | None]
    skip: str | None = None


@dataclass(frozen=True)
class Outcome:
    name: str
    status: str  # ok, saved, failed, timed out, not run
    seconds: float
    detail: str = ""

    @property
    def bad(self) -> bool:
        return self.status in ("failed", "timed out")


class PartTimeout(BaseException):
    """A part's time is up (a BaseException, so library ``except Exception`` blocks do not swallow it)."""


@contextmanager
def deadline(seconds: float) -> Iterator[None]:
    """Raise :class:`PartTimeout` in this (main) thread once ``seconds`` have passed."""

    def expire(signum, frame):
        raise PartTimeout()

    previous = signal.signal(signal.SIGALRM, expire)
    signal.setitimer(signal.ITIMER_REAL, max(seconds, 0.001))
    try:
        yield
    finally:
        signal.setitimer(signal.ITIMER_REAL, 0)
        signal.signal(signal.SIGALRM, previous)


class _Tee(io.TextIOBase):
    """Writes to the terminal as it comes and keeps a copy for the state folder."""

    def __init__(self, out: io.TextIOBase) -> None:
        self.out, self.copy = out, io.StringIO()

    def write(self, text: str) -> int:
        self.out.write(text)
        self.out.flush()
        return self.copy.write(text)


def run_command(cmd: Sequence[str], cwd: Path | None = None) -> int:
    """Run ``cmd`` in a process group of its own, printing its output (stderr merged) line by line; if the
    part's deadline interrupts it, the whole group is terminated (Snakemake takes its jobs along)."""
    print("$ " + " ".join(cmd))
    try:
        proc = subprocess.Popen(list(cmd), cwd=cwd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
                                errors="replace", stdin=subprocess.DEVNULL, start_new_session=True)
    except FileNotFoundError as error:  # no such program on this machine (make, say)
        print(f"cannot run {cmd[0]}: {error}")
        return 127
    try:
        for line in proc.stdout:
            print(line, end="")
        return proc.wait()
    finally:
        if proc.poll() is None:
            _kill_group(proc)
        proc.stdout.close()


def _kill_group(proc: subprocess.Popen) -> None:
    for sig, wait in ((signal.SIGTERM, KILL_GRACE), (signal.SIGKILL, None)):
        try:
            os.killpg(proc.pid, sig)
        except ProcessLookupError:
            return
        try:
            proc.wait(timeout=wait)
            return
        except subprocess.TimeoutExpired:
            continue


def slug(name: str) -> str:
    return re.sub(r"[^a-z0-9]+", "-", name.lower()).strip("-")


def run_parts(parts: Sequence[Part], state: Path, budget: float, clock: Callable[[], float] = time.monotonic
              ) -> list[Outcome]:
    """Run (or reprint) each part in order within ``budget`` seconds; the outcome of each."""
    start = clock()
    outcomes = []
    for part in parts:
        log, record = state / f"{slug(part.name)}.log", state / f"{slug(part.name)}.json"
        left = budget - (clock() - start)
        if part.skip:
            print(f"== {part.name}: not run: {part.skip}", flush=True)
            outcomes.append(Outcome(part.name, "not run", 0.0, part.skip))
        elif record.is_file():
            print(f"== {part.name} (saved from an earlier run)", flush=True)
            print(log.read_text(), end="", flush=True)
            outcomes.append(Outcome(part.name, "saved", json.loads(record.read_text())["seconds"]))
        elif left <= 0:
            why = "the suite's time budget is spent (run it again to go on)"
            print(f"== {part.name}: not run: {why}", flush=True)
            outcomes.append(Outcome(part.name, "not run", 0.0, why))
        else:
            outcomes.append(_run_one(part, min(part.limit, left), log, record, clock))
    return outcomes


def _run_one(part: Part, limit: float, log: Path, record: Path, clock: Callable[[], float]) -> Outcome:
    print(f"== {part.name} (time limit {limit:.0f} s)", flush=True)
    tee = _Tee(sys.stdout)
    tic = clock()
    with redirect_stdout(tee):
        try:
            with deadline(limit):
                code = part.run() or 0
        except PartTimeout:
            code = None
        except Exception:  # a broken part must not hide the others; the summary and exit status report it
            traceback.print_exc(file=sys.stdout)
            code = 1
    seconds = clock() - tic
    if code is None:
        print(f"{part.name}: TIMED OUT after {seconds:.0f} s (run the suite again to resume it)", flush=True)
        return Outcome(part.name, "timed out", seconds)
    if code != 0:
        print(f"{part.name}: FAILED (exit status {code})", flush=True)
        return Outcome(part.name, "failed", seconds, f"exit status {code}")
    atomic_write_bytes(log, tee.copy.getvalue().encode())
    atomic_write_json(record, {"seconds": seconds})
    return Outcome(part.name, "ok", seconds)


def summary(outcomes: Sequence[Outcome]) -> str:
    """The closing lines: one per part (status, seconds), then the count of parts that ended well."""
    lines = ["== summary"]
    for o in outcomes:
        status = {"saved": "ok (saved)"}.get(o.status, o.status)
        detail = f"  {o.detail}" if o.detail else ""
        lines.append(f"  {o.name:<20} {status:<12} {o.seconds:7.1f} s{detail}")
    good = sum(o.status in ("ok", "saved") for o in outcomes)
    lines.append(f"== done: {good}/{len(outcomes)} parts ok, {sum(o.bad for o in outcomes)} failed or timed out")
    return "\n".join(lines)
