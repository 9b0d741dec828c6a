"""Repairing damaged store entries: recompute exactly the damaged files, and leave the store looking as
old as before, so a dry run of any target schedules nothing afterwards.

What each damage costs to repair (the current entries of one dataset, upstream stages first):
- a shard (``shard-NNN.h5``) of a per-image stage: the damaged file is deleted and only its shard job runs
  again (its log lists each image it computes; a killed earlier attempt's .partial state is resumed);
- any other file of a per-image stage (a seed PNG, metrics.json, spec.json itself): the stage's light
  finalize job runs again (it reads the stage's shards; no GPU);
- a file of a whole-set stage (``prompts.pt``, ``model.pt``, its loss curve or metrics): the whole job runs
  again, i.e. a full prompt or DeepLab training (or the DeepLab evaluation), the stage's full GPU cost, even
  for its loss curve (``fmwsss repair --dry-run`` lists each step's cost before anything runs).
Afterwards every file of the repaired entry gets back its old modification time, never later than its
entry's spec.json (a recreated file gets spec.json's), spec.json keeps its own, so does the entry folder
(an alias, to Snakemake), and the record is updated where recomputed bytes differ, so nothing downstream
looks out of date.
"""
from __future__ import annotations

import os
import shutil
import subprocess
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable, Sequence

from fmwsss.io.atomic import atomic_write_json
from fmwsss.pipeline.integrity import (
    MANIFEST,
    RECORD_KEY,
    SPEC_NAME,
    DamagedEntryError,
    Problem,
    entry_problems,
    read_record,
    read_spec,
    readable_record,
    record_files,
)
from fmwsss.io.shards import ShardError
from fmwsss.pipeline.plan import Plan
from fmwsss.pipeline.reuse import rebuild_manifest
from fmwsss.pipeline.runlock import hold_lock
from fmwsss.pipeline.stages import ALIASES, STAGES
from fmwsss.pipeline.store import drop_empty_partial

NOTHING_TO_DO = "Nothing to be done"


@dataclass
class RepairStep:
    """One Snakemake call (or, for a manifest alone, one in-process rebuild): what recomputes ``problems``
    of one entry."""

    stage: str
    entry: Path
    problems: list[Problem]
    targets: list[str]
    delete: list[Path]  # damaged files removed before the call (Snakemake then sees them missing)
    cost: str
    rewrites_spec: bool  # the job rewrites spec.json itself (finalize or whole-set job)
    # shard -> (its partial file, images to drop): an intact shard whose links into a gone or damaged holder are
    # dropped from a copy in the entry's .partial folder, which the shard job then resumes (computing just those)
    prepare: dict[Path, tuple[Path, list[str]]] = field(default_factory=dict)
    # the per-image keys to rebuild the manifest with afterwards (None: keep it; {}: only what groups record)
    manifest_keys: dict[str, str] | None = None
    in_process: bool = False  # no Snakemake call: the manifest rebuild is the whole step


def _linked_by_shard(ds, problems: list[Problem]) -> dict[str, list[str]]:
    """Own shard name -> the images of it that link into a gone or damaged holder (sorted)."""
    wanted = {image_id for p in problems for image_id in p.linked}
    found: dict[str, list[str]] = {}
    for shard, positions in ds.shards.items():
        ids = [i for i in ds.dataset.ids_range(positions.start, positions.stop) if i in wanted]
        if ids:
            found[f"{shard}.h5"] = sorted(ids)
    return found


def _sharded_steps(plan: Plan, dataset: str, stage: str, entry: Path, problems: list[Problem]) -> list[RepairStep]:
    from fmwsss.pipeline.reuse import image_keys

    ds = plan.get(dataset)
    shard_names = {f"{shard}.h5" for shard in ds.shards}
    linked = [p for p in problems if p.linked]
    damaged = [p for p in problems if not p.linked and p.path.parent == entry and p.path.name in shard_names]
    manifest = [p for p in problems if p.path == entry / MANIFEST]
    # a gone holder with no image list (this entry's manifest is damaged too) waits for the manifest's rebuild:
    # `fmwsss repair` plans again after its steps
    others = [p for p in problems
              if p.path.parent == entry and p not in linked and p not in damaged and p not in manifest]
    has_manifest = MANIFEST in (readable_record(entry) or {})
    keys = image_keys(ds, stage, 0, ds.dataset.num_ids) if has_manifest else None
    steps = []
    affected = _linked_by_shard(ds, linked) if linked else {}
    shards = sorted({p.path.name for p in damaged} | set(affected))
    if shards:
        partial = Path(plan.partial(dataset, stage)) if affected else entry
        prepare = {entry / name: (partial / name, affected[name]) for name in affected
                   if name not in {p.path.name for p in damaged}}
        kept = f"; of {len(prepare)} shard(s) only the {sum(len(v[1]) for v in prepare.values())} image(s) whose " \
               f"holder is gone or damaged" if prepare else ""
        steps.append(RepairStep(
            stage, entry, damaged + linked, [str(entry / name) for name in shards], [p.path for p in damaged],
            f"{len(shards)} shard job(s) of {stage}, each recomputing its shard's images{kept}", False,
            prepare=prepare, manifest_keys=keys,
        ))
    if others:
        steps.append(RepairStep(
            stage, entry, others + manifest, [plan.spec_path(dataset, stage)],
            [p.path for p in others if p.path == entry / SPEC_NAME],
            f"the {stage} finalize job (reads the stage's shards, no GPU)", True,
        ))
    elif manifest and not shards:
        steps.append(RepairStep(stage, entry, manifest, [], [], "a manifest rebuilt from the entry's shards "
                                "(in this process, no job)", False, manifest_keys=keys, in_process=True))
    return steps


def _manifest_steps(stage: str, stage_dir: Path) -> list[RepairStep]:
    """In-process rebuilds of every damaged manifest among the stage's finished entries, current or not: each is
    a source of reuse for later entries, and a non-current one (an entry the current one links into, an old
    variant) has no Snakemake job that could rewrite it; the keys its groups record can (one hashed manifest
    an entry, ~15 ms at COCO size)."""
    from fmwsss.pipeline.reuse import finished_entries, manifest_problem

    steps = []
    for entry in finished_entries(stage_dir):
        problem = manifest_problem(entry)
        if problem is not None and MANIFEST in (read_record(entry) or {}):
            steps.append(RepairStep(stage, entry, [problem], [], [],
                                    "the manifest rebuilt from the entry's shards (in this process, no job)", False,
                                    manifest_keys={}, in_process=True))
    return steps


def plan_repair(plan: Plan, dataset: str, full: bool = False) -> list[RepairStep]:
    """The repair steps of ``dataset``'s current entries and of the entries they link into, upstream stages
    first (a step's Snakemake call checks the entries it reads, so they must be whole by then). ``full``
    compares sha256, not only sizes."""
    steps = []
    for stage in STAGES.values():  # in pipeline order
        entry = Path(plan.store(dataset, stage.name))
        problems = entry_problems(entry, full)
        if stage.sharded:  # the current entry's manifest is among its own problems
            steps += [s for s in _manifest_steps(stage.name, entry.parent) if s.entry != entry]
        if not problems:
            continue
        if stage.sharded:
            steps += _sharded_steps(plan, dataset, stage.name, entry, problems)
        else:
            steps.append(RepairStep(
                stage.name, entry, problems, [plan.product(dataset, stage.name)],
                [p.path for p in problems if p.path == entry / SPEC_NAME],
                f"the whole {stage.name} job again (its full cost: nothing of a whole-set stage is per image)", True,
            ))
    return steps


def drop_links(shard: Path, partial: Path, image_ids: Sequence[str]) -> None:
    """Copy the intact ``shard`` to its ``partial`` file without ``image_ids`` (links into a gone or damaged
    holder) and without its completion mark: the forced shard job resumes it, computing just those images and
    keeping every other group's bytes (a copy: the shard itself is untouched until the job replaces it)."""
    import h5py

    from fmwsss.io.shards import COMPLETE_ATTR

    partial.parent.mkdir(parents=True, exist_ok=True)
    tmp = partial.with_name(f".{partial.name}.tmp-{os.getpid()}")
    shutil.copyfile(shard, tmp)
    with h5py.File(tmp, "a") as fh:
        for image_id in image_ids:
            if fh.get(image_id, getlink=True) is not None:
                del fh[image_id]
        if COMPLETE_ATTR in fh.attrs:
            del fh.attrs[COMPLETE_ATTR]
    os.replace(tmp, partial)


def _mtimes(entry: Path) -> dict[str, int]:
    """mtime_ns of the entry's regular files that exist now, by name relative to the entry."""
    found = {}
    for path in entry.rglob("*"):
        if path.is_file() and not path.is_symlink():
            found[path.relative_to(entry).as_posix()] = path.stat().st_mtime_ns
    return found


def _set_mtime(path: Path, mtime_ns: int) -> None:
    os.utime(path, ns=(path.stat().st_atime_ns, mtime_ns))


def settle(step: RepairStep, old: dict[str, int], old_record: dict[str, dict] | None) -> list[str]:
    """After a step's call: update the record of recomputed shards whose bytes differ, then give every
    recorded file its old mtime, but never later than spec.json's (a recreated file, or one whose damage
    moved its mtime, gets spec.json's: every recorded file was written before spec.json completed the
    entry), and spec.json its own.

    The entry folder's mtime moved when the damaged file was deleted (by hand or by the repair) and again
    when it was recreated, and an alias is that folder to Snakemake: it gets spec.json's time back, where
    the completing rename of spec.json had left it (to the microsecond).

    A step of a sharded entry then rebuilds its manifest from the shards as they are now (an image the step
    computed instead of linking has this entry as its holder), with its refs (``manifest_keys``).

    Returns the names whose record now differs from ``old_record`` (the one written at completion).
    """
    spec_path = step.entry / SPEC_NAME
    spec_mtime = old[SPEC_NAME]
    spec = read_spec(step.entry)
    record = spec[RECORD_KEY]
    if not step.rewrites_spec:
        names = [Path(t).name for t in step.targets if Path(t).parent == step.entry]
        if step.manifest_keys is not None:
            spec["refs"] = sorted(rebuild_manifest(step.entry, step.manifest_keys or None))
            names.append(MANIFEST)
        fresh = record_files(step.entry, names)
        if any(record.get(name) != rec for name, rec in fresh.items()) or step.manifest_keys is not None:
            record.update(fresh)
            atomic_write_json(spec_path, spec)
    for name in record:
        _set_mtime(step.entry / name, min(old.get(name, spec_mtime), spec_mtime))
    _set_mtime(spec_path, spec_mtime)
    _set_mtime(step.entry, spec_mtime)
    before = old_record or {}
    return sorted(name for name in record.keys() | before.keys() if record.get(name) != before.get(name))


def _relative(path: str | os.PathLike, workdir: str | os.PathLike) -> str:
    """``path`` as the rules declare it: relative to the working folder Snakemake runs in."""
    return os.path.relpath(path, workdir) if os.path.isabs(path) else os.path.normpath(path)


def lock_paths(steps: Sequence[RepairStep], workdir: str | os.PathLike = ".") -> list[str]:
    """What the repair touches, for its Snakemake lock: each step's targets, the files it deletes, its
    entry's spec.json and every file that spec.json records (one spec.json read per step)."""
    paths: set[str] = set()
    for step in steps:
        recorded = [step.entry / name for name in readable_record(step.entry) or {}]  # unreadable: rebuilt
        for path in (*step.targets, *step.delete, step.entry / SPEC_NAME, *recorded):
            paths.add(_relative(path, workdir))
    return sorted(paths)


def run_repair(
    steps: Sequence[RepairStep],
    snakemake: Sequence[str],
    log: Callable[[str], None] = print,
    run: Callable[..., subprocess.CompletedProcess] = subprocess.run,
    workdir: str | os.PathLike = ".",
    rerun: str = "fmwsss repair DATASET",
) -> None:
    """Run each step's Snakemake call (``snakemake``: the command and its options, without targets) in
    ``workdir``, holding a Snakemake output lock on what the repair touches (``lock_paths``) from before
    the first damaged file is deleted: under a live run (or its left lock files) nothing is deleted and
    :class:`~fmwsss.pipeline.runlock.RunInProgress` names it (``rerun``: the command to run afterwards).
    The calls run with ``--nolock``: our lock stands for them."""
    what = "repair would change files it reads"
    with hold_lock(workdir, lock_paths(steps, workdir), what, rerun):
        for step in steps:
            _repair_step(step, [*snakemake, "--nolock"], log, run)


def _repair_step(
    step: RepairStep,
    snakemake: Sequence[str],
    log: Callable[[str], None],
    run: Callable[..., subprocess.CompletedProcess],
) -> None:
    """Delete a step's damaged files, run its Snakemake call and settle the entry's mtimes and record."""
    try:
        old = _mtimes(step.entry)
    except FileNotFoundError as exc:
        raise DamagedEntryError(f"{step.entry}: entry vanished during repair ({exc})") from exc
    if SPEC_NAME not in old:
        raise DamagedEntryError(f"{step.entry}: no spec.json: not a complete entry, nothing to repair")
    try:
        old_record = read_spec(step.entry)[RECORD_KEY]
    except DamagedEntryError:  # an unreadable spec.json: the step rebuilds it
        old_record = None
    for path in step.delete:
        path.unlink(missing_ok=True)
    for shard, (partial, drop) in step.prepare.items():
        drop_links(shard, partial, drop)
    if step.in_process:
        log(f"repair {step.stage}: {step.entry / MANIFEST}: {step.cost}")
        try:
            changed = settle(step, old, old_record)
        except ShardError as exc:  # groups that record no key, of an entry no longer current
            log(f"repair {step.stage}: cannot rebuild {step.entry / MANIFEST} ({exc}); it offers no reuse until "
                f"`fmwsss gc` removes the entry")
            return
    else:
        log(f"repair {step.stage}: recomputing {', '.join(step.targets)} ({step.cost})")
        proc = run([*snakemake, "--force", *step.targets])
        if proc.returncode != 0:
            raise RuntimeError(f"repair of {step.entry} failed: `{' '.join([*snakemake, '--force', *step.targets])}` "
                               f"exited {proc.returncode}; the damaged files stay deleted, rerun the repair")
        changed = settle(step, old, old_record)
    drop_empty_partial(step.entry)
    if old_record is None:
        log(f"repair {step.stage}: spec.json was unreadable and is rebuilt: the record holds the files as now")
    elif step.in_process or (changed and step.problems and all(p.linked for p in step.problems)):
        log(f"repair {step.stage}: {step.entry} repaired; its per-image keys are unchanged, so nothing downstream "
            f"moves (spec.json records the new {', '.join(changed) or 'bytes'}, its mtime kept)")
    elif changed:
        log(f"repair {step.stage}: the recomputed bytes of {', '.join(changed)} differ from those recorded at "
            f"completion (spec.json updated, its mtime kept): entries downstream were computed from the old "
            f"bytes and are not rerun; `snakemake --forcerun` them if that matters")


def alias_targets(plan: Plan, dataset: str) -> list[str]:
    """The dataset's stable names that exist on disk: what a dry run after a repair should find up to date."""
    root = Path(plan.store(dataset, "sam_masks")).parents[2]
    return [str(root / alias) for alias in ALIASES if (root / alias).is_symlink()]


def dry_run_is_clean(
    snakemake: Sequence[str], targets: Sequence[str], run: Callable[..., subprocess.CompletedProcess] = subprocess.run
) -> tuple[bool, str]:
    """Whether ``snakemake -n targets`` schedules nothing, and its output (``--nolock``: it changes nothing,
    and a run that started since the repair must not make it fail)."""
    proc = run([*snakemake, "--nolock", "-n", *targets], capture_output=True, text=True)
    out = proc.stdout + proc.stderr
    return proc.returncode == 0 and NOTHING_TO_DO in out, out
