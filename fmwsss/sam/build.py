"""One place that turns the ``sam`` config section and the runtime knobs into a mask generator.

``sam.implementation`` picks the reference generator (segment-anything's ``SamAutomaticMaskGenerator``
plus levels, offsets and RSW) or the fast one (same masks, batched work); ``sam.autocast`` runs the fast
one in reduced precision. Both are result settings (stage key); everything in :class:`SamSpeed` is not.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Union

from segment_anything.modeling import Sam

from fmwsss.sam.fast import AUTOCAST_DTYPES, FastMaskGenerator
from fmwsss.sam.generator import RESULT_SETTINGS, LeveledMaskGenerator
from fmwsss.sam.memory import BatchPlan, plan_batches

IMPLEMENTATIONS = ("reference", "fast")
#: Every key of the ``sam`` config section: the generator's result settings plus the two choices above.
SAM_SETTINGS = RESULT_SETTINGS + ("implementation", "autocast")
#: The stock generator's decoder batch, used by the reference implementation when none is set.
REFERENCE_POINTS_PER_BATCH = 64

MaskGenerator = Union[LeveledMaskGenerator, FastMaskGenerator]


@dataclass(frozen=True)
class SamSpeed:
    """Speed and memory knobs (config ``runtime``); None = from the memory budget (fast) or the stock 64."""

    memory_gb: float = 20.0
    points_per_batch: int | None = None
    encoder_batch: int | None = None
    postprocess_chunk: int = 64
    rsw_chunk: int = 50

    @classmethod
    def from_runtime(cls, runtime: dict[str, Any]) -> "SamSpeed":
        return cls(
            memory_gb=float(runtime.get("sam_memory_gb", cls.memory_gb)),
            points_per_batch=runtime.get("sam_points_per_batch"),
            encoder_batch=runtime.get("sam_encoder_batch"),
            postprocess_chunk=int(runtime.get("sam_postprocess_chunk", cls.postprocess_chunk)),
            rsw_chunk=int(runtime.get("rsw_chunk", cls.rsw_chunk)),
        )


def check_sam_settings(settings: dict[str, Any]) -> None:
    """Name unknown keys and impossible combinations of the ``sam`` section before any model is loaded."""
    unknown = sorted(set(settings) - set(SAM_SETTINGS))
    if unknown:
        raise ValueError(f"sam_masks: unknown SAM settings {unknown}; expected keys among {SAM_SETTINGS}")
    implementation = settings.get("implementation", "fast")
    autocast = settings.get("autocast", "none")
    if implementation not in IMPLEMENTATIONS:
        raise ValueError(f"sam.implementation must be one of {IMPLEMENTATIONS}, got {implementation!r}")
    if autocast not in AUTOCAST_DTYPES:
        raise ValueError(f"sam.autocast must be one of {sorted(AUTOCAST_DTYPES)}, got {autocast!r}")
    if implementation == "reference" and autocast != "none":
        raise ValueError("sam.autocast needs sam.implementation: fast (the reference generator runs in fp32)")


def batch_plan(model: Sam, settings: dict[str, Any], speed: SamSpeed) -> BatchPlan:
    """The fast generator's batches: explicit runtime values win over the budget's."""
    plan = plan_batches(
        model, speed.memory_gb, points_per_side=int(settings.get("points_per_side", 32)),
        postprocess_chunk=speed.postprocess_chunk, rsw_chunk=speed.rsw_chunk,
    )
    return BatchPlan(
        encoder_batch=speed.encoder_batch or plan.encoder_batch,
        points_per_batch=speed.points_per_batch or plan.points_per_batch,
        postprocess_chunk=plan.postprocess_chunk,
        estimated_peak_bytes=plan.estimated_peak_bytes,
    )


def build_generator(model: Sam, settings: dict[str, Any], speed: SamSpeed = SamSpeed()) -> MaskGenerator:
    """The generator the ``sam`` section asks for, on ``model``'s device."""
    check_sam_settings(settings)
    result = {k: settings[k] for k in RESULT_SETTINGS if k in settings}
    if settings.get("implementation", "fast") == "reference":
        return LeveledMaskGenerator(
            model, **result, points_per_batch=speed.points_per_batch or REFERENCE_POINTS_PER_BATCH,
            rsw_chunk=speed.rsw_chunk,
        )
    plan = batch_plan(model, settings, speed)
    return FastMaskGenerator(
        model, **result, autocast=settings.get("autocast", "none"), points_per_batch=plan.points_per_batch,
        encoder_batch=plan.encoder_batch, postprocess_chunk=plan.postprocess_chunk, rsw_chunk=speed.rsw_chunk,
    )
