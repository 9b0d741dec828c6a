"""Prompt learning: CoOp-style learners, CLIP-ES zero-shot prompts, losses, augmentation, training loop."""
from fmwsss.prompts.learners import (PromptConfig, PromptLearner, ZeroShotPrompts, cls_prompt_config, load_prompts,
                                     save_prompts, seg_prompt_config)
from fmwsss.prompts.losses import LossParts, cam_activation, multilabel_contrastive

__all__ = ["PromptConfig", "PromptLearner", "ZeroShotPrompts", "cls_prompt_config", "load_prompts", "save_prompts",
           "seg_prompt_config", "LossParts", "cam_activation", "multilabel_contrastive"]
