"""The tiny workflow on a real one-node SLURM cluster, through the shipped profile.

Run by tests/slurm/run.sh (`make test-slurm`), which starts munged, slurmctld and slurmd and exports
FMWSSS_SLURM_TEST=1; skipped anywhere else. Three runs of the whole chain to the seeds, each in a fresh
working directory with the test's own config.yaml (the demo, shrunk further to fit the 12-minute budget):

* local: the reference, plain `snakemake --cores 2` with the same --set-threads as the test profile;
* slurm: the test profile (the shipped one with only node specifics changed), everything computed afresh:
  one sbatch job per non-local job, outputs identical to the local run's and not trivial;
* cancel: the same, stalled by FMWSSS_TEST_STALL after 2 images of each sam_masks job; one job is
  scancel'ed mid-shard, the rest after Snakemake reports it; the README's recovery commands must then
  finish the target (through every later stage) with the same outputs and nothing half-written.

FMWSSS_SLURM_TARGET switches the target (default results/demo/seeds; results/demo/sam_masks is quicker).
"""
from __future__ import annotations

import json
import os
import re
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path

import pytest
import yaml

from tests.processes import scaled
from tests.samples import sample_dir

from .slurm_profile import SHIPPED, ROOT, allowed, changed_paths, for_test_cluster, load

BIN = Path(sys.executable).parent
TARGET = os.environ.get("FMWSSS_SLURM_TARGET", "results/demo/seeds")
PARTITION = os.environ.get("FMWSSS_SLURM_PARTITION", "test")
THREADS = 1  # per job: two jobs share the 2-core test node
STALL = "sam_masks:2"
RUN_TIMEOUT = 420
# The demo preset shrunk for this test (measured on the 2-core test VM: ~2 min per run to the seeds, not
# ~4-5). shard_size 12: two shards per per-image stage, so both CPUs work and 16 jobs run instead of 21
# (each pays ~6 s of torch import plus a SLURM status poll). points_per_side stays 8: at 6 the emptiest
# demo image gets 19 masks, below MIN_MASKS. Eight prompt-training iterations still give multi-label seeds.
TEST_PRESET = {
    "data": {"shard_size": 12},
    "sam": {"points_per_side": 8},
    "prompts_cls": {"iterations": 8, "warmup_iters": 2, "batch_size": 2},
    "prompts_seg": {"iterations": 8, "warmup_iters": 2, "batch_size": 2},
}
MIN_MASKS = 20  # SAM masks per image, at least: the seeds must come from real mask sets

pytestmark = [
    pytest.mark.e2e,
    pytest.mark.slow,
    pytest.mark.skipif(
        os.environ.get("FMWSSS_SLURM_TEST") != "1",
        reason="needs the one-node SLURM cluster started by tests/slurm/run.sh (make test-slurm)",
    ),
]


# -- helpers ----------------------------------------------------------------------------------------
def sh(*cmd: str, **kw) -> str:
    return subprocess.run(cmd, check=True, capture_output=True, text=True, **kw).stdout


def node_caps() -> tuple[int, int]:
    """(CPUs, memory MB) of the test partition's node, as slurmctld sees it."""
    cpus, mem = sh("sinfo", "-h", "-p", PARTITION, "-o", "%c %m").split()[:2]
    return int(cpus), int(mem.rstrip("+"))


def job_states() -> dict[str, tuple[str, str]]:
    """SLURM job id -> (state, comment) of every job slurmctld still remembers (MinJobAge=600)."""
    out = sh("squeue", "--states=all", "-h", "-o", "%i|%T|%k")
    return {i: (s, c) for i, s, c in (line.split("|", 2) for line in out.splitlines() if line)}


def sbatch_request(slurm_id: str) -> dict[str, str]:
    """What slurmctld recorded for a job (partition, CPUs, memory, TRES, time limit)."""
    out = sh("scontrol", "show", "job", "-o", slurm_id)
    return dict(kv.split("=", 1) for kv in out.split() if "=" in kv)


def time_limit(runtime: int | str) -> str:
    """SLURM's HH:MM:SS for a profile runtime (minutes, or "<n>h")."""
    minutes = int(runtime[:-1]) * 60 if isinstance(runtime, str) and runtime.endswith("h") else int(runtime)
    return f"{minutes // 60:02d}:{minutes % 60:02d}:00"


@dataclass
class Run:
    path: Path
    log: str = ""

    def snakemake(self, *args: str, env: dict | None = None, timeout: int = RUN_TIMEOUT) -> subprocess.CompletedProcess:
        proc = subprocess.run(
            [str(BIN / "snakemake"), "-s", str(ROOT / "Snakefile"), *args],
            cwd=self.path, env={**os.environ, **(env or {})}, capture_output=True, text=True, timeout=scaled(timeout),
        )
        self.log += proc.stdout + proc.stderr
        return proc

    def jobs(self) -> dict[int, tuple[str, bool, str]]:
        """Snakemake job id -> (rule, local?, log file) of every job this run's log announced."""
        blocks = re.finditer(r"^(local)?rule (\w+):\n((?:    .*\n)+)", self.log, re.M)
        out = {}
        for b in blocks:
            jobid = int(re.search(r"^    jobid: (\d+)$", b[3], re.M)[1])
            logfile = re.search(r"^    log: (\S+)", b[3], re.M)
            out[jobid] = (b[2], b[1] == "local", logfile[1] if logfile else "")
        return out

    def submitted(self) -> list[tuple[int, str]]:
        """(Snakemake job id, SLURM job id) of every sbatch the executor reported."""
        return [(int(a), b) for a, b in re.findall(r"Job (\d+) has been submitted with SLURM jobid (\d+)", self.log)]


def shrunk_config() -> dict:
    """The shipped config.yaml with the demo preset shrunk by TEST_PRESET (test data, not the profile)."""
    config = load(ROOT / "config.yaml")
    demo = config["presets"]["demo"]
    for section, values in TEST_PRESET.items():
        demo.setdefault(section, {}).update(values)
    return config


def fresh(path: Path) -> Run:
    """A fresh working directory: the test's config.yaml and the fetched demo images."""
    path.mkdir(parents=True)
    (path / "config.yaml").write_text(yaml.safe_dump(shrunk_config(), sort_keys=False))
    sh(str(BIN / "fmwsss"), "data", "voc-sample", "--source", str(sample_dir("voc_sample")),
       "--dest", str(path / "data" / "voc_sample"))
    return Run(path)


def store_files(run: Run) -> dict[str, Path]:
    """Every result file of every store entry (relative path -> path); logs and benchmarks live outside store/,
    and each entry's timing records (``<entry>/timing/``: seconds and memory of this run, in no key and outside
    the integrity record) differ from run to run by nature."""
    from fmwsss.io.timing import FOLDER

    return {
        str(p.relative_to(run.path)): p
        for p in sorted(run.path.glob("results/*/store/**/*"))
        if p.is_file() and not any(part.endswith(".partial") for part in p.parts)
        and p.relative_to(run.path).parts[5:6] != (FOLDER,)  # results/<ds>/store/<stage>/<key>/timing
    }


def h5_contents(path: Path) -> dict[str, object]:
    """Decoded datasets and attributes of an HDF5 file (layout and free space ignored)."""
    import h5py
    import numpy as np

    def norm(v):
        return v.tolist() if isinstance(v, np.ndarray) else v

    out: dict[str, object] = {}
    with h5py.File(path, "r") as fh:
        out["/@"] = {k: norm(v) for k, v in fh.attrs.items()}

        def visit(name, obj):
            out[f"{name}@"] = {k: norm(v) for k, v in obj.attrs.items()}
            if isinstance(obj, h5py.Dataset):
                data = obj[()]
                out[name] = (str(obj.dtype), obj.shape, data.tobytes() if isinstance(data, np.ndarray) else data)

        fh.visititems(visit)
    return out


def contents(path: Path) -> object:
    if path.suffix == ".h5":
        return h5_contents(path)
    if path.name == "spec.json":
        return spec_contents(path)
    if path.suffix == ".json":
        return json.loads(path.read_text())
    return path.read_bytes()


def spec_contents(path: Path) -> dict:
    """A spec.json, whose file record holds the sha256 of each HDF5 container: a resumed shard holds the same
    content in other bytes (compared by ``h5_contents``), so only its name counts there."""
    from fmwsss.pipeline.integrity import RECORD_KEY

    spec = json.loads(path.read_text())
    record = spec.get(RECORD_KEY, {})
    spec[RECORD_KEY] = {name: (True if name.endswith(".h5") else entry) for name, entry in record.items()}
    return spec


def assert_same_outputs(run: Run, reference: Run) -> None:
    ours, theirs = store_files(run), store_files(reference)
    assert sorted(ours) == sorted(theirs), "store paths (hence keys) differ between SLURM and local runs"
    for rel in ours:
        assert contents(ours[rel]) == contents(theirs[rel]), f"{rel} differs from the local run's"
    alias = run.path / TARGET
    assert alias.is_symlink() and os.readlink(alias) == os.readlink(reference.path / TARGET)


def assert_not_trivial(run: Run) -> None:
    """Every image got >= MIN_MASKS SAM masks; at least half of the final seed maps hold >= 2 labels."""
    import numpy as np
    from PIL import Image

    from fmwsss.sam.shards import SamShardReader

    counts = {}
    for shard in run.path.glob("results/*/store/sam_masks/*/*.h5"):
        with SamShardReader(shard) as reader:
            counts.update({i: len(reader.read(i).masks) for i in reader.ids()})
    assert counts and min(counts.values()) >= MIN_MASKS, f"too few SAM masks: {sorted(counts.values())}"
    for stage in ("seeds_coarse", "seeds_fine"):
        seeds = sorted(run.path.glob(f"results/*/store/{stage}/*/*.png"))
        if "seeds" in TARGET:
            assert len(seeds) == len(counts), f"{stage}: {len(seeds)} seed PNGs for {len(counts)} images"
        labels = [len(np.unique(np.asarray(Image.open(p)))) for p in seeds]
        assert sum(n >= 2 for n in labels) * 2 >= len(labels), f"{stage}: labels per seed map {labels}"


def assert_nothing_half_written(run: Run) -> None:
    from fmwsss.io.shards import require_complete

    store = list(run.path.glob("results/*/store"))
    leftovers = [p for s in store for p in s.rglob("*") if p.is_file() and (".partial" in str(p) or ".tmp" in p.name)]
    assert leftovers == [], f"half-written files left: {leftovers}"
    for rel, path in store_files(run).items():
        if path.suffix == ".h5":
            require_complete(path)


# -- fixtures ---------------------------------------------------------------------------------------
@pytest.fixture(scope="module")
def profile(tmp_path_factory) -> Path:
    cpus, mem = node_caps()
    assert cpus >= 2 * THREADS, f"the test node needs >= {2 * THREADS} CPUs, has {cpus}"
    prof = for_test_cluster(load(SHIPPED), PARTITION, mem_cap_mb=min(4000, mem // 4), threads=THREADS)
    folder = tmp_path_factory.mktemp("profile")
    (folder / "config.yaml").write_text(yaml.safe_dump(prof, sort_keys=False))
    return folder


@pytest.fixture(scope="module")
def local_run(tmp_path_factory, profile) -> Run:
    run = fresh(tmp_path_factory.mktemp("slurm") / "local")
    threads = [f"{rule}={n}" for rule, n in load(profile / "config.yaml")["set-threads"].items()]
    # two jobs at once (without a GPU the gpu resource is 1, which would serialise them); threads as on SLURM
    start = time.monotonic()
    proc = run.snakemake("--cores", "2", TARGET, "--resources", "gpu=2", "--set-threads", *threads)
    print(f"\nlocal reference run of {TARGET}: {time.monotonic() - start:.0f} s, rc {proc.returncode}")
    assert proc.returncode == 0, run.log[-4000:]
    return run


@pytest.fixture(scope="module")
def slurm_run(tmp_path_factory, profile) -> Run:
    run = fresh(tmp_path_factory.mktemp("slurm") / "slurm")
    start = time.monotonic()
    proc = run.snakemake("--profile", str(profile), TARGET)
    print(f"\nSLURM run of {TARGET}: {time.monotonic() - start:.0f} s, rc {proc.returncode}")
    assert proc.returncode == 0, run.log[-6000:]
    return run


# -- tests ------------------------------------------------------------------------------------------
def test_test_profile_changes_only_node_specifics(profile):
    shipped, ours = load(SHIPPED), load(profile / "config.yaml")
    changes = changed_paths(shipped, ours)
    assert changes, "the test profile should differ (partition, gpu: 0, caps)"
    assert {c for c in changes if not allowed(c)} == set()
    assert all(res["gpu"] == 0 for res in ours["set-resources"].values() if "gpu" in res)


def test_one_sbatch_job_per_remote_job(slurm_run, profile):
    jobs = slurm_run.jobs()
    remote = {j for j, (_, local, _) in jobs.items() if not local}
    submitted = slurm_run.submitted()
    print("sbatch job ids (Snakemake job -> SLURM job):",
          ", ".join(f"{jobs[j][0]} {j} -> {s}" for j, s in submitted))
    assert remote, "no job was submitted to SLURM"
    assert sorted(j for j, _ in submitted) == sorted(remote), "every non-local job exactly one sbatch"
    slurm_ids = [s for _, s in submitted]
    assert len(set(slurm_ids)) == len(slurm_ids)
    states = job_states()
    for jobid, slurm_id in submitted:
        state, comment = states[slurm_id]
        assert state == "COMPLETED" and comment.startswith(f"rule_{jobs[jobid][0]}"), (slurm_id, state, comment)
        # the profile's resources reached sbatch: partition, threads as CPUs, memory, wall time, no GPU
        prof = load(profile / "config.yaml")
        want = {**prof["default-resources"], **prof["set-resources"].get(jobs[jobid][0], {})}
        got = sbatch_request(slurm_id)
        assert (got["Partition"], got["NumCPUs"], got["MinMemoryNode"], got["TimeLimit"]) == (
            PARTITION, str(THREADS), f"{want['mem_mb']}M", time_limit(want["runtime"])), got
        assert "gpu" not in got["TRES"], got["TRES"]
    assert {rule for rule, local, _ in jobs.values() if local} >= {"alias"}  # local rules stayed local


def test_slurm_outputs_equal_local_run(slurm_run, local_run):
    assert_same_outputs(slurm_run, local_run)
    shards = [p for p in store_files(slurm_run).values() if p.suffix == ".h5"]
    assert shards, "no shard written"
    for shard in shards:  # not trivial: every shard holds images with non-empty, non-constant data
        data = [v for k, v in h5_contents(shard).items() if not k.endswith("@")]
        assert data and any(len(set(d[2])) > 1 for d in data if isinstance(d[2], bytes)), shard
    assert_not_trivial(slurm_run)
    assert_nothing_half_written(slurm_run)


def _wait(predicate, timeout: float, what: str, proc: subprocess.Popen | None = None, log: Path | None = None):
    end = time.monotonic() + scaled(timeout)
    while time.monotonic() < end:
        if predicate():
            return
        if proc is not None and proc.poll() is not None:
            break
        time.sleep(1)
    tail = log.read_text()[-4000:] if log else ""
    raise AssertionError(f"timed out waiting for {what}\n{tail}")


def test_cancelled_job_resumes_with_readme_commands(tmp_path_factory, profile, local_run):
    run = fresh(tmp_path_factory.mktemp("slurm") / "cancel")
    logpath = run.path / "snakemake-cancel.log"
    with open(logpath, "w") as fh:
        proc = subprocess.Popen(
            [str(BIN / "snakemake"), "-s", str(ROOT / "Snakefile"), "--profile", str(profile), TARGET],
            cwd=run.path, env={**os.environ, "FMWSSS_TEST_STALL": STALL}, stdout=fh, stderr=subprocess.STDOUT,
        )
    try:
        # the stall marker is written by the job on the SLURM node: proof the env var reached it
        def stalled() -> list[Path]:
            return [p for p in run.path.glob("results/*/logs/sam_masks/*/*.log") if "[test hook]" in p.read_text()]

        _wait(lambda: bool(stalled()), 300, "a sam_masks job to stall", proc, logpath)
        run.log = logpath.read_text()
        victim_log = str(stalled()[0].relative_to(run.path))
        jobid = next(j for j, (_, _, lg) in run.jobs().items() if lg == victim_log)
        victim = dict(run.submitted())[jobid]
        assert job_states()[victim][0] == "RUNNING"
        sh("scancel", victim)
        print(f"\nscancel {victim} ({victim_log}, stalled mid-shard)")
        _wait(lambda: f"SLURM-job '{victim}' failed, SLURM status is: 'CANCELLED'" in logpath.read_text(),
              120, "Snakemake to report the cancelled job", proc, logpath)
        # the other sam_masks jobs are stalled too: cancel them so the failed run can end
        others = [s for _, s in run.submitted() if s != victim and job_states().get(s, ("",))[0] in ("PENDING", "RUNNING")]
        if others:
            sh("scancel", *others)
        proc.wait(timeout=180)
    finally:
        if proc.poll() is None:
            proc.kill()
    assert proc.returncode != 0, "the run with a cancelled job should fail"
    partial = [p for p in run.path.glob("results/*/store/*/.*.partial/*") if p.is_file()]
    assert partial, "the cancelled jobs should leave their committed images in .partial"
    assert not (run.path / TARGET).exists()

    # README, "Recovering after a crash"
    assert run.snakemake("--unlock", "--cores", "1").returncode == 0, run.log[-3000:]
    run.log = ""
    proc2 = run.snakemake("--profile", str(profile), "--rerun-incomplete", TARGET)
    assert proc2.returncode == 0, run.log[-6000:]
    resumed = (run.path / victim_log).read_text()
    assert re.search(r"image 3/\d+", resumed) and not re.search(r"image 1/\d+", resumed), resumed[-2000:]
    assert run.submitted(), "the recovery run should submit to SLURM"
    print("recovery run sbatch job ids:", ", ".join(s for _, s in run.submitted()))
    assert_same_outputs(run, local_run)
    assert_nothing_half_written(run)
    assert processes_in(run.path) == [], "a cancelled job's process escaped SLURM's process tracking"


def processes_in(folder: Path) -> list[int]:
    """Pids of live processes whose working directory is inside ``folder``."""
    found = []
    for proc in Path("/proc").glob("[0-9]*"):
        try:
            if Path(os.readlink(proc / "cwd")).is_relative_to(folder):
                found.append(int(proc.name))
        except OSError:
            continue
    return found
