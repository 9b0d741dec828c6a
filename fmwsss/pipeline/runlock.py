"""Refusing to change the store under a live Snakemake run, and holding Snakemake's lock while we do.

Snakemake (9.x, ``snakemake/persistence``) locks a working folder with files ``.snakemake/locks/<n>.input.lock``
and ``<n>.output.lock``, one path per line as the rules declare them (relative to the folder). A new run is
refused (``LockException``) when one of its DAG's outputs is in an input lock, or one of its inputs or outputs
in an output lock; a run that ends normally removes the whole ``locks`` folder; ``--nolock`` neither checks,
writes nor removes locks. Snakemake's hint for a refused run, ``--unlock``, deletes the locks of a live run
too, so it is only named here when no run is alive on this host.

What this host can see: processes through ``/proc`` (Linux). A run on another machine of a cluster that shares
the folder is only visible by its lock files, which is why lock files without a live process here still
refuse: only the user knows whether such a run is going on.
"""
from __future__ import annotations

import contextlib
import os
from itertools import count
from pathlib import Path
from typing import Iterator, Sequence

LOCKS = Path(".snakemake") / "locks"


class RunInProgress(RuntimeError):
    """A Snakemake run (live, or one whose lock files remain) holds the working folder."""


def _is_snakemake(argv: Sequence[str]) -> bool:
    """A ``snakemake`` executable (or a script of that name run by its interpreter) or ``-m snakemake``."""
    if any(os.path.basename(arg) == "snakemake" for arg in argv[:2]):
        return True
    return any(a == "-m" and b == "snakemake" for a, b in zip(argv, argv[1:]))


def live_runs(workdir: str | os.PathLike) -> list[tuple[int, str]]:
    """(pid, command line) of the snakemake processes on this host whose working folder is ``workdir``,
    by pid (this process and processes we may not read are skipped). Costs two small reads per process in
    ``/proc``; without ``/proc`` (not Linux) nothing is found."""
    here = os.path.realpath(workdir)
    found = []
    for proc in Path("/proc").glob("[0-9]*"):
        pid = int(proc.name)
        if pid == os.getpid():
            continue
        try:
            if os.readlink(proc / "cwd") != here:
                continue
            argv = (proc / "cmdline").read_bytes().decode(errors="replace").split("\0")
        except OSError:  # gone meanwhile, or another user's process
            continue
        argv = [arg for arg in argv if arg]
        if argv and _is_snakemake(argv):
            found.append((pid, " ".join(argv)))
    return sorted(found)


def lock_files(workdir: str | os.PathLike) -> list[Path]:
    """The Snakemake lock files of ``workdir`` (ours included while we hold one)."""
    return sorted(Path(workdir, LOCKS).glob("*.lock"))


def refuse_if_running(workdir: str | os.PathLike, what: str, rerun: str) -> None:
    """Raise :class:`RunInProgress` when a snakemake process runs in ``workdir`` on this host (with or
    without lock files: a ``--nolock`` run writes none) or lock files are left there. ``what`` says what we
    would do to the run ("repair would change files it reads"), ``rerun`` the command to run afterwards."""
    workdir = os.path.abspath(workdir)
    runs = live_runs(workdir)
    if runs:
        named = "; ".join(f"pid {pid}: {cmd[:200]}" for pid, cmd in runs)
        raise RunInProgress(f"a Snakemake run is in progress in {workdir} ({named}): {what}; wait for it to end "
                            f"and run `{rerun}` again")
    locks = lock_files(workdir)
    if locks:
        raise RunInProgress(
            f"{Path(workdir, LOCKS)} holds lock files ({', '.join(p.name for p in locks)}) of a Snakemake run "
            f"that is no longer alive on this host: if no run of this workflow is going on on another machine "
            f"(a cluster sharing this folder), `snakemake --unlock` in {workdir} removes them; then run "
            f"`{rerun}` again"
        )


def _write_lock(workdir: str | os.PathLike, paths: Sequence[str]) -> Path:
    """Create the first free ``<n>.output.lock`` exclusively (O_EXCL: never over another's) with ``paths``."""
    folder = Path(workdir, LOCKS)
    folder.mkdir(parents=True, exist_ok=True)
    for n in count():
        lock = folder / f"{n}.output.lock"
        try:
            fd = os.open(lock, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o644)
        except FileExistsError:
            continue
        break
    with os.fdopen(fd, "w") as fh:
        fh.write("".join(f"{path}\n" for path in paths))
    return lock


def _release(lock: Path) -> None:
    """Remove our lock file (a Snakemake run that ended meanwhile may have removed the folder) and the
    locks folder if nothing else is left in it."""
    lock.unlink(missing_ok=True)
    with contextlib.suppress(OSError):
        lock.parent.rmdir()


@contextlib.contextmanager
def hold_lock(workdir: str | os.PathLike, paths: Sequence[str], what: str, rerun: str) -> Iterator[Path]:
    """Hold an output lock on ``paths`` (relative to ``workdir``, as the rules declare them) for the block:
    Snakemake then refuses a new run that reads or writes one of them, and the block's own Snakemake calls
    run with ``--nolock`` (our lock stands for them). Refuses first as :func:`refuse_if_running` does, and
    again, releasing ours, if another lock file appeared while we wrote ours (a run that checked at the same
    moment). Only our file is removed afterwards; a lock file someone else wrote meanwhile stays."""
    refuse_if_running(workdir, what, rerun)
    lock = _write_lock(workdir, paths)
    try:
        others = [p for p in lock_files(workdir) if p != lock]
        if others:
            raise RunInProgress(f"{Path(workdir, LOCKS)}: a Snakemake run took a lock "
                                f"({', '.join(p.name for p in others)}) as we did: {what}; wait for it to end and "
                                f"run `{rerun}` again")
        yield lock
    finally:
        _release(lock)
