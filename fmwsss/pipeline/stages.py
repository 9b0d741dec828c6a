"""The stage graph: what each stage reads, what it depends on, and its version constant.

Bump a stage's ``version`` whenever a code change alters its outputs: library edits are invisible to
Snakemake's rerun triggers (by design, so cosmetic edits never invalidate GPU hours), and the version is
what moves the stage (and everything downstream) to a new key.
"""
from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class Stage:
    name: str
    version: int
    sections: tuple[str, ...]  # settings sections hashed into the key
    weights: tuple[str, ...]  # entries of settings["models"] whose identity is hashed
    upstream: tuple[str, ...]
    sharded: bool  # one job per shard of images, gathered by a finalize job
    alias: str | None  # stable name results/{dataset}/{alias}


STAGES: dict[str, Stage] = {
    s.name: s
    for s in (
        Stage("sam_masks", 2, ("sam", "data"), ("sam",), (), True, "sam_masks"),
        Stage("prompts_cls_train", 1, ("prompts_cls", "classes"), ("clip",), (), False, None),
        Stage(
            "cams_coarse_dump", 2, ("cams_coarse", "classes", "data"), ("clip",),
            ("prompts_cls_train",), True, "cams_coarse",
        ),
        Stage(
            "seeds_coarse", 2, ("seeds_coarse", "data"), (),
            ("cams_coarse_dump", "sam_masks"), True, "seeds_coarse",
        ),
        Stage("prompts_seg_train", 2, ("prompts_seg", "classes"), ("clip",), ("seeds_coarse",), False, None),
        Stage(
            "cams_fine_dump", 2, ("cams_fine", "classes", "data"), ("clip",),
            ("prompts_seg_train",), True, "cams_fine",
        ),
        Stage(
            "seeds_fine", 2, ("seeds_fine", "data"), (),
            ("cams_fine_dump", "sam_masks"), True, "seeds",
        ),
        Stage("deeplab_train", 3, ("segmenter",), (), ("seeds_fine",), False, None),
        Stage("deeplab_eval", 1, ("segmenter_eval",), (), ("deeplab_train",), False, "deeplab"),
    )
}

# The dataset inputs each stage reads, by header digest of fmwsss.data.index (docs/architecture.md has the
# table): ``images``/``tags`` over the run's ids, ``val_*`` over the val split. Of the compute stages only
# deeplab_eval reads ground truth (``val_gt``); the CAM and seed stages are scored by the score entries below.
# Every stage also hashes the dataset type, the id list and the class names.
DATASET_INPUTS: dict[str, tuple[str, ...]] = {
    "sam_masks": ("images",),
    "prompts_cls_train": ("images", "tags"),
    "cams_coarse_dump": ("images", "tags"),
    "seeds_coarse": ("tags",),
    "prompts_seg_train": ("images", "tags"),
    "cams_fine_dump": ("images", "tags"),
    "seeds_fine": ("tags",),
    "deeplab_train": ("images", "val_ids"),
    "deeplab_eval": ("val_ids", "val_images", "val_gt"),
}



@dataclass(frozen=True)
class Score:
    """Scoring of one stage's entry against ground truth: a light entry of its own, ``store/score_<stage>/``.

    Its key hashes the scored entry's key, the ``gt`` digest of the index and ``sections`` (the settings the
    scoring reads), so a new ``eval`` value or a corrected mask reruns only the scoring, never the compute.
    """

    stage: str  # the scored stage
    version: int
    sections: tuple[str, ...]

    @property
    def name(self) -> str:
        return f"score_{self.stage}"


SCORES: dict[str, Score] = {
    s.stage: s
    for s in (
        Score("cams_coarse_dump", 1, ("eval",)),  # argmax with eval.cam_bg_power
        Score("seeds_coarse", 1, ()),
        Score("cams_fine_dump", 1, ("eval",)),
        Score("seeds_fine", 1, ()),
    )
}

EXTRA_ALIASES: dict[str, str] = {"segmenter": "deeplab_eval"}
"""Further stable names of an entry: ``segmenter`` names stage II whatever its arch (DeepLab or Mask2Former);
``deeplab``, its first name, keeps working."""

ALIASES: dict[str, str] = {**{s.alias: s.name for s in STAGES.values() if s.alias}, **EXTRA_ALIASES}

# The product each unsharded stage writes besides spec.json (the rule's declared output).
PRODUCTS: dict[str, str] = {
    "prompts_cls_train": "prompts.pt",
    "prompts_seg_train": "prompts.pt",
    "deeplab_train": "model.pt",
    "deeplab_eval": "metrics.json",
}


def upstream_aliases(alias: str) -> list[str]:
    """Aliases of the nearest aliased ancestors, so targeting one alias re-points those upstream too."""
    found: list[str] = []
    todo = list(STAGES[ALIASES[alias]].upstream)
    while todo:
        stage = STAGES[todo.pop(0)]
        if stage.alias:
            if stage.alias not in found:
                found.append(stage.alias)
        else:
            todo.extend(stage.upstream)
    return found


def weight_roles(stage: str) -> tuple[str, ...]:
    """The ``settings["models"]`` roles whose weights ``stage``'s results depend on: its own and those of
    every stage upstream of it, sorted (``cams_coarse_dump``: clip only; the seeds: clip and sam)."""
    roles: set[str] = set()
    todo = [stage]
    while todo:
        found = STAGES[todo.pop()]
        roles.update(found.weights)
        todo.extend(found.upstream)
    return tuple(sorted(roles))
