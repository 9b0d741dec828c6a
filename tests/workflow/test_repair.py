"""A damaged store entry is found and repaired, on a copy of the session's finished demo run (issue 15).

The faults of the issue: a SAM shard truncated with its mtime kept (before: "Nothing to be done", then
"not a readable HDF5 SAM shard" downstream) and a shard deleted (before: "SAM shard not found" downstream).
"""
from __future__ import annotations

import hashlib
import os
import subprocess
from pathlib import Path

import pytest

from fmwsss.io.timing import read_records
from tests.workflow.conftest import BIN, ROOT, Workdir
from tests.processes import run


def _fmwsss(wd: Workdir, *args: str) -> subprocess.CompletedProcess:
    return run([str(BIN / "fmwsss"), *args], 600, cwd=wd.path)


def _digests(folder: Path) -> dict[str, str]:
    """sha256 of every regular file under ``folder`` but the jobs' timing records (a rerun job rewrites its own)."""
    return {
        str(p.relative_to(folder)): hashlib.sha256(p.read_bytes()).hexdigest()
        for p in sorted(folder.rglob("*")) if p.is_file() and not p.is_symlink()
        and "timing" not in p.relative_to(folder).parts[:-1]
    }


def _mtimes(folder: Path) -> dict[str, int]:
    return {str(p.relative_to(folder)): p.stat().st_mtime_ns for p in folder.rglob("*") if p.is_file()}


def _image_count(shard: Path) -> int:
    import h5py

    with h5py.File(shard, "r") as fh:
        return len(fh)


def _truncate_keeping_mtime(path: Path) -> tuple[int, int]:
    st, data = path.stat(), path.read_bytes()
    path.write_bytes(data[: len(data) // 2])
    os.utime(path, ns=(st.st_atime_ns, st.st_mtime_ns))
    return len(data) // 2, len(data)


@pytest.mark.slow
def test_damaged_shards_are_reported_and_repair_recomputes_only_them(demo_run, tmp_path):
    wd = demo_run.copy(tmp_path / "wd")
    demo = wd.path / "results/demo"
    store_before, logs_before = _digests(demo / "store"), _mtimes(demo / "logs")
    sam, seeds = (demo / "sam_masks").resolve(), (demo / "seeds").resolve()
    truncated, deleted = sam / "shard-000.h5", seeds / "shard-000.h5"
    rel = {p: os.path.relpath(p, wd.path) for p in (truncated, deleted)}
    images = {p: _image_count(p) for p in (truncated, deleted)}
    size, recorded = _truncate_keeping_mtime(truncated)
    deleted.unlink()

    status = _fmwsss(wd, "status", "demo")
    assert status.returncode == 1, status.stdout + status.stderr
    assert f"{rel[truncated]}: {size} bytes, spec.json records {recorded}" in status.stdout
    assert f"{rel[deleted]}: missing" in status.stdout and "repair: fmwsss repair demo" in status.stdout

    dry = wd.snakemake("-n", "--cores", "1", "results/demo/seeds", check=False)
    out = dry.stdout + dry.stderr
    assert dry.returncode != 0 and f"{rel[truncated]}: {size} bytes" in out and "`fmwsss repair demo`" in out

    repair = _fmwsss(wd, "repair", "demo", "--snakefile", str(ROOT / "Snakefile"), "--cores", "2")
    assert repair.returncode == 0, repair.stdout + repair.stderr
    (clean,) = [line for line in repair.stdout.splitlines() if "schedules nothing" in line]
    assert "results/demo/seeds " in clean and "results/demo/deeplab" in clean  # the original targets' dry run

    assert _digests(demo / "store") == store_before  # byte-identical, repaired shards and final outputs alike
    logs_after = _mtimes(demo / "logs")
    rerun = {name for name, mtime in logs_after.items() if logs_before.get(name) != mtime}
    sam_log = f"sam_masks/{sam.name}/shard-000.log"
    seeds_log = f"seeds_fine/{seeds.name}/shard-000.log"
    assert rerun == {sam_log, seeds_log}  # exactly the damaged shards' jobs ran
    for log, stage, shard in ((sam_log, "sam_masks", truncated), (seeds_log, "seeds_fine", deleted)):
        computed = [ln for ln in (demo / "logs" / log).read_text().splitlines() if f"{stage}: image " in ln]
        n = images[shard]
        assert len(computed) == n and f"image {n}/{n}" in computed[-1], computed  # the whole shard recomputed
        (record,) = read_records(shard.parent)
        assert (record.job, record.items) == ("shard-000", n)  # the repair job's own timing record
    assert _fmwsss(wd, "status", "demo", "--verify").returncode == 0
    assert not list((demo / "store").glob("*/.*.partial"))  # empty .partial folders are removed
