"""The test profile derived from the shipped SLURM profile, and what may differ between the two.

The one-node test cluster has no GPU, no accounting and one partition; everything else in the shipped
profile must reach sbatch unchanged, so the SLURM test exercises the file users run.
"""
from __future__ import annotations

import copy
from pathlib import Path
from typing import Any

import yaml

ROOT = Path(__file__).resolve().parents[2]
SHIPPED = ROOT / "workflow" / "profiles" / "slurm" / "config.yaml"
SHIPPED_GRES = ROOT / "workflow" / "profiles" / "slurm-gres" / "config.yaml"
WORKFLOW_PROFILE = ROOT / "profiles" / "default" / "config.yaml"

# Keys the test profile may change or add, as dotted paths ("*" = any rule of set-resources / set-threads).
ALLOWED_CHANGES = {
    "default-resources.slurm_account",  # accounting is off: no account
    "default-resources.slurm_partition",  # the test partition
    "default-resources.mem_mb",  # capped to the node
    "set-resources.*.slurm_partition",
    "set-resources.*.gpu",  # 0: the node has no GPU
    "set-resources.*.mem_mb",
    "set-threads.*",  # capped to the node's CPUs (and equal to the local reference run's)
    "slurm-init-seconds-before-status-checks",  # first status check after seconds, not 40 s
    "slurm-status-command",  # squeue: sacct needs accounting
}


def load(path: Path) -> dict[str, Any]:
    with open(path) as fh:
        return yaml.safe_load(fh)


def for_test_cluster(shipped: dict, partition: str, mem_cap_mb: int, threads: int) -> dict:
    """The shipped profile with only what the one-node test cluster needs changed."""
    prof = copy.deepcopy(shipped)
    defaults = prof["default-resources"]
    defaults.pop("slurm_account", None)
    defaults["slurm_partition"] = partition
    defaults["mem_mb"] = min(defaults["mem_mb"], mem_cap_mb)
    for res in prof["set-resources"].values():
        res["slurm_partition"] = partition
        if "gpu" in res:
            res["gpu"] = 0
        if "mem_mb" in res:
            res["mem_mb"] = min(res["mem_mb"], mem_cap_mb)
    prof["set-threads"] = {rule: threads for rule in prof["set-resources"]}
    prof["slurm-init-seconds-before-status-checks"] = 5
    prof["slurm-status-command"] = "squeue"
    return prof


def flatten(tree: Any, prefix: str = "") -> dict[str, Any]:
    """Leaves of nested mappings by dotted path (lists are leaves)."""
    if not isinstance(tree, dict):
        return {prefix: tree}
    out: dict[str, Any] = {}
    for key, value in tree.items():
        out.update(flatten(value, f"{prefix}.{key}" if prefix else str(key)))
    return out


def changed_paths(a: dict, b: dict) -> set[str]:
    """Dotted paths present in only one of ``a``, ``b`` or with different values."""
    fa, fb = flatten(a), flatten(b)
    return {k for k in fa.keys() | fb.keys() if fa.get(k, object()) != fb.get(k, object())}


def allowed(path: str) -> bool:
    parts = path.split(".")
    for pattern in ALLOWED_CHANGES:
        pat = pattern.split(".")
        if len(pat) == len(parts) and all(p in ("*", q) for p, q in zip(pat, parts)):
            return True
    return False
