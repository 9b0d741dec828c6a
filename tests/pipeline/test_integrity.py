"""Self-checking store entries: the file record spec.json keeps, the size and sha256 checks, the repair plan
and the mtimes a repair restores."""
from __future__ import annotations

import json
import os
import subprocess
from pathlib import Path

import pytest

from fmwsss.pipeline.integrity import (
    DamagedEntryError,
    check_files,
    entry_files,
    entry_problems,
    read_record,
    record_files,
    require_entries_intact,
    require_intact,
)
from fmwsss.pipeline.repair import RepairStep, run_repair
from fmwsss.pipeline.store import write_spec

SHA256_ABC = "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad"  # FIPS 180-2 test vector
SHA256_EMPTY = "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855"


def _entry(tmp_path: Path) -> Path:
    """results/demo/store/sam_masks/<key> with two shards, a nested file, a temp and a symlink."""
    entry = tmp_path / "results/demo/store/sam_masks/0123456789abcdef"
    (entry / "sub").mkdir(parents=True)
    (entry / "shard-000.h5").write_bytes(b"abc")
    (entry / "shard-001.h5").write_bytes(b"")
    (entry / "sub" / "x.png").write_bytes(b"abc")
    (entry / ".shard-002.h5.tmp-77").write_bytes(b"half")
    os.symlink("shard-000.h5", entry / "link.h5")
    return entry


def test_record_lists_regular_files_with_size_and_sha256(tmp_path):
    entry = _entry(tmp_path)
    (entry / "spec.json").write_text("{}")
    assert entry_files(entry) == ["shard-000.h5", "shard-001.h5", "sub/x.png"]
    assert record_files(entry) == {
        "shard-000.h5": {"size": 3, "sha256": SHA256_ABC},
        "shard-001.h5": {"size": 0, "sha256": SHA256_EMPTY},
        "sub/x.png": {"size": 3, "sha256": SHA256_ABC},
    }


def test_timing_records_are_outside_the_record_and_their_changes_are_no_damage(tmp_path):
    entry = _entry(tmp_path)
    (entry / "timing").mkdir()
    (entry / "timing" / "shard-000.json").write_text('{"items": 3}')
    (entry / "sub" / "timing").mkdir()  # only the entry's own timing/ folder is left out
    (entry / "sub" / "timing" / "y.json").write_bytes(b"abc")
    assert entry_files(entry) == ["shard-000.h5", "shard-001.h5", "sub/timing/y.json", "sub/x.png"]
    write_spec(entry, entry.name, {"stage": "sam_masks"}, "demo")
    (entry / "timing" / "shard-000.json").write_text('{"items": 30}')  # a repaired job rewrote it
    (entry / "timing" / "shard-001.json").write_text("{}")
    assert entry_problems(entry, full=True) == []


def test_write_spec_records_files_and_drops_the_empty_partial_folder(tmp_path):
    entry = _entry(tmp_path)
    partial = entry.parent / f".{entry.name}.partial"
    partial.mkdir()
    write_spec(entry, entry.name, {"stage": "sam_masks"}, "demo")
    assert read_record(entry)["shard-000.h5"] == {"size": 3, "sha256": SHA256_ABC}
    assert not partial.exists()
    partial.mkdir()
    (partial / "shard-003.h5").write_bytes(b"resumable state")
    write_spec(entry, entry.name, {"stage": "sam_masks"}, "demo")
    assert (partial / "shard-003.h5").is_file()  # a non-empty partial folder is kept


def test_checks_by_size_and_by_hash_ignore_files_added_later(tmp_path):
    entry = _entry(tmp_path)
    write_spec(entry, entry.name, {"stage": "sam_masks"}, "demo")
    os.symlink("shard-001.h5", entry / "metrics.json")  # added by a later rule: not recorded, not checked
    (entry / "scores.json").write_text("{}")
    assert entry_problems(entry, full=True) == []
    (entry / "shard-000.h5").write_bytes(b"abd")  # same size, other bytes
    assert entry_problems(entry) == []
    (problem,) = entry_problems(entry, full=True)
    assert problem.path == entry / "shard-000.h5" and SHA256_ABC in problem.reason
    (entry / "shard-000.h5").write_bytes(b"ab")
    (entry / "sub" / "x.png").unlink()
    problems = {p.path.name: p.reason for p in entry_problems(entry)}
    assert problems == {"shard-000.h5": "2 bytes, spec.json records 3", "x.png": "missing (spec.json records 3 bytes)"}
    assert check_files(entry, read_record(entry), names=["shard-001.h5", "not-recorded"]) == []


def test_entries_without_record_or_spec_pass_and_bad_json_is_damage(tmp_path):
    entry = _entry(tmp_path)
    assert entry_problems(entry) is None  # not complete: nothing to check
    (entry / "spec.json").write_text(json.dumps({"key": entry.name}))  # written before records existed
    assert entry_problems(entry) is None
    (entry / "spec.json").write_text('{"key": ')
    (problem,) = entry_problems(entry)
    assert problem.path == entry / "spec.json" and "not readable JSON" in problem.reason


def test_job_and_dag_checks_name_the_file_and_the_repair_command(tmp_path):
    entry = _entry(tmp_path)
    write_spec(entry, entry.name, {"stage": "sam_masks"}, "demo")
    require_intact([entry / "shard-000.h5", entry / "link.h5"])
    require_entries_intact([entry, tmp_path / "results/demo/store/seeds_fine/none"])
    (entry / "shard-001.h5").unlink()
    with pytest.raises(DamagedEntryError) as err:
        require_intact([entry / "shard-000.h5", entry / "shard-001.h5"])
    assert f"{entry / 'shard-001.h5'}: missing" in str(err.value) and "`fmwsss repair demo`" in str(err.value)
    require_entries_intact([entry])  # memoised: this process already found the entry whole
    with pytest.raises(DamagedEntryError, match="shard-001.h5: missing"):
        require_entries_intact([entry], names=["shard-001.h5"])  # a finalize's shards are checked every time


def _fake_snakemake(recomputed: dict[str, bytes], calls: list[list[str]]):
    """A stand-in for the Snakemake call: writes the targets' new bytes now, as the jobs would."""

    def run(cmd, **_):
        calls.append(cmd)
        for target in cmd[cmd.index("--force") + 1:]:
            Path(target).write_bytes(recomputed[Path(target).name])
        return subprocess.CompletedProcess(cmd, 0)

    return run


def test_repair_restores_mtimes_and_updates_the_record_where_bytes_differ(tmp_path):
    entry = _entry(tmp_path)
    write_spec(entry, entry.name, {"stage": "sam_masks"}, "demo")
    old = 1_600_000_000_000_000_000
    mtimes = {"shard-000.h5": old + 1000, "shard-001.h5": old + 2000, "sub/x.png": old + 20_000, "spec.json": old + 9000}
    for name, mtime in mtimes.items():  # x.png: touched after completion
        os.utime(entry / name, ns=(old, mtime))
    (entry / "shard-001.h5").unlink()
    step = RepairStep("sam_masks", entry, entry_problems(entry), [str(entry / "shard-001.h5")],
                      [entry / "shard-001.h5"], "one shard job", False)
    calls: list[list[str]] = []
    logged: list[str] = []
    run_repair([step], ["snakemake", "--cores", "1"], log=logged.append,
               run=_fake_snakemake({"shard-001.h5": b"abc"}, calls), workdir=tmp_path)
    assert "the recomputed bytes of shard-001.h5 differ from those recorded" in logged[-1]
    assert calls == [["snakemake", "--cores", "1", "--nolock", "--force", str(entry / "shard-001.h5")]]
    spec_mtime = mtimes["spec.json"]
    assert (entry / "spec.json").stat().st_mtime_ns == spec_mtime and entry.stat().st_mtime_ns == spec_mtime
    assert (entry / "shard-001.h5").stat().st_mtime_ns == spec_mtime  # recreated: its entry's spec.json time
    assert (entry / "shard-000.h5").stat().st_mtime_ns == mtimes["shard-000.h5"]
    assert (entry / "sub/x.png").stat().st_mtime_ns == spec_mtime  # never later than spec.json
    assert read_record(entry)["shard-001.h5"] == {"size": 3, "sha256": SHA256_ABC}
    assert entry_problems(entry, full=True) == []


def test_repair_holds_a_snakemake_lock_and_runs_every_call_with_nolock(tmp_path):
    entry = _entry(tmp_path)
    write_spec(entry, entry.name, {"stage": "sam_masks"}, "demo")
    (entry / "shard-001.h5").unlink()
    steps = [RepairStep("sam_masks", entry, entry_problems(entry), [str(entry / "shard-001.h5")],
                        [entry / "shard-001.h5"], "one shard job", False),
             RepairStep("sam_masks", entry, [], [str(entry / "spec.json")], [], "the finalize job", True)]
    locks = tmp_path / ".snakemake/locks"
    calls: list[list[str]] = []
    held: list[list[str]] = []

    def run(cmd, **kwargs):
        held.append(sorted((locks / "0.output.lock").read_text().splitlines()))
        return _fake_snakemake({"shard-001.h5": b"", "spec.json": (entry / "spec.json").read_bytes()}, calls)(cmd)

    run_repair(steps, ["snakemake"], log=lambda _: None, run=run, workdir=tmp_path)
    assert [call[:3] for call in calls] == [["snakemake", "--nolock", "--force"]] * 2
    store = "results/demo/store/sam_masks/0123456789abcdef"
    names = ("shard-000.h5", "shard-001.h5", "spec.json", "sub/x.png")
    assert held[0] == held[1] == [f"{store}/{name}" for name in names]
    assert not locks.exists()  # only our lock, and the folder it left empty, are removed


def test_repair_under_a_run_deletes_nothing_and_names_it(tmp_path):
    from fmwsss.pipeline.runlock import RunInProgress

    entry = _entry(tmp_path)
    write_spec(entry, entry.name, {"stage": "sam_masks"}, "demo")
    (entry / "shard-000.h5").write_bytes(b"ab")  # damaged
    (tmp_path / ".snakemake/locks").mkdir(parents=True)
    (tmp_path / ".snakemake/locks/0.input.lock").write_text("results/demo/seeds\n")
    step = RepairStep("sam_masks", entry, entry_problems(entry), [str(entry / "shard-000.h5")],
                      [entry / "shard-000.h5"], "one shard job", False)
    calls: list[list[str]] = []
    with pytest.raises(RunInProgress, match="`fmwsss repair demo` again"):
        run_repair([step], ["snakemake"], run=_fake_snakemake({}, calls), workdir=tmp_path, rerun="fmwsss repair demo")
    assert calls == [] and (entry / "shard-000.h5").read_bytes() == b"ab"
    assert (tmp_path / ".snakemake/locks/0.input.lock").is_file()  # another's lock is never removed


class _StubPlan:
    """The few Plan lookups plan_repair makes, for a dataset of two shards under ``root``."""

    def __init__(self, root: Path):
        self.root = root
        self.shards = {"shard-000": range(0, 2), "shard-001": range(2, 3)}

    def get(self, dataset):
        return self

    def store(self, dataset, stage):
        return str(self.root / f"results/{dataset}/store/{stage}/{stage[:4]}")

    def spec_path(self, dataset, stage):
        return f"{self.store(dataset, stage)}/spec.json"

    def product(self, dataset, stage):
        from fmwsss.pipeline.stages import PRODUCTS, STAGES

        if STAGES[stage].sharded:
            return self.spec_path(dataset, stage)
        return f"{self.store(dataset, stage)}/{PRODUCTS[stage]}"


def test_repair_plan_is_the_shard_jobs_then_finalize_upstream_first_and_whole_jobs_for_whole_set_stages(tmp_path):
    from fmwsss.pipeline.repair import plan_repair

    plan = _StubPlan(tmp_path)
    files = {"seeds_fine": ["shard-000.h5", "shard-001.h5", "a.png"], "sam_masks": ["shard-000.h5", "shard-001.h5"],
             "prompts_cls_train": ["prompts.pt", "loss.csv"], "cams_coarse_dump": ["shard-000.h5"]}
    for stage, names in files.items():
        entry = Path(plan.store("demo", stage))
        entry.mkdir(parents=True)
        for name in names:
            (entry / name).write_bytes(b"ok")
        write_spec(entry, entry.name, {"stage": stage}, "demo")
    assert plan_repair(plan, "demo") == []
    seeds, sam, prompts = (Path(plan.store("demo", s)) for s in ("seeds_fine", "sam_masks", "prompts_cls_train"))
    (seeds / "a.png").unlink()
    (seeds / "shard-001.h5").write_bytes(b"o")
    (sam / "shard-000.h5").write_bytes(b"no")  # same size: found only by hash
    (prompts / "loss.csv").unlink()
    assert [(s.stage, s.targets) for s in plan_repair(plan, "demo")] == [
        ("prompts_cls_train", [f"{prompts}/prompts.pt"]),
        ("seeds_fine", [str(seeds / "shard-001.h5")]),
        ("seeds_fine", [f"{seeds}/spec.json"]),
    ]
    steps = plan_repair(plan, "demo", full=True)
    assert [(s.stage, s.targets, s.delete, s.rewrites_spec) for s in steps[:2]] == [
        ("sam_masks", [str(sam / "shard-000.h5")], [sam / "shard-000.h5"], False),
        ("prompts_cls_train", [f"{prompts}/prompts.pt"], [], True),
    ]
    assert [s.delete for s in steps[2:]] == [[seeds / "shard-001.h5"], []]
