"""Stage II: DeepLabV3 trained on the pseudo labels, multi-scale + flip inference, and its evaluation."""
from fmwsss.segmentation.evaluate import evaluate_segmenter
from fmwsss.segmentation.infer import predict
from fmwsss.segmentation.models import BackboneWeightsError, build_segmenter, load_segmenter
from fmwsss.segmentation.train import SETTINGS_KEYS, train_segmenter

__all__ = ["BackboneWeightsError", "SETTINGS_KEYS", "build_segmenter", "evaluate_segmenter", "load_segmenter",
           "predict", "train_segmenter"]
