"""fmwsss: weakly supervised semantic segmentation from image tags with frozen CLIP and SAM."""

__version__ = "0.1.0"
