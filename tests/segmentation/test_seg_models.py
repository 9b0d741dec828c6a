"""Segmenter builders: tiny model shapes, ImageNet enum weights from the hub cache, the offline error."""
from __future__ import annotations

import urllib.error

import pytest
import torch
from torchvision.models import ResNet50_Weights
from torchvision.models.segmentation import deeplabv3_resnet50

from fmwsss.segmentation.models import (TINY_WIDTH, BackboneWeightsError, build_segmenter, hub_checkpoint_path,
                                        load_segmenter, save_segmenter)


def test_tiny_output_shape_and_stride():
    torch.manual_seed(0)
    model = build_segmenter("tiny", 5, pretrained_backbone=False).eval()
    x = torch.randn(2, 3, 64, 48)
    with torch.no_grad():
        assert model(x)["out"].shape == (2, 5, 64, 48)
        assert model.backbone(x)["out"].shape == (2, TINY_WIDTH, 8, 6)  # output stride 8 like the real DeepLab


def test_tiny_refuses_imagenet_and_unknown_arch_is_named():
    with pytest.raises(ValueError, match="random-init"):
        build_segmenter("tiny", 3, pretrained_backbone=True)
    with pytest.raises(ValueError, match="segmenter.arch.*'deeplabv2'"):
        build_segmenter("deeplabv2", 3, pretrained_backbone=False)


@pytest.fixture
def empty_torch_home(tmp_path, monkeypatch):
    """TORCH_HOME -> empty tmp dir; any download attempt fails as offline and is recorded."""
    monkeypatch.setenv("TORCH_HOME", str(tmp_path / "torch_home"))
    calls = []

    def offline(url, dst, *args, **kwargs):
        calls.append(url)
        raise urllib.error.URLError("offline (test)")

    monkeypatch.setattr(torch.hub, "download_url_to_file", offline)
    return tmp_path / "torch_home", calls


def test_offline_without_cached_weights_says_what_to_download_and_where(empty_torch_home):
    home, calls = empty_torch_home
    with pytest.raises(BackboneWeightsError) as err:
        build_segmenter("deeplabv3_resnet101", 21, pretrained_backbone=True)
    msg = str(err.value)
    url = "https://download.pytorch.org/models/resnet101-63fe2227.pth"
    assert url in msg
    assert str(home / "hub" / "checkpoints" / "resnet101-63fe2227.pth") in msg
    assert "TORCH_HOME" in msg and calls == [url]


def test_weights_dir_is_named_in_the_error(empty_torch_home, tmp_path):
    with pytest.raises(BackboneWeightsError, match=str(tmp_path / "w" / "resnet50-0676ba61.pth")):
        build_segmenter("deeplabv3_resnet50", 21, pretrained_backbone=True, weights_dir=tmp_path / "w")


def test_cached_enum_weights_load_like_torchvision_builder(empty_torch_home):
    """A (random) state dict at the enum's cache path is loaded exactly as torchvision's own builder loads it."""
    torch.manual_seed(1)
    fake = deeplabv3_resnet50(weights=None, weights_backbone=None, num_classes=21).backbone.state_dict()
    fake["fc.weight"], fake["fc.bias"] = torch.zeros(1000, 2048), torch.zeros(1000)
    path = hub_checkpoint_path(ResNet50_Weights.IMAGENET1K_V1)
    path.parent.mkdir(parents=True)
    torch.save(fake, path)
    ours = build_segmenter("deeplabv3_resnet50", 21, pretrained_backbone=True).backbone.state_dict()
    stock = deeplabv3_resnet50(weights=None, weights_backbone=ResNet50_Weights.IMAGENET1K_V1,
                               num_classes=21).backbone.state_dict()
    assert ours.keys() == stock.keys()
    assert all(torch.equal(ours[k], stock[k]) and torch.equal(ours[k], fake[k]) for k in ours)
    assert empty_torch_home[1] == []  # nothing was downloaded


def test_save_load_roundtrip(tmp_path):
    torch.manual_seed(0)
    model = build_segmenter("tiny", 4, pretrained_backbone=False)
    save_segmenter(tmp_path / "model.pt", model, "tiny", 4, {"crop": 32})
    loaded, record = load_segmenter(tmp_path / "model.pt")
    assert record["settings"] == {"crop": 32} and not loaded.training
    assert all(torch.equal(v, loaded.state_dict()[k]) for k, v in model.state_dict().items())
    (tmp_path / "bad.pt").write_bytes(b"junk")
    with pytest.raises(ValueError, match="bad.pt"):
        load_segmenter(tmp_path / "bad.pt")
