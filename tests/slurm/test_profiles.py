"""The shipped SLURM profiles, checked without a cluster: rule names, GPU flags, merging with profiles/default.

The sbatch flags are built by the executor plugin's own functions from the resources Snakemake resolves in a
dry run, so a profile typo (a rule name, "'gpu:1'", a missing gpu: 0) fails here, not on the cluster.
"""
from __future__ import annotations

import re
import shutil
import subprocess
import sys
from pathlib import Path
from types import SimpleNamespace

import pytest

from tests.samples import sample_dir

from .slurm_profile import ROOT, SHIPPED, SHIPPED_GRES, WORKFLOW_PROFILE, changed_paths, load

BIN = Path(sys.executable).parent
GPU_KEYS = {"slurm_partition", "gpu", "cpus_per_gpu", "runtime", "mem_mb"}
PLACEHOLDERS = ("<ACCOUNT>", "<GPU_PARTITION>", "<CPU_PARTITION>")


def rules() -> dict[str, dict]:
    """name -> {local, gpu, threads} of every rule in workflow/rules/*.smk."""
    out = {}
    for smk in sorted((ROOT / "workflow" / "rules").glob("*.smk")):
        for m in re.finditer(r"^rule (\w+):\n((?:[ \t]+.*\n|\n)*)", smk.read_text(), re.M):
            threads = re.search(r"^\s+threads: (\d+)", m[2], re.M)
            out[m[1]] = {
                "local": "localrule: True" in m[2],
                "gpu": bool(re.search(r"^\s+gpu=(1|SEGMENTER_GPUS),", m[2], re.M)),  # the segmenter: N GPUs
                "threads": int(threads[1]) if threads else 1,
            }
    return out


class _Resources(dict):
    __getattr__ = dict.__getitem__


def sbatch_flags(resources: dict, threads: int) -> str:
    """The resource part of the sbatch call the executor would build for a job with these resources."""
    from snakemake_executor_plugin_slurm.submit_string import get_submit_command
    from snakemake_executor_plugin_slurm.utils import set_gres_string

    job = SimpleNamespace(resources=_Resources(resources), threads=threads)
    params = dict(run_uuid="run", slurm_logfile="x.log", comment_str="rule_x", account="", partition="", workdir="")
    return get_submit_command(job, params) + set_gres_string(job)


def dry_run_resources(profile: Path, workdir: Path) -> dict[str, tuple[dict, int]]:
    """rule -> (resources, threads) of each rule's first job in a dry run of the demo seeds with ``profile``."""
    if not (workdir / "data").is_dir():
        workdir.mkdir(parents=True, exist_ok=True)
        shutil.copy(ROOT / "config.yaml", workdir / "config.yaml")
        subprocess.run([str(BIN / "fmwsss"), "data", "voc-sample", "--source", str(sample_dir("voc_sample")),
                        "--dest", str(workdir / "data" / "voc_sample")], check=True, capture_output=True)
    proc = subprocess.run(
        [str(BIN / "snakemake"), "-s", str(ROOT / "Snakefile"), "-n", "--profile", str(profile), "results/demo/seeds"],
        cwd=workdir, capture_output=True, text=True, timeout=120,
    )
    assert proc.returncode == 0, proc.stdout + proc.stderr
    out = {}
    for b in re.finditer(r"^(?:local)?rule (\w+):\n((?:    .*\n)+)", proc.stdout + proc.stderr, re.M):
        res = re.search(r"^    resources: (.*)$", b[2], re.M)[1]
        pairs = dict(kv.split("=", 1) for kv in res.split(", "))
        threads = re.search(r"^    threads: (\d+)$", b[2], re.M)
        out.setdefault(b[1], ({k: int(v) if v.isdigit() else v for k, v in pairs.items()},
                              int(threads[1]) if threads else 1))
    return out


@pytest.fixture(scope="module")
def workdir(tmp_path_factory) -> Path:
    return tmp_path_factory.mktemp("profiles")


def test_set_resources_cover_exactly_the_gpu_rules():
    found = rules()
    gpu_rules = {name for name, r in found.items() if r["gpu"]}
    assert gpu_rules and not any(found[r]["local"] for r in gpu_rules)
    for path in (SHIPPED, SHIPPED_GRES):
        prof = load(path)
        assert set(prof["set-resources"]) == gpu_rules, path
        assert prof["executor"] == "slurm" and prof["rerun-triggers"] == ["mtime", "params", "input", "software-env"]
    slurm = load(SHIPPED)["set-resources"]
    for rule, res in slurm.items():
        assert set(res) == GPU_KEYS and res["gpu"] == 1, rule
        assert res["cpus_per_gpu"] == found[rule]["threads"], f"{rule}: cpus_per_gpu must equal the rule's threads"
        assert res["slurm_partition"] == "<GPU_PARTITION>"


def test_placeholders_are_marked():
    for path in (SHIPPED, SHIPPED_GRES):
        text = path.read_text()
        assert all(p in text for p in PLACEHOLDERS), path
        defaults = load(path)["default-resources"]
        assert defaults["slurm_account"] == "<ACCOUNT>" and defaults["slurm_partition"] == "<CPU_PARTITION>"


def test_gres_profile_differs_only_in_the_gpu_request():
    slurm, gres = load(SHIPPED), load(SHIPPED_GRES)
    diff = {p.split(".", 2)[2] for p in changed_paths(slurm, gres)}
    assert diff == {"gpu", "gres", "cpus_per_gpu", "cpus_per_task"}
    assert all(r["gpu"] == 0 and r["gres"] == "gpu:1" for r in gres["set-resources"].values())


def test_workflow_profile_never_silently_overrides_slurm_profiles():
    # profiles/default is auto-loaded and replaces a --profile's top-level keys: shared keys must agree, and
    # it must not set the keys the SLURM profiles depend on
    default = load(WORKFLOW_PROFILE)
    for path in (SHIPPED, SHIPPED_GRES):
        prof = load(path)
        assert {k: default[k] for k in default.keys() & prof.keys()} == {k: prof[k] for k in default.keys() & prof.keys()}
    assert not {"executor", "jobs", "default-resources", "set-resources", "set-threads"} & default.keys()


@pytest.mark.parametrize(
    "profile, want, refuse",
    [
        (SHIPPED, ["--gpus=1", "--cpus-per-gpu=4", "--mem 32000", "-t 180"], ["--gres", "--cpus-per-task"]),
        (SHIPPED_GRES, ["--gres=gpu:1", "--cpus-per-task=4", "--mem 32000", "-t 180"], ["--gpus", "--cpus-per-gpu"]),
    ],
    ids=["gpus", "gres"],
)
def test_sbatch_flags_of_a_gpu_job(profile, want, refuse, workdir):
    resolved = dry_run_resources(profile, workdir)
    resources, threads = resolved["sam_masks"]
    flags = sbatch_flags(resources, threads)
    assert all(w in flags for w in want) and not any(r in flags for r in refuse), flags
    light, light_threads = resolved["sam_masks_finalize"]  # a local rule: the defaults, no GPU
    assert "--gpus" not in sbatch_flags(light, light_threads) and light["slurm_partition"] == "<CPU_PARTITION>"


@pytest.mark.parametrize("profile", [SHIPPED, SHIPPED_GRES], ids=["gpus", "gres"])
def test_cpu_jobs_get_the_light_defaults(profile, workdir):
    # the non-local seed gather (*_finalize) and score rules have no set-resources entry: one CPU on the CPU
    # partition with default-resources' memory and wall time, and no GPU request of any kind
    found = rules()
    cpu_rules = {name for name, r in found.items() if not r["local"] and not r["gpu"]}
    assert cpu_rules >= {"seeds_coarse_finalize", "seeds_fine_finalize", "score"}, cpu_rules
    defaults = load(profile)["default-resources"]
    resolved = dry_run_resources(profile, workdir)
    assert cpu_rules <= resolved.keys(), "a CPU rule is missing from the demo seeds DAG"
    for rule in cpu_rules:
        resources, threads = resolved[rule]
        flags = sbatch_flags(resources, threads)
        assert threads == found[rule]["threads"] == 1, rule
        assert resources["slurm_partition"] == "<CPU_PARTITION>", (rule, resources)
        assert f"--mem {defaults['mem_mb']}" in flags and f"-t {defaults['runtime']}" in flags, (rule, flags)
        assert "--cpus-per-task=1" in flags, (rule, flags)
        assert not any(g in flags for g in ("--gpus", "--gres", "--cpus-per-gpu")), (rule, flags)
