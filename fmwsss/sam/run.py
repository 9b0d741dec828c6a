"""The ``sam_masks`` stage for one shard: generate, commit image by image, resume after a kill.

Images are decoded (and, for the fast generator, cropped and resized) by data-loader workers while the
model works on the previous batch; results are committed to the shard file one image at a time, in order.
"""
from __future__ import annotations

import os
import sys
import time
from functools import partial
from pathlib import Path
from typing import Any, Callable, Mapping, Sequence

import numpy as np
import torch
from torch.utils.data import DataLoader, Dataset
from tqdm import tqdm

from fmwsss.data.images import load_rgb
from fmwsss.models.sam import load_sam
from fmwsss.hooks import maybe_stall
from fmwsss.io.progress import Progress
from fmwsss.io.shards import link_reused
from fmwsss.sam.build import SamSpeed, build_generator, check_sam_settings
from fmwsss.sam.fast import FastMaskGenerator, prepare_image
from fmwsss.sam.shards import SamShardReader, SamShardWriter

STAGE = "sam_masks"


def _is_complete(path: Path) -> bool:
    try:
        SamShardReader(path).close()
    except (FileNotFoundError, ValueError):
        return False
    return True


class ShardImages(Dataset):
    """(image id, decoded image or prepared crops) per item; runs in loader workers."""

    def __init__(self, items: Sequence[tuple[str, Path]], prepare: Callable[[np.ndarray], Any] | None) -> None:
        self.items = list(items)
        self.prepare = prepare

    def __len__(self) -> int:
        return len(self.items)

    def __getitem__(self, index: int) -> tuple[str, Any]:
        image_id, path = self.items[index]
        rgb = load_rgb(path)
        return image_id, (rgb if self.prepare is None else self.prepare(rgb))


def _as_list(batch: list) -> list:
    return batch


def crops_per_image(crop_n_layers: int) -> int:
    """The whole image plus 2^i x 2^i crops for each layer i."""
    return sum(4**layer for layer in range(crop_n_layers + 1))


def run_sam_shard(
    items: list[tuple[str, Path]],
    model_path: str | os.PathLike,
    arch: str,
    settings: dict[str, Any],
    partial_path: Path,
    final_path: Path,
    device: str,
    speed: SamSpeed = SamSpeed(),
    num_workers: int = 0,
    log: Callable[[str], Any] = print,
    reused: Mapping[str, tuple[str, str]] | None = None,
    image_keys: Mapping[str, str] | None = None,
) -> None:
    """Write the SAM masks of ``items`` (image id, image path) to the shard ``final_path``.

    Work accumulates in ``partial_path`` (inside a ``.partial`` directory the caller owns); images already
    committed there are skipped, so a killed job resumes at the first uncommitted image. ``settings`` is
    the ``sam`` config section; ``speed`` and ``num_workers`` only trade memory for speed. A finished shard
    (``final_path`` complete) makes this a no-op. ``reused`` (image id -> (HDF5 file relative to the
    shard's folder, group)) names images whose identical result another shard already holds: they are
    linked, not recomputed, and the model is loaded only if some image is left to compute. ``image_keys``
    (image id -> per-image result key) is recorded on each computed image's group, for later entries that link it.
    """
    reused = reused or {}
    partial_path, final_path = Path(partial_path), Path(final_path)
    ids = [image_id for image_id, _ in items]
    if len(set(ids)) != len(ids):
        raise ValueError(f"{STAGE}: duplicate image ids in the shard for {final_path}")
    check_sam_settings(settings)
    if _is_complete(final_path):
        log(f"{STAGE}: {final_path} is complete, nothing to do")
        return

    with SamShardWriter(partial_path, settings, image_keys) as writer:
        n_reused = link_reused(writer, reused)
        done = writer.done_ids()
        todo = [(image_id, path) for image_id, path in items if image_id not in done]
        if todo:
            _compute(todo, ids, writer, model_path, arch, settings, device, speed, num_workers, log)
        log(f"{STAGE}: {final_path.name}: {len(ids)} images: reused {n_reused}, computed {len(todo)}")
        writer.mark_complete(ids)
    final_path.parent.mkdir(parents=True, exist_ok=True)
    os.replace(partial_path, final_path)


def _compute(todo: list[tuple[str, Path]], ids: list[str], writer: SamShardWriter, model_path: str | os.PathLike,
             arch: str, settings: dict[str, Any], device: str, speed: SamSpeed, num_workers: int,
             log: Callable[[str], Any]) -> None:
    """Generate and commit the masks of ``todo`` (the model is loaded only when there is work)."""
    model = load_sam(model_path, arch, torch.device(device))
    generator = build_generator(model, settings, speed)
    if isinstance(generator, FastMaskGenerator):
        prepare = partial(prepare_image, img_size=model.image_encoder.img_size,
                          crop_n_layers=generator.crop_n_layers, crop_overlap_ratio=generator.crop_overlap_ratio)
        images_per_batch = max(1, generator.encoder_batch // crops_per_image(generator.crop_n_layers))
        log(f"{STAGE}: fast generator, {images_per_batch} image(s) per batch, encoder batch "
            f"{generator.encoder_batch}, {generator.points_per_batch} points per decoder call")
    else:
        prepare, images_per_batch = None, 1
        log(f"{STAGE}: reference generator, {generator.points_per_batch} points per decoder call")
    loader = DataLoader(ShardImages(todo, prepare), batch_size=images_per_batch, num_workers=num_workers,
                        collate_fn=_as_list)
    n_committed = len(ids) - len(todo)
    progress = Progress(log, f"{STAGE}: image", len(ids), done=n_committed, every=1, unit="image")
    with tqdm(total=len(ids), initial=n_committed, desc=STAGE, unit="img", file=sys.stderr) as bar:
        start = time.perf_counter()
        for batch in loader:
            if isinstance(generator, FastMaskGenerator):
                results = generator.generate_prepared([prepared for _, prepared in batch])
            else:
                results = [generator.generate(rgb) for _, rgb in batch]
            seconds = (time.perf_counter() - start) / len(batch)
            for (image_id, _), masks in zip(batch, results):
                writer.write(image_id, masks)
                n_committed += 1
                bar.update()
                progress.advance(detail=f"{image_id} -> {len(masks)} masks ({seconds:.1f} s)")
                maybe_stall(STAGE, n_committed)
            start = time.perf_counter()
