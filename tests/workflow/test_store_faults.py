"""Fault injection on a finished small run (issue 20): one random page of every SQLite file and one random
byte range of every shard, each trial on its own copy of the run, then the README's recovery commands.

Every trial must end in one of two ways: the seeds and every recorded store file byte-identical to the
undisturbed run (or re-recorded by the repair, with ``status --verify`` clean), or an error naming the damaged
file. Never different seeds with exit code 0. The trials are long (a Snakemake call or two each): they run in
``make test-long`` and CI, not in ``make test``.
"""
from __future__ import annotations

import hashlib
import os
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pytest

from tests.processes import run
from tests.workflow.conftest import BIN, ROOT, Workdir

SEED = 20  # the number: a fixed seed, so every run of the suite injects the same faults
PAGE = 4096


@dataclass(frozen=True)
class Fault:
    """One file of the finished run (relative to its workdir) and how it is damaged."""

    path: str
    kind: str  # "page": 4 KB of random bytes over one random page; "range": a random byte range

    def __str__(self) -> str:
        return f"{self.kind}:{self.path}"


def faults(wd: Path) -> list[Fault]:
    """Every SQLite file (the index and each entry's manifest) and every shard of the run, in name order."""
    results = wd / "results" / "mini"
    sqlite = [results / "index.sqlite", *sorted(results.glob("store/*/*/manifest.sqlite"))]
    shards = sorted(results.glob("store/*/*/shard-*.h5"))
    return [Fault(str(p.relative_to(wd)), "page") for p in sqlite] + [
        Fault(str(p.relative_to(wd)), "range") for p in shards]


def corrupt(path: Path, kind: str, rng: np.random.Generator) -> str:
    """Damage ``path`` in place, its size and mtime kept; returns what was done."""
    st, data = path.stat(), bytearray(path.read_bytes())
    if kind == "page":
        page = int(rng.integers(0, max(1, len(data) // PAGE)))
        start, stop = page * PAGE, min(len(data), (page + 1) * PAGE)
    else:
        length = int(rng.integers(16, min(4096, len(data)) + 1))
        start = int(rng.integers(0, len(data) - length + 1))
        stop = start + length
    data[start:stop] = rng.integers(0, 256, stop - start, dtype=np.uint8).tobytes()
    path.write_bytes(bytes(data))
    os.utime(path, ns=(st.st_atime_ns, st.st_mtime_ns))
    return f"bytes {start}..{stop} of {path.stat().st_size}"


def seeds(wd: Path) -> dict[str, bytes]:
    folder = wd / "results" / "mini" / "seeds"
    return {p.name: p.read_bytes() for p in sorted(folder.glob("*.png"))}


def store_digests(wd: Path) -> dict[str, str]:
    store = wd / "results" / "mini" / "store"
    return {str(p.relative_to(store)): hashlib.sha256(p.read_bytes()).hexdigest()
            for p in sorted(store.rglob("*")) if p.is_file() and not p.is_symlink() and not p.name.startswith(".")}


def recover(wd: Workdir) -> list[tuple[str, int, str]]:
    """The README's recovery commands ('Repairing the store'), stopping at the first that fails:
    (command, exit code, output) of each."""
    commands = [
        [str(BIN / "fmwsss"), "status", "mini", "--verify"],
        [str(BIN / "fmwsss"), "repair", "mini", "--verify", "--snakefile", str(ROOT / "Snakefile"), "--cores", "2"],
        [str(BIN / "snakemake"), "-s", str(ROOT / "Snakefile"), "--cores", "2", "results/mini/seeds"],
        [str(BIN / "fmwsss"), "status", "mini", "--verify"],
    ]
    done = []
    for i, cmd in enumerate(commands):
        proc = run(cmd, 900, cwd=wd.path)
        done.append((" ".join(Path(c).name if j == 0 else c for j, c in enumerate(cmd)), proc.returncode,
                     proc.stdout + proc.stderr))
        if proc.returncode != 0 and i > 0:  # the first status is expected to say "damaged" (exit 1)
            break
    return done


def judge(fault: Fault, before_seeds: dict[str, bytes], after: Workdir, log: list) -> str:
    """'identical' or 'named', else an AssertionError saying what went wrong."""
    failed = [(cmd, rc, out) for cmd, rc, out in log[1:] if rc != 0]
    if failed:
        cmd, rc, out = failed[0]
        assert fault.path in out or Path(fault.path).parent.as_posix() in out, (
            f"{fault}: `{cmd}` exited {rc} without naming the damaged file:\n{out[-3000:]}")
        return "named"
    assert seeds(after.path) == before_seeds, f"{fault}: different seeds with exit code 0:\n{log}"
    return "identical"


@pytest.fixture(scope="module")
def planned(mini_attempt) -> tuple[Workdir, list[Fault], dict[str, bytes]]:
    wd = mini_attempt.get()
    return wd, faults(wd.path), seeds(wd.path)


def test_the_run_has_at_least_twenty_files_to_damage(mini_run):
    found = faults(mini_run.path)
    # 1 index + 10 manifests (5 sharded stages, 2 layouts); 5 x (2 + 1) shards
    assert len(found) >= 20 and sum(f.kind == "page" for f in found) == 11, found


@pytest.mark.long
@pytest.mark.parametrize("trial", range(26))
def test_every_fault_ends_identical_or_named(planned, trial, tmp_path):
    wd, found, before = planned
    if trial >= len(found):
        pytest.skip(f"the run has {len(found)} files to damage")
    fault = found[trial]
    copy = wd.copy(tmp_path / "wd")
    rng = np.random.default_rng([SEED, trial])
    what = corrupt(copy.path / fault.path, fault.kind, rng)
    log = recover(copy)
    outcome = judge(fault, before, copy, log)
    print(f"{fault} ({what}): {outcome}")
    if outcome == "identical":
        assert log[-1][1] == 0, f"{fault}: status --verify after the recovery:\n{log[-1][2]}"
