"""Full-size random-weight test models (``random_*`` in the registry), written in the released files' formats.

Why: the tiny models show the pipeline's mechanics but not its cost; a GPU rehearsal needs the real
architectures (CLIP ViT-B/16, SAM ViT-H with 641 M parameters) to measure time and memory, without
downloading anything. Each model is written in the format its real checkpoint has, so the real loaders read
it: CLIP as an OpenAI TorchScript archive like ``ViT-B-16.pt`` (``fmwsss.models.clip.load_clip``), SAM as a
segment-anything state dict like ``sam_vit_h_4b8939.pth`` (``fmwsss.models.sam.load_sam``).

Weights are drawn on CPU under a fixed seed (the same seed gives the same weights; stage keys assume
``RANDOM_SEED``), the file is streamed to a temporary sibling while being hashed and renamed into place, and
its sidecar records that sha256: the reference ``fmwsss weights verify`` checks it against. Cost on one CPU
core: SAM ViT-H ~5-10 s to build and ~15 s to write 2.4 GiB (memory: the model once, ~3.3 GB); CLIP ~12 s,
~300 MB (the TorchScript archive is built in memory).
"""
from __future__ import annotations

import os
from collections.abc import Callable
from pathlib import Path
from typing import BinaryIO

import torch

from fmwsss.io.atomic import atomic_path
from fmwsss.io.digest import HashingWriter
from fmwsss.io.progress import Progress
from fmwsss.models.weights import RANDOM_SEED, get_weight, random_model_names, record_creation

Log = Callable[[str], None]
_MIB = 1 << 20


def random_sam_state_dict(arch: str, seed: int = RANDOM_SEED) -> dict[str, torch.Tensor]:
    """segment-anything's own SAM ``arch`` (``vit_h``/``vit_l``/``vit_b``) with its own random initialisation
    under ``seed``: exactly the keys and shapes of the released checkpoint."""
    from segment_anything import sam_model_registry

    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        model = sam_model_registry[arch](checkpoint=None)
    return model.state_dict()


def _writer(arch: str, kind: str, seed: int) -> tuple[Callable[[BinaryIO], None], int]:
    """How to write the model (a function of an open binary file) and its tensor bytes (for progress)."""
    if kind == "sam":
        state = random_sam_state_dict(arch, seed)
        return (lambda fh: torch.save(state, fh)), sum(t.numel() * t.element_size() for t in state.values())
    from fmwsss.models.clip import RELEASED_LOGIT_SCALE, clip_state_dict, write_clip_archive

    state = clip_state_dict(arch, seed, RELEASED_LOGIT_SCALE)
    return (lambda fh: write_clip_archive(state, fh)), sum(t.numel() * t.element_size() for t in state.values())


def create_random_model(
    name: str, path: str | os.PathLike, seed: int = RANDOM_SEED, log: Log = print
) -> str:
    """Make the full-size random model ``name`` at ``path`` (atomically) and record its sha256 in the sidecar;
    return that digest. ``log`` gets what is done: the build, progress lines while writing, the result."""
    spec = get_weight(name)
    if not spec.made_locally or spec.tiny:
        raise ValueError(f"{name!r} is not a full-size random model ({', '.join(random_model_names())})")
    path = Path(path)
    log(f"{name}: building {spec.kind} {spec.arch} with random weights on CPU (seed {seed})")
    write, size = _writer(spec.arch, spec.kind, seed)
    total = max(1, size // _MIB)
    progress = Progress(log, f"{name}: writing {path.name}, MiB", total, every=max(1, total // 10), unit="MiB")

    def advance(written: int) -> None:
        step = min(written // _MIB, total) - progress.done
        if step > 0:
            progress.advance(step)

    with atomic_path(path) as tmp, open(tmp, "wb") as fh:
        out = HashingWriter(fh, advance)
        write(out)
        fh.flush()
        os.fsync(fh.fileno())
    digest = record_creation(path, out.hexdigest())
    log(f"{name}: wrote {path} ({out.written} bytes), sha256 {digest} (recorded in its sidecar)")
    return digest
