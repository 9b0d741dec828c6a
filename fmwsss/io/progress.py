"""Progress lines for long loops, by count and by time, so no job log goes quiet.

Why: a log that only speaks every N items is silent for minutes when items are slow (``deeplab_eval`` once
wrote nothing for 12 minutes at one line per 100 images). ``Progress`` writes a line at the first item of
the run, whenever ``every`` items were done since the last line (0: never by count), whenever ``seconds``
passed since it, and at the last item. The clock is read once per item, so a single item slower than
``seconds`` is not interrupted: the next line comes when it ends. The clock is injectable for tests.
"""
from __future__ import annotations

import math
import time
from collections.abc import Callable

from fmwsss.io import startup, timing

PROGRESS_SECONDS = 30.0
"""Longest gap between two progress lines of a job (between item ends): the issue's "at least every 30 s"."""


def _duration(seconds: float) -> str:
    if not math.isfinite(seconds):
        return "?"
    seconds = int(round(seconds))
    h, rest = divmod(seconds, 3600)
    m, s = divmod(rest, 60)
    return f"{h}:{m:02d}:{s:02d}" if h else f"{m}:{s:02d}"


class Progress:
    """Counts items of a loop and logs ``"{what} {done}/{total} {detail} (rate, elapsed, ETA)"`` when due.

    ``done``: items already done before this run (a resumed job), counted in ``done/total`` but not in the
    rate. ``unit`` names an item in the job's start-up record, which the first item of the process closes
    (:mod:`fmwsss.io.startup`). Every loop also feeds the job's timing record (:mod:`fmwsss.io.timing`);
    ``repeat``: a further pass over items an earlier loop of the job counted (the CAA pass of a CAM score),
    whose time counts there and whose items do not. Cost: one clock read per item.
    """

    def __init__(
        self,
        log: Callable[[str], None],
        what: str,
        total: int,
        *,
        done: int = 0,
        every: int = 0,
        seconds: float = PROGRESS_SECONDS,
        clock: Callable[[], float] = time.monotonic,
        unit: str = "item",
        repeat: bool = False,
    ):
        self.log, self.what, self.total, self.unit, self.repeat = log, what, total, unit, repeat
        self.done, self._first = done, done
        self.every, self.seconds, self.clock = every, seconds, clock
        self._start = self._last_time = clock()
        self._last_done = done
        timing.loop_started(self._start)

    def advance(self, n: int = 1, detail: str = "") -> bool:
        """Count ``n`` more items done; log a line when one is due (returns whether it did).

        ``detail`` is only shown on a logged line (build it cheaply, it is built every call)."""
        if self.done == self._first:
            startup.first_item(f"first {self.unit}")
        self.done += n
        now = self.clock()
        timing.advance(n, now, counted=not self.repeat)
        due = (
            self.done - n == self._first
            or self.done >= self.total
            or (self.every > 0 and self.done - self._last_done >= self.every)
            or now - self._last_time >= self.seconds
        )
        if due:
            elapsed = now - self._start
            rate = (self.done - self._first) / elapsed if elapsed > 0 else math.inf
            left = self.total - self.done
            eta = 0.0 if left <= 0 else left / rate if 0 < rate < math.inf else math.inf
            rate_text = f"{rate:.2f}/s" if math.isfinite(rate) else "-/s"
            self.log(
                f"{self.what} {self.done}/{self.total}{' ' + detail if detail else ''} "
                f"({rate_text}, {_duration(elapsed)} elapsed, ETA {_duration(eta)})"
            )
            self._last_time, self._last_done = now, self.done
        return due
