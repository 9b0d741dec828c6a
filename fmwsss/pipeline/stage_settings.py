"""Translate a dataset's canonical settings into the library's typed settings objects.

One place maps config keys to library arguments, so a config key that the library cannot honour fails here,
naming the key, instead of being silently ignored.
"""
from __future__ import annotations

from typing import Any

from fmwsss.pipeline.config import ConfigError


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


def train_config(section: dict, runtime: dict, where: str):
    """The training schedule of ``section`` (prompts_cls or prompts_seg) plus the runtime memory knobs."""
    from fmwsss.prompts.augment import AugConfig
    from fmwsss.prompts.train import TrainConfig

    task = "cls" if section["loss"] == "contrastive" else "seg"
    if task == "seg" and section["positives"] != "crop_labels":
        raise ConfigError(f"{where}.positives: 'image_tags' with the cam_activation loss is not supported yet")
    if task == "cls" and section["positives"] != "image_tags":
        raise ConfigError(f"{where}.positives: the contrastive loss takes its positives from image_tags")
    aug, jitter = section["augment"], section["augment"]["color_jitter"]
    batch, micro = section["batch_size"], runtime["micro_batch"]
    micro_batches = 1 if micro is None else -(-batch // micro)
    if batch % micro_batches:
        raise ConfigError(f"runtime.micro_batch {micro} does not split {where}.batch_size {batch} evenly")
    return TrainConfig(
        task=task,
        max_iter=section["iterations"],
        warmup_iters=section["warmup_iters"],
        warmup_lr=section["warmup_lr"],
        lr=section["lr"],
        momentum=section["momentum"],
        weight_decay=section["weight_decay"],
        batch_size=batch,
        micro_batches=micro_batches,
        ckpt_every=runtime["checkpoint_every"],
        log_every=max(1, min(20, section["iterations"] // 20)),
        seed=section["seed"],
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
