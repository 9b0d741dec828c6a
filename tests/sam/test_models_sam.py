import pytest
import torch

from fmwsss.models.sam import load_sam


def test_missing_file_is_named(tmp_path):
    with pytest.raises(FileNotFoundError, match="nothing.pth"):
        load_sam(tmp_path / "nothing.pth", "tiny")


def test_unknown_arch():
    with pytest.raises(ValueError, match="vit_x"):
        load_sam("whatever.pth", "vit_x")


def test_official_checkpoint_for_tiny_arch_is_refused(tmp_path):
    path = tmp_path / "official.pth"
    torch.save({"image_encoder.pos_embed": torch.zeros(1)}, path)
    with pytest.raises(ValueError, match="official.pth.*not an fmwsss-tiny-sam file"):
        load_sam(path, "tiny")


def test_tiny_file_for_official_arch_is_refused(tiny_sam_path):
    with pytest.raises(ValueError, match=f"{tiny_sam_path.name}.*tiny SAM file"):
        load_sam(tiny_sam_path, "vit_b")


def test_mismatched_official_state_dict_names_the_file(tmp_path):
    path = tmp_path / "sam_vit_b_fake.pth"
    torch.save({"image_encoder.pos_embed": torch.zeros(1, 4, 4, 8), "bogus.weight": torch.zeros(2)}, path)
    with pytest.raises(ValueError, match="sam_vit_b_fake.pth: state dict does not match SAM vit_b") as info:
        load_sam(path, "vit_b")
    assert "bogus.weight" in str(info.value)


def test_garbage_file_is_named(tmp_path):
    path = tmp_path / "garbage.pth"
    path.write_bytes(b"not a checkpoint")
    with pytest.raises(ValueError, match="garbage.pth"):
        load_sam(path, "vit_h")


def test_wrong_tiny_version_is_refused(tmp_path, tiny_sam_path):
    payload = torch.load(tiny_sam_path, weights_only=True)
    payload["version"] = 99
    torch.save(payload, tmp_path / "future.pt")
    with pytest.raises(ValueError, match="future.pt.*version 99"):
        load_sam(tmp_path / "future.pt", "tiny")
