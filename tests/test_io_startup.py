"""The job start-up record: phases add up to the total, one line per job, parsed back by the benchmark."""
from __future__ import annotations

from fmwsss.io import startup
from fmwsss.io.progress import Progress


class Clock:
    def __init__(self, times: list[float]):
        self.times = list(times)

    def __call__(self) -> float:
        return self.times.pop(0)


def test_phases_are_times_between_marks_and_repeats_add_up():
    rec = startup.Startup(age=0.5, clock=Clock([10.0, 10.25, 12.25, 12.5, 13.0]))  # started at 9.5
    for phase in ("python", "torch", "imports", "imports"):
        rec.mark(phase)
    assert rec.phases == {"python": 0.75, "torch": 2.0, "imports": 0.75}
    line = rec.line()
    assert line == "startup: python 0.75 s, torch 2.00 s, imports 0.75 s; total 3.50 s, beyond torch 1.50 s"
    assert startup.parse_line("14:02:03 " + line) == {"python": 0.75, "torch": 2.0, "imports": 0.75}


def test_parse_line_reads_names_with_spaces_and_ignores_other_lines():
    line = "startup: python 0.10 s, first image 1.25 s; total 1.35 s, beyond torch 1.35 s (no item computed)"
    assert startup.parse_line(line) == {"python": 0.1, "first image": 1.25}
    assert startup.parse_line("sam_masks: image 1/8 (2.00/s, 0:00 elapsed, ETA 0:03)") is None


def test_process_age_is_small_and_non_negative():
    assert 0.0 <= startup.process_age() < 24 * 3600


def test_first_progress_item_logs_the_record_once():
    lines: list[str] = []
    startup.begin(lines.append)
    startup.mark("torch")
    progress = Progress(lines.append, "stage: image", 3, unit="image")
    for _ in range(3):
        progress.advance()
    startup.end()  # already closed by the first image: logs nothing more
    records = [ln for ln in lines if ln.startswith("startup: ")]
    assert len(records) == 1 and lines.index(records[0]) == 0
    assert list(startup.parse_line(records[0])) == ["python", "torch", "first image"]


def test_a_job_without_items_logs_at_its_end_and_nothing_records_outside_a_job():
    lines: list[str] = []
    startup.mark("torch")  # no job recording: a no-op
    startup.first_item("first image")
    assert lines == []
    startup.begin(lines.append)
    startup.mark("index")
    startup.end()
    startup.end()
    assert len(lines) == 1 and lines[0].endswith("(no item computed)")
    assert list(startup.parse_line(lines[0])) == ["python", "index", "rest"]
