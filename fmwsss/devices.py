"""Where torch work runs: one rule for the pipeline, the CLI and the library."""
from __future__ import annotations

import contextlib
import os
import re
from collections.abc import Callable, Iterator, Mapping

import torch

from fmwsss.gpu_slots import acquire_slot, lock_dir, simulated_devices, visible_gpus

DEVICE_SETTING = re.compile(r"auto|cpu|cuda(:\d+)?")


def resolve_device(device: str | torch.device | None) -> torch.device:
    """``None`` or ``"auto"`` = cuda when present (on SLURM: the GPU the job was granted), else cpu;
    anything else is taken as given."""
    if device is None or device == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    return torch.device(device)


NO_GPU = "runtime.device is cuda but this job has no usable GPU (none visible, or torch without CUDA)"


def _check_setting(setting: str) -> None:
    if not DEVICE_SETTING.fullmatch(setting):
        raise ValueError(f"runtime.device: {setting!r} is not auto, cpu, cuda or cuda:N")


def _job_gpus(environ: Mapping[str, str], log: Callable[[str], None]) -> tuple[list[str], bool]:
    """The GPUs a job may take (names) and whether they are simulated (tests: the work runs on cpu)."""
    simulated = simulated_devices(environ)
    if simulated is not None:
        return simulated, True
    names = visible_gpus(environ)
    if not names:
        return [], False
    if not torch.cuda.is_available():
        log(f"device: {len(names)} GPU(s) visible but this torch has no CUDA: running on cpu")
        return [], False
    return names[: torch.cuda.device_count()], False


def _gpu(index: int, simulated: bool) -> torch.device:
    """``cuda:index``, made the current CUDA device too (a stray ``"cuda"`` lands there); cpu when simulated."""
    if simulated:
        return torch.device("cpu")
    device = torch.device("cuda", index)
    torch.cuda.set_device(device)
    return device


@contextlib.contextmanager
def job_device(setting: str, log: Callable[[str], None], environ: Mapping[str, str] | None = None
               ) -> Iterator[torch.device]:
    """The device of one pipeline job (``runtime.device``), held until the ``with`` block ends.

    ``cpu`` and ``cuda:N`` are taken as given (``cuda:N`` pins every job to GPU N). ``auto`` and ``cuda``
    take a slot of a GPU of this host (:mod:`fmwsss.gpu_slots`): with N GPUs, N concurrent jobs get N
    different GPUs; without one, ``auto`` runs on cpu and ``cuda`` is an error. Inside a SLURM job that
    sees a single GPU, it is the one SLURM granted and no lock is taken.
    """
    env = os.environ if environ is None else environ
    _check_setting(setting)
    if setting == "cpu":
        log("device: cpu (runtime.device)")
        yield torch.device("cpu")
        return
    if setting.startswith("cuda:"):
        if int(setting[5:]) >= torch.cuda.device_count():
            raise RuntimeError(f"runtime.device is {setting} but this job sees {torch.cuda.device_count()} GPU(s)")
        log(f"device: {setting} (pinned by runtime.device)")
        yield _gpu(int(setting[5:]), False)
        return
    names, simulated = _job_gpus(env, log)
    what = "simulated " if simulated else ""
    if not names:
        if setting == "cuda":
            raise RuntimeError(NO_GPU)
        log("device: cpu (no GPU visible)")
        yield torch.device("cpu")
        return
    if "SLURM_JOB_ID" in env and len(names) == 1:
        log(f"device: {what}cuda:0 (the GPU SLURM granted job {env['SLURM_JOB_ID']}; no lock)")
        yield _gpu(0, simulated)
        return
    slot = acquire_slot(names, lock_dir(env))
    try:
        log(f"device: {what}cuda:{slot.index} (GPU {slot.name} of {len(names)}, job {slot.rank + 1} on it; "
            f"lock {slot.path})")
        yield _gpu(slot.index, simulated)
    finally:
        slot.release()


@contextlib.contextmanager
def job_devices(setting: str, count: int, log: Callable[[str], None], environ: Mapping[str, str] | None = None
                ) -> Iterator[list[torch.device]]:
    """The ``count`` devices of one data-parallel job (the segmenter training, ``runtime.segmenter_gpus``),
    held until the ``with`` block ends; ``count`` 1 is :func:`job_device`.

    On cpu (``runtime.device: cpu``, or no GPU visible under ``auto``) the job runs ``count`` processes on the
    cpu. Otherwise it takes ``count`` GPU slots of this host, one after another (distinct GPUs while rank-0
    slots are free); inside a SLURM job it uses the first ``count`` GPUs SLURM granted, without locks, and
    refuses when it was granted fewer (the profile's ``gpu`` request for the rule must match).
    """
    if count == 1:
        with job_device(setting, log, environ) as device:
            yield [device]
        return
    env = os.environ if environ is None else environ
    _check_setting(setting)
    if setting.startswith("cuda:"):
        raise ValueError(f"runtime.device {setting} pins one GPU, but runtime.segmenter_gpus is {count}: "
                         f"use auto or cuda")
    names, simulated = ([], False) if setting == "cpu" else _job_gpus(env, log)
    if not names:
        if setting == "cuda":
            raise RuntimeError(NO_GPU)
        log(f"device: cpu x {count} processes (runtime.segmenter_gpus {count}; gloo)")
        yield [torch.device("cpu")] * count
        return
    if len(names) < count:
        where = f"SLURM granted job {env['SLURM_JOB_ID']}" if "SLURM_JOB_ID" in env else "this job sees"
        raise RuntimeError(f"runtime.segmenter_gpus is {count} but {where} {len(names)} GPU(s): lower it, or raise "
                           f"the rule's gpu request (SLURM profile: set-resources deeplab_train gpu)")
    what = "simulated " if simulated else ""
    if "SLURM_JOB_ID" in env:
        log(f"device: {what}cuda:0..{count - 1} (the GPUs SLURM granted job {env['SLURM_JOB_ID']}; no lock)")
        yield [torch.device("cpu") if simulated else torch.device("cuda", i) for i in range(count)]
        return
    slots = []
    try:
        for _ in range(count):
            slots.append(acquire_slot(names, lock_dir(env)))
        taken = sorted({slot.index for slot in slots})
        if len(taken) < count:
            log(f"device: warning: only {len(taken)} distinct GPU(s) free for {count} processes; some share a GPU")
        log(f"device: {what}" + ", ".join(f"cuda:{s.index}" for s in slots)
            + f" ({count} GPU slots of {len(names)}; locks in {lock_dir(env)})")
        yield [torch.device("cpu") if simulated else torch.device("cuda", s.index) for s in slots]
    finally:
        for slot in slots:
            slot.release()
