"""The fine chain for one tagged image, in memory: SAM masks -> CAMs -> fine CAA -> SAMS seed (docs/method.md §3,
§8, §10).

What ``fmwsss seed`` runs without Snakemake or a store: the same library calls as the ``sam_masks``,
``cams_fine_dump`` and ``seeds_fine`` stages, with the dataset's settings from ``config.yaml``, for a quick look
at what the method makes of one image. Nothing is cached, so every call pays SAM's encoder and CLIP's forward
and backward once. The CAMs come from trained segmentation prompts (a ``prompts.pt`` file) or, without one, from
CLIP-ES's zero-shot prompts, which give coarser seeds than the method's.

:class:`FineChain` holds the loaded models (``load`` does the file I/O, weights through the registry's
``require_local``); :meth:`FineChain.run` is the pure per-image computation.
"""
from __future__ import annotations

import os
from dataclasses import dataclass
from typing import Sequence

import numpy as np
import torch
from torch import nn

from fmwsss.cams import codec, dump
from fmwsss.cams.caa import CaaSettings
from fmwsss.cams.clip_wrapper import ClipCam
from fmwsss.cams.dump import ZeroShot, prompts_source
from fmwsss.pipeline.stage_settings import caa_settings
from fmwsss.sam.build import MaskGenerator, SamSpeed, build_generator
from fmwsss.sam.types import ImageMasks


def build_text_head(clip_cam: ClipCam, prompts: str | os.PathLike | None, settings: dict,
                    class_names: Sequence[str]) -> nn.Module:
    """The text side, built as the CAM stages build it: the learner saved in ``prompts`` (its layout is in the
    file), or CLIP-ES zero-shot prompts when ``prompts`` is None (words from the ``classes`` section) or a
    zero-shot marker (words from the file)."""
    from fmwsss.pipeline.stage_settings import prompt_names

    source = ZeroShot(*prompt_names(settings, tuple(class_names))) if prompts is None else prompts_source(prompts)
    head = dump.build_text_head(clip_cam, source)
    if head.n_fg != len(class_names):
        raise ValueError(f"{prompts}: prompts for {head.n_fg} foreground classes, the dataset has {len(class_names)}")
    return head


@dataclass
class SeedResult:
    """One image's fine seed and what it was made from."""

    seed: np.ndarray  # uint8 (H, W): 0 background, else a class id of ``classes``
    classes: np.ndarray  # int64 (P,) the tagged class ids, ascending
    cams: np.ndarray  # float32 (P, h, w) CAA-refined CAMs (raw when CAA is off) at patch resolution, as stored
    masks: ImageMasks | None  # the SAM masks (None for the argmax method, which needs none)


@dataclass
class FineChain:
    """Loaded models plus the fine-stage settings; ``run`` seeds one image."""

    clip_cam: ClipCam
    text: torch.Tensor  # (K, E) text features, fg first
    n_fg: int
    generator: MaskGenerator | None
    caa: CaaSettings | None
    seeds: dict  # the ``seeds_fine`` section
    device: torch.device

    @classmethod
    def load(cls, settings: dict, class_names: Sequence[str], prompts: str | os.PathLike | None,
             device: torch.device, speed: SamSpeed = SamSpeed()) -> "FineChain":
        """Load CLIP, the prompts and (for SAMS) SAM per ``settings``; missing weights raise the registry's
        MissingWeightsError naming the file and the fetch command, before anything is loaded.

        ``speed`` (config ``runtime``) trades memory for speed only.
        """
        from fmwsss.models.clip import load_clip
        from fmwsss.models.sam import load_sam
        from fmwsss.models.weights import get_weight, require_local

        models = settings["models"]
        use_sams = settings["seeds_fine"]["method"] == "sams"
        clip_path = require_local(models["clip"])
        sam_path = require_local(models["sam"]) if use_sams else None
        caa_section = settings["cams_fine"]["caa"]
        clip_cam = ClipCam(load_clip(clip_path, device), n_attn_layers=int(caa_section["last_n_layers"]))
        head = build_text_head(clip_cam, prompts, settings, class_names).to(device)
        text = dump.text_features(head, clip_cam)
        generator = None
        if sam_path is not None:
            sam = load_sam(sam_path, get_weight(models["sam"]).arch, device)
            generator = build_generator(sam, settings["sam"], speed)
        return cls(clip_cam, text, head.n_fg, generator, caa_settings(caa_section), settings["seeds_fine"], device)

    def cams(self, rgb: np.ndarray, classes: np.ndarray) -> torch.Tensor:
        """Softmax-Grad-CAMs of the tagged classes at native resolution, CAA-refined when enabled: (P, h, w)."""
        return dump.image_cams(self.clip_cam, self.text, self.n_fg, rgb, classes, self.caa, self.device)[1]

    def run(self, rgb: np.ndarray, classes: np.ndarray) -> SeedResult:
        """Seed ``rgb`` (uint8 (H, W, 3)) for the tagged ``classes`` (ids 1..C)."""
        from fmwsss.seeding import seed_image

        classes = np.asarray(classes, dtype=np.int64)
        if classes.size == 0 or classes.min() < 1 or classes.max() > self.n_fg:
            raise ValueError(f"tags {classes.tolist()} must be class ids in 1..{self.n_fg}")
        cams = codec.round_trip(self.cams(rgb, classes).cpu().numpy())  # what cams_fine_dump stores
        size = rgb.shape[:2]
        masks = self.generator.generate(rgb) if self.generator is not None else None
        return SeedResult(seed_image(self.seeds, cams, classes, size, masks, self.device), classes, cams, masks)


def label_fractions(seed: np.ndarray, labels: Sequence[int]) -> dict[int, float]:
    """Fraction of the seed's pixels carrying each of ``labels``."""
    counts = np.bincount(seed.reshape(-1), minlength=256)
    return {int(lb): float(counts[lb]) / seed.size for lb in labels}


def overlay(rgb: np.ndarray, seed: np.ndarray, palette: Sequence[int], alpha: float = 0.5) -> np.ndarray:
    """uint8 (H, W, 3): the image with each labelled pixel blended ``alpha`` towards its palette colour;
    background (0) and void (255) pixels are left as they are."""
    colours = np.asarray(palette, dtype=np.float32).reshape(256, 3)[seed]
    blend = (1 - alpha) * rgb.astype(np.float32) + alpha * colours
    labelled = ((seed > 0) & (seed < 255))[..., None]
    return np.where(labelled, np.rint(blend), rgb).astype(np.uint8)
