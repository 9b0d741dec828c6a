"""The real CLIP loading path end to end: registry download from 127.0.0.1, sha256 check, local load.

A tiny CLIP saved in the OpenAI ViT-B-16.pt format stands in for the real file (no weights can be
downloaded here); the registry entry is pointed at its sha256 and size, everything else is the real code.
"""
from __future__ import annotations

import dataclasses
import hashlib

import pytest

from fmwsss.models import weights
from fmwsss.models.clip import _uses_quickgelu, create_tiny_clip, load_clip
from fmwsss.models.download import fetch_weight
from fmwsss.models.weights import WeightsIntegrityError

from .test_download import server  # noqa: F401  (fixture)

NAME = "clip_vit_b16_openai"


@pytest.fixture(scope="module")
def tiny_openai_file(tmp_path_factory):
    path = create_tiny_clip(tmp_path_factory.mktemp("clip") / "ViT-B-16.pt", seed=0)
    return path, hashlib.sha256(path.read_bytes()).hexdigest(), path.stat().st_size


def _register(monkeypatch, sha: str, size: int) -> None:
    spec = dataclasses.replace(weights.WEIGHTS[NAME], sha256=sha, size=size)
    monkeypatch.setitem(weights.WEIGHTS, NAME, spec)


def test_download_rule_path_then_local_load(server, tiny_openai_file, tmp_path, monkeypatch):  # noqa: F811
    path, sha, size = tiny_openai_file
    _register(monkeypatch, sha, size)
    server.routes["/clip/ViT-B-16.pt"] = (path.read_bytes(), "ok")
    got = fetch_weight(NAME, dest_dir=tmp_path / "weights", url=server.url("/clip/ViT-B-16.pt"), progress=False)
    assert got.resolve() == (tmp_path / "weights" / "ViT-B-16.pt").resolve()
    assert hashlib.sha256(got.read_bytes()).hexdigest() == sha
    assert weights.require_local(NAME, root=tmp_path / "weights") == got
    model = load_clip(got)
    assert _uses_quickgelu(model)
    assert not any(p.requires_grad for p in model.parameters())


def test_user_given_local_checkpoint(tiny_openai_file, tmp_path, monkeypatch):
    path, sha, size = tiny_openai_file
    _register(monkeypatch, sha, size)
    got = fetch_weight(NAME, dest_dir=tmp_path / "w", url=path.resolve().as_uri(), progress=False)
    assert got.read_bytes() == path.read_bytes() and _uses_quickgelu(load_clip(got))


def test_wrong_sha_is_refused(server, tiny_openai_file, tmp_path, monkeypatch):  # noqa: F811
    path, _, size = tiny_openai_file
    _register(monkeypatch, "0" * 64, size)
    server.routes["/ViT-B-16.pt"] = (path.read_bytes(), "ok")
    with pytest.raises(WeightsIntegrityError, match="sha256"):
        fetch_weight(NAME, dest_dir=tmp_path / "w", url=server.url("/ViT-B-16.pt"), progress=False)
    assert not (tmp_path / "w" / "ViT-B-16.pt").exists()
