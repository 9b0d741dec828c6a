"""Seeding: turn CAMs (and SAM masks) into dense pseudo-label maps.

``sams_seed`` is the method's SAMS (mask-level labels painted by level and confidence); ``argmax_seed`` is the
reference's per-pixel argmax baseline used to monitor CAM quality; ``cam_to_score`` is the shared CAM -> score;
``seed_image`` applies a seeds_* config section (the pipeline and ``fmwsss seed`` both call it).
"""
from fmwsss.seeding.argmax import argmax_seed, cam_to_score
from fmwsss.seeding.method import seed_image
from fmwsss.seeding.sams import SamsInfo, sams_seed

__all__ = ["SamsInfo", "argmax_seed", "cam_to_score", "sams_seed", "seed_image"]
