"""Mask2Former (transformers' implementation) as a semantic segmenter: Swin-L as in the paper, and a tiny test model.

The model answers the segmenter interface the rest of stage II uses: ``model(x)["out"]`` is a (B, C, H, W)
map whose softmax is the class probabilities, here the log of Mask2Former's semantic inference (detectron2's
``semantic_inference``: Σ_q softmax(class_q)[:C] · sigmoid(mask_q), mask logits upsampled bilinearly to the
input first), normalised over classes; sliding-window and multi-scale + flip inference then work unchanged.

Training goes through :meth:`SemanticMask2Former.loss` (Hungarian matching, point-sampled mask BCE + dice,
weighted class cross-entropy, every auxiliary decoder layer), normalised over the GLOBAL batch so that the
loss does not depend on how a batch is split into chunks and processes (see ``count_targets``). The loss runs
in fp32 even under autocast: the matcher hands its cost matrix to scipy, which cannot take bf16.

Inputs are zero-padded (after normalisation) to a multiple of 32 as detectron2 does for Swin; outputs are
cropped back. Only the Swin backbone is ever loaded from a file (the ImageNet-22k classifier checkpoint);
the pixel decoder, transformer decoder and heads start from transformers' initialisation, seeded by the
caller's ``torch.manual_seed``.
"""
from __future__ import annotations

import os
import torch
import torch.nn.functional as F
from torch import Tensor, nn
from transformers import Mask2FormerConfig, Mask2FormerForUniversalSegmentation
from transformers.models.mask2former.modeling_mask2former import Mask2FormerLoss

from fmwsss.models.swin import load_swin_backbone, swin_config
from fmwsss.segmentation.archs import BACKBONE_WEIGHT, MASK2FORMER_ARCHS

SWIN_ARCH = {"mask2former_swin_large": "swin_large_patch4_window12_384", "tiny_mask2former": "tiny"}
"""The Swin architecture (``fmwsss.models.swin.SWIN_ARCHS``) inside each Mask2Former."""

HEAD_SIZES: dict[str, dict[str, int]] = {
    # Mask2Former's own sizes (transformers' Mask2FormerConfig defaults = the paper's: 256 wide, 6 deformable
    # encoder layers, 10 decoder predictions (9 layers), 8 heads, FFN 2048).
    "mask2former_swin_large": {},
    # A test model: ~0.1 s forward+backward at 2x128^2 on a CPU.
    "tiny_mask2former": {"hidden_dim": 32, "mask_feature_size": 32, "feature_size": 32, "encoder_layers": 1,
                         "decoder_layers": 2, "dim_feedforward": 64, "encoder_feedforward_dim": 64,
                         "num_attention_heads": 2},
}

SETTINGS_KEYS = ("num_queries", "class_weight", "mask_weight", "dice_weight", "no_object_weight", "train_points")
"""The ``segmenter.mask2former`` settings the model reads (``precision`` is the training loop's)."""

SIZE_DIVISIBILITY = 32
"""Inputs are padded to this multiple (the backbone's deepest stride), as detectron2 pads for Swin."""

PROB_FLOOR = 1e-8
"""Semantic scores are clamped to this before the log: a class no query predicts stays finite."""

IGNORE = 255


def semantic_targets(labels: Tensor, ignore: int = IGNORE) -> tuple[list[Tensor], list[Tensor]]:
    """Per image: mask_labels (n, H, W) float (one mask per present class, background 0 a real class),
    class_labels (n,) long; ``ignore`` pixels belong to no mask (as detectron2's semantic mapper; never
    do_reduce_labels). An image with only ``ignore`` pixels has no masks (n = 0)."""
    mask_labels, class_labels = [], []
    for label in labels:
        classes = torch.unique(label)
        classes = classes[classes != ignore]
        mask_labels.append((label[None] == classes[:, None, None]).float())
        class_labels.append(classes.long())
    return mask_labels, class_labels


class _GlobalNormLoss(Mask2FormerLoss):
    """transformers' criterion with mask terms normalised by the caller's mask count (the global batch's)
    instead of this call's own, which it would all-reduce through accelerate when that is initialised."""

    num_masks: float = 1.0

    def get_num_masks(self, class_labels: list[Tensor], device: torch.device) -> Tensor:
        return torch.as_tensor(max(float(self.num_masks), 1.0), dtype=torch.float, device=device)


def _pad(x: Tensor, value: float) -> Tensor:
    """``x`` zero/``value``-padded on the bottom and right to a multiple of SIZE_DIVISIBILITY."""
    h, w = x.shape[-2:]
    ph, pw = -h % SIZE_DIVISIBILITY, -w % SIZE_DIVISIBILITY
    return F.pad(x, (0, pw, 0, ph), value=value) if ph or pw else x


class SemanticMask2Former(nn.Module):
    """transformers' ``Mask2FormerForUniversalSegmentation`` with the segmenter interface (module docstring)."""

    def __init__(self, config: Mask2FormerConfig) -> None:
        super().__init__()
        self.net = Mask2FormerForUniversalSegmentation(config)
        self.net.criterion = _GlobalNormLoss(config, self.net.weight_dict)
        # SwinModel's final LayerNorm, which SwinBackbone never applies (each stage has its own output norm):
        # frozen, so every trainable parameter gets a gradient (DDP needs no find_unused_parameters).
        self.backbone.swin.layernorm.requires_grad_(False)
        self.num_queries = config.num_queries
        self.no_object_weight = config.no_object_weight

    @property
    def backbone(self) -> nn.Module:
        """The Swin encoder (a property, not a second registration: the state dict holds it once)."""
        return self.net.model.pixel_level_module.encoder

    def forward(self, x: Tensor) -> dict[str, Tensor]:
        """{"out": (B, C, H, W) log of the semantic probabilities at x's size} (train or eval mode)."""
        h, w = x.shape[-2:]
        xp = _pad(x, 0.0)
        out = self.net(pixel_values=xp)
        with torch.autocast(x.device.type, enabled=False):
            masks = F.interpolate(out.masks_queries_logits.float(), size=xp.shape[-2:], mode="bilinear",
                                  align_corners=False)[..., :h, :w]
            classes = out.class_queries_logits.float().softmax(-1)[..., :-1]
            scores = torch.einsum("bqc,bqhw->bchw", classes, masks.sigmoid())
            return {"out": scores.clamp_min(PROB_FLOOR).log().log_softmax(dim=1)}

    def count_targets(self, labels: Tensor) -> dict[str, float]:
        """Normalisers of this chunk's loss, computed from labels alone (B,H,W int64, 255 ignored):
        {"masks": number of target masks (present classes summed over images),
         "class_weight": matched + no_object_weight * (B*Q - matched)} (the weighted-CE denominator), where
        matched = Σ min(masks_i, Q) (= masks whenever no image has more classes than there are queries)."""
        per_image = [int(torch.unique(label[label != IGNORE]).numel()) for label in labels]
        matched = sum(min(n, self.num_queries) for n in per_image)
        slots = len(per_image) * self.num_queries
        return {"masks": float(sum(per_image)), "class_weight": matched + self.no_object_weight * (slots - matched)}

    def loss(self, x: Tensor, labels: Tensor, totals: dict[str, float]) -> Tensor:
        """This chunk's share of the GLOBAL batch loss: every mask/dice term (final + auxiliary layers)
        normalised by totals["masks"] (detectron2's all-reduced num_masks, at least 1), every class term by
        totals["class_weight"] (its weighted mean over this chunk's queries rescaled by chunk class_weight /
        totals["class_weight"]), so summing the shares of all chunks and all processes gives the loss of the
        whole global batch."""
        mask_labels, class_labels = semantic_targets(_pad(labels, IGNORE))
        out = self.net(pixel_values=_pad(x, 0.0), output_auxiliary_logits=True)
        chunk = self.count_targets(labels)
        with torch.autocast(x.device.type, enabled=False):
            self.net.criterion.num_masks = totals["masks"]
            terms = self.net.get_loss_dict(
                masks_queries_logits=out.masks_queries_logits.float(),
                class_queries_logits=out.class_queries_logits.float(),
                mask_labels=mask_labels, class_labels=class_labels,
                auxiliary_predictions=[{k: v.float() for k, v in aux.items()} for aux in out.auxiliary_logits],
            )
            return global_share(terms, chunk["class_weight"], totals["class_weight"])


def global_share(terms: dict[str, Tensor], chunk_class_weight: float, total_class_weight: float) -> Tensor:
    """Sum of transformers' weighted loss terms with each class term (``loss_cross_entropy*``, a weighted
    mean over this chunk's queries) rescaled to the global batch's denominator; mask and dice terms come
    already normalised by the global mask count. A chunk whose class denominator is 0 adds no class term."""
    scale = chunk_class_weight / total_class_weight if total_class_weight > 0 else 0.0
    total = None
    for key, value in terms.items():
        if key.startswith("loss_cross_entropy"):
            if scale == 0.0:
                continue
            value = value * scale
        total = value if total is None else total + value
    return total


def mask2former_config(arch: str, num_classes: int, settings: dict) -> Mask2FormerConfig:
    """transformers' config for ``arch`` with ``num_classes`` and the ``segmenter.mask2former`` settings."""
    try:
        m2f = {key: settings["mask2former"][key] for key in SETTINGS_KEYS}
    except (KeyError, TypeError) as exc:
        raise ValueError(f"segmenter.mask2former must set {', '.join(SETTINGS_KEYS)} for arch {arch} "
                         f"(missing {exc})") from exc
    return Mask2FormerConfig(
        backbone_config=swin_config(SWIN_ARCH[arch]), num_labels=num_classes,
        num_queries=int(m2f["num_queries"]), class_weight=float(m2f["class_weight"]),
        mask_weight=float(m2f["mask_weight"]), dice_weight=float(m2f["dice_weight"]),
        no_object_weight=float(m2f["no_object_weight"]), train_num_points=int(m2f["train_points"]),
        **HEAD_SIZES[arch],
    )


def build_mask2former(arch: str, num_classes: int, settings: dict,
                      backbone_path: str | os.PathLike | None = None) -> SemanticMask2Former:
    """Mask2Former ``arch`` for ``num_classes`` (background included); with ``backbone_path`` (a verified
    Swin checkpoint of the arch's Swin) its encoder is loaded AFTER the model is built, so transformers can
    never re-initialise it; heads keep their fresh, caller-seeded init either way."""
    if arch not in MASK2FORMER_ARCHS:
        raise ValueError(f"not a Mask2Former architecture: {arch!r} ({', '.join(MASK2FORMER_ARCHS)})")
    model = SemanticMask2Former(mask2former_config(arch, num_classes, settings))
    if backbone_path is not None:
        with torch.random.fork_rng(devices=[]):  # transformers' init of the unused norms: not the caller's RNG
            loaded = load_swin_backbone(SWIN_ARCH[arch], backbone_path).state_dict()
        # Mask2Former's own per-stage output norms are in no classifier checkpoint: they keep the fresh init
        kept = {k: v for k, v in loaded.items() if not k.startswith("hidden_states_norms.")}
        result = model.backbone.load_state_dict(kept, strict=False)
        assert not result.unexpected_keys and all(k.startswith("hidden_states_norms.") for k in result.missing_keys)
    return model


__all__ = ["BACKBONE_WEIGHT", "MASK2FORMER_ARCHS", "SemanticMask2Former", "build_mask2former", "global_share",
           "mask2former_config", "semantic_targets"]
