"""CLIP CAMs: the CLIP wrapper, Softmax-Grad-CAM, CAA refinement, CAM shards and the dump stage."""

from fmwsss.lazy import lazy_exports

_EXPORTS = {
    "COARSE": "fmwsss.cams.caa",
    "CaaSettings": "fmwsss.cams.caa",
    "FINE": "fmwsss.cams.caa",
    "affinity": "fmwsss.cams.caa",
    "box_mask": "fmwsss.cams.caa",
    "cam_score": "fmwsss.cams.caa",
    "refine": "fmwsss.cams.caa",
    "ClipCam": "fmwsss.cams.clip_wrapper",
    "ImageOutput": "fmwsss.cams.clip_wrapper",
    "preprocess_native": "fmwsss.cams.clip_wrapper",
    "CamBatch": "fmwsss.cams.gradcam",
    "masked_softmax": "fmwsss.cams.gradcam",
    "softmax_gradcam": "fmwsss.cams.gradcam",
    "CamRecord": "fmwsss.cams.shards",
    "CamShardError": "fmwsss.cams.shards",
    "CamShardReader": "fmwsss.cams.shards",
    "CamShardWriter": "fmwsss.cams.shards",
}
"""The curated API: each name and the module it is imported from on first use (:mod:`fmwsss.lazy`)."""

__getattr__, __dir__ = lazy_exports(__name__, _EXPORTS)
__all__ = sorted(_EXPORTS)
