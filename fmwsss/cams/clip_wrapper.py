"""CLIP forward passes the CAM method needs, built from open_clip's own modules.

open_clip returns neither the last block's LN1 output nor attention maps, and pools the CLS token; the method
(CLIP-ES / FMA-WSSS) needs all three differently. The blocks are therefore run here one by one with their
own submodules, so the numbers are open_clip's but the intermediate tensors are kept:

* ``act``: A = ln_1(x) of the last vision block for all 1+HW tokens. The last block's attention is fed with
  exactly this tensor, so gradients of the logits with respect to it are the Grad-CAM gradients.
* ``feat``: mean over patch tokens (CLS excluded) of ln_post(token), times the visual projection.
* ``attn``: head-averaged patch->patch attention of the last ``n_attn_layers`` blocks, averaged (HW x HW).
  Only needed for CAA, computed without autograd.
"""
from __future__ import annotations

import math
from dataclasses import dataclass

import cv2
import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

CLIP_MEAN = (0.48145466, 0.4578275, 0.40821073)
CLIP_STD = (0.26862954, 0.26130258, 0.27577711)


def round_up(x: int, multiple: int) -> int:
    """Smallest multiple of ``multiple`` that is >= ``x``."""
    return int(math.ceil(x / multiple) * multiple)


def to_input_tensor(rgb: np.ndarray) -> torch.Tensor:
    """uint8 RGB (H, W, 3) -> CLIP-normalised float tensor (3, H, W)."""
    x = torch.from_numpy(np.ascontiguousarray(rgb)).permute(2, 0, 1).float().div_(255.0)
    mean = torch.tensor(CLIP_MEAN).view(3, 1, 1)
    std = torch.tensor(CLIP_STD).view(3, 1, 1)
    return (x - mean) / std


def preprocess_native(rgb: np.ndarray, stride: int = 16) -> torch.Tensor:
    """Whole image for CAM inference: each side resized bicubically UP to a multiple of ``stride``, normalised."""
    h, w = rgb.shape[:2]
    th, tw = round_up(h, stride), round_up(w, stride)
    if (th, tw) != (h, w):
        rgb = cv2.resize(rgb, (tw, th), interpolation=cv2.INTER_CUBIC)
    return to_input_tensor(rgb)


@dataclass
class ImageOutput:
    feat: torch.Tensor  # (N, E) image embedding (not normalised)
    act: torch.Tensor  # (N, 1+HW, D) LN1 output of the last block, part of the graph
    grid: tuple[int, int]  # (h, w) patch grid
    attn: torch.Tensor | None  # (N, HW, HW) mean head-averaged patch->patch attention, or None


def _head_mean_attention(blk: nn.Module, a: torch.Tensor) -> torch.Tensor:
    """Head-averaged softmax attention of ``blk`` on its LN1 output ``a`` (N, L, D) -> (N, L, L)."""
    mha = blk.attn
    d = a.shape[-1]
    n_heads = mha.num_heads
    w_q, w_k = mha.in_proj_weight[:d], mha.in_proj_weight[d: 2 * d]
    b_q, b_k = mha.in_proj_bias[:d], mha.in_proj_bias[d: 2 * d]
    q = F.linear(a, w_q, b_q).unflatten(-1, (n_heads, d // n_heads)).transpose(1, 2)
    k = F.linear(a, w_k, b_k).unflatten(-1, (n_heads, d // n_heads)).transpose(1, 2)
    logits = q @ k.transpose(-1, -2) / math.sqrt(d // n_heads)
    return logits.softmax(dim=-1).mean(dim=1)


class ClipCam(nn.Module):
    """Frozen open_clip CLIP exposing what Softmax-GradCAM and CAA need.

    ``n_attn_layers`` (8 for ViT-B/16) is how many final blocks' attention CAA averages; models with fewer
    blocks (the tiny test model) use all of theirs.
    """

    def __init__(self, clip: nn.Module, n_attn_layers: int = 8):
        super().__init__()
        self.clip = clip
        self.n_attn_layers = n_attn_layers
        self.patch_size = int(clip.visual.conv1.kernel_size[0])

    @property
    def logit_scale(self) -> torch.Tensor:
        return self.clip.logit_scale.exp()

    @property
    def token_embedding(self) -> nn.Embedding:
        return self.clip.token_embedding

    @property
    def context_length(self) -> int:
        return int(self.clip.positional_embedding.shape[0])

    def _pos_embed(self, h: int, w: int) -> torch.Tensor:
        pos = self.clip.visual.positional_embedding
        g = int(round(math.sqrt(pos.shape[0] - 1)))
        if (h, w) == (g, g):
            return pos
        patch = pos[1:].reshape(1, g, g, -1).permute(0, 3, 1, 2)
        patch = F.interpolate(patch, size=(h, w), mode="bilinear", align_corners=False)
        return torch.cat([pos[:1], patch.permute(0, 2, 3, 1).reshape(h * w, -1)], dim=0)

    def encode_image(self, images: torch.Tensor, need_attn: bool = False) -> ImageOutput:
        """Run the vision tower on normalised images (N, 3, H, W), H and W multiples of the patch size."""
        v = self.clip.visual
        n, _, hi, wi = images.shape
        if hi % self.patch_size or wi % self.patch_size:
            raise ValueError(f"image size {hi}x{wi} is not a multiple of the patch size {self.patch_size}")
        x = v.conv1(images.to(v.conv1.weight.dtype))
        h, w = x.shape[-2:]
        x = x.flatten(2).transpose(1, 2)
        cls = v.class_embedding.to(x.dtype).expand(n, 1, -1)
        x = torch.cat([cls, x], dim=1) + self._pos_embed(h, w).to(x.dtype)
        x = v.ln_pre(v.patch_dropout(x))
        blocks = list(v.transformer.resblocks)
        first_attn = max(len(blocks) - self.n_attn_layers, 0)
        attn_sum = None
        for i, blk in enumerate(blocks[:-1]):
            if need_attn and i >= first_attn:
                with torch.no_grad():
                    att = _head_mean_attention(blk, blk.ln_1(x))[:, 1:, 1:]
                attn_sum = att if attn_sum is None else attn_sum + att
            x = blk(x)
        last = blocks[-1]
        act = last.ln_1(x)
        if torch.is_grad_enabled() and not act.requires_grad:
            act.requires_grad_()  # frozen CLIP: make A a graph input so Grad-CAM can differentiate w.r.t. it
        # need_weights=True takes PyTorch's explicit-softmax path, which (unlike fused SDPA kernels) is twice
        # differentiable: training differentiates the Grad-CAM gradient itself. It also yields the head mean.
        out, att = last.attn(act, act, act, need_weights=True, average_attn_weights=True)
        if need_attn:
            att = att.detach()[:, 1:, 1:]
            attn_sum = att if attn_sum is None else attn_sum + att
        x = x + last.ls_1(out)
        x = x + last.ls_2(last.mlp(last.ln_2(x)))
        feat = v.ln_post(x[:, 1:]).mean(dim=1) @ v.proj
        attn = attn_sum / (len(blocks) - first_attn) if need_attn else None
        return ImageOutput(feat=feat, act=act, grid=(int(h), int(w)), attn=attn)

    def encode_prompts(self, prompt_embeddings: torch.Tensor, eot_index: torch.Tensor) -> torch.Tensor:
        """Text features (K, E) from token embeddings (K, 77, D_text): CLIP's text tower read at the EOT slot."""
        c = self.clip
        x = prompt_embeddings + c.positional_embedding.to(prompt_embeddings.dtype)
        x = c.transformer(x, attn_mask=c.attn_mask)
        x = c.ln_final(x)
        x = x[torch.arange(x.shape[0], device=x.device), eot_index]
        return x @ c.text_projection

    def logits(self, image_feat: torch.Tensor, text_feat: torch.Tensor) -> torch.Tensor:
        """z = exp(logit_scale) * cosine(image, text): (N, E) x (K, E) -> (N, K)."""
        return self.logit_scale * F.normalize(image_feat, dim=-1) @ F.normalize(text_feat, dim=-1).t()
