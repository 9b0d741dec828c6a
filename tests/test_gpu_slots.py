"""All GPUs of a workstation: counting without torch, host-local slots, one GPU per concurrent job.

No GPU here: the device list is simulated with FMWSSS_TEST_DEVICES (jobs then run on cpu) and the lock
folder is a temp dir (FMWSSS_GPU_LOCK_DIR), so concurrent test runs never meet.
"""
from __future__ import annotations

import os
import signal
import subprocess
import sys
from pathlib import Path

import pytest

from tests.processes import run
import yaml

from fmwsss.gpu_slots import (
    LOCK_DIR_ENV,
    TEST_DEVICES_ENV,
    acquire_slot,
    count_physical_gpus,
    gpu_resource,
    lock_dir,
    parse_cuda_visible,
    visible_gpus,
)

ROOT = Path(__file__).resolve().parents[1]
NO_SMI = "/nonexistent/nvidia-smi"


@pytest.mark.parametrize(
    "value, physical, want",
    [
        ("0,1", 4, ["0", "1"]),
        ("2, 0", 4, ["2", "0"]),  # order kept: cuda:0 is physical GPU 2
        ("0,7,1", 4, ["0"]),  # 7 does not exist: the list ends there
        ("1,-1,2", 4, ["1"]),
        ("1,1,2", 4, ["1"]),
        ("", 4, []),
        ("-1", 4, []),
        ("GPU-8f2a,MIG-1c3d", 1, ["GPU-8f2a", "MIG-1c3d"]),
    ],
)
def test_parse_cuda_visible(value, physical, want):
    assert parse_cuda_visible(value, physical) == want


def _fake_proc(tmp_path: Path, n: int) -> Path:
    proc = tmp_path / "gpus"
    for i in range(n):
        (proc / f"0000:{i + 1:02x}:00.0").mkdir(parents=True)
    proc.mkdir(parents=True, exist_ok=True)
    return proc


def _fake_smi(tmp_path: Path, body: str) -> str:
    smi = tmp_path / "nvidia-smi"
    smi.write_text(f"#!/bin/sh\n{body}\n")
    smi.chmod(0o755)
    return str(smi)


def test_count_physical_gpus(tmp_path, monkeypatch):
    assert count_physical_gpus(_fake_proc(tmp_path, 3), NO_SMI) == 3
    assert count_physical_gpus(_fake_proc(tmp_path / "none", 0), NO_SMI) == 0
    missing = tmp_path / "missing"
    listing = "GPU 0: NVIDIA A100 (UUID: GPU-1)\n  MIG 1g.10gb Device 0: (UUID: MIG-2)\nGPU 1: NVIDIA A100 (UUID: GPU-3)"
    assert count_physical_gpus(missing, _fake_smi(tmp_path, f"printf '{listing}\\n'")) == 2
    assert count_physical_gpus(missing, _fake_smi(tmp_path, "exit 9")) == 0
    assert count_physical_gpus(missing, NO_SMI) == 0
    monkeypatch.setattr("fmwsss.gpu_slots.SMI_TIMEOUT_S", 0.3)
    assert count_physical_gpus(missing, _fake_smi(tmp_path, "sleep 5")) == 0


def test_visible_gpus_and_resource(tmp_path):
    four = _fake_proc(tmp_path, 4)
    assert visible_gpus({}, four, NO_SMI) == ["0", "1", "2", "3"]
    assert visible_gpus({"CUDA_VISIBLE_DEVICES": "3,1"}, four, NO_SMI) == ["3", "1"]
    assert gpu_resource({}, four, NO_SMI) == 4
    assert gpu_resource({"CUDA_VISIBLE_DEVICES": "2"}, four, NO_SMI) == 1
    assert gpu_resource({"CUDA_VISIBLE_DEVICES": ""}, four, NO_SMI) == 1  # none visible: still 1 (cpu)
    none = tmp_path / "no-driver"
    assert visible_gpus({"CUDA_VISIBLE_DEVICES": "0,1"}, none, NO_SMI) == []  # set, but no GPU at all
    assert gpu_resource({}, none, NO_SMI) == 1
    assert visible_gpus({TEST_DEVICES_ENV: "cuda:0, cuda:1"}, none, NO_SMI) == ["cuda:0", "cuda:1"]
    assert gpu_resource({TEST_DEVICES_ENV: "cuda:0,cuda:1,cuda:2"}, none, NO_SMI) == 3


def test_lock_dir_is_per_user_and_per_slurm_job(tmp_path):
    uid = os.getuid()
    assert lock_dir({LOCK_DIR_ENV: str(tmp_path)}) == tmp_path / f"fmwsss-gpus-{uid}"
    assert lock_dir({LOCK_DIR_ENV: str(tmp_path), "SLURM_JOB_ID": "42"}) == tmp_path / f"fmwsss-gpus-{uid}-slurm-42"


def test_slots_fill_every_gpu_before_sharing_one(tmp_path):
    names = ["0", "1"]
    a, b, c = (acquire_slot(names, tmp_path) for _ in range(3))
    assert [(s.index, s.rank) for s in (a, b, c)] == [(0, 0), (1, 0), (0, 1)]
    a.release()
    d = acquire_slot(names, tmp_path)  # GPU 0 has one job (c) and GPU 1 one (b): the freed rank-0 slot
    assert (d.index, d.rank) == (0, 0)
    for s in (b, c, d):
        s.release()


HOLDER = """
import sys, time
from pathlib import Path
from fmwsss.gpu_slots import acquire_slot
slot = acquire_slot(sys.argv[2].split(","), Path(sys.argv[1]))
print(slot.index, flush=True)
time.sleep(120)
"""


def _holder(folder: Path, names: str) -> tuple[subprocess.Popen, int]:
    """A separate process that takes a slot and holds it; returns it and the GPU index it took."""
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    proc = subprocess.Popen([sys.executable, "-c", HOLDER, str(folder), names], stdout=subprocess.PIPE, text=True,
                            env=env)
    return proc, int(proc.stdout.readline())


def test_concurrent_processes_get_distinct_gpus_and_a_killed_one_frees_its_gpu(tmp_path):
    first, i = _holder(tmp_path, "cuda:0,cuda:1")
    second, j = _holder(tmp_path, "cuda:0,cuda:1")
    try:
        assert {i, j} == {0, 1}
        os.kill(first.pid, signal.SIGKILL)
        first.wait(timeout=30)
        slot = acquire_slot(["cuda:0", "cuda:1"], tmp_path)
        assert (slot.index, slot.rank) == (i, 0)  # the killed holder's GPU, not a second job on j
        slot.release()
    finally:
        for proc in (first, second):
            proc.kill()
            proc.wait(timeout=30)


def test_job_device_settings(tmp_path):
    import torch

    from fmwsss.devices import job_device

    lines: list[str] = []
    env = {TEST_DEVICES_ENV: "cuda:0,cuda:1", LOCK_DIR_ENV: str(tmp_path)}
    with job_device("auto", lines.append, env) as a, job_device("cuda", lines.append, env) as b:
        assert a == b == torch.device("cpu")  # simulated GPUs: the work runs on cpu
        assert "simulated cuda:0" in lines[0] and "simulated cuda:1" in lines[1], lines
    with job_device("auto", lines.append, env):
        assert "simulated cuda:0" in lines[2], lines  # both freed at the end of the blocks
    with job_device("cpu", lines.append, env) as dev:
        assert dev == torch.device("cpu")
    no_gpu = {TEST_DEVICES_ENV: "", LOCK_DIR_ENV: str(tmp_path / "unused")}
    with job_device("auto", lines.append, no_gpu) as dev:
        assert dev == torch.device("cpu") and "no GPU visible" in lines[-1]
    with pytest.raises(RuntimeError, match="no usable GPU"), job_device("cuda", lines.append, no_gpu):
        pass
    slurm = {TEST_DEVICES_ENV: "cuda:0", "SLURM_JOB_ID": "7", LOCK_DIR_ENV: str(tmp_path / "slurm")}
    with job_device("auto", lines.append, slurm):
        assert "SLURM granted job 7" in lines[-1]
    assert not (tmp_path / "slurm").exists()  # under SLURM with its one GPU: no lock taken
    with pytest.raises(ValueError, match="runtime.device"), job_device("gpu0", lines.append, env):
        pass
    if not torch.cuda.is_available():
        with pytest.raises(RuntimeError, match="cuda:1 but this job sees 0 GPU"), job_device("cuda:1", lines.append):
            pass


def test_schema_checks_runtime_device():
    from fmwsss.pipeline.config import Config, ConfigError

    raw = yaml.safe_load((ROOT / "config.yaml").read_text())
    for ok in ("auto", "cpu", "cuda", "cuda:3"):
        Config({**raw, "runtime": {**raw.get("runtime", {}), "device": ok}})
    for bad in ("gpu", "cuda:x", "cuda:", "mps"):
        with pytest.raises(ConfigError, match="runtime.device"):
            Config({**raw, "runtime": {**raw.get("runtime", {}), "device": bad}})


SNAKEFILE = """
import sys
sys.path.insert(0, {root!r})
include: {gpus!r}

rule all:
    input: "a.txt", "b.txt"

rule gpu_job:
    output: "{{name}}.txt"
    resources: gpu=1
    shell: "{python} {job} {{wildcards.name}} {{output}}"
"""

# one GPU job: take a slot, then (RENDEZVOUS) wait up to 60 s for the other job to start, or sleep 0.3 s;
# writes "GPU-index start end"
JOB = """
import os, sys, time
from pathlib import Path
from fmwsss.gpu_slots import acquire_slot, lock_dir, visible_gpus
name, out = sys.argv[1], Path(sys.argv[2])
slot = acquire_slot(visible_gpus(), lock_dir())
start = time.time()
Path(f"started-{name}").touch()
other = Path("started-" + ("b" if name == "a" else "a"))
for _ in range(600 if os.environ["RENDEZVOUS"] else 3):
    if os.environ["RENDEZVOUS"] and other.exists():
        break
    time.sleep(0.1)
out.write_text(f"{slot.index} {start} {time.time()}")
"""


def _two_gpu_jobs(folder: Path, devices: str, *args: str, rendezvous: bool) -> tuple[set[int], bool]:
    """Run two independent gpu=1 jobs under the workflow's gpu resource setup with simulated ``devices``:
    the GPUs they took and whether they ran at the same time."""
    folder.mkdir()
    (folder / "job.py").write_text(JOB)
    (folder / "Snakefile").write_text(SNAKEFILE.format(
        root=str(ROOT), gpus=str(ROOT / "workflow" / "rules" / "gpus.smk"), python=sys.executable,
        job=folder / "job.py"))
    env = {**os.environ, "PYTHONPATH": str(ROOT), TEST_DEVICES_ENV: devices,
           LOCK_DIR_ENV: str(folder / "locks"), "RENDEZVOUS": "1" if rendezvous else ""}
    proc = run([str(Path(sys.executable).parent / "snakemake"), "--cores", "2", *args], 180, cwd=folder, env=env)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    (gpu_a, start_a, end_a), (gpu_b, start_b, end_b) = (
        (folder / f"{n}.txt").read_text().split() for n in ("a", "b"))
    overlap = max(float(start_a), float(start_b)) < min(float(end_a), float(end_b))
    return {int(gpu_a), int(gpu_b)}, overlap


@pytest.mark.slow
def test_workflow_runs_one_gpu_job_per_simulated_gpu(tmp_path):
    # 2 GPUs: both jobs run at once (each waits for the other to start), on two different GPUs
    assert _two_gpu_jobs(tmp_path / "two", "cuda:0,cuda:1", rendezvous=True) == ({0, 1}, True)
    # 1 GPU: the count caps the gpu resource at 1, so one job after the other, both on GPU 0
    assert _two_gpu_jobs(tmp_path / "one", "cuda:0", rendezvous=False) == ({0}, False)
    # the user's --resources gpu=1 wins over the count of 2
    assert _two_gpu_jobs(tmp_path / "capped", "cuda:0,cuda:1", "--resources", "gpu=1", rendezvous=False) == ({0}, False)


def test_workflow_profile_leaves_the_gpu_count_to_the_snakefile():
    # a `resources:` key in the auto-loaded profile would replace the count computed in workflow/rules/gpus.smk
    profile = yaml.safe_load((ROOT / "profiles" / "default" / "config.yaml").read_text())
    assert "resources" not in profile
    assert 'include: "workflow/rules/gpus.smk"' in (ROOT / "Snakefile").read_text()


def test_job_devices_take_one_slot_per_process(tmp_path):
    import torch

    from fmwsss.devices import job_devices

    lines: list[str] = []
    env = {TEST_DEVICES_ENV: "cuda:0,cuda:1,cuda:2", LOCK_DIR_ENV: str(tmp_path)}
    with job_devices("auto", 2, lines.append, env) as devices:
        assert devices == [torch.device("cpu")] * 2  # simulated GPUs: the work runs on cpu
        assert "simulated cuda:0, cuda:1 (2 GPU slots of 3" in lines[-1], lines
        with job_devices("auto", 1, lines.append, env) as third:  # another job meanwhile: the free GPU
            assert third == [torch.device("cpu")] and "simulated cuda:2" in lines[-1], lines
    with job_devices("auto", 3, lines.append, env):
        assert "cuda:0, cuda:1, cuda:2 (3 GPU slots" in lines[-1], lines  # all released at the end
    with pytest.raises(RuntimeError, match="segmenter_gpus is 4 but this job sees 3 GPU"):
        with job_devices("auto", 4, lines.append, env):
            pass
    slurm = {TEST_DEVICES_ENV: "cuda:0", "SLURM_JOB_ID": "7", LOCK_DIR_ENV: str(tmp_path / "slurm")}
    with pytest.raises(RuntimeError, match="SLURM granted job 7 1 GPU.*set-resources deeplab_train gpu"):
        with job_devices("auto", 2, lines.append, slurm):
            pass
    slurm[TEST_DEVICES_ENV] = "cuda:0,cuda:1"
    with job_devices("auto", 2, lines.append, slurm):
        assert "cuda:0..1 (the GPUs SLURM granted job 7" in lines[-1]
    assert not (tmp_path / "slurm").exists()  # under SLURM: no lock taken
    no_gpu = {TEST_DEVICES_ENV: "", LOCK_DIR_ENV: str(tmp_path / "unused")}
    with job_devices("auto", 2, lines.append, no_gpu) as devices:
        assert devices == [torch.device("cpu")] * 2 and "cpu x 2 processes" in lines[-1]
    with pytest.raises(ValueError, match="pins one GPU"), job_devices("cuda:0", 2, lines.append, env):
        pass
