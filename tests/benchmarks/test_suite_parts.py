"""benchmarks/suite_parts.py: the GPU suite's parts keep what ended well, retry the rest, and keep to their time."""
from __future__ import annotations

import os
import signal
import time
from pathlib import Path

import pytest

from tests.benchmarks.scripts import load

suite_parts = load("suite_parts")
Part = suite_parts.Part


class Calls:
    """Parts that print and record that they ran."""

    def __init__(self) -> None:
        self.ran: list[str] = []

    def part(self, name: str, code: int | None = 0, error: bool = False) -> Part:
        def run():
            self.ran.append(name)
            print(f"{name} measured")
            if error:
                raise RuntimeError(f"{name} broke")
            return code

        return Part(name, 60, run)


def test_a_rerun_reprints_what_ended_well_and_runs_again_what_did_not(tmp_path, capsys):
    calls = Calls()
    parts = [calls.part("rows"), calls.part("check", code=1), calls.part("broken", error=True), calls.part("last")]
    first = suite_parts.run_parts(parts, tmp_path, budget=600)
    assert [(o.name, o.status) for o in first] == [("rows", "ok"), ("check", "failed"), ("broken", "failed"),
                                                   ("last", "ok")]
    out = capsys.readouterr().out
    assert "RuntimeError: broken broke" in out and "check: FAILED (exit status 1)" in out
    assert calls.ran == ["rows", "check", "broken", "last"]  # a failure does not stop the next part

    calls.ran.clear()
    second = suite_parts.run_parts(parts, tmp_path, budget=600)
    assert calls.ran == ["check", "broken"]
    assert [o.status for o in second] == ["saved", "failed", "failed", "saved"]
    lines = capsys.readouterr().out.splitlines()
    assert lines[:2] == ["== rows (saved from an earlier run)", "rows measured"]
    assert "== last (saved from an earlier run)" in lines and "last measured" in lines


def test_a_skipped_part_is_neither_run_nor_saved(tmp_path, capsys):
    calls = Calls()
    part = Part("gpu row", 60, lambda: calls.ran.append("gpu row"), skip="no CUDA device")
    assert [o.status for o in suite_parts.run_parts([part], tmp_path, budget=600)] == ["not run"]
    assert calls.ran == [] and list(tmp_path.iterdir()) == []
    assert capsys.readouterr().out == "== gpu row: not run: no CUDA device\n"


def test_parts_after_the_budget_are_not_run_and_are_left_for_the_rerun(tmp_path):
    now = [0.0]

    def slow():  # the fake clock: each part takes 100 s
        now[0] += 100
        print("done")

    parts = [Part(name, 500, slow) for name in ("a", "b", "c")]
    outcomes = suite_parts.run_parts(parts, tmp_path, budget=150, clock=lambda: now[0])
    assert [(o.name, o.status) for o in outcomes] == [("a", "ok"), ("b", "ok"), ("c", "not run")]
    assert "budget is spent" in outcomes[2].detail
    assert not (tmp_path / "c.json").exists()
    assert [o.status for o in suite_parts.run_parts(parts, tmp_path, budget=150, clock=lambda: now[0])] == [
        "saved", "saved", "ok"]


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    stat = Path(f"/proc/{pid}/stat")
    return not (stat.exists() and stat.read_text().split(") ")[1].startswith("Z"))


def test_a_command_out_of_time_is_killed_with_its_children_and_not_saved(tmp_path, capsys):
    pids = tmp_path / "pids"
    script = f"sleep 600 & echo $! > {pids}; echo started; wait"
    part = Part("workflow", 1.0, lambda: suite_parts.run_command(["sh", "-c", script]))
    [outcome] = suite_parts.run_parts([part], tmp_path / "state", budget=600)
    assert outcome.status == "timed out"
    assert not (tmp_path / "state").exists()
    out = capsys.readouterr().out
    assert "started" in out and "workflow: TIMED OUT" in out
    child = int(pids.read_text())
    for _ in range(100):  # the killed grandchild may still be in its exit path
        if not _alive(child):
            break
        time.sleep(0.1)
    assert not _alive(child), "the command's child outlived the part's time limit"


def test_the_summary_gives_each_part_its_status_and_time():
    outcomes = [suite_parts.Outcome("sam", "ok", 12.34), suite_parts.Outcome("demo run", "saved", 80.0),
                suite_parts.Outcome("rehearsal", "timed out", 300.0),
                suite_parts.Outcome("seed check", "failed", 2.0, "exit status 1"),
                suite_parts.Outcome("multi-gpu slots", "not run", 0.0, "no CUDA device")]
    assert suite_parts.summary(outcomes).splitlines() == [
        "== summary",
        "  sam                  ok              12.3 s",
        "  demo run             ok (saved)      80.0 s",
        "  rehearsal            timed out      300.0 s",
        "  seed check           failed           2.0 s  exit status 1",
        "  multi-gpu slots      not run          0.0 s  no CUDA device",
        "== done: 2/5 parts ok, 2 failed or timed out",
    ]


@pytest.mark.parametrize("name, expected", [("multi-gpu slots", "multi-gpu-slots"), ("cost voc", "cost-voc")])
def test_state_files_are_named_from_the_part(name, expected):
    assert suite_parts.slug(name) == expected


def test_the_deadline_interrupts_python_code_then_disarms_and_restores_the_handler():
    before = signal.getsignal(signal.SIGALRM)
    with pytest.raises(suite_parts.PartTimeout):
        with suite_parts.deadline(0.2):
            while True:
                sum(range(1000))
    assert signal.getitimer(signal.ITIMER_REAL) == (0.0, 0.0)
    assert signal.getsignal(signal.SIGALRM) is before
