"""Full-size random test models (issue 21) on small stand-in architectures: made by ``fmwsss weights
make-random`` in the released files' formats, read by the real loaders, recorded at creation and then checked
like real checkpoints (size and mtime trusted, ``verify`` re-hashes). The real sizes: test_full_size_random.py."""
from __future__ import annotations

import argparse
import hashlib
import json
import os
from pathlib import Path

import pytest
import segment_anything
import torch
from segment_anything.build_sam import _build_sam

from fmwsss.cli import weights as cli
from fmwsss.models import clip as clip_module
from fmwsss.models import weights
from fmwsss.models.clip import TINY_CFG, load_clip
from fmwsss.models.random_models import create_random_model
from fmwsss.models.sam import load_sam
from fmwsss.models.weights import WeightsIntegrityError, require_verified, weight_status


def _small_sam(checkpoint: None = None) -> segment_anything.modeling.Sam:
    """segment-anything's SAM with a 1-block, 32-wide image encoder (the stock prompt encoder and decoder)."""
    return _build_sam(encoder_embed_dim=32, encoder_depth=1, encoder_num_heads=2, encoder_global_attn_indexes=[0],
                      checkpoint=checkpoint)


@pytest.fixture
def small_archs(monkeypatch: pytest.MonkeyPatch) -> None:
    """Stand-ins for ViT-B/16 and ViT-H: the tiny CLIP's shapes, a one-block SAM (MBs, not 2.7 GB)."""
    monkeypatch.setitem(clip_module.CLIP_SHAPES, "ViT-B-16-quickgelu", TINY_CFG)
    monkeypatch.setitem(segment_anything.sam_model_registry, "vit_h", _small_sam)


@pytest.fixture
def root(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.setenv("FMWSSS_WEIGHTS_DIR", str(tmp_path / "w"))
    return tmp_path / "w"


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="fmwsss")
    cli.register(parser.add_subparsers(dest="command", required=True))
    return parser


def _run(argv: list[str]) -> int:
    args = _parser().parse_args(argv)
    return args.func(args)


def _sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def _bump_mtime(path: Path) -> None:
    st = path.stat()
    os.utime(path, ns=(st.st_atime_ns, st.st_mtime_ns + 1_000_000_000))


@pytest.mark.filterwarnings("ignore::FutureWarning")
def test_make_random_writes_released_formats_the_real_loaders_read(root, small_archs, capsys):
    assert _run(["weights", "make-random"]) == 0
    out = capsys.readouterr().out
    clip_path, sam_path = root / "random_clip_vit_b16.pt", root / "random_sam_vit_h.pth"
    assert sorted(p.name for p in root.iterdir()) == [
        "random_clip_vit_b16.pt", "random_clip_vit_b16.pt.sha256", "random_sam_vit_h.pth", "random_sam_vit_h.pth.sha256"]
    for path in (clip_path, sam_path):  # the sidecar holds the file's sha256, computed while writing
        record = json.loads(weights.sidecar_path(path).read_text())
        assert record == {"sha256": _sha256(path), "size": path.stat().st_size, "mtime_ns": path.stat().st_mtime_ns}
        assert f"wrote {path} ({path.stat().st_size} bytes), sha256 {record['sha256']}" in out
    assert "random_sam_vit_h: building sam vit_h with random weights on CPU (seed 0)" in out
    # CLIP: an OpenAI TorchScript archive (the branch ViT-B-16.pt takes) with the released logit scale 100
    archive = torch.jit.load(str(clip_path), map_location="cpu").state_dict()
    assert archive["visual.conv1.weight"].dtype == torch.float16 and int(archive["context_length"]) == 77
    model = load_clip(clip_path)
    assert float(model.logit_scale.exp()) == pytest.approx(100.0, rel=1e-3)
    # SAM: a plain state dict, key for key segment-anything's model (as sam_vit_h_4b8939.pth)
    state = torch.load(sam_path, map_location="cpu", weights_only=True)
    assert set(state) == set(_small_sam().state_dict()) and "format" not in state
    sam = load_sam(sam_path, "vit_h")
    assert all(torch.equal(sam.state_dict()[k], v) for k, v in state.items())
    assert weight_status("random_sam_vit_h") == weight_status("random_clip_vit_b16") == "present"


@pytest.mark.filterwarnings("ignore::FutureWarning")
def test_same_seed_same_bytes_other_seed_other_weights(tmp_path, small_archs):
    for name, suffix in (("random_sam_vit_h", "pth"), ("random_clip_vit_b16", "pt")):
        first = create_random_model(name, tmp_path / f"a.{suffix}", seed=3, log=lambda _: None)
        again = create_random_model(name, tmp_path / f"b.{suffix}", seed=3, log=lambda _: None)
        other = create_random_model(name, tmp_path / f"c.{suffix}", seed=4, log=lambda _: None)
        assert first == again == _sha256(tmp_path / f"b.{suffix}") and other != first, name
    assert not list(tmp_path.glob(".*tmp*"))  # written atomically: no temporary left


def test_make_random_refuses_other_models(tmp_path, capsys):
    with pytest.raises(ValueError, match="not a full-size random model"):
        create_random_model("tiny_sam", tmp_path / "tiny_sam.pth")
    with pytest.raises(SystemExit):
        _parser().parse_args(["weights", "make-random", "sam_vit_h"])
    assert "invalid choice: 'sam_vit_h'" in capsys.readouterr().err
    with pytest.raises(SystemExit):
        _parser().parse_args(["weights", "fetch", "random_sam_vit_h"])  # never downloaded


def test_make_random_help_says_what_it_makes(capsys):
    with pytest.raises(SystemExit):
        _parser().parse_args(["weights", "make-random", "--help"])
    text = " ".join(capsys.readouterr().out.split())
    for part in ("random_clip_vit_b16", "random_sam_vit_h", "OpenAI TorchScript archive", "segment-anything state dict",
                 "<file>.sha256", "--seed SEED", "default 0"):
        assert part in text, part


def test_list_marks_random_models(root, capsys):
    assert _run(["weights", "list"]) == 0
    rows = {line.split()[0]: line.split() for line in capsys.readouterr().out.splitlines()}
    assert rows["random_sam_vit_h"] == ["random_sam_vit_h", "sam", "vit_h", "random", "missing"]
    assert rows["random_clip_vit_b16"] == ["random_clip_vit_b16", "clip", "ViT-B-16-quickgelu", "random", "missing"]
    assert rows["tiny_sam"][3] == "tiny"


def test_random_model_is_checked_like_a_real_checkpoint(root, monkeypatch, capsys):
    """Trusted by size and mtime (a 2.4 GiB file is not hashed by every job); touched: refused until
    ``verify`` re-hashes it against the creation record; other bytes: refused naming make-random."""
    root.mkdir()
    path = root / "random_sam_vit_h.pth"
    path.write_bytes(b"random sam made here")
    made = weights.record_creation(path)
    assert made == hashlib.sha256(b"random sam made here").hexdigest()
    hashed: list[Path] = []
    real = weights.sha256_file
    monkeypatch.setattr(weights, "sha256_file", lambda p: hashed.append(Path(p)) or real(p))
    assert require_verified(path) == path and hashed == []
    _bump_mtime(path)  # as Snakemake touches the output of weights_random
    assert weight_status("random_sam_vit_h") == "unverified" and hashed == []
    with pytest.raises(WeightsIntegrityError, match="modified.*fmwsss weights verify random_sam_vit_h"):
        require_verified(path)
    assert _run(["weights", "verify", "random_sam_vit_h"]) == 0
    assert f"OK  random_sam_vit_h  {path}  sha256 {made} (test model: as recorded when made)" in capsys.readouterr().out
    hashed.clear()
    assert require_verified(path) == path and hashed == [] and weight_status("random_sam_vit_h") == "present"
    path.write_bytes(b"random sam edited later")
    _bump_mtime(path)
    with pytest.raises(WeightsIntegrityError) as info:
        require_verified(path)
    msg = str(info.value)
    assert f"expected sha256 {made}" in msg and f"found    sha256 {_sha256(path)}" in msg
    assert "fmwsss weights make-random random_sam_vit_h" in msg
    weights.sidecar_path(path).unlink()
    with pytest.raises(WeightsIntegrityError, match="no creation record.*`fmwsss weights make-random random_sam_vit_h`"):
        require_verified(path)
