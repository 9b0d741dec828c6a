"""Mask2Former segmenter: targets, loss normalisation over a split batch, the Swin backbone equals its file,
the log-probability output, save/load. All on the tiny model (CPU, well under a second each once built)."""
from __future__ import annotations

import pytest
import torch
from transformers import Mask2FormerForUniversalSegmentation

from fmwsss.models.swin import SwinCheckpointError, create_tiny_swin
from fmwsss.segmentation.mask2former import MASK2FORMER_ARCHS, semantic_targets
from fmwsss.segmentation.models import ARCHS, build_segmenter, load_segmenter, save_segmenter

M2F = {"num_queries": 8, "class_weight": 2.0, "mask_weight": 5.0, "dice_weight": 5.0, "no_object_weight": 0.1,
       "train_points": 256}
SETTINGS = {"arch": "tiny_mask2former", "mask2former": M2F}


def _tiny(num_classes: int = 3, seed: int = 0, **m2f) -> torch.nn.Module:
    torch.manual_seed(seed)
    return build_segmenter("tiny_mask2former", num_classes, pretrained_backbone=False,
                           settings={"mask2former": {**M2F, **m2f}})


def test_archs_list_both_families():
    assert ARCHS == ("deeplabv3_resnet101", "deeplabv3_resnet50", "tiny", "mask2former_swin_large",
                     "tiny_mask2former")
    assert MASK2FORMER_ARCHS == ("mask2former_swin_large", "tiny_mask2former")


def test_semantic_targets_one_mask_per_present_class_void_in_none():
    labels = torch.tensor([[[0, 0, 1, 1],
                            [0, 255, 1, 1],
                            [2, 2, 255, 0]],
                           [[255] * 4] * 3])
    masks, classes = semantic_targets(labels)
    assert classes[0].tolist() == [0, 1, 2] and classes[0].dtype == torch.long  # background 0 is a real class
    assert masks[0].dtype == torch.float32
    assert masks[0].tolist() == [
        [[1, 1, 0, 0], [1, 0, 0, 0], [0, 0, 0, 1]],
        [[0, 0, 1, 1], [0, 0, 1, 1], [0, 0, 0, 0]],
        [[0, 0, 0, 0], [0, 0, 0, 0], [1, 1, 0, 0]],
    ]  # the two 255 pixels, (1,1) and (2,2), are in no mask
    assert masks[1].shape == (0, 3, 4) and classes[1].shape == (0,)  # all void: no masks at all


def test_count_targets_by_hand():
    labels = torch.tensor([[[0, 1], [2, 255]], [[255, 255], [255, 255]], [[1, 1], [1, 1]]])
    # masks 3 + 0 + 1 = 4; 3 images x 8 queries = 24 slots, 4 matched: 4 + 0.1 * 20 = 6
    assert _tiny().count_targets(labels) == pytest.approx({"masks": 4.0, "class_weight": 6.0})
    # 2 queries: image 0's three classes can only match two (masks still 4): matched 3, slots 6: 3 + 0.1 * 3
    assert _tiny(num_queries=2).count_targets(labels) == pytest.approx({"masks": 4.0, "class_weight": 3.3})


@pytest.fixture
def fixed_points(monkeypatch):
    """torch.rand with the same values for every row (mask): the matcher's and the loss's random points then
    do not depend on which other images share the call, so a split batch samples the same points."""
    real = torch.rand

    def rand(*size, device=None, **kwargs):
        size = tuple(size[0]) if len(size) == 1 and isinstance(size[0], (tuple, list, torch.Size)) else size
        row = real(size[1:], generator=torch.Generator().manual_seed(size[1]))
        return row.expand(size).contiguous().to(device)

    monkeypatch.setattr(torch, "rand", rand)


def _batch() -> tuple[torch.Tensor, torch.Tensor, list[torch.Tensor], list[torch.Tensor]]:
    """Three 64x64 images: {0, 1}, {0, 2} with a void band, and one all void; masks written by hand."""
    torch.manual_seed(5)
    x = torch.randn(3, 3, 64, 64)
    labels = torch.zeros(3, 64, 64, dtype=torch.long)
    labels[0, 10:30, 5:40] = 1
    labels[1, 40:, :20] = 2
    labels[1, :, 60:] = 255
    labels[2] = 255
    one, two, bg0, bg1 = (torch.zeros(64, 64) for _ in range(4))
    one[10:30, 5:40] = 1
    two[40:, :20] = 1
    bg0[:] = 1 - one
    bg1[:, :60] = 1 - two[:, :60]
    masks = [torch.stack([bg0, one]), torch.stack([bg1, two]), torch.zeros(0, 64, 64)]
    classes = [torch.tensor([0, 1]), torch.tensor([0, 2]), torch.tensor([], dtype=torch.long)]
    return x, labels, masks, classes


def test_chunk_shares_sum_to_the_whole_batch_loss_of_stock_transformers(fixed_points):
    model = _tiny().eval()  # eval: no drop path; the loss is the same function in train mode
    x, labels, masks, classes = _batch()
    totals = model.count_targets(labels)
    assert totals == pytest.approx({"masks": 4.0, "class_weight": 4 + 0.1 * 20})
    whole = model.loss(x, labels, totals)
    shares = [model.loss(x[:1], labels[:1], totals), model.loss(x[1:], labels[1:], totals)]
    all_void = model.loss(x[2:], labels[2:], totals)  # a chunk with no masks at all: only no-object CE
    assert torch.isfinite(all_void) and all_void > 0
    assert float(sum(shares).detach()) == pytest.approx(float(whole.detach()), rel=1e-5)
    # oracle: transformers' own loss of the whole batch (num_masks = 4, its classes' weighted mean), same weights
    stock = Mask2FormerForUniversalSegmentation(model.net.config).eval()
    stock.load_state_dict(model.net.state_dict())
    expected = stock(pixel_values=x, mask_labels=masks, class_labels=classes).loss
    assert float(whole.detach()) == pytest.approx(float(expected.detach()), rel=1e-5)


def test_loss_backpropagates_and_runs_under_bf16_autocast():
    model = _tiny().train()
    x, labels, _, _ = _batch()
    x, labels = x[..., :60, :70], labels[..., :60, :70]  # padded to 64x96 inside (labels with 255)
    loss = model.loss(x, labels, model.count_targets(labels))
    loss.backward()
    assert torch.isfinite(loss)
    frozen = [n for n, p in model.named_parameters() if not p.requires_grad]
    assert frozen == ["net.model.pixel_level_module.encoder.swin.layernorm.weight",
                      "net.model.pixel_level_module.encoder.swin.layernorm.bias"]  # unused by SwinBackbone
    assert all(p.grad is not None for p in model.parameters() if p.requires_grad)  # DDP: no unused parameters
    with torch.autocast("cpu", dtype=torch.bfloat16):  # the matcher's scipy step needs fp32: loss runs in fp32
        loss = model.loss(x, labels, model.count_targets(labels))
    assert loss.dtype == torch.float32 and torch.isfinite(loss)


def test_forward_is_log_probabilities_at_the_input_size_and_survives_save_load(tmp_path):
    model = _tiny(num_classes=4).eval()
    x = torch.randn(2, 3, 75, 100)  # odd, non-square: padded to 96x128 inside, cropped back
    with torch.no_grad():
        out = model(x)["out"]
    assert out.shape == (2, 4, 75, 100) and torch.isfinite(out).all()
    assert torch.allclose(out.exp().sum(dim=1), torch.ones(2, 75, 100), atol=1e-5)
    save_segmenter(tmp_path / "model.pt", model, "tiny_mask2former", 4, SETTINGS)
    loaded, record = load_segmenter(tmp_path / "model.pt")
    assert record["settings"] == SETTINGS and not loaded.training
    with torch.no_grad():
        assert torch.equal(loaded(x)["out"], out)


def _new_name(hub_name: str) -> str:
    """transformers 4.x (hub) Swin name -> the current SwinBackbone name, written out by hand."""
    for old, new in (("attention.self.query", "attention.q_proj"), ("attention.self.key", "attention.k_proj"),
                     ("attention.self.value", "attention.v_proj"),
                     ("attention.self.relative_position_bias_table",
                      "attention.relative_position_bias.relative_position_bias_table"),
                     ("attention.output.dense", "attention.o_proj"), ("intermediate.dense", "mlp.fc1"),
                     ("output.dense", "mlp.fc2")):
        hub_name = hub_name.replace(old, new)
    return hub_name


def _build_with(path, seed: int) -> torch.nn.Module:
    torch.manual_seed(seed)
    return build_segmenter("tiny_mask2former", 3, pretrained_backbone=True, settings={"mask2former": M2F},
                           backbone_path=path)


def test_backbone_equals_the_checkpoint_file_and_heads_are_fresh(tmp_path):
    path = create_tiny_swin(tmp_path / "tiny_swin.pth", seed=3)
    checkpoint = torch.load(path, weights_only=True)
    assert "classifier.weight" in checkpoint  # the released layout: an ImageNet classifier
    model = _build_with(path, seed=0)
    encoder = model.backbone.state_dict()
    from_file = {_new_name(k): v for k, v in checkpoint.items() if not k.startswith("classifier.")}
    own_norms = {k for k in encoder if k.startswith("hidden_states_norms.")}
    assert set(encoder) == set(from_file) | own_norms and len(own_norms) == 8  # weight + bias of 4 stages
    for name, value in from_file.items():
        assert torch.equal(encoder[name], value), name
    other = _build_with(path, seed=1)
    assert all(torch.equal(v, other.backbone.state_dict()[k]) for k, v in from_file.items())
    heads, other_heads = model.net.state_dict(), other.net.state_dict()
    for name in ("class_predictor.weight", "model.transformer_module.queries_embedder.weight",
                 "model.pixel_level_module.decoder.level_embed"):
        assert not torch.equal(heads[name], other_heads[name]), name  # fresh, seeded init: never from a file
    again = _build_with(path, seed=0).net.state_dict()
    assert all(torch.equal(v, again[k]) for k, v in heads.items())


@pytest.mark.parametrize("fault", ["missing", "extra", "shape"])
def test_a_checkpoint_that_does_not_fit_is_refused_naming_the_file(tmp_path, fault):
    state = torch.load(create_tiny_swin(tmp_path / "good.pth"), weights_only=True)
    key = "swin.encoder.layers.1.blocks.0.attention.self.query.weight"
    if fault == "missing":
        del state[key]
    elif fault == "extra":
        state["swin.encoder.layers.0.blocks.0.attention.self.extra.weight"] = torch.zeros(4)
    else:
        state[key] = torch.zeros(3, 3)
    torch.save(state, tmp_path / "bad.pth")
    with pytest.raises(SwinCheckpointError, match=str(tmp_path / "bad.pth")):
        _build_with(tmp_path / "bad.pth", seed=0)


def test_build_refuses_inconsistent_backbone_requests(tmp_path):
    with pytest.raises(ValueError, match="tiny_swin checkpoint"):
        build_segmenter("tiny_mask2former", 3, pretrained_backbone=True, settings=SETTINGS)
    with pytest.raises(ValueError, match="pretrained_backbone is false"):
        build_segmenter("tiny_mask2former", 3, pretrained_backbone=False, settings=SETTINGS,
                        backbone_path=tmp_path / "x.pth")
    with pytest.raises(ValueError, match="segmenter.mask2former must set"):
        build_segmenter("tiny_mask2former", 3, pretrained_backbone=False, settings={"arch": "tiny_mask2former"})
