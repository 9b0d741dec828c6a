"""Pretrained weights and model builders: registry, sha256-checked downloads, SAM/CLIP loaders, tiny models.

Import-light on purpose (no torch): the Snakefile imports the registry at parse time for stage keys.
"""
from fmwsss.models.download import DownloadError, fetch_weight
from fmwsss.models.weights import (
    TINY_VERSION,
    WEIGHTS,
    MissingWeightsError,
    WeightsIntegrityError,
    WeightSpec,
    get_weight,
    list_weights,
    local_path,
    require_local,
    weight_identity,
    weights_dir,
)

__all__ = [
    "TINY_VERSION",
    "WEIGHTS",
    "DownloadError",
    "MissingWeightsError",
    "WeightSpec",
    "WeightsIntegrityError",
    "fetch_weight",
    "get_weight",
    "list_weights",
    "local_path",
    "require_local",
    "weight_identity",
    "weights_dir",
]
