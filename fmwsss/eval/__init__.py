"""Evaluation: split-level confusion matrix, mIoU/pixel accuracy/precision/recall, and reports."""
from fmwsss.eval.confusion import Accumulator, Metrics, confusion_matrix, image_scores
from fmwsss.eval.report import format_table, metrics_to_json, scores_to_json

__all__ = [
    "Accumulator", "Metrics", "confusion_matrix", "format_table", "image_scores", "metrics_to_json", "scores_to_json",
]
