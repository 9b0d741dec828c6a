"""The ``sam_masks`` stage for one shard: generate, commit image by image, resume after a kill."""
from __future__ import annotations

import os
import sys
import time
from pathlib import Path
from typing import Any, Callable

import torch
from tqdm import tqdm

from fmwsss.data.images import load_rgb
from fmwsss.models.sam import load_sam
from fmwsss.pipeline.hooks import maybe_stall
from fmwsss.sam.generator import RESULT_SETTINGS, LeveledMaskGenerator
from fmwsss.sam.shards import SamShardReader, SamShardWriter

STAGE = "sam_masks"


def _is_complete(path: Path) -> bool:
    try:
        SamShardReader(path).close()
    except (FileNotFoundError, ValueError):
        return False
    return True


def run_sam_shard(
    items: list[tuple[str, Path]],
    model_path: str | os.PathLike,
    arch: str,
    settings: dict[str, Any],
    partial_path: Path,
    final_path: Path,
    device: str,
    points_per_batch: int,
    rsw_chunk: int,
    log: Callable[[str], Any] = print,
) -> None:
    """Write the SAM masks of ``items`` (image id, image path) to the shard ``final_path``.

    Work accumulates in ``partial_path`` (inside a ``.partial`` directory the caller owns); images already
    committed there are skipped, so a killed job resumes. ``settings`` are the generator's
    :data:`RESULT_SETTINGS`; ``points_per_batch`` and ``rsw_chunk`` only trade memory for speed.
    A finished shard (``final_path`` complete) makes this a no-op.
    """
    partial_path, final_path = Path(partial_path), Path(final_path)
    ids = [image_id for image_id, _ in items]
    if len(set(ids)) != len(ids):
        raise ValueError(f"{STAGE}: duplicate image ids in the shard for {final_path}")
    unknown = sorted(set(settings) - set(RESULT_SETTINGS))
    if unknown:
        raise ValueError(f"{STAGE}: unknown SAM settings {unknown}; expected keys among {RESULT_SETTINGS}")
    if _is_complete(final_path):
        log(f"{STAGE}: {final_path} is complete, nothing to do")
        return

    model = load_sam(model_path, arch, torch.device(device))
    generator = LeveledMaskGenerator(model, **settings, points_per_batch=points_per_batch, rsw_chunk=rsw_chunk)
    with SamShardWriter(partial_path, settings) as writer:
        done = writer.done_ids()
        n_committed = len(done & set(ids))
        with tqdm(total=len(items), initial=n_committed, desc=STAGE, unit="img", file=sys.stderr) as bar:
            for index, (image_id, image_path) in enumerate(items, start=1):
                if image_id in done:
                    continue
                start = time.perf_counter()
                masks = generator.generate(load_rgb(image_path))
                writer.write(image_id, masks)
                n_committed += 1
                bar.update()
                log(f"{STAGE}: image {index}/{len(items)} {image_id} -> {len(masks)} masks "
                    f"({time.perf_counter() - start:.1f} s)")
                maybe_stall(STAGE, n_committed)
        writer.mark_complete(ids)
    final_path.parent.mkdir(parents=True, exist_ok=True)
    os.replace(partial_path, final_path)
