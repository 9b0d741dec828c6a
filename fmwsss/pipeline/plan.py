"""The parse-time plan: per dataset, its image list, shards and the key of every stage.

This is the only fmwsss object the Snakefile holds. Everything here must be cheap (it runs on every dry
run and inside every cluster job) and deterministic (keys are recomputed inside each job and must agree):
no absolute paths, host names, dates or devices in keys; image lists are read, image bytes are not.
A dataset that cannot be opened (root not set, missing folder) is recorded, and the error is raised only
when one of its targets is requested.
"""
from __future__ import annotations

import hashlib
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from fmwsss.pipeline.config import Config
from fmwsss.pipeline.keys import stage_key
from fmwsss.pipeline.stages import ALIASES, PRODUCTS, STAGES

RESULTS = "results"


class DatasetUnavailable(RuntimeError):
    """A dataset's targets were requested but the dataset could not be opened."""


@dataclass
class DatasetPlan:
    name: str
    settings: dict[str, Any]
    dataset: Any = None  # fmwsss.data.Dataset, or None when unavailable
    error: str | None = None
    shards: dict[str, list[str]] = field(default_factory=dict)
    keys: dict[str, str] = field(default_factory=dict)
    specs: dict[str, dict] = field(default_factory=dict)


def _dataset_identity(dataset) -> dict[str, str]:
    from fmwsss.data.shards import ids_digest

    names = hashlib.sha256("\n".join(dataset.class_names).encode()).hexdigest()[:16]
    return {"dataset_type": dataset.type, "ids": ids_digest(dataset.ids), "class_names": names}


class Plan:
    """Keys, shards and paths of every configured dataset."""

    def __init__(self, config: dict | Config):
        self.config = config if isinstance(config, Config) else Config(config)
        self.datasets: dict[str, DatasetPlan] = {}
        for name, entry in self.config.datasets.items():
            self.datasets[name] = self._plan_dataset(name, entry)

    # -- construction -------------------------------------------------------------------------------
    def _plan_dataset(self, name: str, entry: dict) -> DatasetPlan:
        from fmwsss.data import open_dataset
        from fmwsss.data.shards import shard_ids, shard_name
        from fmwsss.models.weights import weight_identity

        plan = DatasetPlan(name=name, settings=self.config.settings(name))
        if entry["root"] is None:
            plan.error = (
                f"datasets.{name}.root is not set in config.yaml: set it to the folder holding the "
                f"{entry['type']} data (see README, 'Adding a dataset')"
            )
            return plan
        try:
            plan.dataset = open_dataset(entry["type"], Path(entry["root"]), name=name, **entry["options"])
        except (OSError, ValueError) as exc:
            plan.error = f"datasets.{name} (root {entry['root']!r}): {exc}"
            return plan
        size = plan.settings["data"]["shard_size"]
        plan.shards = {shard_name(i): ids for i, ids in enumerate(shard_ids(plan.dataset.ids, size))}
        identity = _dataset_identity(plan.dataset)
        for stage in STAGES.values():
            inputs = dict(identity)
            inputs.update({f"weights.{w}": weight_identity(plan.settings["models"][w]) for w in stage.weights})
            sections = {s: plan.settings[s] for s in stage.sections}
            sections.update({f"models.{w}": plan.settings["models"][w] for w in stage.weights})
            upstream = {u: plan.keys[u] for u in stage.upstream}
            plan.keys[stage.name], plan.specs[stage.name] = stage_key(
                stage.name, stage.version, sections, upstream, inputs
            )
        return plan

    # -- lookups used by rules ----------------------------------------------------------------------
    def get(self, dataset: str) -> DatasetPlan:
        plan = self.datasets[dataset]
        if plan.error:
            raise DatasetUnavailable(plan.error)
        return plan

    def key(self, dataset: str, stage: str) -> str:
        return self.get(dataset).keys[stage]

    def check_key(self, dataset: str, stage: str, key: str) -> None:
        """Refuse to build a store entry that is not the current config's (old variants are kept, not rebuilt)."""
        current = self.key(dataset, stage)
        if key != current:
            raise DatasetUnavailable(
                f"results/{dataset}/store/{stage}/{key} is not the current variant (current key {current}); "
                f"its spec.json records the settings that made it. Old variants are kept but cannot be "
                f"rebuilt without restoring those settings in config.yaml."
            )

    def store(self, dataset: str, stage: str, key: str | None = None) -> str:
        return f"{RESULTS}/{dataset}/store/{stage}/{key or self.key(dataset, stage)}"

    def partial(self, dataset: str, stage: str, key: str | None = None) -> str:
        return f"{RESULTS}/{dataset}/store/{stage}/.{key or self.key(dataset, stage)}.partial"

    def spec_path(self, dataset: str, stage: str) -> str:
        return f"{self.store(dataset, stage)}/spec.json"

    def shard_paths(self, dataset: str, stage: str, key: str | None = None) -> list[str]:
        plan = self.get(dataset)
        return [f"{self.store(dataset, stage, key)}/{shard}.h5" for shard in plan.shards]

    def product(self, dataset: str, stage: str) -> str:
        """The file that marks a stage's current store entry as complete."""
        if STAGES[stage].sharded:
            return self.spec_path(dataset, stage)
        return f"{self.store(dataset, stage)}/{PRODUCTS[stage]}"

    def items(self, dataset: str, shard: str) -> list[tuple[str, str]]:
        """(image id, image path) of one shard, as plain strings for a job's params."""
        plan = self.get(dataset)
        if shard not in plan.shards:
            raise DatasetUnavailable(f"{dataset}: no shard {shard!r} (shards: {', '.join(plan.shards)})")
        return [(i, str(plan.dataset.image_path(i))) for i in plan.shards[shard]]

    def weight_file(self, dataset: str, role: str) -> str:
        from fmwsss.models.weights import get_weight, weights_dir

        root = weights_dir()
        root = Path(os.path.relpath(root)) if root.is_relative_to(os.getcwd()) else root
        return str(root / get_weight(self.get(dataset).settings["models"][role]).filename)

    def alias_target(self, dataset: str, alias: str) -> str:
        """Relative symlink target of results/{dataset}/{alias}."""
        return f"store/{ALIASES[alias]}/{self.key(dataset, ALIASES[alias])}"

    def reachable(self) -> set[tuple[str, str, str]]:
        """(dataset, stage, key) of every current store entry of every openable dataset."""
        return {
            (name, stage, key)
            for name, plan in self.datasets.items()
            if not plan.error
            for stage, key in plan.keys.items()
        }
