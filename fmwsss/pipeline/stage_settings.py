"""Translate a dataset's canonical settings into the library's typed settings objects, and check them all early.

One place maps config keys to library arguments, so a config key that the library cannot honour fails here,
naming the key, instead of being silently ignored. :func:`check_stage_settings` runs every stage's checks
for every configured dataset when the Snakefile is parsed, so an unsupported combination stops the run
before its first job rather than at a late stage. The checks are pure dict logic (no torch, no model, no
image): parsing stays cheap. The builders below run the same checks and then construct the typed objects.
"""
from __future__ import annotations

from pathlib import Path
from typing import Any

from fmwsss.pipeline.config import Config, ConfigError
from fmwsss.segmentation.archs import is_mask2former

PROMPT_SECTIONS = ("prompts_cls", "prompts_seg")


def prompt_names(settings: dict, class_names: tuple[str, ...]) -> tuple[tuple[str, ...], tuple[str, ...]]:
    """Foreground prompt texts (CLIP-ES synonyms unless configured) and background words."""
    from fmwsss.data.classes import fg_prompt_names

    fg = settings["classes"]["fg_prompt_names"]
    fg = tuple(fg) if fg is not None else fg_prompt_names(class_names)
    if len(fg) != len(class_names):
        raise ConfigError(
            f"classes.fg_prompt_names has {len(fg)} names but the dataset has {len(class_names)} classes "
            f"({', '.join(class_names[:5])}, ...); set it to null to use the dataset's class names"
        )
    return fg, tuple(settings["classes"]["bg_names"])


def prompt_config(section: dict, fg: tuple[str, ...], bg: tuple[str, ...]):
    from fmwsss.prompts.learners import PromptConfig

    bg_names = bg if section["bg_names"] == "named" else ("",) * len(bg)
    return PromptConfig(
        fg, bg_names, section["ctx_len"], section["class_specific"], section["name_position"],
        section["init_std"], section["seed"],
    )


def check_train(section: dict, runtime: dict, where: str) -> int:
    """Check a prompt section's loss, positives, loss weights and micro-batching; return the micro-batch count."""
    if where == "prompts_cls" and section["loss"] != "contrastive":
        raise ConfigError(f"{where}.loss: {section['loss']!r} trains on the coarse seeds, which are made after "
                          f"this stage; the classification prompts take the contrastive loss")
    if section["loss"] == "contrastive":
        if section["positives"] != "image_tags":
            raise ConfigError(f"{where}.positives: the contrastive loss takes its positives from image_tags")
        for weight in ("fg_weight", "bg_weight"):
            if section[weight] != 1.0:
                raise ConfigError(f"{where}.{weight}: weights a term of the cam_activation loss; the contrastive "
                                  f"loss has none (leave it at 1.0)")
    batch, micro = section["batch_size"], runtime["micro_batch"]
    micro_batches = 1 if micro is None else -(-batch // micro)
    if batch % micro_batches:
        raise ConfigError(f"runtime.micro_batch {micro} does not split {where}.batch_size {batch} evenly")
    return micro_batches


def train_config(section: dict, runtime: dict, where: str):
    """The training schedule of ``section`` (prompts_cls or prompts_seg) plus the runtime memory knobs."""
    from fmwsss.prompts.augment import AugConfig
    from fmwsss.prompts.train import TrainConfig

    micro_batches = check_train(section, runtime, where)
    aug, jitter = section["augment"], section["augment"]["color_jitter"]
    return TrainConfig(
        task="cls" if section["loss"] == "contrastive" else "seg",
        max_iter=section["iterations"],
        warmup_iters=section["warmup_iters"],
        warmup_lr=section["warmup_lr"],
        lr=section["lr"],
        momentum=section["momentum"],
        weight_decay=section["weight_decay"],
        batch_size=section["batch_size"],
        micro_batches=micro_batches,
        ckpt_every=runtime["checkpoint_every"],
        log_every=max(1, min(20, section["iterations"] // 20)),
        seed=section["seed"],
        positives=section["positives"],
        fg_weight=section["fg_weight"],
        bg_weight=section["bg_weight"],
        aug=AugConfig(
            long_side=tuple(aug["long_side"]),
            crop=aug["crop"],
            flip_p=aug["hflip"],
            jitter_p=jitter["p"],
            brightness=jitter["brightness"],
            contrast=tuple(jitter["contrast"]),
            saturation=tuple(jitter["saturation"]),
            hue=int(jitter["hue"]),
        ),
    )


def caa_settings(caa: dict) -> Any:
    """CaaSettings, or None when CAA is disabled (the raw CAM is passed through)."""
    from fmwsss.cams.caa import CaaSettings

    if not caa["enabled"]:
        return None
    return CaaSettings(caa["sinkhorn_iters"], caa["power"], caa["box_thresh"],
                       "score" if caa["propagate"] == "score" else "cam")


def check_sam(sam: dict) -> None:
    """The ``sam`` section's cross-key rule (``fmwsss.sam.build.check_sam_settings``, which imports torch)."""
    if sam["implementation"] == "reference" and sam["autocast"] != "none":
        raise ConfigError("sam.autocast: needs sam.implementation: fast (the reference generator runs in fp32)")


def check_segmenter(segmenter: dict, runtime: dict) -> None:
    """What ``train_segmenter``/``build_segmenter`` would refuse, from the settings alone."""
    if segmenter["arch"] == "tiny" and segmenter["pretrained_backbone"]:
        raise ConfigError("segmenter.pretrained_backbone: arch tiny is a random-init test model: set it to false")
    batch, gpus, micro = segmenter["batch_size"], runtime["segmenter_gpus"], runtime["micro_batch"]
    if batch % gpus:
        raise ConfigError(f"runtime.segmenter_gpus {gpus} must divide segmenter.batch_size {batch} (the global "
                          f"batch is fixed by the preset; each GPU takes an equal share)")
    share = batch // gpus
    least = 1 if is_mask2former(segmenter["arch"]) else 2
    if micro is not None and (share % micro or micro < least):
        why = "" if least == 1 else " (DeepLab's image-pooling BatchNorm needs two samples)"
        raise ConfigError(f"runtime.micro_batch {micro} must divide each GPU's share {share} of "
                          f"segmenter.batch_size {batch} and be >= {least}{why}")


def check_settings(settings: dict, runtime: dict, class_names: tuple[str, ...] | None) -> None:
    """Every stage's checks on one dataset's settings; ``class_names`` None skips the class-count check."""
    check_sam(settings["sam"])
    if class_names is not None:
        prompt_names(settings, class_names)
    for section in PROMPT_SECTIONS:
        if settings[section]["mode"] == "learned":
            check_train(settings[section], runtime, section)
    check_segmenter(settings["segmenter"], runtime)


def dataset_class_names(entry: dict) -> tuple[str, ...] | None:
    """The class names of a dataset entry without opening it: fixed per type, or a custom dataset's class file.

    None when a custom dataset's root is unset or its class file unreadable: opening the dataset reports that.
    """
    from fmwsss.data import COCO_CLASS_NAMES, VOC_CLASS_NAMES, DatasetError
    from fmwsss.data.custom import read_class_names

    if entry["type"] in ("voc", "demo"):
        return VOC_CLASS_NAMES
    if entry["type"] == "coco":
        return COCO_CLASS_NAMES
    if entry["root"] is None:
        return None
    try:
        return tuple(read_class_names(Path(entry["root"]) / entry["options"].get("classes", "classes.txt")))
    except DatasetError:
        return None


def check_stage_settings(config: Config) -> None:
    """Check every stage's settings of every configured dataset (parse time); the error names dataset and key."""
    for name, entry in config.datasets.items():
        try:
            check_settings(config.settings(name), config.runtime, dataset_class_names(entry))
        except ConfigError as exc:
            raise ConfigError(f"{config.where}: datasets.{name} (preset {entry['preset']}): {exc}") from None
