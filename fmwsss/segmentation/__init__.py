"""Stage II: DeepLabV3 trained on the pseudo labels, multi-scale + flip inference, and its evaluation."""

from fmwsss.lazy import lazy_exports

_EXPORTS = {
    "evaluate_segmenter": "fmwsss.segmentation.evaluate",
    "predict": "fmwsss.segmentation.infer",
    "BackboneWeightsError": "fmwsss.segmentation.models",
    "build_segmenter": "fmwsss.segmentation.models",
    "load_segmenter": "fmwsss.segmentation.models",
    "SETTINGS_KEYS": "fmwsss.segmentation.train",
    "train_segmenter": "fmwsss.segmentation.train",
}
"""The curated API: each name and the module it is imported from on first use (:mod:`fmwsss.lazy`)."""

__getattr__, __dir__ = lazy_exports(__name__, _EXPORTS)
__all__ = sorted(_EXPORTS)
