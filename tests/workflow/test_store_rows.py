"""The store faults of issue 20, each on a copy of the small finished run (tests/workflow/conftest.py
``run_mini``: 2 images, an old layout of one image a shard whose entries the current layout links into).

Each test ends in the seeds byte-identical to the undisturbed run, or in an error naming the file and the
command that mends it. The UTF-8 byte-order mark of a tag file is tests/data/test_custom.py's; the index's
unit-level faults are tests/data/test_index.py's; gc's and the lock's are tests/pipeline/.
"""
from __future__ import annotations

import json
import os
import signal
import sqlite3
import subprocess
from pathlib import Path

import numpy as np
import pytest

from tests.processes import run, wait_for_text
from tests.workflow.conftest import BIN, ROOT, Workdir, mini_config
from tests.workflow.test_store_faults import PAGE, seeds

pytestmark = pytest.mark.slow


def _fmwsss(wd: Workdir, *args: str) -> subprocess.CompletedProcess:
    return run([str(BIN / "fmwsss"), *args], 600, cwd=wd.path)


def _repair(wd: Workdir, *args: str) -> subprocess.CompletedProcess:
    return _fmwsss(wd, "repair", "mini", "--snakefile", str(ROOT / "Snakefile"), "--cores", "2", *args)


def _store(wd: Workdir, stage: str) -> Path:
    return wd.path / "results" / "mini" / "store" / stage


def _current(wd: Workdir, stage_alias: str) -> Path:
    return (wd.path / "results" / "mini" / stage_alias).resolve()


def _holder(wd: Workdir, stage: str, alias: str) -> Path:
    """The old-layout entry the current entry of ``stage`` (stable name ``alias``) links every image into."""
    (ref,) = json.loads((_current(wd, alias) / "spec.json").read_text())["refs"]
    return _store(wd, stage) / ref


def _rel(wd: Workdir, path: Path) -> str:
    return os.path.relpath(path, wd.path)


@pytest.fixture
def mini(mini_run, tmp_path) -> tuple[Workdir, dict[str, bytes]]:
    return mini_run.copy(tmp_path / "wd"), seeds(mini_run.path)


def test_a_deleted_holder_is_damage_that_repair_recomputes_image_by_image(mini):
    wd, before = mini
    holder = _holder(wd, "sam_masks", "sam_masks")
    current = _current(wd, "sam_masks")
    import shutil

    shutil.rmtree(holder)
    status = _fmwsss(wd, "status", "mini")
    assert status.returncode == 1 and "sam_masks" in status.stdout
    assert f"{_rel(wd, holder)}/shard-000.h5: gone (its entry is gone); 1 image(s) of {_rel(wd, current)}" in status.stdout
    dry = wd.snakemake("-n", "--cores", "1", "results/mini/seeds", check=False)
    assert dry.returncode != 0 and _rel(wd, holder) in dry.stdout and "`fmwsss repair mini`" in dry.stdout

    repair = _repair(wd)
    assert repair.returncode == 0, repair.stdout + repair.stderr
    log = (wd.path / "results/mini/logs/sam_masks" / current.name / "shard-000.log").read_text()
    assert "2 images: reused 0, computed 2" in log  # both linked into the gone holder: both recomputed
    assert seeds(wd.path) == before
    assert _fmwsss(wd, "status", "mini", "--verify").returncode == 0
    assert json.loads((current / "spec.json").read_text())["refs"] == []


def _swap(manifest: Path) -> None:
    con = sqlite3.connect(manifest)
    with con:
        (a, b) = [r[0] for r in con.execute("SELECT image_id FROM results ORDER BY image_id")]
        con.execute("UPDATE results SET grp = CASE image_id WHEN ? THEN ? ELSE ? END", (a, b, a))
        con.execute("UPDATE results SET shard = (SELECT shard FROM results r WHERE r.image_id != results.image_id)")
    con.close()


def test_a_swapped_manifest_row_never_links_another_images_masks(mini):
    wd, before = mini
    sam = _store(wd, "sam_masks")
    for manifest in sam.glob("*/manifest.sqlite"):  # every finished SAM entry: valid SQLite, other rows
        _swap(manifest)
    mini_config(wd, 3)  # a new layout: its SAM entry looks its images up in those manifests
    wd.snakemake("--cores", "2", "results/mini/seeds", "--until", "sam_masks_finalize")
    (new,) = [e for e in sam.iterdir() if e.name not in ("sets",) and e not in (_holder(wd, "sam_masks", "sam_masks"),
                                                                             _current(wd, "sam_masks"))]
    log = (wd.path / "results/mini/logs/sam_masks" / new.name / "shard-000.log").read_text()
    assert log.count("manifest.sqlite: sha256") == 2 and "2 images: reused 0, computed 2" in log
    from fmwsss.sam.shards import SamShardReader

    with SamShardReader(new / "shard-000.h5") as got, SamShardReader(_current(wd, "sam_masks") / "shard-000.h5") as old:
        for image_id in old.ids():
            assert (got.read(image_id).masks == old.read(image_id).masks).all(), image_id
    mini_config(wd, 2)
    assert seeds(wd.path) == before
    status = _fmwsss(wd, "status", "mini")
    assert status.returncode == 1 and f"{_rel(wd, _holder(wd, 'sam_masks', 'sam_masks'))}/manifest.sqlite: sha256" in status.stdout
    assert _repair(wd).returncode == 0 and _fmwsss(wd, "status", "mini", "--verify").returncode == 0


def test_random_bytes_over_a_referenced_manifest_are_found_and_rebuilt(mini):
    wd, before = mini
    manifest = _holder(wd, "cams_fine_dump", "cams_fine") / "manifest.sqlite"
    st, data = manifest.stat(), bytearray(manifest.read_bytes())
    data[PAGE:2 * PAGE] = np.random.default_rng(3).integers(0, 256, PAGE, dtype=np.uint8).tobytes()
    manifest.write_bytes(bytes(data))
    os.utime(manifest, ns=(st.st_atime_ns, st.st_mtime_ns))
    status = _fmwsss(wd, "status", "mini")
    assert status.returncode == 1 and f"{_rel(wd, manifest)}: sha256" in status.stdout
    repair = _repair(wd)
    assert repair.returncode == 0 and "manifest rebuilt from the entry's shards" in repair.stdout, repair.stdout
    assert _fmwsss(wd, "status", "mini", "--verify").returncode == 0
    assert seeds(wd.path) == before


def test_a_damaged_index_is_rebuilt_by_the_next_run(mini):
    wd, before = mini
    index = wd.path / "results" / "mini" / "index.sqlite"
    con = sqlite3.connect(index)
    (page_size,), (root,) = con.execute("PRAGMA page_size").fetchone(), con.execute(
        "SELECT rootpage FROM sqlite_master WHERE name = 'images'").fetchone()
    con.close()
    data = bytearray(index.read_bytes())  # the page of the image rows, which only jobs read
    at = (root - 1) * page_size
    data[at:at + page_size] = np.random.default_rng(4).integers(0, 256, page_size, dtype=np.uint8).tobytes()
    index.write_bytes(bytes(data))
    proc = wd.snakemake("--cores", "2", "results/mini/seeds")
    assert f"{_rel(wd, index)} is unreadable, corrupt" in proc.stderr and "rebuilding it" in proc.stderr
    assert "Nothing to be done" in proc.stdout + proc.stderr
    assert seeds(wd.path) == before and _fmwsss(wd, "status", "mini", "--verify").returncode == 0


def test_gc_after_a_config_change_keeps_what_stable_names_point_at(mini):
    wd, before = mini
    text = wd.config_text()
    wd.write_config(text.replace("      prompts_seg: {iterations: 3,", "      prompts_seg: {iterations: 2,"))
    gc = _fmwsss(wd, "gc", "--yes")
    assert gc.returncode == 0, gc.stdout + gc.stderr
    wd.write_config(text)  # the revert
    dry = wd.snakemake("-n", "--cores", "1", "results/mini/seeds")
    assert "Nothing to be done" in dry.stdout + dry.stderr
    assert seeds(wd.path) == before


def _stalled(wd: Workdir, stall: str, *args: str) -> subprocess.Popen:
    return subprocess.Popen(
        [str(BIN / "snakemake"), "-s", str(ROOT / "Snakefile"), "--cores", "1", *args], cwd=wd.path,
        env={**os.environ, "FMWSSS_TEST_STALL": stall}, start_new_session=True,
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
    )


def test_repair_under_a_live_run_refuses_naming_it_and_deletes_nothing(mini):
    wd, before = mini
    entry = _current(wd, "seeds")
    proc = _stalled(wd, "seeds_fine_finalize:1", "--force", _rel(wd, entry / "spec.json"))
    shard = _current(wd, "cams_fine") / "shard-000.h5"
    try:
        wait_for_text(wd.path / "results/mini/logs/seeds_fine" / entry.name / "finalize.log", "stalled after 1", proc)
        shard.write_bytes(shard.read_bytes()[:-100])  # damage the run does not read
        repair = _repair(wd)
        out = repair.stdout + repair.stderr
        assert repair.returncode == 1 and f"pid {proc.pid}" in out and "--unlock" not in out, out
        assert shard.is_file()  # nothing deleted
    finally:
        os.killpg(proc.pid, signal.SIGKILL)
        proc.wait()
    wd.snakemake("--unlock", "--cores", "1")  # README 'Recovering after a crash', then 'Repairing the store'
    repair = _repair(wd)
    assert repair.returncode == 0, repair.stdout + repair.stderr
    wd.snakemake("--cores", "2", "--rerun-incomplete", "results/mini/seeds")
    assert seeds(wd.path) == before and _fmwsss(wd, "status", "mini", "--verify").returncode == 0


@pytest.mark.parametrize("point", [1, 2, 3])
def test_a_finalize_killed_anywhere_resumes_to_the_same_layout(mini, point):
    wd, before = mini
    entry = _current(wd, "seeds")
    spec = entry / "spec.json"
    layout = {p.name: p.read_bytes() for p in entry.iterdir() if p.is_file() and not p.is_symlink()}
    set_link = _store(wd, "seeds_fine") / "sets" / json.loads(spec.read_text())["set_key"]
    set_target = os.readlink(set_link)  # the set's first finished entry (the old layout's)
    proc = _stalled(wd, f"seeds_fine_finalize:{point}", "--force", _rel(wd, spec))
    try:
        wait_for_text(wd.path / "results/mini/logs/seeds_fine" / entry.name / "finalize.log", "stalled after", proc)
    finally:
        os.killpg(proc.pid, signal.SIGKILL)
        proc.wait()
    status = _fmwsss(wd, "status", "mini").stdout
    (line,) = [ln for ln in status.splitlines() if ln.strip().startswith("seeds_fine ")]
    # as Snakemake sees it: spec.json written by a killed job, or missing (forced: Snakemake removed it first)
    # while the stable name `seeds` still points here, so only the product names the job to rerun
    assert ("incomplete" in line) if point == 3 else (f"unfinished, but its stable name points at it: run "
                                                       f"`snakemake --cores all {_rel(wd, spec)}`" in line), line
    wd.snakemake("--unlock", "--cores", "1")
    if point == 3:  # Snakemake's own hint for an incomplete output it did not rerun
        wd.snakemake("--cleanup-metadata", _rel(wd, spec), "--cores", "1")
    wd.snakemake("--cores", "2", "--rerun-incomplete", _rel(wd, spec))  # the target that was running
    assert {p.name: p.read_bytes() for p in entry.iterdir() if p.is_file() and not p.is_symlink()}.keys() == layout.keys()
    assert os.readlink(set_link) == set_target and (entry / "manifest.sqlite").is_file()
    assert not list(entry.glob(".*")) and seeds(wd.path) == before
    assert "done" in [ln for ln in _fmwsss(wd, "status", "mini", "--verify").stdout.splitlines()
                      if ln.strip().startswith("seeds_fine ")][0]
