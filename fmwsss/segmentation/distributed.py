"""Data-parallel stage II training on N local processes: launch, collectives, per-chunk seeding.

The global batch (``segmenter.batch_size``) stays fixed: rank r loads the contiguous slots
``[r*B/N, (r+1)*B/N)`` of every global batch, each chunk's loss is already its share of the GLOBAL batch
loss (normalisers all-reduced before the forward passes), so the gradients are all-reduced by SUM, never
averaged, and N changes only the order of float additions. Model randomness (dropout, Mask2Former's point
sampling) is seeded per chunk from ``(seed, iteration, first slot)``: a chunk draws the same numbers
whichever rank computes it, and a checkpoint needs no RNG state, so a run resumes exactly at any N.

Workers are ``spawn``ed (fork is unsafe once torch has started threads or CUDA), meet through a
``FileStore`` file in the work folder (no port to pick), send log and stderr lines to the parent (the
caller's ``log`` need not be picklable; a job's stderr is a Python-level redirect the children do not
inherit), and exit when the parent dies. A worker's exception ends the run with its traceback, naming the
rank; the other workers are terminated.

Test hook: ``FMWSSS_TEST_RANK_TRACE=<folder>`` makes each rank append the ``(iteration, slot)`` keys its
loader asks for (``loads-rank<r>.jsonl``) and the sha256 of its model state after every step
(``digests-rank<r>.jsonl``); unset, it costs one environment lookup per run.
"""
from __future__ import annotations

import contextlib
import hashlib
import json
import os
import queue as queue_module
import sys
import threading
import time
import traceback
from pathlib import Path
from typing import Any, Callable, Iterator, Sequence

import numpy as np
import torch
import torch.distributed as dist
from torch import nn
from torch.utils.data import Dataset

TRACE_ENV = "FMWSSS_TEST_RANK_TRACE"
BUCKET_BYTES = 64 << 20
"""Gradients are all-reduced in flat buckets of about this size: one collective per bucket, not per tensor."""
ERROR_GRACE_S = 2.0
"""After the first worker error, how long the parent waits for the others' (the root cause may come second:
a peer's broken collective can be reported before the exception that broke it)."""


def rank_slots(rank: int, world: int, batch_size: int) -> range:
    """The slots of each global batch that ``rank`` of ``world`` loads (a contiguous share)."""
    share = batch_size // world
    return range(rank * share, (rank + 1) * share)


def check_world(processes: int, batch_size: int, devices: Sequence[torch.device]) -> None:
    """Raise ``ValueError`` unless ``processes`` >= 1 divides the global batch and matches ``devices``."""
    if processes < 1 or batch_size % processes:
        raise ValueError(f"processes {processes} must be >= 1 and divide segmenter.batch_size {batch_size} "
                         f"(the global batch is fixed; each process takes an equal share)")
    if len(devices) != processes:
        raise ValueError(f"{processes} processes need {processes} devices, got {len(devices)}: "
                         f"{', '.join(map(str, devices))}")


def seed_chunk(seed: int, iteration: int, slot: int) -> None:
    """Seed torch's RNGs (CPU and CUDA) for the chunk of ``iteration`` starting at global ``slot``."""
    torch.manual_seed(int(np.random.SeedSequence([seed, iteration, slot]).generate_state(1)[0]))


def world() -> tuple[int, int]:
    """(rank, world size) of this process: (0, 1) outside a process group."""
    if dist.is_available() and dist.is_initialized():
        return dist.get_rank(), dist.get_world_size()
    return 0, 1


def all_reduce_values(values: dict[str, float], device: torch.device) -> dict[str, float]:
    """The sums over all processes of a few numbers (loss normalisers, the loss), in one collective."""
    if world()[1] == 1:
        return dict(values)
    keys = sorted(values)
    flat = torch.tensor([float(values[k]) for k in keys], dtype=torch.float64, device=device)
    dist.all_reduce(flat)
    return dict(zip(keys, flat.tolist()))


def all_reduce_grads(model: nn.Module) -> None:
    """Sum every gradient over all processes (flat buckets of ``BUCKET_BYTES`` per dtype)."""
    grads = [p.grad for p in model.parameters() if p.grad is not None]
    for dtype in sorted({g.dtype for g in grads}, key=str):
        bucket: list[torch.Tensor] = []
        size = 0
        for g in (g for g in grads if g.dtype == dtype):
            bucket.append(g)
            size += g.numel() * g.element_size()
            if size >= BUCKET_BYTES:
                _reduce_bucket(bucket)
                bucket, size = [], 0
        if bucket:
            _reduce_bucket(bucket)


def _reduce_bucket(bucket: list[torch.Tensor]) -> None:
    flat = torch.cat([g.reshape(-1) for g in bucket])
    dist.all_reduce(flat)
    offset = 0
    for g in bucket:
        g.copy_(flat[offset:offset + g.numel()].view_as(g))
        offset += g.numel()


def average_batchnorm_stats(model: nn.Module) -> None:
    """Average BatchNorm running statistics over the processes (plain BatchNorm: each rank's own images).

    Keeps every rank's model identical; the statistics are then close to, not equal with, a one-process
    run's (which updates them chunk after chunk), and ``num_batches_tracked`` counts one rank's chunks.
    SyncBatchNorm's are identical already: it is skipped.
    """
    n = world()[1]
    for module in model.modules():
        if isinstance(module, nn.modules.batchnorm._BatchNorm) and not isinstance(module, nn.SyncBatchNorm):
            for buf in (module.running_mean, module.running_var):
                if buf is not None:
                    dist.all_reduce(buf)
                    buf.div_(n)


def sync_batchnorm(model: nn.Module, device: torch.device) -> nn.Module:
    """BatchNorm over all processes' images where torch supports it (CUDA, NCCL); on CPU (gloo) torch's
    SyncBatchNorm refuses the input, so each rank normalises its own images (see ``average_batchnorm_stats``)."""
    if world()[1] > 1 and device.type == "cuda":
        return nn.SyncBatchNorm.convert_sync_batchnorm(model)
    return model


# --- test hook ------------------------------------------------------------------------------------------

class _TracedDataset(Dataset):
    """Appends each key the loader asks for to ``loads-rank<r>.jsonl`` (from any loader process)."""

    def __init__(self, dataset: Dataset, path: Path) -> None:
        self.dataset, self.path = dataset, path

    def __len__(self) -> int:
        return len(self.dataset)

    def __getitem__(self, key: Any) -> Any:
        with open(self.path, "a") as fh:
            fh.write(json.dumps(list(key)) + "\n")
        return self.dataset[key]


def traced_dataset(dataset: Dataset, rank: int) -> Dataset:
    """``dataset``, recording its loads when ``FMWSSS_TEST_RANK_TRACE`` is set."""
    folder = os.environ.get(TRACE_ENV)
    return _TracedDataset(dataset, Path(folder) / f"loads-rank{rank}.jsonl") if folder else dataset


def trace_step(model: nn.Module, rank: int, iteration: int) -> None:
    """Append the sha256 of the model state after ``iteration`` when ``FMWSSS_TEST_RANK_TRACE`` is set."""
    folder = os.environ.get(TRACE_ENV)
    if not folder:
        return
    digest = hashlib.sha256()
    for name, value in sorted(model.state_dict().items()):
        digest.update(name.encode())
        digest.update(value.detach().cpu().contiguous().numpy().tobytes())
    with open(Path(folder) / f"digests-rank{rank}.jsonl", "a") as fh:
        fh.write(json.dumps([iteration, digest.hexdigest()]) + "\n")


# --- launching ------------------------------------------------------------------------------------------

class _QueueWriter:
    """A worker's ``sys.stderr``: text goes to the parent, which writes it to its own ``sys.stderr``."""

    def __init__(self, channel: Any, rank: int) -> None:
        self.channel, self.rank = channel, rank

    def write(self, text: str) -> int:
        self.channel.put(("stderr", self.rank, text))
        return len(text)

    def flush(self) -> None:
        pass

    def isatty(self) -> bool:
        return False


def _exit_with_parent(parent_pid: int) -> None:
    """End this worker once its parent is gone (a SIGKILLed job leaves no stray worker)."""
    def watch() -> None:
        while os.getppid() == parent_pid:
            time.sleep(1.0)
        os._exit(1)

    threading.Thread(target=watch, daemon=True).start()


def _in_collective(exc: BaseException) -> bool:
    """Raised inside a torch.distributed call: usually a peer's failure (gloo: "Connection closed by peer")."""
    return isinstance(exc, dist.DistError) or any(
        f"torch{os.sep}distributed{os.sep}" in frame.filename for frame in traceback.extract_tb(exc.__traceback__))


def _worker(rank: int, size: int, device: torch.device, rendezvous: Path, channel: Any, parent_pid: int,
            threads: int, target: Callable, args: tuple) -> None:
    _exit_with_parent(parent_pid)
    sys.stderr = _QueueWriter(channel, rank)
    torch.set_num_threads(threads)
    try:
        if device.type == "cuda":
            torch.cuda.set_device(device)
        dist.init_process_group("nccl" if device.type == "cuda" else "gloo", init_method=f"file://{rendezvous}",
                                rank=rank, world_size=size, device_id=device if device.type == "cuda" else None)
        target(device, lambda message: channel.put(("message", rank, message)), *args)
        dist.destroy_process_group()
    except BaseException as exc:  # noqa: B036 - the parent must hear of any end, KeyboardInterrupt included
        secondary = _in_collective(exc)
        channel.put(("error", rank, (secondary, f"{type(exc).__name__}: {exc}", traceback.format_exc())))
        channel.close()
        channel.join_thread()
        sys.exit(1)


@contextlib.contextmanager
def _main_module_hidden() -> Iterator[None]:
    """Start workers without the parent's ``__main__``: spawn re-imports it in every child unless it has no
    file and no spec, and a Snakemake script job's main module IS the job (re-running it in a worker would
    start the job again). The workers need nothing from it: target and arguments live in fmwsss modules."""
    main = sys.modules["__main__"]
    saved = {k: main.__dict__[k] for k in ("__file__", "__spec__") if k in main.__dict__}
    main.__dict__.pop("__file__", None)
    main.__spec__ = None
    try:
        yield
    finally:
        main.__dict__.pop("__spec__", None)
        main.__dict__.update(saved)


def launch(target: Callable, args: tuple, devices: Sequence[torch.device], rendezvous: Path,
           on_message: Callable[[Any], None]) -> None:
    """Run ``target(device, send, *args)`` on ``len(devices)`` spawned workers in one process group.

    ``target`` and ``args`` must be picklable; ``rendezvous`` is a file path that must not be in use (it
    is removed before and after). Each worker gets this process's torch threads divided by the worker count.
    What a worker passes to ``send`` (picklable) reaches ``on_message`` in the
    parent. Raises ``RuntimeError`` naming
    the failed rank, its error and traceback (and the other ranks' errors) once any worker fails; no
    worker outlives this call.
    """
    ctx = torch.multiprocessing.get_context("spawn")
    channel = ctx.Queue()
    rendezvous = Path(rendezvous).absolute()  # a relative path in a file:// URL would read as a host name
    rendezvous.unlink(missing_ok=True)
    threads = max(1, torch.get_num_threads() // len(devices))  # the job's cores, shared out
    procs = [ctx.Process(target=_worker, args=(rank, len(devices), torch.device(device), rendezvous, channel,
                                               os.getpid(), threads, target, args), name=f"fmwsss-rank{rank}")
             for rank, device in enumerate(devices)]
    try:
        with _main_module_hidden():
            for proc in procs:
                proc.start()
        failure = _supervise(procs, channel, on_message)
    finally:
        for proc in procs:
            if proc.is_alive():
                proc.terminate()
        for proc in (p for p in procs if p.pid is not None):
            proc.join(5.0)
            if proc.is_alive():
                proc.kill()
                proc.join()
        channel.close()
        rendezvous.unlink(missing_ok=True)
    if failure:
        raise RuntimeError(failure)


def _supervise(procs: list, channel: Any, on_message: Callable[[Any], None]) -> str | None:
    """Relay messages until every worker ended well (None) or one failed (the error text)."""
    errors: dict[int, tuple[bool, str, str]] = {}
    deadline = None
    while True:
        try:
            kind, rank, payload = channel.get(timeout=0.2)
        except queue_module.Empty:
            kind = None
        if kind == "message":
            on_message(payload)
        elif kind == "stderr":
            sys.stderr.write(payload)
            sys.stderr.flush()
        elif kind == "error":
            errors[rank] = payload
            deadline = deadline or time.monotonic() + ERROR_GRACE_S
        if kind is not None:
            continue
        codes = [proc.exitcode for proc in procs]
        if errors and (time.monotonic() > deadline or all(c is not None for c in codes)):
            return _failure_text(errors)
        dead = [(rank, code) for rank, code in enumerate(codes) if code not in (None, 0)]
        if dead and not errors:
            deadline = deadline or time.monotonic() + ERROR_GRACE_S  # its error may still be in the pipe
            if time.monotonic() > deadline:
                rank, code = dead[0]
                how = f"signal {-code}" if code < 0 else f"exit code {code}"
                return f"data-parallel training: rank {rank} died ({how}) without an error message"
        if all(code == 0 for code in codes):
            return None


def _failure_text(errors: dict[int, tuple[bool, str, str]]) -> str:
    """Root causes first: errors that are not broken collectives (a peer's failure) lead."""
    order = sorted(errors, key=lambda r: (errors[r][0], r))
    first = order[0]
    lines = [f"data-parallel training: rank {first} failed: {errors[first][1]}", errors[first][2].rstrip()]
    lines += [f"rank {r} also failed: {errors[r][1]}" for r in order[1:]]
    return "\n".join(lines)
