"""Leveled SAM mask generation (reference and fast), the rock-sand-water filter, bit-packed masks and
their HDF5 shard store."""

from fmwsss.lazy import lazy_exports

_EXPORTS = {
    "IMPLEMENTATIONS": "fmwsss.sam.build",
    "SAM_SETTINGS": "fmwsss.sam.build",
    "SamSpeed": "fmwsss.sam.build",
    "build_generator": "fmwsss.sam.build",
    "pack_masks": "fmwsss.sam.encoding",
    "unpack_masks": "fmwsss.sam.encoding",
    "FastMaskGenerator": "fmwsss.sam.fast",
    "prepare_image": "fmwsss.sam.fast",
    "LeveledMaskGenerator": "fmwsss.sam.generator",
    "RESULT_SETTINGS": "fmwsss.sam.generator",
    "BatchPlan": "fmwsss.sam.memory",
    "plan_batches": "fmwsss.sam.memory",
    "rock_sand_water": "fmwsss.sam.rsw",
    "SamShardReader": "fmwsss.sam.shards",
    "SamShardWriter": "fmwsss.sam.shards",
    "ImageMasks": "fmwsss.sam.types",
    "LEVEL_NAMES": "fmwsss.sam.types",
}
"""The curated API: each name and the module it is imported from on first use (:mod:`fmwsss.lazy`)."""

__getattr__, __dir__ = lazy_exports(__name__, _EXPORTS)
__all__ = sorted(_EXPORTS)
