"""Leveled SAM mask generation, the rock-sand-water filter, bit-packed masks and their HDF5 shard store."""
from fmwsss.sam.encoding import pack_masks, unpack_masks
from fmwsss.sam.generator import RESULT_SETTINGS, LeveledMaskGenerator
from fmwsss.sam.rsw import rock_sand_water
from fmwsss.sam.shards import SamShardReader, SamShardWriter
from fmwsss.sam.types import LEVEL_NAMES, ImageMasks

__all__ = [
    "ImageMasks",
    "LEVEL_NAMES",
    "LeveledMaskGenerator",
    "RESULT_SETTINGS",
    "SamShardReader",
    "SamShardWriter",
    "pack_masks",
    "rock_sand_water",
    "unpack_masks",
]
