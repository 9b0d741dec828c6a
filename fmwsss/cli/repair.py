"""``fmwsss repair DATASET``: find the damaged or missing files of the dataset's current store entries and
recompute exactly those, leaving nothing downstream out of date."""
from __future__ import annotations

import argparse
import shlex
import sys


def _snakemake_command(args: argparse.Namespace) -> list[str]:
    """The Snakemake command line every repair step runs, without targets (this interpreter's snakemake)."""
    cmd = [sys.executable, "-m", "snakemake", "--cores", args.cores]
    if args.snakefile:
        cmd += ["--snakefile", args.snakefile]
    return cmd + shlex.split(args.snakemake_args)


ROUNDS = 3  # repair, look again, repair what the first round uncovered; a fault that survives three is reported


def _cmd_repair(args: argparse.Namespace) -> int:
    from fmwsss.pipeline.config import Config
    from fmwsss.pipeline.plan import Plan
    from fmwsss.pipeline.repair import alias_targets, dry_run_is_clean, plan_repair, run_repair

    plan = Plan(Config.from_file(args.config))
    steps = plan_repair(plan, args.dataset, full=args.verify)
    check = "size and sha256" if args.verify else "size"
    if not steps:
        print(f"{args.dataset}: every recorded file of the current store entries has its recorded {check}: "
              f"nothing to repair")
        return 0
    for step in steps:
        for problem in step.problems:
            print(f"damaged: {problem}")
        print(f"  repair: {step.cost}")
    if args.dry_run:
        print("dry run: nothing deleted or recomputed (drop --dry-run to repair)")
        return 0
    snakemake = _snakemake_command(args)
    for _ in range(ROUNDS):
        run_repair(steps, snakemake, rerun=f"fmwsss repair {args.dataset}")
        # a fault that hid another (a damaged manifest over links into a gone holder) shows once it is mended
        steps = plan_repair(plan, args.dataset, full=args.verify)
        if not steps:
            break
        for step in steps:
            print(f"  then: {step.cost}, for {'; '.join(str(p) for p in step.problems[:3])}")
    else:
        print(f"fmwsss: error: still damaged after {ROUNDS} rounds of repair: "
              f"{'; '.join(str(p) for s in steps for p in s.problems[:3])}", file=sys.stderr)
        return 1
    targets = alias_targets(plan, args.dataset)
    if targets:
        clean, out = dry_run_is_clean(snakemake, targets)
        if not clean:
            print(out, file=sys.stderr)
            print(f"fmwsss: error: after the repair, a dry run of {' '.join(targets)} still schedules jobs "
                  f"(shown above)", file=sys.stderr)
            return 1
        print(f"repaired; a dry run of {' '.join(targets)} schedules nothing")
    return 0


def register(sub: argparse._SubParsersAction) -> None:
    repair = sub.add_parser(
        "repair",
        help="recompute exactly the damaged or missing files of a dataset's current store entries",
        description=(
            "Compare every file of the dataset's current store entries with the size (with --verify: also the "
            "sha256) its spec.json recorded when the entry completed, then recompute exactly the damaged ones "
            "through Snakemake, upstream stages first: a damaged shard is deleted and only its shard job runs "
            "(its log lists the images it recomputed); another file of a per-image stage (a seed PNG, "
            "metrics.json) reruns the stage's light finalize job; a file of a whole-set stage (prompts.pt, "
            "model.pt) reruns that whole training or evaluation job, at its full cost. Reused results count: "
            "images that link into an entry that is gone or damaged are recomputed into the entry that links "
            "them (its other images kept), and a damaged manifest.sqlite of any finished entry of the dataset is "
            "rebuilt from its shards in this process; then it looks again (up to 3 rounds), in case one fault hid "
            "another. Repaired files get their "
            "old modification times back (spec.json keeps its own; its record is updated where recomputed bytes "
            "differ), and a final dry run of the dataset's stable names must schedule nothing. Run it in the "
            "folder you run snakemake in, while no Snakemake run is going on there: it refuses, deleting "
            "nothing, when a snakemake process runs in that folder or Snakemake lock files are left in "
            ".snakemake/locks; otherwise it holds a Snakemake lock on the files it touches (its own Snakemake "
            "calls run with --nolock). Cost of --verify: reads every stored byte (sha256, ~1.4 GB/s a core)."
        ),
    )
    repair.add_argument("dataset", help="dataset name under `datasets:` in the config")
    repair.add_argument("--verify", action="store_true",
                        help="also compare sha256 (reads every stored byte; default: sizes only, one stat a file)")
    repair.add_argument("--dry-run", action="store_true", help="only list the damaged files and what repairs them")
    repair.add_argument("--cores", default="all", help="snakemake --cores for the repair jobs (default: %(default)s)")
    repair.add_argument("--snakefile", default=None,
                        help="the workflow's Snakefile (default: snakemake finds ./Snakefile)")
    repair.add_argument("--config", default="config.yaml", help="config file (default: %(default)s)")
    repair.add_argument("--snakemake-args", default="", metavar="'OPTIONS'",
                        help="more snakemake options for the repair jobs, one quoted string "
                             "(e.g. --snakemake-args='--profile workflow/profiles/slurm-mysite')")
    repair.set_defaults(func=_cmd_repair)
