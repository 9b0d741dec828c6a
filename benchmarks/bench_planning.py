"""Planning cost at full size: dry-run wall time and peak RSS per target, and one job's start cost.

    .venv/bin/python benchmarks/make_synthetic_trees.py /work/synth        # once, ~15 s
    .venv/bin/python benchmarks/bench_planning.py --trees /work/synth       # ~30 min at load 16 today
    .venv/bin/python benchmarks/bench_planning.py --smoke                   # tiny trees, seconds

Each scenario gets its own scratch working directory (the repo's config.yaml, the demo sample fetched into
data/, and for all but demo-only the ``voc`` and ``coco`` entries of the trees' config-snippet.yaml), so
its first dry-run finds nothing cached: that **cold** run is timed apart from the **warm** runs that follow
(anything the first run writes under results/, e.g. a dataset index, is then in place). Scenarios:

- ``demo only``: shipped config, ``results/demo/seeds`` (the baseline every ratio is against);
- ``demo, all configured``: voc and coco set too, same target;
- ``voc`` / ``coco``: ``results/{voc,coco}/seeds``.

Every measurement is a fresh ``snakemake -n --cores all`` process; wall time is from launch to exit, CPU time
(user + system) and peak RSS, the largest resident size, are its process tree's (``wait4``'s rusage). On a
shared machine wall time grows with the load and CPU time hardly does: read both. The job count is the
``total`` of Snakemake's job stats.

**Job start** (in the coco directory, after its dry-runs): one shard job of ``--job-rule`` run the way a
cluster job runs, ``python -m snakemake --target-jobs ... --mode remote`` (Snakefile parse, one-job DAG,
script launch, the job's own plan), on empty stand-ins for its missing upstream files. Its start cost is
the time from launch until the job's log has the line it writes once its plan is built (``--job-marker``); the
job then fails on the stand-ins, as intended. It is compared with ``python -c 'import torch'``, which every
job pays anyway. Ratios and differences are against baselines measured in the same run; the load average is
printed because the machine may be shared.
"""
from __future__ import annotations

import argparse
import json
import os
import re
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from dataclasses import asdict, dataclass
from pathlib import Path

import yaml

REPO = Path(__file__).resolve().parents[1]
BIN = Path(sys.executable).parent
sys.path.insert(0, str(Path(__file__).resolve().parent))

from make_synthetic_trees import SMOKE, Sizes, build_trees, default_samples  # noqa: E402

SCENARIOS = (  # name, datasets added to the shipped config, target
    ("demo only", False, "results/demo/seeds"),
    ("demo, all configured", True, "results/demo/seeds"),
    ("voc", True, "results/voc/seeds"),
    ("coco", True, "results/coco/seeds"),
)
TARGETS = {  # issue 11's goals once the dataset index exists, printed for reference only
    "demo, all configured": "within 1 s of demo only",
    "voc": "<= 5 s, <= 400 MB",
    "coco": "<= 10 s, <= 600 MB",
    "job start": "<= 3 s beyond torch",
}


@dataclass
class Run:
    """One measured process: wall and CPU (user + system) seconds and peak RSS in MB of its process tree."""

    wall: float
    cpu: float
    rss_mb: float
    rc: int
    output: str = ""


def measure(
    cmd: list[str], cwd: Path, env: dict[str, str], marker: tuple[Path, re.Pattern] | None = None,
    timeout: float = 3600,
) -> tuple[Run, float | None]:
    """Run ``cmd`` to completion; with ``marker`` (file, pattern) also the seconds until the file matches."""
    with tempfile.TemporaryFile("w+") as out:
        tic = time.perf_counter()
        proc = subprocess.Popen(cmd, cwd=cwd, env=env, stdout=out, stderr=subprocess.STDOUT, text=True,
                                start_new_session=True)
        marked = None
        while True:
            pid, status, usage = os.wait4(proc.pid, os.WNOHANG)
            if marker and marked is None and marker[0].is_file() and marker[1].search(marker[0].read_text()):
                marked = time.perf_counter() - tic
            if pid:
                break
            if time.perf_counter() - tic > timeout:
                os.killpg(proc.pid, signal.SIGKILL)  # its own session: the whole tree, nothing else
            time.sleep(0.02)
        wall = time.perf_counter() - tic
        proc.returncode = os.waitstatus_to_exitcode(status)
        out.seek(0)
        cpu = usage.ru_utime + usage.ru_stime
        return Run(wall, cpu, usage.ru_maxrss / 1024, proc.returncode, out.read()), marked


def job_total(output: str) -> int:
    """Jobs a dry-run would run: the ``total`` row of the job stats (0 when nothing is to be done)."""
    found = re.search(r"^total\s+(\d+)\s*$", output, re.MULTILINE)
    return int(found.group(1)) if found else 0


def job_blocks(output: str) -> list[dict[str, str]]:
    """The jobs of a dry-run's output: rule name and the ``field: value`` lines under it."""
    blocks: list[dict[str, str]] = []
    for line in output.splitlines():
        head = re.match(r"^(?:local)?rule (\w+):$", line)
        if head:
            blocks.append({"rule": head.group(1)})
        elif blocks and (field := re.match(r"^\s{4}(\w+): (.*)$", line)):
            blocks[-1].setdefault(field.group(1), field.group(2))
    return blocks


def make_workdir(path: Path, snippet: Path | None, samples: Path) -> Path:
    """A scratch working directory: the repo's config (plus the trees' datasets) and the demo sample."""
    if path.exists():
        raise SystemExit(f"{path} exists: give an empty --scratch folder (cold runs need fresh directories)")
    path.mkdir(parents=True)
    config = yaml.safe_load((REPO / "config.yaml").read_text())
    if snippet is not None:
        config["datasets"].update(yaml.safe_load(snippet.read_text())["datasets"])
    (path / "config.yaml").write_text(yaml.safe_dump(config, sort_keys=False))
    subprocess.run(
        [str(BIN / "fmwsss"), "data", "voc-sample", "--source", str(samples / "voc_sample"),
         "--dest", str(path / "data" / "voc_sample")],
        check=True, capture_output=True, text=True,
    )
    return path


class Bench:
    """Runs the scenarios in scratch directories under ``scratch`` and collects a table."""

    def __init__(self, scratch: Path, snippet: Path, samples: Path, warm: int, snakefile: Path):
        self.scratch, self.snippet, self.samples, self.warm = scratch, snippet, samples, warm
        self.snakefile = snakefile
        self.env = {**os.environ, "PATH": f"{BIN}{os.pathsep}{os.environ.get('PATH', '')}"}
        self.env.pop("FMWSSS_WEIGHTS_DIR", None)  # weights resolve inside each scratch directory
        self.rows: list[dict] = []
        self.workdirs: dict[str, Path] = {}
        self.dry_outputs: dict[str, str] = {}

    def snakemake(self, *args: str) -> list[str]:
        return [str(BIN / "snakemake"), "-s", str(self.snakefile), *args]

    def dry_run(self, wd: Path, target: str) -> Run:
        run, _ = measure(self.snakemake("-n", "--cores", "all", target), wd, self.env)
        if run.rc != 0:
            raise SystemExit(f"dry-run of {target} in {wd} failed ({run.rc}):\n{run.output[-4000:]}")
        return run

    def scenario(self, name: str, all_datasets: bool, target: str) -> None:
        wd = make_workdir(self.scratch / re.sub(r"\W+", "_", name), self.snippet if all_datasets else None,
                          self.samples)
        self.workdirs[name] = wd
        cold = self.dry_run(wd, target)
        self.dry_outputs[name] = cold.output
        warm = [self.dry_run(wd, target) for _ in range(self.warm)]
        self.rows.append({
            "what": name, "target": target, "jobs": job_total(cold.output),
            "cold_s": cold.wall, "cold_cpu": cold.cpu, "cold_mb": cold.rss_mb,
            "warm_s": min(r.wall for r in warm) if warm else None,
            "warm_cpu": min(r.cpu for r in warm) if warm else None,
            "warm_mb": max(r.rss_mb for r in warm) if warm else None,
        })
        print(f"  {name}: cold {cold.wall:.1f} s / {cold.rss_mb:.0f} MB, warm {[round(r.wall, 1) for r in warm]} s",
              file=sys.stderr)

    def torch_import(self, repeats: int) -> Run:
        runs = [measure([sys.executable, "-c", "import torch"], self.scratch, self.env)[0] for _ in range(repeats)]
        return min(runs, key=lambda r: r.wall)

    def job_start(self, dataset: str, rule: str, marker: str) -> dict:
        """One cluster-style job of ``rule`` (its first shard) in the ``dataset`` scenario's directory.

        Run after that scenario's dry-runs: the stand-in inputs it creates would change their job count.
        """
        wd = self.workdirs[dataset]
        jobs = [b for b in job_blocks(self.dry_outputs[dataset]) if b["rule"] == rule]
        jobs.sort(key=lambda b: b.get("wildcards", ""))
        if not jobs:
            raise SystemExit(f"no {rule} job in the dry-run of results/{dataset}/seeds")
        job = jobs[0]
        for path in filter(None, (p.strip() for p in job.get("input", "").split(","))):
            if not Path(path).is_absolute() and not (wd / path).exists():
                (wd / path).parent.mkdir(parents=True, exist_ok=True)
                (wd / path).touch()  # an empty stand-in: the job fails on it once started, as intended
        wildcards = job["wildcards"].replace(", ", ",")
        log = wd / job["log"]
        cmd = [sys.executable, "-m", "snakemake", "--snakefile", str(self.snakefile),
               "--target-jobs", f"{rule}:{wildcards}", "--allowed-rules", rule, "--cores", "1",
               "--attempt", "1", "--force-use-threads", "--nolock", "--latency-wait", "0", "--mode", "remote"]
        run, started = measure(cmd, wd, self.env, (log, re.compile(marker)))
        if started is None:
            tail = log.read_text()[-2000:] if log.is_file() else run.output[-2000:]
            raise SystemExit(f"the {rule} job never logged {marker!r}; its log ends:\n{tail}")
        return {"rule": rule, "wildcards": wildcards, "start_s": started, "exit_s": run.wall,
                "exit_cpu": run.cpu, "rss_mb": run.rss_mb}


def load() -> str:
    return "load average " + ", ".join(f"{x:.2f}" for x in os.getloadavg())


def table(rows: list[dict], torch: Run, job: dict) -> str:
    """Markdown tables; each run as ``wall s (cpu s), peak MB``: CPU time barely moves with the machine's load."""
    kind = "warm" if rows[0]["warm_s"] is not None else "cold"
    base = rows[0]
    lines = [
        f"| what | target | jobs | cold run | warm run | {kind} / demo only (wall, cpu, RSS) | issue 11 goal |",
        "|---|---|---:|---|---|---|---|",
    ]

    def cell(r: dict, k: str) -> str:
        return f"{r[f'{k}_s']:.1f} s ({r[f'{k}_cpu']:.1f} s cpu), {r[f'{k}_mb']:.0f} MB"

    for r in rows:
        ratio = "x, ".join(f"{r[f'{kind}_{m}'] / base[f'{kind}_{m}']:.1f}" for m in ("s", "cpu", "mb"))
        warm = cell(r, "warm") if r["warm_s"] is not None else "not run"
        lines.append(f"| {r['what']} | `{r['target']}` | {r['jobs']} | {cell(r, 'cold')} | {warm} | {ratio}x | "
                     f"{TARGETS.get(r['what'], 'baseline')} |")
    beyond = job["start_s"] - torch.wall
    lines += [
        "",
        "| job start (coco) | wall | peak RSS |",
        "|---|---|---|",
        f"| `python -c 'import torch'` | {torch.wall:.1f} s ({torch.cpu:.1f} s cpu) | {torch.rss_mb:.0f} MB |",
        f"| `{job['rule']}` {job['wildcards']}: launch to planned | {job['start_s']:.1f} s "
        f"(**{beyond:+.1f} s** beyond torch, {job['start_s'] / torch.wall:.1f}x) | {job['rss_mb']:.0f} MB to exit "
        f"({job['exit_s']:.1f} s, {job['exit_cpu']:.1f} s cpu) |",
        f"| issue 11 goal | {TARGETS['job start']} | |",
    ]
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0], epilog=__doc__.split("\n\n", 1)[1],
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--trees", type=Path, help="folder from make_synthetic_trees.py (holds config-snippet.yaml); "
                    "with --smoke and no --trees, tiny trees are built in the scratch folder")
    ap.add_argument("--smoke", action="store_true", help="tiny trees, cold runs only: seconds, for the test suite")
    ap.add_argument("--warm", type=int, help="warm dry-runs per scenario after the cold one (default 2; smoke 0)")
    ap.add_argument("--samples", type=Path, default=None, help="shared sample folder (default as make_synthetic_trees)")
    ap.add_argument("--scratch", type=Path,
                    help="where the working directories go, kept (default: a temporary folder, removed)")
    ap.add_argument("--snakefile", type=Path, default=REPO / "Snakefile")
    ap.add_argument("--job-rule", default="cams_coarse_dump", help="rule of the job whose start is timed")
    ap.add_argument("--job-marker", default=r"shard \S+ of \w+, \d+ images",
                    help="regex of the job's first log line after its plan is built")
    ap.add_argument("--json", type=Path, help="also write the measurements here")
    args = ap.parse_args(argv)
    if args.trees is None and not args.smoke:
        ap.error("give --trees (built by benchmarks/make_synthetic_trees.py) or --smoke")
    samples = (args.samples or default_samples()).resolve()
    warm = args.warm if args.warm is not None else (0 if args.smoke else 2)
    keep = args.scratch is not None
    scratch = args.scratch or Path(tempfile.mkdtemp(prefix="bench_planning_"))
    scratch.mkdir(parents=True, exist_ok=True)
    try:
        if args.trees is None:
            build_trees(scratch / "trees", samples, Sizes(**SMOKE))
            args.trees = scratch / "trees"
        snippet = args.trees / "config-snippet.yaml"
        print(f"bench_planning: trees {args.trees}, {load()}", file=sys.stderr)
        bench = Bench(scratch, snippet, samples, warm, args.snakefile.resolve())
        torch = bench.torch_import(1 if args.smoke else 3)
        for name, all_datasets, target in SCENARIOS:
            bench.scenario(name, all_datasets, target)
        job = bench.job_start("coco", args.job_rule, args.job_marker)
        after = load()
    finally:
        if not keep:
            shutil.rmtree(scratch, ignore_errors=True)
    print(table(bench.rows, torch, job))
    print(f"\n{warm} warm run(s) per scenario (best wall, max RSS); {after} at the end; trees {args.trees}")
    if args.json:
        args.json.write_text(json.dumps({"scenarios": bench.rows, "torch_import": asdict(torch) | {"output": ""},
                                         "job_start": job, "load_end": after}, indent=1))


if __name__ == "__main__":
    main()
