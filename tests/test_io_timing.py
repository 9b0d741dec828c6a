"""A job's timing record: its span and items come from the job's Progress loops, it survives a JSON round trip,
and a file that is no record is refused by name."""
from __future__ import annotations

import json

import pytest

from fmwsss.io import startup, timing
from fmwsss.io.progress import Progress


class Clock:
    def __init__(self, now: float):
        self.now = now

    def __call__(self) -> float:
        return self.now


@pytest.fixture
def job():
    """A recording job (as ``entrypoints.script_job`` starts one), stopped afterwards."""
    lines: list[str] = []
    startup.begin(lines.append)
    timing.begin()
    yield lines
    startup.end()
    timing.end()


def test_span_runs_from_the_first_loop_start_to_the_last_item_and_a_repeat_pass_adds_time_only(job, tmp_path):
    clock = Clock(100.0)
    first = Progress(job.append, "pass 1: image", 3, done=1, clock=clock, unit="image")  # a resumed job: 1 done before
    for t in (101.5, 103.0):
        clock.now = t
        first.advance()
    second = Progress(job.append, "pass 2: image", 3, clock=clock, unit="image", repeat=True)
    for t in (104.0, 105.0, 106.0):
        clock.now = t
        second.advance()
    record = timing.write(tmp_path / "entry", "score_cams_fine_dump", "job", "image", "cpu", 2, job.append)
    assert (record.items, record.seconds) == (2, 6.0)  # the 2 computed images, from 100.0 to 106.0
    assert record.seconds_per_item == 3.0
    assert record.startup_seconds >= 0 and record.peak_memory_kind == "rss" and record.peak_memory_bytes > 0
    assert (record.device, record.threads, record.job) == ("cpu", 2, "job")
    on_disk = json.loads((tmp_path / "entry/timing/job.json").read_text())
    assert on_disk["items"] == 2 and on_disk["seconds_per_item"] == 3.0 and on_disk["format"] == timing.FORMAT
    assert timing.read_records(tmp_path / "entry") == [record]
    assert job[-1].startswith("timing: 2 images in 6.0 s (3 s/image) after ")


def test_a_job_without_a_loop_records_zero_items(job, tmp_path):
    record = timing.write(tmp_path, "sam_masks", "shard-001", "image", "cpu", 1, job.append)
    assert (record.items, record.seconds, record.seconds_per_item) == (0, 0.0, None)
    assert job[-1].startswith("timing: 0 images computed here")


def test_outside_a_job_loops_record_nothing(tmp_path):
    timing.end()
    progress = Progress(lambda _: None, "x", 2, clock=Clock(0.0))
    progress.advance()
    record = timing.measure("deeplab_eval", "job", "image", "cpu", 1)
    assert record.items == 0


def test_record_line_on_a_gpu():
    record = timing.TimingRecord(stage="sam_masks", job="shard-000", unit="image", items=24, seconds=31.2,
                                 startup_seconds=9.8, peak_memory_bytes=int(18.5 * 2**30), peak_memory_kind="gpu",
                                 device="cuda:0 NVIDIA H100 80GB HBM3", cpu="x", threads=8, host="h")
    assert record.line() == ("timing: 24 images in 31.2 s (1.3 s/image) after 9.8 s start-up; "
                             "peak GPU memory 18.5 GiB (cuda:0 NVIDIA H100 80GB HBM3)")


def test_files_that_are_no_record_are_refused_by_name(tmp_path):
    folder = tmp_path / timing.FOLDER
    folder.mkdir()
    (folder / "shard-000.json").write_text("{not json")
    with pytest.raises(ValueError, match="shard-000.json: unreadable timing record"):
        timing.read_records(tmp_path)
    (folder / "shard-000.json").write_text(json.dumps({"format": timing.FORMAT, "stage": "sam_masks"}))
    with pytest.raises(ValueError, match="shard-000.json: timing record lacks job, unit"):
        timing.read_records(tmp_path)
    assert timing.read_records(tmp_path / "no-entry") == []
