"""Progress lines by count and by time, with an injected clock (no real waiting)."""
from __future__ import annotations

import re

from fmwsss.io.progress import Progress


class Clock:
    def __init__(self):
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


def _counts(lines: list[str]) -> list[str]:
    return [re.search(r"\d+/\d+", line).group() for line in lines]


def test_time_only_logs_first_every_30_s_and_last():
    clock, lines = Clock(), []
    progress = Progress(lines.append, "eval", 10, seconds=30, clock=clock)
    ends = [5, 20, 35, 40, 64, 65, 96, 97, 130, 131]  # seconds after the start at which items end
    logged = []
    for t in ends:
        clock.now = 100.0 + t
        logged.append(progress.advance())
    # first item (5); 35 - 5 = 30; (64 - 35 = 29: no) 65 - 35 = 30; 96 - 65 = 31; 130 - 96 = 34; the last item
    assert logged == [True, False, True, False, False, True, True, False, True, True]
    assert _counts(lines) == ["1/10", "3/10", "6/10", "7/10", "9/10", "10/10"]


def test_count_and_time_together_and_a_slow_item_logs_when_it_ends():
    clock, lines = Clock(), []
    progress = Progress(lines.append, "it", 7, every=3, seconds=30, clock=clock)
    for t in (1, 2, 3, 4, 100, 101, 102):  # item 5 takes 96 s: nothing in between, a line when it ends
        clock.now = 100.0 + t
        progress.advance(detail=f"t{t}")
    # 1: first; 4: 3 items since 1; 5: 96 s since the last line; 7: 3 since 4 and the last item
    assert _counts(lines) == ["1/7", "4/7", "5/7", "7/7"]
    assert lines[0].startswith("it 1/7 t1 (") and lines[2].startswith("it 5/7 t100 (")


def test_resumed_run_counts_from_done_and_rates_only_this_run():
    clock, lines = Clock(), []
    progress = Progress(lines.append, "sam_masks: image", 8, done=3, every=1, clock=clock)
    for _ in range(5):
        clock.now += 2.0
        progress.advance(detail="x")
    assert _counts(lines) == ["4/8", "5/8", "6/8", "7/8", "8/8"]
    # 2 s per item in this run: 0.50/s; after item 4 of 8: 4 left at 0.5/s = 8 s
    assert lines[0] == "sam_masks: image 4/8 x (0.50/s, 0:02 elapsed, ETA 0:08)"
    assert lines[-1] == "sam_masks: image 8/8 x (0.50/s, 0:10 elapsed, ETA 0:00)"


def test_long_durations_show_hours():
    clock, lines = Clock(), []
    progress = Progress(lines.append, "train", 3, clock=clock)
    clock.now += 3700.0
    progress.advance()
    # one item in 3700 s, two left: 7400 s = 2:03:20
    assert lines == ["train 1/3 (0.00/s, 1:01:40 elapsed, ETA 2:03:20)"]
