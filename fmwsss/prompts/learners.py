"""CoOp-style prompt learners (only the context vectors train) and CLIP-ES zero-shot prompts.

Token layout per text class: ``[SOS] ctx_1..ctx_M name "." [EOS]`` (name ``end``) or
``[SOS] name ctx_1..ctx_M "." [EOS]`` (name ``front``), padded to the context length (77). The fixed tokens
come from CLIP's frozen token embedding; only ``ctx`` is a parameter. Both kinds expose
``text_features(clip_cam) -> (K, E)`` for K = n_fg + n_bg text classes, fg first.
"""
from __future__ import annotations

import os
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Literal, Sequence

import torch
from torch import nn

from fmwsss.cams.clip_wrapper import ClipCam

CLIP_ES_TEMPLATES = ("a clean origami {}.",)


@dataclass(frozen=True)
class PromptConfig:
    """Everything that defines a learner's layout and its initial draw (saved with every checkpoint)."""

    fg_names: tuple[str, ...]
    bg_names: tuple[str, ...]
    n_ctx: int = 16
    class_specific: bool = False
    name_position: Literal["end", "front"] = "end"
    init_std: float = 0.015
    seed: int = 0


def cls_prompt_config(fg_names: Sequence[str], bg_names: Sequence[str], seed: int = 0) -> PromptConfig:
    """Classification prompts (docs/method.md §4): one shared 16-token context, name at the end, named bg words,
    std 0.015."""
    return PromptConfig(tuple(fg_names), tuple(bg_names), 16, False, "end", 0.015, seed)


def seg_prompt_config(fg_names: Sequence[str], n_bg: int, seed: int = 1) -> PromptConfig:
    """Segmentation prompts (docs/method.md §4): a context per class, name in front, ``n_bg`` empty bg names,
    std 0.0125.

    Its default seed (1, as config ``prompts_seg.seed``) differs from the classification prompts' (0): with one
    seed, class 0's segmentation context would be the classification context times 0.0125 / 0.015.
    """
    return PromptConfig(tuple(fg_names), ("",) * n_bg, 16, True, "front", 0.0125, seed)


def _tokenize(texts: list[str], context_length: int) -> torch.Tensor:
    from open_clip.tokenizer import tokenize

    return tokenize(texts, context_length=context_length)


def _name_lengths(names: Sequence[str]) -> list[int]:
    from open_clip.tokenizer import _tokenizer

    return [len(_tokenizer.encode(n)) for n in names]


class PromptLearner(nn.Module):
    """Learnable contexts for K text classes; ``ctx`` is (M, D) when shared, (K, M, D) when class-specific."""

    def __init__(self, clip_cam: ClipCam, config: PromptConfig):
        super().__init__()
        self.config = config
        self.n_fg = len(config.fg_names)
        names = list(config.fg_names) + list(config.bg_names)
        m, length = config.n_ctx, clip_cam.context_length
        tokens = _tokenize([" ".join(["X"] * m) + " " + n + "." for n in names], length)
        name_lens = torch.tensor(_name_lengths(names))
        if int((1 + m + name_lens + 2).max()) > length:
            raise ValueError(f"a prompt of {m} context tokens plus its class name exceeds {length} tokens")
        with torch.no_grad():
            emb = clip_cam.token_embedding(tokens.to(clip_cam.token_embedding.weight.device)).float()
        width = emb.shape[-1]
        shape = (len(names), m, width) if config.class_specific else (m, width)
        gen = torch.Generator().manual_seed(int(config.seed))
        init = torch.randn(shape, generator=gen) * config.init_std
        self.ctx = nn.Parameter(init.clone().to(emb.device))
        self.register_buffer("init_ctx", init.to(emb.device))
        self.register_buffer("prefix", emb[:, :1])
        self.register_buffer("suffix", emb[:, 1 + m:])
        self.register_buffer("eot_index", tokens.argmax(dim=-1).to(emb.device))
        self.register_buffer("order", self._layout(name_lens, m, length).to(emb.device))

    @staticmethod
    def _layout(name_lens: torch.Tensor, m: int, length: int) -> torch.Tensor:
        """Gather index (K, L) that turns the ``end`` layout into the ``front`` layout."""
        pos = torch.arange(length).expand(len(name_lens), length)
        n = name_lens[:, None]
        # front: SOS, name (taken from slots 1+m..), ctx (slots 1..m), then everything after the name unchanged
        in_name = (pos >= 1) & (pos < 1 + n)
        in_ctx = (pos >= 1 + n) & (pos < 1 + n + m)
        return torch.where(in_name, pos + m, torch.where(in_ctx, pos - n, pos))

    @property
    def n_classes(self) -> int:
        return int(self.prefix.shape[0])

    def prompt_embeddings(self) -> torch.Tensor:
        """(K, L, D) token embeddings of all prompts, differentiable in ``ctx``."""
        ctx = self.ctx if self.config.class_specific else self.ctx.expand(self.n_classes, -1, -1)
        seq = torch.cat([self.prefix, ctx.to(self.prefix.dtype), self.suffix], dim=1)
        if self.config.name_position == "end":
            return seq
        return seq.gather(1, self.order[..., None].expand_as(seq))

    def text_features(self, clip_cam: ClipCam) -> torch.Tensor:
        return clip_cam.encode_prompts(self.prompt_embeddings(), self.eot_index)

    def checkpoint(self) -> dict:
        """What a prompt file holds: the trained and initial contexts and the layout config."""
        return {"ctx": self.ctx.detach().cpu().clone(), "init_ctx": self.init_ctx.cpu().clone(),
                "config": asdict(self.config)}


class ZeroShotPrompts(nn.Module):
    """CLIP-ES hand-written prompts: per class the normalised mean of normalised template features, fixed."""

    def __init__(self, clip_cam: ClipCam, fg_names: Sequence[str], bg_names: Sequence[str],
                 templates: Sequence[str] = CLIP_ES_TEMPLATES):
        super().__init__()
        self.n_fg = len(fg_names)
        names = list(fg_names) + list(bg_names)
        tokens = _tokenize([t.format(n) for n in names for t in templates], clip_cam.context_length)
        with torch.no_grad():
            tokens = tokens.to(clip_cam.token_embedding.weight.device)
            feats = clip_cam.encode_prompts(clip_cam.token_embedding(tokens).float(), tokens.argmax(-1))
            feats = nn.functional.normalize(feats, dim=-1).view(len(names), len(templates), -1).mean(1)
        self.register_buffer("features", nn.functional.normalize(feats, dim=-1))

    def text_features(self, clip_cam: ClipCam) -> torch.Tensor:
        return self.features


def save_zero_shot_marker(path: str | os.PathLike, fg_names: Sequence[str], bg_names: Sequence[str]) -> Path:
    """What a ``zero_shot``-mode prompt stage writes instead of a trained learner (atomically)."""
    from fmwsss.io.atomic import atomic_path

    with atomic_path(path) as tmp:
        torch.save({"mode": "zero_shot", "fg_names": tuple(fg_names), "bg_names": tuple(bg_names)}, tmp)
    return Path(path)


def zero_shot_marker(path: str | os.PathLike) -> tuple[tuple[str, ...], tuple[str, ...]] | None:
    """(fg, bg) prompt words when ``path`` is the marker a ``zero_shot``-mode prompt stage writes instead of a
    trained learner, else None. ``ValueError`` naming the file when it is not a torch file at all."""
    try:
        state = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as exc:  # noqa: BLE001 - torch raises several types; re-raised naming the file
        raise ValueError(f"cannot load prompts from {path}: {exc}") from exc
    if isinstance(state, dict) and state.get("mode") == "zero_shot":
        return tuple(state["fg_names"]), tuple(state["bg_names"])
    return None


def save_prompts(learner: PromptLearner, path: str | os.PathLike) -> Path:
    """Write the learner's checkpoint atomically."""
    import io

    from fmwsss.io.atomic import atomic_write_bytes

    buf = io.BytesIO()
    torch.save(learner.checkpoint(), buf)
    atomic_write_bytes(path, buf.getvalue())
    return Path(path)


def load_prompts(path: str | os.PathLike, clip_cam: ClipCam) -> PromptLearner:
    """Rebuild a learner from a prompt file written by ``save_prompts`` (or a training checkpoint)."""
    try:
        ckpt = torch.load(path, map_location="cpu", weights_only=True)
        cfg = dict(ckpt["config"])
        config = PromptConfig(**{**cfg, "fg_names": tuple(cfg["fg_names"]), "bg_names": tuple(cfg["bg_names"])})
        learner = PromptLearner(clip_cam, config)
        with torch.no_grad():
            learner.ctx.copy_(ckpt["ctx"])
    except Exception as exc:  # noqa: BLE001 - re-raised naming the file
        raise ValueError(f"cannot load prompts from {path}: {exc}") from exc
    return learner
