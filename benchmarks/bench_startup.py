"""Benchmark: each job's start-up, rule by rule, against ``import torch`` measured in the same run.

Every Snakemake script job of fmwsss logs one ``startup:`` line (``fmwsss/io/startup.py``): the interpreter
and Snakemake's script preamble (``python``), ``import torch``, the stage's own imports, the index read,
the image and weight checks, the model load and its first image or iteration. This script reads those lines
from a finished run's logs (``--workdir``, default: the demo of ``make demo``), prints the median of each
phase per rule with the time beyond ``import torch``, and the baseline: ``import torch`` timed here in fresh
interpreters (median of ``--repeat``). A rule whose jobs computed nothing (every image reused) shows ``rest``
instead of a first item. The ratio job start-up beyond torch / ``import torch`` is what the start-up costs
on top of the one import every job pays.

    .venv/bin/python benchmarks/bench_startup.py [--workdir .] [--dataset demo] [--repeat 5] [--smoke]
"""
from __future__ import annotations

import argparse
import statistics
import subprocess
import sys
import time
from collections import defaultdict
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
PHASES = ("python", "torch", "imports", "index", "reuse lookup", "image check", "weight check", "model load")


def import_torch_seconds(repeat: int) -> float:
    """Median wall time of ``python -c 'import torch'`` in fresh interpreters (this machine, now)."""
    times = []
    for _ in range(repeat):
        tic = time.perf_counter()
        subprocess.run([sys.executable, "-c", "import torch"], check=True)
        times.append(time.perf_counter() - tic)
    return statistics.median(times)


def job_records(logs: Path) -> dict[str, list[dict[str, float]]]:
    """rule -> the start-up records of its jobs, from ``logs/<stage>/...log`` (``finalize.log``: the stage's
    finalize rule; the ``run:`` finalize of sam_masks runs in the main process and records nothing)."""
    from fmwsss.io.startup import parse_line

    records: dict[str, list[dict[str, float]]] = defaultdict(list)
    for log in sorted(logs.rglob("*.log")):
        rule = log.relative_to(logs).parts[0] + ("_finalize" if log.stem == "finalize" else "")
        for line in log.read_text(errors="replace").splitlines():
            phases = parse_line(line)
            if phases is not None:
                records[rule].append(phases)
                break
    return dict(records)


def _cell(values: list[float]) -> str:
    return f"{statistics.median(values):6.2f}" if values else "     -"


def table(records: dict[str, list[dict[str, float]]], torch_seconds: float) -> list[str]:
    """One row per rule: median seconds of each phase, the total, beyond torch, and its ratio to torch."""
    head = ["rule", "jobs", *PHASES, "first item", "total", "beyond torch", "/ import torch"]
    rows = ["  ".join(f"{h:>12}" if i else f"{h:<24}" for i, h in enumerate(head))]
    for rule, recs in sorted(records.items()):
        def phase(name):
            return [r[name] for r in recs if name in r]
        first = [sum(v for k, v in r.items() if k.startswith("first ") or k == "rest") for r in recs]
        totals = [sum(r.values()) for r in recs]
        beyond = [sum(r.values()) - r.get("torch", 0.0) for r in recs]
        cells = [_cell(phase(p)) for p in PHASES] + [_cell(first), _cell(totals), _cell(beyond)]
        ratio = statistics.median(beyond) / torch_seconds
        rows.append("  ".join([f"{rule:<24}", f"{len(recs):>12}", *(f"{c:>12}" for c in cells),
                               f"{ratio:>13.2f}x"]))
    return rows


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--workdir", default=".", help="folder holding a finished run's results/")
    parser.add_argument("--dataset", default="demo")
    parser.add_argument("--repeat", type=int, default=5, help="fresh interpreters timed for the baseline")
    parser.add_argument("--smoke", action="store_true", help="one baseline interpreter (seconds)")
    args = parser.parse_args(argv)
    sys.path.insert(0, str(ROOT))
    logs = Path(args.workdir).resolve() / "results" / args.dataset / "logs"
    records = job_records(logs) if logs.is_dir() else {}
    if not records:
        print(f"no job start-up records under {logs}: run the workflow first (make demo)", file=sys.stderr)
        return 1
    torch_seconds = import_torch_seconds(1 if args.smoke else args.repeat)
    print(f"job start-up of {args.dataset} ({sum(map(len, records.values()))} jobs with a record, {logs}); "
          f"median seconds per phase")
    print("\n".join(table(records, torch_seconds)))
    print(f"baseline: import torch {torch_seconds:.2f} s (median of {1 if args.smoke else args.repeat} fresh "
          f"interpreters, this machine, now)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
