"""The parse-time plan: per dataset, its image list, shards and the key of every stage.

This is the only fmwsss object the Snakefile holds. Everything here must be cheap (it runs on every dry
run and inside every cluster job) and deterministic (keys are recomputed inside each job and must agree):
no absolute paths, host names, dates or devices in keys. A dataset is opened only when one of its targets
is planned (a ``results/demo/`` target never reads the VOC or COCO sources), and only through its index
(``fmwsss.data.index``): the main Snakemake process refreshes it (``refresh=True``), jobs only read it.
A dataset that cannot be opened (root not set, missing folder) is recorded, and the error is raised only
when one of its targets is requested.
"""
from __future__ import annotations

import os
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from fmwsss.data.shards import shard_name
from fmwsss.pipeline.config import Config
from fmwsss.pipeline.store import linked_key
from fmwsss.pipeline.keys import image_spec_key, stage_key
from fmwsss.pipeline.stages import ALIASES, DATASET_INPUTS, PRODUCTS, SCORES, STAGES
from fmwsss.segmentation.archs import backbone_weight, keyed_segmenter

RESULTS = "results"

# Settings sections that only lay out jobs: in a sharded stage's entry key, never in its set or per-image keys.
LAYOUT_SECTIONS = frozenset({"data"})
# Key inputs that describe the whole id set: in entry and set keys, never in a per-image key (which hashes the
# image's own content digest and tags instead).
SET_DIGESTS = frozenset({"ids", "images", "tags", "gt", "val_ids", "val_images", "val_gt"})
# The README section that says which folder a dataset type's `root` names (other types: 'Adding a dataset').
# tests/test_readme_sections.py checks that every README section a message names is a README heading.
ROOT_HELP = {"voc": "Running on your data"}
# What spec.json holds of the hashed spec (other fields are bookkeeping: key, dataset, version, refs, files).
SPEC_FIELDS = ("stage", "version", "settings", "upstream", "inputs", "set_key")


class DatasetUnavailable(RuntimeError):
    """A dataset's targets were requested but the dataset could not be opened."""


@dataclass
class DatasetPlan:
    name: str
    settings: dict[str, Any]
    dataset: Any = None  # fmwsss.data.index.DatasetIndex (the Dataset read interface), or None when unavailable
    error: str | None = None
    shards: dict[str, range] = field(default_factory=dict)  # shard name -> positions in the sorted id list
    keys: dict[str, str] = field(default_factory=dict)  # entry keys: the store folder of each stage
    specs: dict[str, dict] = field(default_factory=dict)
    set_keys: dict[str, str] = field(default_factory=dict)  # layout-independent keys (= entry key if unsharded)
    image_specs: dict[str, str] = field(default_factory=dict)  # sharded stages: the per-image keys' constant part
    score_keys: dict[str, str] = field(default_factory=dict)  # scored stage -> key of its score entry
    score_specs: dict[str, dict] = field(default_factory=dict)

    def shard_ids(self, shard: str) -> list[str]:
        """The ids of one shard (reads only that shard's rows of the index)."""
        if shard not in self.shards:
            raise DatasetUnavailable(f"{self.name}: no shard {shard!r} (shards: {', '.join(self.shards)})")
        positions = self.shards[shard]
        return self.dataset.ids_range(positions.start, positions.stop)


def _weight_path(name: str) -> str:
    from fmwsss.models.weights import get_weight, weights_dir

    root = weights_dir()
    root = Path(os.path.relpath(root)) if root.is_relative_to(os.getcwd()) else root
    return str(root / get_weight(name).filename)


def keyed_section(name: str, value: Any) -> Any:
    """A settings section as it enters a stage key: only what the stage's code reads for these settings
    (``segmenter``: :func:`fmwsss.segmentation.archs.keyed_segmenter`); other sections whole."""
    return keyed_segmenter(value) if name == "segmenter" else value


def canonical(spec: dict) -> dict:
    """``spec`` with every mapping's keys sorted, as spec.json stores it: the rules pass it as a param, and
    Snakemake's params trigger compares reprs, so a spec read back from spec.json must compare equal."""
    import json

    return json.loads(json.dumps(spec, sort_keys=True))


@dataclass(frozen=True)
class EntryView:
    """One store entry as the rules see it: its key, hashed spec, shard names and upstream keys."""

    key: str
    spec: dict
    shards: tuple[str, ...]
    upstream: dict[str, str]


def stage_inputs(digests: dict[str, str], dataset_type: str, stage: str) -> dict[str, str]:
    """The dataset identity a stage's key hashes: type, ids, class names, and the inputs it reads."""
    found = {"dataset_type": dataset_type, "ids": digests["ids"], "class_names": digests["class_names"]}
    found.update({name: digests[name] for name in DATASET_INPUTS[stage]})
    return found


def _plan_scores(plan: DatasetPlan, gt_digest: str) -> None:
    """Key each score entry on the scored entry's key, the ground truth's identity and the settings it reads."""
    for score in SCORES.values():
        plan.score_keys[score.stage], plan.score_specs[score.stage] = stage_key(
            score.name, score.version, {s: plan.settings[s] for s in score.sections},
            {score.stage: plan.keys[score.stage]}, {"gt": gt_digest},
        )


class _LazyPlans(Mapping):
    """Dataset name -> DatasetPlan, opened on first access; iterating lists names without opening any."""

    def __init__(self, plan: "Plan"):
        self._plan = plan
        self._done: dict[str, DatasetPlan] = {}

    def __getitem__(self, name: str) -> DatasetPlan:
        if name not in self._done:
            entry = self._plan.config.datasets[name]  # KeyError for unknown names, as a dict would
            self._done[name] = self._plan._plan_dataset(name, entry)
        return self._done[name]

    def __iter__(self) -> Iterator[str]:
        return iter(self._plan.config.datasets)

    def __len__(self) -> int:
        return len(self._plan.config.datasets)


class Plan:
    """Keys, shards and paths of every configured dataset, each opened when first asked for.

    ``refresh``: build or refresh a dataset's index when opening it (the main Snakemake process and the
    ``fmwsss`` command); False inside jobs, which only read it and fail naming the command to run when it
    is missing or stale.
    """

    def __init__(self, config: dict | Config, *, refresh: bool = True, results: str = RESULTS, log=None):
        from fmwsss.data.index import stderr_log

        self.config = config if isinstance(config, Config) else Config(config)
        self.refresh = refresh
        self.results = results
        self.log = log or stderr_log
        self.datasets: Mapping[str, DatasetPlan] = _LazyPlans(self)
        self._specs: dict[tuple[str, str, str], dict | None] = {}

    # -- construction -------------------------------------------------------------------------------
    def _plan_dataset(self, name: str, entry: dict) -> DatasetPlan:
        from fmwsss.data.index import index_path, open_index, refresh_index
        from fmwsss.models.weights import weight_identity

        plan = DatasetPlan(name=name, settings=self.config.settings(name))
        if entry["root"] is None:
            section = ROOT_HELP.get(entry["type"], "Adding a dataset")
            plan.error = (
                f"datasets.{name}.root is not set in config.yaml: set it to the folder holding the "
                f"{entry['type']} data (see README, '{section}')"
            )
            return plan
        path = index_path(self.results, name)
        try:
            if self.refresh:
                plan.dataset = refresh_index(path, name, entry, self.log)
            else:
                plan.dataset = open_index(path, name, entry)
        except (OSError, ValueError) as exc:
            plan.error = f"datasets.{name} (root {entry['root']!r}): {exc}"
            return plan
        size = plan.settings["data"]["shard_size"]
        n = plan.dataset.num_ids
        plan.shards = {shard_name(i): range(start, min(start + size, n)) for i, start in enumerate(range(0, n, size))}
        digests = plan.dataset.digests
        for stage in STAGES.values():
            inputs = stage_inputs(digests, plan.dataset.type, stage.name)
            inputs.update({f"weights.{w}": weight_identity(plan.settings["models"][w]) for w in stage.weights})
            if stage.name == "deeplab_train" and (backbone := backbone_weight(plan.settings["segmenter"])):
                inputs["weights.segmenter_backbone"] = weight_identity(backbone)
            sections = {s: keyed_section(s, plan.settings[s]) for s in stage.sections}
            sections.update({f"models.{w}": plan.settings["models"][w] for w in stage.weights})
            result_sections = {s: v for s, v in sections.items() if s not in LAYOUT_SECTIONS}
            set_upstream = {u: plan.set_keys[u] for u in stage.upstream}
            set_key, _ = stage_key(stage.name, stage.version, result_sections, set_upstream, inputs)
            if stage.sharded:
                # The entry (folder) of a sharded stage reads the entries of its upstream of the same layout.
                upstream = {u: plan.keys[u] for u in stage.upstream}
                key, spec = stage_key(stage.name, stage.version, sections, upstream, inputs)
                plan.specs[stage.name] = canonical({**spec, "set_key": set_key})
                plan.image_specs[stage.name] = image_spec_key(
                    stage.name, stage.version, result_sections,
                    {u: set_upstream[u] for u in stage.upstream if not STAGES[u].sharded},
                    {k: v for k, v in inputs.items() if k not in SET_DIGESTS},
                )
            else:
                key, spec = stage_key(stage.name, stage.version, sections, set_upstream, inputs)
                plan.specs[stage.name] = canonical(spec)
                set_key = key
            plan.keys[stage.name], plan.set_keys[stage.name] = key, set_key
        _plan_scores(plan, digests["gt"])
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
        self.entry(dataset, stage, key)

    def entry(self, dataset: str, stage: str, key: str) -> "EntryView":
        """The current entry of ``stage``, or a complete entry of the same set (another shard layout) that a
        whole-set stage reads through the set's link; any other key is refused, naming the current one."""
        plan = self.get(dataset)
        if key == plan.keys[stage]:
            return EntryView(key, plan.specs[stage], tuple(plan.shards), plan.specs[stage]["upstream"])
        spec = self._complete_spec(dataset, stage, key)
        if spec is None or not STAGES[stage].sharded or spec.get("set_key") != plan.set_keys[stage]:
            raise DatasetUnavailable(
                f"results/{dataset}/store/{stage}/{key} is not the current variant (current key "
                f"{plan.keys[stage]}); its spec.json records the settings that made it. Old variants are kept but "
                f"cannot be rebuilt without restoring those settings in config.yaml."
            )
        size = spec["settings"]["data"]["shard_size"]
        shards = tuple(shard_name(i) for i in range(-(-plan.dataset.num_ids // size)))
        return EntryView(key, spec, shards, spec["upstream"])

    def _complete_spec(self, dataset: str, stage: str, key: str) -> dict | None:
        """The hashed spec recorded in a finished entry's spec.json (None when the entry is not finished)."""
        import json

        cache_key = (dataset, stage, key)
        if cache_key not in self._specs:
            try:
                recorded = json.loads(Path(self.store(dataset, stage, key), "spec.json").read_text())
            except (OSError, ValueError):
                recorded = None
            self._specs[cache_key] = recorded and canonical({f: recorded[f] for f in SPEC_FIELDS if f in recorded})
        return self._specs[cache_key]

    @staticmethod
    def set_link_path(stage_dir: str | os.PathLike, set_key: str) -> Path:
        """<stage dir>/sets/<set key>: a relative symlink to the first finished entry of that set."""
        return Path(stage_dir) / "sets" / set_key

    def set_link(self, dataset: str, stage: str) -> Path:
        return self.set_link_path(f"{self.results}/{dataset}/store/{stage}", self.get(dataset).set_keys[stage])

    def set_product(self, dataset: str, stage: str) -> str:
        """What a whole-set stage reads of a sharded ``stage``: the finished entry the set link names (whatever
        shard layout made it), else the current entry. A new shard size then moves no whole-set stage."""
        link = self.set_link(dataset, stage)
        if link.is_symlink():
            key = linked_key(link)
            entry = Path(self.store(dataset, stage, key))
            if key != self.key(dataset, stage) and self._complete_spec(dataset, stage, key) is not None:
                view = self.entry(dataset, stage, key)
                if all((entry / f"{shard}.h5").is_file() for shard in view.shards):
                    return self.product(dataset, stage, key)
        return self.product(dataset, stage)

    def store(self, dataset: str, stage: str, key: str | None = None) -> str:
        return f"{RESULTS}/{dataset}/store/{stage}/{key or self.key(dataset, stage)}"

    def partial(self, dataset: str, stage: str, key: str | None = None) -> str:
        return f"{RESULTS}/{dataset}/store/{stage}/.{key or self.key(dataset, stage)}.partial"

    def spec_path(self, dataset: str, stage: str) -> str:
        return f"{self.store(dataset, stage)}/spec.json"

    def shard_paths(self, dataset: str, stage: str, key: str | None = None) -> list[str]:
        key = key or self.key(dataset, stage)
        return [f"{self.store(dataset, stage, key)}/{shard}.h5" for shard in self.entry(dataset, stage, key).shards]

    def product(self, dataset: str, stage: str, key: str | None = None) -> str:
        """The file that marks a stage's store entry (the current one by default) as complete."""
        if STAGES[stage].sharded:
            return f"{self.store(dataset, stage, key)}/spec.json"
        return f"{self.store(dataset, stage, key)}/{PRODUCTS[stage]}"

    def weight_file(self, dataset: str, role: str) -> str:
        """The checkpoint of ``settings["models"][role]`` (relative to the cwd when under it)."""
        return _weight_path(self.get(dataset).settings["models"][role])

    def backbone_file(self, dataset: str) -> str | None:
        """The registry checkpoint the segmenter training loads its backbone from (a Mask2Former arch with
        ``pretrained_backbone``), or None."""
        name = backbone_weight(self.get(dataset).settings["segmenter"])
        return None if name is None else _weight_path(name)

    # -- score entries (store/score_<stage>/<key>/, fmwsss.pipeline.stages.SCORES) -------------------
    def check_score_key(self, dataset: str, stage: str, key: str) -> None:
        """As :meth:`check_key`, for the score entry of ``stage``."""
        current = self.get(dataset).score_keys[stage]
        if key != current:
            raise DatasetUnavailable(
                f"results/{dataset}/store/{SCORES[stage].name}/{key} is not the current score (current key "
                f"{current}): old scores are kept but not rebuilt."
            )

    def score_store(self, dataset: str, stage: str) -> str:
        return f"{RESULTS}/{dataset}/store/{SCORES[stage].name}/{self.get(dataset).score_keys[stage]}"

    def score_product(self, dataset: str, stage: str) -> str:
        """The file that marks the current score entry of ``stage`` as complete."""
        return f"{self.score_store(dataset, stage)}/spec.json"

    def score_link(self, dataset: str, stage: str) -> str:
        """Relative target, from the scored entry's folder, of its current score entry (for its links)."""
        return f"../../{SCORES[stage].name}/{self.get(dataset).score_keys[stage]}"

    def alias_target(self, dataset: str, alias: str) -> str:
        """Relative symlink target of results/{dataset}/{alias}."""
        return f"store/{ALIASES[alias]}/{self.key(dataset, ALIASES[alias])}"

    def reachable(self) -> set[tuple[str, str, str]]:
        """(dataset, stage, key) of every store entry the current config needs (opens every dataset): the
        current entries, the finished entries whole-set stages read through set links, and what those were
        made from or link to (``fmwsss.pipeline.store.with_references``)."""
        from fmwsss.pipeline.store import with_references

        roots = set()
        for name, plan in self.datasets.items():
            if plan.error:
                continue
            roots.update((name, stage, key) for stage, key in plan.keys.items())
            roots.update((name, SCORES[s].name, k) for s, k in plan.score_keys.items())
            for stage in plan.image_specs:
                link = self.set_link(name, stage)
                if link.is_symlink():
                    roots.add((name, stage, linked_key(link)))
        return with_references(self.results, roots)
