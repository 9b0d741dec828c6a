"""Which GPUs a workstation has, and which one a job takes: counted without torch, shared by host-local locks.

The Snakefile sizes the `gpu` resource with :func:`gpu_resource` at parse time (no torch import: parsing
stays fast), so Snakemake runs at most that many GPU jobs at once; each job then takes a slot with
:func:`acquire_slot` and keeps it for its lifetime. A slot is an ``flock`` on a file in a host-local folder
(``/dev/shm``), so the kernel frees it when the job exits or is killed: no stale lock survives a crash.

GPUs are counted from ``/proc/driver/nvidia/gpus/`` (one folder per GPU the driver sees; listing it costs
microseconds), or from ``nvidia-smi -L`` where that folder is missing (WSL2, some containers; bounded by a
timeout), then restricted by ``CUDA_VISIBLE_DEVICES``. NVIDIA only: ROCm's ``HIP_VISIBLE_DEVICES`` is not read.
"""
from __future__ import annotations

import fcntl
import itertools
import os
import re
import subprocess
import tempfile
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

PROC_GPUS = Path("/proc/driver/nvidia/gpus")
TEST_DEVICES_ENV = "FMWSSS_TEST_DEVICES"  # tests only: simulated GPUs "cuda:0,cuda:1"; their jobs run on cpu
LOCK_DIR_ENV = "FMWSSS_GPU_LOCK_DIR"  # where the slot lock files live (default: /dev/shm, else the temp dir)
SMI_TIMEOUT_S = 10.0


def simulated_devices(environ: Mapping[str, str]) -> list[str] | None:
    """The test-only simulated device list, or ``None`` when it is not set."""
    value = environ.get(TEST_DEVICES_ENV)
    if value is None:
        return None
    return [name.strip() for name in value.split(",") if name.strip()]


def parse_cuda_visible(value: str, physical: int) -> list[str]:
    """The entries of ``CUDA_VISIBLE_DEVICES`` that name a usable device, in order.

    As in the CUDA runtime, the list ends at the first invalid entry: an empty one, a negative or
    out-of-range index (``physical`` GPUs exist); here a repeated entry ends it too. UUIDs
    (``GPU-...``, ``MIG-...``) are taken as given.
    """
    found: list[str] = []
    for entry in (e.strip() for e in value.split(",")):
        if not entry or entry in found:
            break
        if re.fullmatch(r"[+-]?\d+", entry) and not 0 <= int(entry) < physical:
            break
        found.append(entry)
    return found


def count_physical_gpus(proc_dir: Path = PROC_GPUS, smi: str = "nvidia-smi") -> int:
    """GPUs the NVIDIA driver sees: entries of ``proc_dir``, else the ``GPU n:`` lines of ``smi -L``, else 0."""
    if proc_dir.is_dir():
        return sum(1 for _ in proc_dir.iterdir())
    try:
        proc = subprocess.run([smi, "-L"], capture_output=True, text=True, timeout=SMI_TIMEOUT_S)
    except (OSError, subprocess.SubprocessError):
        return 0
    if proc.returncode != 0:
        return 0
    return sum(1 for line in proc.stdout.splitlines() if re.match(r"GPU \d+:", line))


def visible_gpus(environ: Mapping[str, str] | None = None, proc_dir: Path = PROC_GPUS,
                 smi: str = "nvidia-smi") -> list[str]:
    """One name per GPU this process may use, in CUDA's order (``cuda:i`` is the i-th).

    A name identifies the physical device across processes (the ``CUDA_VISIBLE_DEVICES`` entry, else the
    index), so two runs with different ``CUDA_VISIBLE_DEVICES`` never share a lock for different GPUs.
    """
    env = os.environ if environ is None else environ
    simulated = simulated_devices(env)
    if simulated is not None:
        return simulated
    physical = count_physical_gpus(proc_dir, smi)
    if physical == 0:
        return []
    if "CUDA_VISIBLE_DEVICES" in env:
        return parse_cuda_visible(env["CUDA_VISIBLE_DEVICES"], physical)
    return [str(i) for i in range(physical)]


def gpu_resource(environ: Mapping[str, str] | None = None, proc_dir: Path = PROC_GPUS,
                 smi: str = "nvidia-smi") -> int:
    """The Snakemake ``gpu`` resource of this machine: its GPU count, and 1 without a GPU (GPU rules then
    run on the CPU, one at a time)."""
    return max(1, len(visible_gpus(environ, proc_dir, smi)))


def lock_dir(environ: Mapping[str, str] | None = None) -> Path:
    """The folder of the slot locks: host-local and per user; per SLURM allocation inside one.

    Inside a SLURM job the visible ``cuda:0`` of two jobs may be two different GPUs, so their locks must
    not meet: the folder then carries the job id.
    """
    env = os.environ if environ is None else environ
    if LOCK_DIR_ENV in env:
        base = Path(env[LOCK_DIR_ENV])
    elif os.path.isdir("/dev/shm") and os.access("/dev/shm", os.W_OK):
        base = Path("/dev/shm")
    else:
        base = Path(tempfile.gettempdir())
    name = f"fmwsss-gpus-{os.getuid()}"
    if "SLURM_JOB_ID" in env:
        name += f"-slurm-{env['SLURM_JOB_ID']}"
    return base / name


@dataclass
class Slot:
    """A held slot: GPU ``index`` (``cuda:index``) of the visible list, the ``rank``-th job on it."""

    index: int
    name: str
    rank: int
    path: Path
    fd: int

    def release(self) -> None:
        """Free the slot (closing the file drops the lock; the kernel does the same when the process dies)."""
        if self.fd >= 0:
            os.close(self.fd)
            self.fd = -1


def _try_lock(path: Path) -> int | None:
    fd = os.open(path, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o600)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        os.close(fd)
        return None
    os.ftruncate(fd, 0)
    os.write(fd, f"{os.getpid()}\n".encode())
    return fd


def _safe(name: str) -> str:
    return re.sub(r"[^A-Za-z0-9_.-]", "_", name)


def acquire_slot(names: list[str], folder: Path) -> Slot:
    """Take the least shared GPU: the first free rank-0 slot over all GPUs, then rank 1, and so on.

    Never waits: with at most as many jobs as GPUs (the `gpu` resource) each job gets its own GPU; a user
    who allows more (``--resources gpu=K``) gets them spread evenly, ``rank`` jobs per GPU.
    """
    if not names:
        raise ValueError("acquire_slot: no GPU to take a slot on")
    folder.mkdir(mode=0o700, parents=True, exist_ok=True)
    if folder.stat().st_uid != os.getuid():
        raise PermissionError(f"GPU lock folder {folder} belongs to another user; set {LOCK_DIR_ENV}")
    for rank in itertools.count():
        for index, name in enumerate(names):
            path = folder / f"{_safe(name)}.{rank}.lock"
            fd = _try_lock(path)
            if fd is not None:
                return Slot(index, name, rank, path, fd)
    raise AssertionError("unreachable")
