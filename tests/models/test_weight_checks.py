"""Issue 15, point 1: a hand-placed weight file is checked before any job loads it.

Random bytes at the CLIP path and a zero-filled SAM checkpoint of the registry's size (a sparse 4 KiB file
under a test registry entry, never gigabytes) are refused by the verify rule's job function, by the job-start
check and by the loaders, each naming the file, the expected and found sha256 and the fetch command, and never
relaying PyTorch's advice to load with ``weights_only=False``.
"""
from __future__ import annotations

import dataclasses
import hashlib
import os
import types
from pathlib import Path

import pytest

from fmwsss.models import weights
from fmwsss.models.weights import WEIGHTS, WeightsIntegrityError, record_creation, require_verified, verify_local
from fmwsss.pipeline.entrypoints import _verified_weights, verify_weights_job

GOOD = b"the real checkpoint's bytes\n" * 146  # 4088 bytes
SAM_SIZE = 4096


@pytest.fixture
def root(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.setenv("FMWSSS_WEIGHTS_DIR", str(tmp_path / "w"))
    (tmp_path / "w").mkdir()
    return tmp_path / "w"


@pytest.fixture
def small_sam_h(monkeypatch: pytest.MonkeyPatch) -> weights.WeightSpec:
    """A test registry entry for ``sam_vit_h``: 4 KiB with a known digest, so a right-size file is cheap."""
    spec = dataclasses.replace(WEIGHTS["sam_vit_h"], sha256=hashlib.sha256(b"S" * SAM_SIZE).hexdigest(), size=SAM_SIZE)
    monkeypatch.setitem(WEIGHTS, "sam_vit_h", spec)
    return spec


def _zero_filled(path: Path, size: int) -> Path:
    with open(path, "wb") as fh:  # sparse: no bytes written
        fh.truncate(size)
    return path


def _assert_names_everything(msg: str, path: Path, expected: str, found: str, fetch: str) -> None:
    assert str(path.name) in msg, msg
    assert f"expected sha256 {expected}" in msg and f"found    sha256 {found}" in msg, msg
    assert fetch in msg, msg
    assert "weights_only" not in msg, msg


def _hash_calls(monkeypatch: pytest.MonkeyPatch) -> list[Path]:
    calls: list[Path] = []
    real = weights.sha256_file
    monkeypatch.setattr(weights, "sha256_file", lambda p: calls.append(Path(p)) or real(p))
    return calls


def _bump_mtime(path: Path) -> None:
    st = path.stat()
    os.utime(path, ns=(st.st_atime_ns, st.st_mtime_ns + 1_000_000_000))  # coarse clocks: force a new mtime


def test_random_bytes_at_clip_path_fail_the_verify_job_and_the_loader(root):
    path = root / "ViT-B-16.pt"
    path.write_bytes(os.urandom(4096))
    found = hashlib.sha256(path.read_bytes()).hexdigest()
    spec = WEIGHTS["clip_vit_b16_openai"]
    log = root / "verify.log"
    with pytest.raises(WeightsIntegrityError) as info:
        verify_weights_job(spec.name, str(path), str(log))
    _assert_names_everything(str(info.value), path, spec.sha256, found, "fmwsss weights fetch clip_vit_b16_openai")
    assert not (root / "ViT-B-16.pt.sha256").exists() and found in log.read_text()
    from fmwsss.models.clip import ClipLoadError, load_clip

    with pytest.raises(ClipLoadError) as info:  # the loading edge, should a job get this far
        load_clip(path)
    _assert_names_everything(str(info.value), path, spec.sha256, found, "fmwsss weights fetch clip_vit_b16_openai")


def test_zero_filled_sam_of_the_right_size_fails_verify_and_loader(root, small_sam_h):
    path = _zero_filled(root / small_sam_h.filename, SAM_SIZE)
    zeros = hashlib.sha256(bytes(SAM_SIZE)).hexdigest()
    with pytest.raises(WeightsIntegrityError) as info:
        verify_local(path, small_sam_h)
    _assert_names_everything(str(info.value), path, small_sam_h.sha256, zeros, "fmwsss weights fetch sam_vit_h")
    from fmwsss.models.sam import load_sam

    with pytest.raises(ValueError) as info:
        load_sam(path, "vit_h")
    _assert_names_everything(str(info.value), path, small_sam_h.sha256, zeros, "fmwsss weights fetch sam_vit_h")


def _job(path: Path) -> types.SimpleNamespace:
    return types.SimpleNamespace(input=types.SimpleNamespace(weights=str(path)))


def test_job_start_check_trusts_the_sidecar_without_hashing(root, small_sam_h, monkeypatch):
    path = root / small_sam_h.filename
    path.write_bytes(b"S" * SAM_SIZE)
    verify_local(path, small_sam_h)  # what the verify rule does, once
    calls = _hash_calls(monkeypatch)
    assert _verified_weights(_job(path)) == path
    assert calls == []


def test_job_start_check_refuses_a_file_replaced_after_verification(root, small_sam_h, monkeypatch):
    path = root / small_sam_h.filename
    path.write_bytes(b"S" * SAM_SIZE)
    verify_local(path, small_sam_h)
    _zero_filled(path, SAM_SIZE)  # same size, other bytes
    _bump_mtime(path)
    with pytest.raises(WeightsIntegrityError) as info:
        _verified_weights(_job(path))
    zeros = hashlib.sha256(bytes(SAM_SIZE)).hexdigest()
    _assert_names_everything(str(info.value), path, small_sam_h.sha256, zeros, "fmwsss weights fetch sam_vit_h")


def test_job_start_check_refuses_touched_or_never_verified_files(root, small_sam_h):
    path = root / small_sam_h.filename
    path.write_bytes(b"S" * SAM_SIZE)
    with pytest.raises(WeightsIntegrityError, match="never verified.*fmwsss weights verify sam_vit_h"):
        require_verified(path)
    verify_local(path, small_sam_h)
    _bump_mtime(path)  # same bytes, new mtime: refused until re-recorded, never silently re-hashed per job
    with pytest.raises(WeightsIntegrityError, match="modified.*fmwsss weights verify sam_vit_h"):
        require_verified(path)
    verify_local(path, small_sam_h)
    assert require_verified(path) == path


def test_tiny_models_are_checked_against_their_creation_record(root):
    path = root / "tiny_clip.pt"
    path.write_bytes(b"tiny clip made here")
    made = record_creation(path)
    assert made == hashlib.sha256(b"tiny clip made here").hexdigest()
    assert require_verified(path) == path
    _bump_mtime(path)  # Snakemake touches a rule's outputs after the job: the bytes are what count
    assert require_verified(path) == path
    path.write_bytes(b"tiny clip edited later")
    _bump_mtime(path)
    with pytest.raises(WeightsIntegrityError) as info:
        require_verified(path)
    found = hashlib.sha256(b"tiny clip edited later").hexdigest()
    _assert_names_everything(str(info.value), path, made, found, "fmwsss weights make-tiny")
