"""The ``fmwsss`` command: sample data, weights, config inspection, store status and garbage collection.

The pipeline itself runs through Snakemake (``snakemake --cores all results/<dataset>/seeds``); this
command does what is not a pipeline stage.
"""
from __future__ import annotations

import argparse
import json
import os
import signal
import sys
from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from fmwsss.pipeline.store import StoreLink

DEFAULT_CONFIG = "config.yaml"


def _load_plan(config_path: str, results: str = "results"):
    from fmwsss.pipeline.plan import Plan

    from fmwsss.pipeline.config import Config

    return Plan(Config.from_file(config_path), results=results)


def _cmd_config_show(args: argparse.Namespace) -> int:
    from fmwsss.pipeline.config import Config

    cfg = Config.from_file(args.config)
    print(json.dumps(cfg.settings(args.dataset), indent=2, sort_keys=True))
    return 0


def _stage_state(ds, stage: str, done: bool, problems: list[str] | None, incomplete: bool = False,
                 aliased: bool = False, product: str = "") -> str:
    """done, damaged, incomplete or pending; a stage that reads the val split (DeepLab) of a dataset without one
    is optional (the seeds are that dataset's product: a segmenter would train on every id and be scored on
    nothing). Incomplete: its product exists but Snakemake marks the job that wrote it as killed, as Snakemake
    itself then says. ``aliased``: the dataset's stable name of the stage points at this (unfinished) entry."""
    from fmwsss.pipeline.stages import DATASET_INPUTS

    if problems:
        return f"damaged: {len(problems)} file(s)"
    if done and incomplete:
        return ("incomplete: its job was killed after writing its last file (rerun with `snakemake --rerun-incomplete"
                " TARGET`, README 'Recovering after a crash')")
    if not done and aliased:
        # a forced rerun (`--force`, a repair) killed before its last file: the stable name still points here, so
        # Snakemake finds the stable name up to date and only the product itself names the job to run
        return f"unfinished, but its stable name points at it: run `snakemake --cores all {product}`"
    if done:
        return "done"
    if "val_ids" in DATASET_INPUTS[stage] and not ds.dataset.splits.get("val"):
        return "not run (optional: no 'val' split)"
    return "pending"


def _cmd_status(args: argparse.Namespace) -> int:
    from fmwsss.data.index import index_path
    from fmwsss.pipeline.integrity import entry_problems, repair_command
    from fmwsss.pipeline.reuse import holder_manifest_problems
    from fmwsss.pipeline.snakemake_state import is_incomplete
    from fmwsss.pipeline.stages import SCORES, STAGES

    alias_of = {stage.name: stage.alias for stage in STAGES.values() if stage.alias}

    plan = _load_plan(args.config)
    for name in args.dataset:
        if name not in plan.datasets:
            raise ValueError(f"{args.config}: datasets.{name}: no such dataset (known: {', '.join(plan.datasets)})")
    failed = 0
    damaged: set[str] = set()
    for name in args.dataset or list(plan.datasets):
        if not args.dataset and plan.config.datasets[name]["root"] is not None:
            # every configured dataset is opened: say so before a first index build (30-60 s at full size)
            print(f"fmwsss status: {name}: reading {index_path(plan.results, name)} (built or refreshed first if "
                  f"the dataset's files changed; `fmwsss status NAME` reads only NAME)", file=sys.stderr, flush=True)
        ds = plan.datasets[name]
        if ds.error:
            print(f"{name}: unavailable: {ds.error}")
            failed += bool(args.dataset)  # only a dataset asked for by name is a failure
            continue
        print(f"{name}: {ds.dataset.num_ids} images in {len(ds.shards)} shards")
        for stage in STAGES.values():
            product = plan.product(name, stage.name)
            done = Path(product).exists()
            problems = entry_problems(plan.store(name, stage.name), full=args.verify)
            if problems is not None and stage.sharded:
                problems += holder_manifest_problems(Path(plan.store(name, stage.name)))
            alias = Path(plan.results, name, alias_of.get(stage.name, stage.name))
            aliased = alias.is_symlink() and alias.resolve() == Path(plan.store(name, stage.name)).resolve()
            state = _stage_state(ds, stage.name, done, problems, done and is_incomplete(product), aliased, product)
            print(f"  {stage.name:<22} {ds.keys[stage.name]}  {state}")
            for problem in problems or []:
                print(f"    {problem}")
            if problems:
                damaged.add(name)
        for score in SCORES.values():
            state = "done" if Path(plan.score_product(name, score.stage)).exists() else "pending"
            print(f"  {score.name:<22} {ds.score_keys[score.stage]}  {state}")
        if name in damaged:
            print(f"  repair: {repair_command(name)}")
    return 1 if failed or damaged else 0


def _cmd_index(args: argparse.Namespace) -> int:
    from fmwsss.pipeline.config import Config
    from fmwsss.pipeline.plan import Plan

    plan = Plan(Config.from_file(args.config), results=args.results)
    failed = 0
    for name in args.dataset or list(plan.datasets):
        if name not in plan.datasets:
            raise ValueError(f"{args.config}: datasets.{name}: no such dataset (known: {', '.join(plan.datasets)})")
        ds = plan.datasets[name]
        if ds.error:
            print(f"{name}: unavailable: {ds.error}")
            failed += bool(args.dataset)  # only a dataset asked for by name is a failure
            continue
        digests = ", ".join(f"{k} {v}" for k, v in sorted(ds.dataset.digests.items()))
        print(f"{name}: {ds.dataset.num_ids} ids in {ds.dataset.path}; digests: {digests}")
    return 1 if failed else 0


def _human(size: int) -> str:
    for unit in ("B", "KB", "MB", "GB"):
        if size < 1024 or unit == "GB":
            return f"{size:.0f} {unit}" if unit == "B" else f"{size:.1f} {unit}"
        size /= 1024
    return f"{size} B"


def _cmd_gc(args: argparse.Namespace) -> int:
    """List (with --yes: delete) what ``store.collect`` finds. Under a live Snakemake run (or its left lock
    files) gc refuses before reading anything. A check only, no lock of its own: gc is for between runs, and
    a run started while it deletes is not stopped."""
    from fmwsss.pipeline.runlock import refuse_if_running
    from fmwsss.pipeline.store import collect, remove_path, tree_size

    workdir = Path(args.results).resolve().parent  # where snakemake runs: results/ is its relative RESULTS
    refuse_if_running(workdir, "gc would read and delete store entries it may need",
                      "fmwsss gc --yes" if args.yes else "fmwsss gc")
    plan = _load_plan(args.config, args.results)
    skipped = {name for name, ds in plan.datasets.items() if ds.error}
    for name in sorted(skipped):
        print(f"note: {name} is unavailable, its store entries are left alone ({plan.datasets[name].error})")
    found = collect(args.results, plan.reachable(), skipped)
    _report_dangling(found.dangling)
    items = [(e.path, e.size, "partial" if e.partial else "entry") for e in found.entries]
    items += [(t, tree_size(t), "temp") for t in found.temps]
    items += [(link.path, 0, "setlink") for link in found.links]
    if not items:
        print("nothing to collect: every store entry is reachable from the current config or a stable name, "
              "and no stale temp file is left")
        return 0
    for path, size, kind in items:
        print(f"{_human(size):>10}  {kind:<7} {path}")
    print(f"{_human(sum(size for _, size, _ in items)):>10}  total in {len(found.entries)} unreachable store "
          f"items, {len(found.temps)} stale temp files (their writer's pid is not alive on this host) and "
          f"{len(found.links)} set links to those entries")
    if not args.yes:
        print("dry run: nothing deleted (pass --yes to delete them)")
        return 0
    for path, _, _ in items:
        remove_path(path)
    print(f"deleted {len(items)} items")
    return 0


def _report_dangling(links: list[StoreLink]) -> None:
    """Say which stable names and set links name a gone entry (gc never deletes these: it says what mends it)."""
    for link in links:
        if link.is_set_link:
            print(f"dangling set link: {link.path} -> {os.readlink(link.path)} (entry gone): the stage's next "
                  f"finished entry of that set re-points it; `rm {link.path}` drops it now")
        else:
            print(f"dangling stable name: {link.path} -> {os.readlink(link.path)} (entry gone): `rm {link.path}` "
                  f"and `snakemake results/{link.dataset}/{link.path.name}` remake it")


def build_parser() -> argparse.ArgumentParser:
    from fmwsss.cli.cost import register as register_cost
    from fmwsss.cli.data import register as register_data
    from fmwsss.cli.repair import register as register_repair
    from fmwsss.cli.report import register as register_report
    from fmwsss.cli.weights import register as register_weights
    from fmwsss.cli.seed import register as register_seed

    parser = argparse.ArgumentParser(
        prog="fmwsss",
        description=(
            "fmwsss: WSSS from image tags with frozen CLIP and SAM. The pipeline runs through Snakemake "
            "(snakemake --cores all results/<dataset>/seeds); this command fetches sample data and weights, "
            "shows resolved settings and store status, and collects old store variants."
        ),
    )
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    register_data(sub)
    register_weights(sub)
    register_seed(sub)
    register_report(sub)
    register_repair(sub)
    register_cost(sub)

    show = sub.add_parser("config", help="print a dataset's settings with every default applied")
    show.add_argument("dataset", help="dataset name under `datasets:` in the config")
    show.add_argument("--config", default=DEFAULT_CONFIG, help="config file (default: %(default)s)")
    show.set_defaults(func=_cmd_config_show)

    index = sub.add_parser(
        "index",
        help="build or refresh the dataset index (results/<dataset>/index.sqlite) that planning and jobs read",
        description=(
            "Open each dataset once and record its ids, splits, tags, class names and a content digest of every "
            "image and ground-truth file in results/<dataset>/index.sqlite. The main snakemake process does this "
            "itself on every run (re-hashing only files whose size or mtime moved); jobs only read the index. "
            "Run this by hand when a job reports a stale index."
        ),
    )
    index.add_argument("dataset", nargs="*", help="datasets to index (default: all configured)")
    index.add_argument("--config", default=DEFAULT_CONFIG, help="config file (default: %(default)s)")
    index.add_argument("--results", default="results", help="results folder (default: %(default)s)")
    index.set_defaults(func=_cmd_index)

    status = sub.add_parser(
        "status",
        help="list each stage's current key and whether it is done, damaged (a file unlike its record) or pending",
        description=(
            "Each stage's current key and state: done, damaged (a file unlike its record), pending, or not run "
            "(optional: no 'val' split) for the DeepLab stages of a dataset without a val split. A dataset is "
            "read through its index results/<dataset>/index.sqlite, which is built or refreshed first where the "
            "dataset's files changed (as any snakemake command does): only the datasets named, or, without a "
            "name, every configured one, each announced on stderr before it is read."
        ),
    )
    status.add_argument("dataset", nargs="*", help="datasets to show (default: every configured one)")
    status.add_argument("--config", default=DEFAULT_CONFIG, help="config file (default: %(default)s)")
    status.add_argument(
        "--verify", action="store_true",
        help="compare each stored file's sha256 with its record, not only its size (reads every stored byte)",
    )
    status.set_defaults(func=_cmd_status)

    gc = sub.add_parser(
        "gc",
        help="list store entries nothing reaches and stale temp files, with sizes; delete with --yes",
        description=(
            "List, with sizes, the store entries (and .partial state) that nothing reaches: neither the current "
            "config's entries nor the entry a stable name (results/<dataset>/<alias>) names, whatever config "
            "made it, nor what those were made from (spec.json upstream, through set links), link into (refs) or "
            "are scored by; the temp files (.<name>.tmp-<pid>) of writers no longer alive on this host; and the "
            "set links (store/<stage>/sets/*) that name a listed entry. --yes deletes them. Stable names and set "
            "links whose entry is already gone are reported, never deleted. Datasets that are unavailable are "
            "left alone. Refuses, reading nothing, while a snakemake "
            "process runs in the folder holding --results, or Snakemake lock files are left there."
        ),
    )
    gc.add_argument("--config", default=DEFAULT_CONFIG, help="config file (default: %(default)s)")
    gc.add_argument("--results", default="results", help="results folder (default: %(default)s)")
    gc.add_argument("--yes", action="store_true", help="really delete the listed entries")
    gc.set_defaults(func=_cmd_gc)
    return parser


def _exit_like_sigpipe() -> None:
    """End as `cat` or `seq` do when the reader of stdout went away (`fmwsss config demo | head -1`): killed
    by SIGPIPE (status 141 in a shell), without a traceback. Python ignores SIGPIPE, so writes raise instead."""
    devnull = os.open(os.devnull, os.O_WRONLY)
    os.dup2(devnull, sys.stdout.fileno())  # the interpreter's final flush must not fail again
    if not hasattr(signal, "SIGPIPE"):
        sys.exit(1)
    signal.signal(signal.SIGPIPE, signal.SIG_DFL)
    os.kill(os.getpid(), signal.SIGPIPE)


def main(argv: list[str] | None = None) -> int:
    from fmwsss.pipeline.config import ConfigError
    from fmwsss.pipeline.runlock import RunInProgress

    args = build_parser().parse_args(argv)
    try:
        try:
            code = args.func(args)
        except RunInProgress as exc:  # nothing wrong with the command line: wait, then run it again
            print(f"fmwsss: error: {exc}", file=sys.stderr)
            code = 1
        except (ConfigError, FileNotFoundError, PermissionError, ValueError, RuntimeError) as exc:
            print(f"fmwsss: error: {exc}", file=sys.stderr)
            code = 2
        sys.stdout.flush()  # a short output meets the closed pipe only here
    except BrokenPipeError:
        _exit_like_sigpipe()
    return code


if __name__ == "__main__":
    sys.exit(main())
