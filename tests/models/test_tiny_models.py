"""Every tiny test model of the registry is made by the one maker the CLI and the workflow share."""
from __future__ import annotations

import hashlib
import json

import pytest

from fmwsss.models.tiny_models import create_tiny_model
from fmwsss.models.weights import WEIGHTS, tiny_model_names


def test_every_tiny_model_is_made_and_its_creation_recorded(tmp_path):
    assert tiny_model_names() == ["tiny_clip", "tiny_sam", "tiny_swin"]
    for name in tiny_model_names():
        path = create_tiny_model(name, tmp_path / "sub" / WEIGHTS[name].filename, seed=0)
        record = json.loads(path.with_name(path.name + ".sha256").read_text())
        assert record["sha256"] == hashlib.sha256(path.read_bytes()).hexdigest()
        assert record["size"] == path.stat().st_size


def test_a_model_that_is_not_tiny_is_refused(tmp_path):
    with pytest.raises(ValueError, match="'random_sam_vit_h' is not a tiny test model"):
        create_tiny_model("random_sam_vit_h", tmp_path / "x.pth")
    assert not (tmp_path / "x.pth").exists()
