"""A compute job's timing record: what it computed, in how long, on which machine (read by ``fmwsss cost``).

Why: nobody knows what a VOC or COCO run costs until a small run on the real GPU (the ``rehearsal`` dataset)
says how long an image or an iteration takes there. Each compute job (a shard, a training, an evaluation, a
score) writes one record into its store entry, ``<entry>/timing/<job>.json`` (atomically), and logs one line::

    timing: 24 images in 31.2 s (1.30 s/image) after 9.8 s start-up; peak GPU memory 18.5 GiB (cuda:0 ...)

The folder is outside the entry's integrity record (``fmwsss.pipeline.integrity.entry_files``): timings
differ from run to run while the results do not, and a repaired shard job overwrites its record.

How: ``entrypoints.script_job`` calls :func:`begin` and :func:`end`; every ``Progress`` loop of the process
reports to the record (:func:`loop_started` when built, :func:`advance` per item, with the clock reading
``Progress`` takes anyway), so the record spans from the first loop's start to the last item. Start-up is the time from the
process start to that loop start (:func:`fmwsss.io.startup.elapsed`), so the two add up to the job's wall
time up to its last item. Only items a loop of this process computed count: a resumed job's earlier images
and images linked from other entries never enter a loop. A job that computed nothing (all reused, or a shard
already complete) writes a record with 0 items. Outside a job every call is a no-op.
"""
from __future__ import annotations

import json
import os
import socket
import sys
from dataclasses import asdict, dataclass, fields
from pathlib import Path
from typing import Any, Callable

from fmwsss.io import startup
from fmwsss.io.atomic import atomic_write_json

FOLDER = "timing"
"""The folder of an entry that holds its jobs' records (never part of the entry's integrity record)."""
FORMAT = 1
WHOLE_SET_JOB = "job"
"""The record name of a job that is not a shard (training, evaluation, scoring)."""
LINE_PREFIX = "timing: "
PEAK_KINDS = {"gpu": "GPU memory", "rss": "RSS"}
"""What ``peak_memory_bytes`` measured: ``torch.cuda.max_memory_allocated`` on the job's GPU, or the process's
peak resident set (``getrusage``; data-loader worker processes not included)."""


@dataclass(frozen=True)
class TimingRecord:
    """One job's record; ``seconds`` is its compute loop (first loop start to last item), ``startup_seconds``
    the time before it (process start to loop start; the whole job when it computed nothing)."""

    stage: str  # e.g. sam_masks, or score_seeds_fine for a score job
    job: str  # the shard stem (shard-000) or "job" for a whole-set job
    unit: str  # image or iteration
    items: int
    seconds: float
    startup_seconds: float
    peak_memory_bytes: int
    peak_memory_kind: str  # a key of PEAK_KINDS
    device: str  # "cuda:0 NVIDIA H100 80GB HBM3" or "cpu"
    cpu: str  # the CPU model (/proc/cpuinfo)
    threads: int
    host: str

    @property
    def seconds_per_item(self) -> float | None:
        return self.seconds / self.items if self.items else None

    def to_json(self) -> dict[str, Any]:
        return {"format": FORMAT, **asdict(self), "seconds_per_item": self.seconds_per_item}

    @classmethod
    def from_json(cls, data: Any, where: str) -> "TimingRecord":
        """The record of a parsed JSON file; ``ValueError`` naming ``where`` for anything else."""
        names = [f.name for f in fields(cls)]
        if not isinstance(data, dict) or data.get("format") != FORMAT:
            raise ValueError(f"{where}: not a timing record of format {FORMAT}")
        missing = [name for name in names if name not in data]
        if missing:
            raise ValueError(f"{where}: timing record lacks {', '.join(missing)}")
        if data["peak_memory_kind"] not in PEAK_KINDS or data["items"] < 0 or data["seconds"] < 0:
            raise ValueError(f"{where}: timing record with impossible values ({data})")
        return cls(**{name: data[name] for name in names})

    def line(self) -> str:
        """The record as the job's one log line."""
        unit = plural(self.unit, self.items)
        where = (self.device if self.peak_memory_kind == "gpu"
                 else f"{self.device} {self.cpu}, {self.threads} {plural('thread', self.threads)}")
        peak = f"peak {PEAK_KINDS[self.peak_memory_kind]} {memory_text(self.peak_memory_bytes)} ({where})"
        if not self.items:
            return f"{LINE_PREFIX}0 {unit} computed here, {self.startup_seconds:.1f} s in all; {peak}"
        return (f"{LINE_PREFIX}{self.items} {unit} in {self.seconds:.1f} s ({self.seconds_per_item:.3g} s/{self.unit}) "
                f"after {self.startup_seconds:.1f} s start-up; {peak}")


def plural(unit: str, count: int) -> str:
    return unit if count == 1 else f"{unit}s"


def memory_text(size: int) -> str:
    """Bytes as MiB below 1000 MiB, else GiB (one decimal)."""
    return f"{size / 2**20:.0f} MiB" if size < 1000 * 2**20 else f"{size / 2**30:.1f} GiB"


@dataclass
class _Loop:
    start: float
    end: float
    items: int
    startup_seconds: float | None


_active = False
_loop: _Loop | None = None


def begin() -> None:
    """Start recording this process's job (``entrypoints.script_job``)."""
    global _active, _loop
    _active, _loop = True, None


def end() -> None:
    """Stop recording (the job ended; a later ``Progress`` of the process feeds nothing)."""
    global _active, _loop
    _active, _loop = False, None


def loop_started(now: float) -> None:
    """A ``Progress`` loop was built at clock reading ``now``: the first one starts the measured span."""
    global _loop
    if _active and _loop is None:
        _loop = _Loop(now, now, 0, startup.elapsed())


def advance(n: int, now: float, counted: bool = True) -> None:
    """``n`` items ended at clock reading ``now``; ``counted`` False for a further pass over items already
    counted (their time counts, they do not)."""
    if _loop is not None:
        _loop.end = now
        _loop.items += n if counted else 0


def cpu_model() -> str:
    """The CPU's model name from /proc/cpuinfo (Linux), else what the platform says."""
    try:
        with open("/proc/cpuinfo") as fh:
            for line in fh:
                name, _, value = line.partition(":")
                if name.strip() in ("model name", "Model", "cpu model"):
                    return value.strip()
    except OSError:
        pass
    import platform

    return platform.processor() or platform.machine() or "unknown CPU"


def _device_and_peak(device: Any) -> tuple[str, int, str]:
    """(device description, peak bytes, PEAK_KINDS key): the job's CUDA device when it ran on one, else the
    process's peak RSS (``ru_maxrss`` is KiB on Linux, bytes on macOS)."""
    if str(device).startswith("cuda"):
        import torch

        index = torch.device(device).index
        index = torch.cuda.current_device() if index is None else index
        return (f"cuda:{index} {torch.cuda.get_device_name(index)}",
                int(torch.cuda.max_memory_allocated(index)), "gpu")
    import resource

    scale = 1 if sys.platform == "darwin" else 1024
    return "cpu", resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * scale, "rss"


def measure(stage: str, job: str, unit: str, device: Any, threads: int) -> TimingRecord:
    """The record of this process's job so far (items and span from its loops, start-up from its start-up
    record, memory and machine from the system)."""
    loop = _loop if _active else None
    if loop is None or not loop.items:  # no item closed the start-up record: the whole job so far
        items, seconds, before = 0, 0.0, startup.elapsed()
    else:
        items, seconds, before = loop.items, loop.end - loop.start, loop.startup_seconds
    name, peak, kind = _device_and_peak(device)
    return TimingRecord(stage=stage, job=job, unit=unit, items=items, seconds=round(seconds, 4),
                        startup_seconds=round(before or 0.0, 4), peak_memory_bytes=peak, peak_memory_kind=kind,
                        device=name, cpu=cpu_model(), threads=int(threads), host=socket.gethostname())


def record_path(entry: str | os.PathLike, job: str) -> Path:
    return Path(entry) / FOLDER / f"{job}.json"


def write(entry: str | os.PathLike, stage: str, job: str, unit: str, device: Any, threads: int,
          log: Callable[[str], None]) -> TimingRecord:
    """Measure this job (:func:`measure`), write its record into ``entry`` atomically and log its line."""
    record = measure(stage, job, unit, device, threads)
    atomic_write_json(record_path(entry, job), record.to_json())
    log(record.line())
    return record


def read_records(entry: str | os.PathLike) -> list[TimingRecord]:
    """The records of an entry's jobs, by job name; [] when it has none. A file that is no record is a
    ``ValueError`` naming it."""
    folder = Path(entry) / FOLDER
    found = []
    for path in sorted(folder.glob("*.json")) if folder.is_dir() else []:
        try:
            data = json.loads(path.read_text())
        except ValueError as exc:
            raise ValueError(f"{path}: unreadable timing record ({exc}); rerun its job or delete the file") from exc
        found.append(TimingRecord.from_json(data, str(path)))
    return found
