"""Leveled SAM mask generation (reference and fast), the rock-sand-water filter, bit-packed masks and
their HDF5 shard store."""
from fmwsss.sam.build import IMPLEMENTATIONS, SAM_SETTINGS, SamSpeed, build_generator
from fmwsss.sam.encoding import pack_masks, unpack_masks
from fmwsss.sam.fast import FastMaskGenerator, prepare_image
from fmwsss.sam.generator import RESULT_SETTINGS, LeveledMaskGenerator
from fmwsss.sam.memory import BatchPlan, plan_batches
from fmwsss.sam.rsw import rock_sand_water
from fmwsss.sam.shards import SamShardReader, SamShardWriter
from fmwsss.sam.types import LEVEL_NAMES, ImageMasks

__all__ = [
    "BatchPlan",
    "FastMaskGenerator",
    "IMPLEMENTATIONS",
    "ImageMasks",
    "LEVEL_NAMES",
    "LeveledMaskGenerator",
    "RESULT_SETTINGS",
    "SAM_SETTINGS",
    "SamShardReader",
    "SamShardWriter",
    "SamSpeed",
    "build_generator",
    "pack_masks",
    "plan_batches",
    "prepare_image",
    "rock_sand_water",
    "unpack_masks",
]
