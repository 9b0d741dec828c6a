"""CAM dump stage (docs/method.md §7 + §8): raw Softmax-Grad-CAMs and their CAA refinement for a shard of images.

One image at a time at native resolution (each side rounded up to a multiple of 16), fp32 CLIP, positives
from the image tags. Resumable: images already committed in the partial shard are skipped.
"""
from __future__ import annotations

import os
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Callable, Mapping, Sequence

import numpy as np
import torch
from tqdm import tqdm

from fmwsss.cams.caa import CaaSettings, refine
from fmwsss.cams.clip_wrapper import ClipCam, preprocess_native
from fmwsss.cams.gradcam import softmax_gradcam
from fmwsss.cams.shards import CamShardWriter
from fmwsss.hooks import maybe_stall
from fmwsss.io.progress import Progress
from fmwsss.io.shards import link_reused
from fmwsss.prompts.learners import ZeroShotPrompts, load_prompts, zero_shot_marker


@dataclass(frozen=True)
class ZeroShot:
    """Use CLIP-ES hand-written prompts instead of a trained prompt file."""

    fg_names: tuple[str, ...]
    bg_names: tuple[str, ...]


def _default_loader() -> Callable[[Path], np.ndarray]:
    from fmwsss.data.images import load_rgb

    return load_rgb


def prompts_source(path: str | os.PathLike) -> str | os.PathLike | ZeroShot:
    """A prompt stage's ``prompts.pt`` as :func:`dump_cams` takes it: the trained learner's file, or the
    zero-shot prompts named by the marker a ``zero_shot``-mode stage writes instead of a learner."""
    marker = zero_shot_marker(path)
    return ZeroShot(*marker) if marker else path


def build_text_head(clip_cam: ClipCam, prompts: str | os.PathLike | ZeroShot) -> torch.nn.Module:
    if isinstance(prompts, ZeroShot):
        return ZeroShotPrompts(clip_cam, prompts.fg_names, prompts.bg_names)
    return load_prompts(prompts, clip_cam)


def text_features(head: torch.nn.Module, clip_cam: ClipCam) -> torch.Tensor:
    """The (K, E) text features of a prompt head (fg first), computed once per job: no gradient needed."""
    with torch.no_grad():
        return head.text_features(clip_cam).detach()


def image_cams(clip_cam: ClipCam, text: torch.Tensor, n_fg: int, rgb: np.ndarray, classes: np.ndarray,
               caa: CaaSettings | None, device: str | torch.device) -> tuple[torch.Tensor, torch.Tensor]:
    """Raw Softmax-Grad-CAMs of one image's tagged ``classes`` (ids 1..n_fg, ascending) at native resolution,
    and their CAA refinement (the raw CAMs again when ``caa`` is None): two (P, h, w) tensors.

    The one per-image computation of the CAM stages and of ``fmwsss seed``, so the two cannot drift apart.
    """
    if classes.size and (classes.min() < 1 or classes.max() > n_fg):
        raise ValueError(f"tags {classes.tolist()} outside 1..{n_fg}")
    x = preprocess_native(rgb, clip_cam.patch_size)[None].to(device)
    present = torch.zeros(1, n_fg, dtype=torch.bool, device=device)
    present[0, torch.as_tensor(classes - 1, device=device)] = True
    with torch.enable_grad():
        out = clip_cam.encode_image(x, need_attn=caa is not None)
        cams = softmax_gradcam(out.act, clip_cam.logits(out.feat, text), present, out.grid).cams.detach()
    return cams, (refine(cams, out.attn[0], caa) if caa else cams)


def dump_cams(items: Sequence[tuple[str, str | os.PathLike, Sequence[int]]], clip_path: str | os.PathLike,
              prompts: str | os.PathLike | ZeroShot, caa: CaaSettings | None, partial_path: str | os.PathLike,
              final_path: str | os.PathLike, device: str | torch.device = "cpu",
              log: Callable[[str], None] = print, stage: str = "cams_coarse_dump", n_attn_layers: int = 8,
              load_image: Callable[[Path], np.ndarray] | None = None,
              reused: Mapping[str, tuple[str, str]] | None = None,
              image_keys: Mapping[str, str] | None = None) -> Path:
    """Write the CAM shard for ``items`` = [(image id, image path, tags as class ids 1..C)].

    ``caa`` None skips the refinement (``cam_caa`` then holds the raw CAM, as COCO's fine stage wants).

    ``stage`` names the pipeline stage for the test stall hook (``cams_coarse_dump`` / ``cams_fine_dump``).
    ``reused`` (image id -> (HDF5 file relative to the shard's folder, group)): images whose identical CAMs
    another shard holds, linked instead of recomputed. ``image_keys`` (image id -> per-image result key) is
    recorded on each computed image's group, for later entries that link it.
    """
    load_image = load_image or _default_loader()
    ids = [it[0] for it in items]
    writer = CamShardWriter(partial_path, final_path, _shard_settings(caa, n_attn_layers, prompts), image_keys)
    try:
        n_reused = link_reused(writer, reused or {})
        done = writer.done
        todo = [it for it in items if it[0] not in done]
        if len(done) > n_reused:
            log(f"[{stage}] resuming {partial_path}: {len(done)} images done, {len(todo)} to go")
        if todo:
            _compute(todo, writer, clip_path, prompts, caa, device, stage, n_attn_layers, load_image, len(done),
                     len(ids), log)
        log(f"[{stage}] {Path(final_path).name}: {len(ids)} images: reused {n_reused}, computed {len(todo)}")
        final = writer.finish(ids)
    finally:
        writer.close()
    log(f"[{stage}] wrote {final}")
    return final


def _shard_settings(caa: CaaSettings | None, n_attn_layers: int, prompts: str | os.PathLike | ZeroShot) -> dict:
    return {"caa": asdict(caa) if caa else None, "n_attn_layers": n_attn_layers,
            "prompts": "zero-shot" if isinstance(prompts, ZeroShot) else str(prompts)}


def _compute(todo: Sequence[tuple[str, str | os.PathLike, Sequence[int]]], writer: CamShardWriter,
             clip_path: str | os.PathLike, prompts: str | os.PathLike | ZeroShot, caa: CaaSettings | None,
             device: str | torch.device, stage: str, n_attn_layers: int, load_image: Callable[[Path], np.ndarray],
             committed: int, total: int, log: Callable[[str], None]) -> None:
    """CAMs of ``todo`` committed one by one (CLIP is loaded only when there is work)."""
    from fmwsss.models.clip import load_clip

    clip_cam = ClipCam(load_clip(clip_path, device), n_attn_layers=n_attn_layers)
    head = build_text_head(clip_cam, prompts).to(device)
    text, n_fg = text_features(head, clip_cam), head.n_fg
    progress = Progress(log, f"[{stage}] image", total, done=committed, unit="image")
    for image_id, path, tags in tqdm(todo, desc=stage, unit="img", mininterval=5):
        rgb = load_image(Path(path))
        classes = np.array(sorted(set(int(t) for t in tags)), np.int64)
        try:
            cams, refined = image_cams(clip_cam, text, n_fg, rgb, classes, caa, device)
        except ValueError as exc:
            raise ValueError(f"image {image_id}: {exc}") from exc
        writer.write_cams(image_id, cams.cpu().numpy(), refined.cpu().numpy(), classes,
                          rgb.shape[0], rgb.shape[1], clip_cam.patch_size)
        committed += 1
        progress.advance(detail=image_id)
        maybe_stall(stage, committed)
