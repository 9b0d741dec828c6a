"""Prompt learning: CoOp-style learners, CLIP-ES zero-shot prompts, losses, augmentation, training loop."""

from fmwsss.lazy import lazy_exports

_EXPORTS = {
    "PromptConfig": "fmwsss.prompts.learners",
    "PromptLearner": "fmwsss.prompts.learners",
    "ZeroShotPrompts": "fmwsss.prompts.learners",
    "cls_prompt_config": "fmwsss.prompts.learners",
    "load_prompts": "fmwsss.prompts.learners",
    "save_prompts": "fmwsss.prompts.learners",
    "seg_prompt_config": "fmwsss.prompts.learners",
    "LossParts": "fmwsss.prompts.losses",
    "cam_activation": "fmwsss.prompts.losses",
    "multilabel_contrastive": "fmwsss.prompts.losses",
}
"""The curated API: each name and the module it is imported from on first use (:mod:`fmwsss.lazy`)."""

__getattr__, __dir__ = lazy_exports(__name__, _EXPORTS)
__all__ = sorted(_EXPORTS)
