"""``fmwsss cost DATASET [--from SOURCE] [--gpus N] [--json]``: the wall time of each stage of a full run of
DATASET, projected from the timing records of SOURCE's finished run on this machine (the arithmetic:
:mod:`fmwsss.pipeline.cost`; the records: :mod:`fmwsss.io.timing`)."""
from __future__ import annotations

import argparse
import json
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from fmwsss.io.timing import TimingRecord
    from fmwsss.pipeline.config import Config
    from fmwsss.pipeline.cost import Counts, Row
    from fmwsss.pipeline.plan import Plan

DEFAULT_SOURCE = "rehearsal"
DIFFERENCES_SHOWN = 4  # settings listed per stage before "and N more"


def duration_text(seconds: float) -> str:
    """Seconds as the two largest units that matter: ``12 s``, ``4 min 10 s``, ``3 h 05 min``, ``2 d 04 h``."""
    s = round(seconds)
    if seconds < 60:
        return f"{seconds:.1f} s" if seconds < 10 else f"{s} s"
    if s < 3600:
        return f"{s // 60} min {s % 60:02d} s"
    if s < 86400:
        return f"{s // 3600} h {s % 3600 // 60:02d} min"
    return f"{s // 86400} d {s % 86400 // 3600:02d} h"


def _seconds(value: float) -> str:
    """A unit cost: three significant digits, whole seconds from 1000 on (never ``1e+03``)."""
    return f"{value:.3g}" if value < 1000 else f"{value:,.0f}"


def _source_records(plan: Plan, name: str) -> tuple[dict[str, list[TimingRecord]], dict[str, str]]:
    """(records by row, rows SOURCE did not run with why) of SOURCE's current entries, found as ``fmwsss
    status`` finds them; ``ValueError`` naming the stages not finished and the command that finishes them."""
    from fmwsss.io.timing import read_records
    from fmwsss.pipeline.cost import VAL_STAGES
    from fmwsss.pipeline.stages import SCORES, STAGES

    ds = plan.get(name)
    has_val = bool(ds.dataset.splits.get("val"))
    records, absent, missing = {}, {}, []
    entries = [(stage, plan.product(name, stage), plan.store(name, stage)) for stage in STAGES]
    entries += [(s.name, plan.score_product(name, s.stage), plan.score_store(name, s.stage)) for s in SCORES.values()]
    for row, product, store in entries:
        if Path(product).exists():
            records[row] = read_records(store)
        elif row in VAL_STAGES and not has_val:
            absent[row] = f"{name} has no 'val' split"
        else:
            missing.append(row)
    if missing:
        target = "deeplab" if has_val else "seeds"
        raise ValueError(f"the source run {name} is not finished: {', '.join(missing)} not done (`fmwsss status "
                         f"{name}`); run `snakemake --cores all results/{name}/{target}` first")
    return records, absent


def _counts(plan: Plan, name: str) -> tuple[Counts, str | None]:
    """DATASET's image counts from its index on this machine (read without opening the dataset), else the
    standard split sizes of its type; and a note when an index was there but unusable."""
    from fmwsss.data.index import index_path, open_index
    from fmwsss.pipeline.cost import Counts, standard_counts

    entry = plan.config.datasets[name]
    path = index_path(plan.results, name)
    note = None
    if path.is_file():
        try:
            index = open_index(path, name, entry)
            val = index.splits.get("val")
            return Counts(index.num_ids, len(val) if val else None, f"index {path}"), None
        except (OSError, ValueError) as exc:
            note = f"note: {path} not used ({exc})"
    return standard_counts(name, entry["type"], (entry.get("options") or {}).get("split")), note


def _machines(records: dict[str, list[TimingRecord]]) -> list[str]:
    """One line per machine the records came from (host, device, CPU, threads), with its stages."""
    from fmwsss.io.timing import plural

    by_machine: dict[tuple, list[str]] = {}
    for row, found in records.items():
        for r in found:
            if r.items:
                stages = by_machine.setdefault((r.host, r.device, r.cpu, r.threads), [])
                if row not in stages:
                    stages.append(row)
    return [f"measured on {host}: {device} (CPU {cpu}, {threads} {plural('thread', threads)}): {', '.join(stages)}"
            for (host, device, cpu, threads), stages in by_machine.items()]


def _items_text(row: Row) -> str:
    from fmwsss.io.timing import plural

    n = row.need
    if n.items is None:
        return "-"
    jobs = f" ({n.jobs} jobs)" if n.splits else ""
    return f"{n.items:,} {plural(n.unit, n.items)}{jobs}"


def _many_text(row: Row) -> str:
    """The N-GPU cell; a stage that does not split over GPUs says why it is the 1-GPU figure again."""
    from fmwsss.pipeline.stages import STAGES

    if row.n_gpus is None:
        return ""
    if row.need.splits:
        return duration_text(row.n_gpus)
    alone = ("1 CPU job" if row.stage not in STAGES else "1 GPU: does not split" if row.need.unit == "iteration"
             else "1 job on 1 GPU")
    return f"{duration_text(row.n_gpus)} ({alone})"


def _table(table: list[Row], gpus: int, dataset: str) -> list[str]:
    from fmwsss.io.timing import PEAK_KINDS, memory_text, plural
    from fmwsss.pipeline.cost import total

    head = ("stage", "unit cost", "peak memory", f"items ({dataset})", "1 GPU", f"{gpus} {plural('GPU', gpus)} (--gpus)")
    lines = [head]
    for r in table:
        m = r.measured
        cost = f"{_seconds(m.seconds_per_item)} s/{m.unit}" if m else ""
        peak = f"{memory_text(m.peak_memory_bytes)} {PEAK_KINDS[m.peak_memory_kind].split()[0]}" if m else ""
        one = duration_text(r.one_gpu) if r.one_gpu is not None else r.why
        lines.append((r.stage + (" *" if r.differs else ""), cost, peak, _items_text(r), one, _many_text(r)))
    one, many = total(table)
    skipped = [r.stage for r in table if r.one_gpu is None and r.need.items is not None]
    lines.append(("total (serial)", "", "", "", duration_text(one), duration_text(many)))
    widths = [max(len(line[i]) for line in lines) for i in range(len(head) - 1)]
    out = ["  ".join(cell.ljust(w) for cell, w in zip(line, widths)) + "  " + line[-1] for line in lines]
    if skipped:
        out.append(f"(the total leaves out {', '.join(skipped)}: not measured)")
    return out


def _notes(args: argparse.Namespace, config: Config, index_note: str | None, test_models: list[str]) -> list[str]:
    """What the reader must know before trusting the table: an index not used, other images, test models."""
    from fmwsss.models.weights import get_weight
    from fmwsss.pipeline.cost import other_images

    notes = [index_note] if index_note else []
    types = (config.datasets[args.source]["type"], config.datasets[args.dataset]["type"])
    if other_images(*types):
        notes.append(f"note: {args.source} is a {types[0]} dataset and {args.dataset} a {types[1]} one: other images "
                     f"(sizes, objects, class count), so per-image costs carry over only roughly")
    tiny = [name for name in test_models if get_weight(name).tiny]
    full_size = [name for name in test_models if not get_weight(name).tiny]
    if tiny:
        notes.append(f"WARNING: {args.source} ran with test models ({', '.join(tiny)}: random weights, tiny "
                     f"architectures): these figures measure the pipeline's mechanics, not the cost of the real "
                     f"models; rehearse with the real weights before budgeting GPU time.")
    if full_size:
        notes.append(f"note: {args.source} ran with full-size random-weight test models ({', '.join(full_size)}): "
                     f"the real architectures, so their times and memory are the real models', except where the work "
                     f"follows what the weights produce: a random SAM keeps few or no masks after its filters, so "
                     f"SAM's post-processing and the seeding cost less here than with the real SAM (the GPU suite's "
                     f"`sam load` row times SAM at a real load of masks).")
    return notes


def _report_lines(args: argparse.Namespace, table: list[Row], counts: Counts, records: dict[str, list[TimingRecord]],
                  notes: list[str]) -> list[str]:
    from fmwsss.io.timing import plural

    val = f", {counts.val:,} in its 'val' split" if counts.val is not None else ", no 'val' split"
    lines = [f"fmwsss cost {args.dataset}: projected from the finished run of {args.source} "
             f"(results/{args.source}, {args.config}) on {args.gpus} {plural('GPU', args.gpus)}",
             *_machines(records),
             f"{args.dataset}: {counts.run:,} images{val} ({counts.source})",
             *notes]
    for r in table:
        if r.differs:
            shown = "; ".join(r.differs[:DIFFERENCES_SHOWN])
            more = f"; and {len(r.differs) - DIFFERENCES_SHOWN} more" if len(r.differs) > DIFFERENCES_SHOWN else ""
            lines.append(f"* {r.stage}: settings differ between {args.source} and {args.dataset} ({shown}{more}): "
                         f"its projection does not transfer")
    return lines + [""] + _table(table, args.gpus, args.dataset)


def _json(args: argparse.Namespace, table: list[Row], counts: Counts, records: dict[str, list[TimingRecord]],
          notes: list[str], test_models: list[str]) -> dict[str, Any]:
    from fmwsss.pipeline.cost import total

    def row(r: Row) -> dict[str, Any]:
        m = r.measured
        return {"stage": r.stage, "unit": r.need.unit, "items": r.need.items, "jobs": r.need.jobs,
                "splits_over_gpus": r.need.splits, "seconds_per_item": m.seconds_per_item if m else None,
                "startup_seconds": m.startup_seconds if m else None,
                "peak_memory_bytes": m.peak_memory_bytes if m else None,
                "peak_memory_kind": m.peak_memory_kind if m else None,
                "one_gpu_seconds": r.one_gpu, "n_gpus_seconds": r.n_gpus, "note": r.why,
                "settings_differ": list(r.differs)}

    one, many = total(table)
    return {"dataset": args.dataset, "source": args.source, "gpus": args.gpus, "machines": _machines(records),
            "counts": {"run": counts.run, "val": counts.val, "source": counts.source}, "test_models": test_models,
            "notes": notes, "rows": [row(r) for r in table],
            "total": {"one_gpu_seconds": one, "n_gpus_seconds": many}}


def _cmd_cost(args: argparse.Namespace) -> int:
    from fmwsss.models.weights import is_test_model
    from fmwsss.pipeline.config import Config
    from fmwsss.pipeline.cost import rows
    from fmwsss.pipeline.plan import Plan

    if args.gpus < 1:
        raise ValueError(f"--gpus {args.gpus}: at least 1")
    config = Config.from_file(args.config)
    known = ", ".join(config.datasets)
    if args.dataset not in config.datasets:
        raise ValueError(f"{args.config}: datasets.{args.dataset}: no such dataset (known: {known}); a run to cost "
                         f"needs an entry of its own (its root may stay null)")
    if args.source not in config.datasets:
        raise ValueError(f"{args.config}: datasets.{args.source}: no such dataset (known: {known}); --from names the "
                         f"finished run to measure from")
    plan = Plan(config)
    records, absent = _source_records(plan, args.source)
    counts, index_note = _counts(plan, args.dataset)
    source, target = config.settings(args.source), config.settings(args.dataset)
    table = rows(source, target, counts, records, absent, args.gpus)
    test_models = sorted({m for m in source["models"].values() if is_test_model(m)})
    notes = _notes(args, config, index_note, test_models)
    if args.json:
        print(json.dumps(_json(args, table, counts, records, notes, test_models), indent=2))
    else:
        print("\n".join(_report_lines(args, table, counts, records, notes)))
    return 0


def register(sub: argparse._SubParsersAction) -> None:
    cost = sub.add_parser(
        "cost",
        help="project the wall time of each stage of a full run of DATASET from a finished rehearsal run",
        description=(
            "Read the timing records (store entries' timing/ folders) of the finished run of SOURCE on this "
            "machine (its current entries, as `fmwsss status` finds them) and project, stage by stage, what a run "
            "of DATASET costs: unit cost (seconds per image or per iteration) x the images or iterations DATASET "
            "needs, plus each job's start-up; per-image stages split their shard jobs over --gpus GPUs, training, "
            "DeepLab evaluation and the score jobs do not. Images come from DATASET's index where this machine "
            "has one, else from the standard split sizes of VOC 2012 / COCO 2014. Stages whose settings (other "
            "than iteration counts and initialisation) differ between SOURCE and DATASET are named: their "
            "projection does not transfer; a SOURCE run with the tiny test models measures mechanics, not the "
            "real models' cost; the full-size random ones (`make rehearsal`) have the real architectures."
        ),
    )
    cost.add_argument("dataset", help="the dataset to cost (a name under `datasets:`; its data need not be here)")
    cost.add_argument("--from", dest="source", default=DEFAULT_SOURCE,
                      help="the finished run to measure from (default: %(default)s)")
    cost.add_argument("--gpus", type=int, default=1, help="GPUs the per-image stages spread over (default: %(default)s)")
    cost.add_argument("--json", action="store_true", help="print the figures as JSON instead of the table")
    cost.add_argument("--config", default="config.yaml", help="config file (default: %(default)s)")
    cost.set_defaults(func=_cmd_cost)
