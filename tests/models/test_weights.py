"""Weight registry, local verification with the sha256 sidecar, and the ``fmwsss weights`` CLI (no network)."""
from __future__ import annotations

import argparse
import dataclasses
import hashlib
import json
import os
import re
import sys
import types
from pathlib import Path

import pytest

from fmwsss.cli import weights as cli
from fmwsss.models import weights
from fmwsss.models.weights import (
    TINY_VERSION,
    WEIGHTS,
    MissingWeightsError,
    WeightsIntegrityError,
    get_weight,
    list_weights,
    local_path,
    require_local,
    weight_identity,
    weights_dir,
)

PAYLOAD = b"fmwsss fake checkpoint\n" * 100


@pytest.fixture
def root(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """An empty weights dir selected through the environment, as the workflow does."""
    monkeypatch.setenv("FMWSSS_WEIGHTS_DIR", str(tmp_path / "w"))
    return tmp_path / "w"


@pytest.fixture
def fake_sam_b(monkeypatch: pytest.MonkeyPatch) -> weights.WeightSpec:
    """Point the ``sam_vit_b`` entry at PAYLOAD's digest and size so real-weight paths run on a small file."""
    spec = dataclasses.replace(
        WEIGHTS["sam_vit_b"], sha256=hashlib.sha256(PAYLOAD).hexdigest(), size=len(PAYLOAD)
    )
    monkeypatch.setitem(WEIGHTS, "sam_vit_b", spec)
    return spec


def _place(root: Path, spec: weights.WeightSpec, data: bytes = PAYLOAD) -> Path:
    root.mkdir(parents=True, exist_ok=True)
    path = root / spec.filename
    path.write_bytes(data)
    return path


def _count_hashes(monkeypatch: pytest.MonkeyPatch) -> list[Path]:
    calls: list[Path] = []
    real = weights.sha256_file

    def counting(path: Path) -> str:
        calls.append(path)
        return real(path)

    monkeypatch.setattr(weights, "sha256_file", counting)
    return calls


# --- registry -------------------------------------------------------------------------------------


def test_registry_entries_are_consistent():
    assert {"clip_vit_b16_openai", "sam_vit_h", "sam_vit_l", "sam_vit_b", "tiny_clip", "tiny_sam",
            "random_clip_vit_b16", "random_sam_vit_h", "swin_large_in22k", "tiny_swin"} <= set(WEIGHTS)
    for name, spec in WEIGHTS.items():
        assert spec.name == name
        assert spec.kind in ("clip", "sam", "swin")
        if spec.made_locally:
            assert spec.url is None and spec.sha256 is None
        elif spec.pin_on_first_fetch:  # the hub's file name is generic: ours names the model
            assert spec.sha256 is None and spec.url.startswith("https://") and spec.filename != "pytorch_model.bin"
        else:
            assert re.fullmatch(r"[0-9a-f]{64}", spec.sha256), name
            assert spec.url.startswith("https://") and spec.url.rsplit("/", 1)[1] == spec.filename
    clip = WEIGHTS["clip_vit_b16_openai"]
    assert clip.arch == "ViT-B-16-quickgelu"
    assert clip.url.split("/")[-2] == clip.sha256  # OpenAI URLs embed the file's sha256, as open_clip relies on
    assert [WEIGHTS[n].size for n in ("sam_vit_h", "sam_vit_l", "sam_vit_b")] == [2564550879, 1249524607, 375042383]
    assert [WEIGHTS[n].arch for n in ("sam_vit_h", "sam_vit_l", "sam_vit_b")] == ["vit_h", "vit_l", "vit_b"]
    # the full-size random models: the real architectures, made locally, checked like real checkpoints
    for name, kind, arch in (("random_clip_vit_b16", "clip", "ViT-B-16-quickgelu"), ("random_sam_vit_h", "sam", "vit_h")):
        spec = WEIGHTS[name]
        assert (spec.kind, spec.arch, spec.made_locally, spec.tiny) == (kind, arch, True, False)
    assert weights.random_model_names() == ["random_clip_vit_b16", "random_sam_vit_h"]
    assert [n for n in WEIGHTS if WEIGHTS[n].tiny] == ["tiny_clip", "tiny_sam", "tiny_swin"]
    swin = WEIGHTS["swin_large_in22k"]  # the digest is not known here: pinned by the first fetch (never invented)
    assert (swin.kind, swin.arch, swin.sha256, swin.pin_on_first_fetch) == (
        "swin", "swin_large_patch4_window12_384", None, True)
    assert swin.url == ("https://huggingface.co/microsoft/swin-large-patch4-window12-384-in22k/resolve/main/"
                        "pytorch_model.bin")
    assert (WEIGHTS["tiny_swin"].kind, WEIGHTS["tiny_swin"].arch) == ("swin", "tiny")


def test_is_test_model_is_made_locally():
    assert [n for n in sorted(WEIGHTS) if weights.is_test_model(n)] == [
        "random_clip_vit_b16", "random_sam_vit_h", "tiny_clip", "tiny_sam", "tiny_swin"]
    assert not weights.is_test_model("swin_large_in22k")  # real, only its digest is not declared yet
    assert not weights.is_test_model("sam_vit_h") and not weights.is_test_model("no_such_model")


def test_spec_refuses_inconsistent_kinds():
    base = WEIGHTS["random_sam_vit_h"]
    with pytest.raises(ValueError, match="no registry digest"):
        dataclasses.replace(base, sha256="0" * 64)
    with pytest.raises(ValueError, match="tiny models are made locally"):
        dataclasses.replace(WEIGHTS["sam_vit_b"], tiny=True)
    with pytest.raises(ValueError, match="must declare a sha256"):
        dataclasses.replace(WEIGHTS["sam_vit_b"], sha256=None)
    with pytest.raises(ValueError, match="pin_on_first_fetch is for"):
        dataclasses.replace(WEIGHTS["sam_vit_b"], pin_on_first_fetch=True)  # it declares a digest
    with pytest.raises(ValueError, match="pin_on_first_fetch is for"):
        dataclasses.replace(WEIGHTS["tiny_sam"], pin_on_first_fetch=True)


def test_specs_are_frozen():
    with pytest.raises(dataclasses.FrozenInstanceError):
        WEIGHTS["sam_vit_h"].sha256 = "0" * 64


def test_get_weight_unknown_lists_known_names():
    with pytest.raises(KeyError, match="sam_vit_h") as info:
        get_weight("sam_vit_x")
    assert "sam_vit_x" in str(info.value) and "tiny_clip" in str(info.value)


def test_list_weights_filters_by_kind():
    assert list_weights() == sorted(WEIGHTS)
    assert list_weights("clip") == ["clip_vit_b16_openai", "random_clip_vit_b16", "tiny_clip"]
    assert "clip_vit_b16_openai" not in list_weights("sam")


def test_weight_identity_is_declared_digest_or_tiny_version():
    assert weight_identity("sam_vit_h") == "a7bf3b02f3ebf1267aba913ff637d9a2d5c33d3173bb679e46d9f338c26f262e"
    assert weight_identity("clip_vit_b16_openai") == WEIGHTS["clip_vit_b16_openai"].sha256
    assert weight_identity("swin_large_in22k") == (  # no declared digest: the URL names it
        "url:https://huggingface.co/microsoft/swin-large-patch4-window12-384-in22k/resolve/main/pytorch_model.bin")
    assert weight_identity("tiny_swin") == f"tiny-v{TINY_VERSION}"
    assert weight_identity("tiny_sam") == weight_identity("tiny_clip") == f"tiny-v{TINY_VERSION}"
    assert weight_identity("random_sam_vit_h") == f"random-v{weights.RANDOM_VERSION}-random_sam_vit_h"
    assert weight_identity("random_clip_vit_b16") == f"random-v{weights.RANDOM_VERSION}-random_clip_vit_b16"


def test_weight_identity_never_reads_files(root, fake_sam_b, monkeypatch):
    calls = _count_hashes(monkeypatch)
    _place(root, fake_sam_b, b"garbage")
    assert weight_identity("sam_vit_b") == fake_sam_b.sha256
    assert calls == []


def test_weights_dir_env_and_default(tmp_path, monkeypatch):
    monkeypatch.delenv("FMWSSS_WEIGHTS_DIR", raising=False)
    monkeypatch.chdir(tmp_path)
    assert weights_dir() == tmp_path / "resources" / "weights"
    monkeypatch.setenv("FMWSSS_WEIGHTS_DIR", str(tmp_path / "elsewhere"))
    assert weights_dir() == tmp_path / "elsewhere"
    assert local_path("sam_vit_h") == tmp_path / "elsewhere" / "sam_vit_h_4b8939.pth"
    assert local_path("tiny_sam", tmp_path / "x") == tmp_path / "x" / "tiny_sam.pth"


# --- require_local --------------------------------------------------------------------------------


def test_require_local_missing_real_says_what_where_how(tmp_path, monkeypatch):
    monkeypatch.delenv("FMWSSS_WEIGHTS_DIR", raising=False)
    monkeypatch.chdir(tmp_path)
    with pytest.raises(MissingWeightsError) as info:
        require_local("sam_vit_h")
    msg = str(info.value)
    assert "https://dl.fbaipublicfiles.com/segment_anything/sam_vit_h_4b8939.pth" in msg
    assert str(tmp_path / "resources" / "weights" / "sam_vit_h_4b8939.pth") in msg
    assert "fmwsss weights fetch sam_vit_h" in msg
    assert "snakemake --cores 1 resources/weights/sam_vit_h_4b8939.pth" in msg
    assert isinstance(info.value, FileNotFoundError)


def test_require_local_missing_in_custom_dir_gives_dir_flag(tmp_path):
    with pytest.raises(MissingWeightsError) as info:
        require_local("clip_vit_b16_openai", tmp_path / "mine")
    msg = str(info.value)
    assert f"fmwsss weights fetch clip_vit_b16_openai --dir {tmp_path / 'mine'}" in msg
    assert str(tmp_path / "mine" / "ViT-B-16.pt") in msg
    assert "snakemake" not in msg  # the workflow target only exists for the default directory


def test_require_local_missing_tiny_mentions_make_tiny(root):
    with pytest.raises(MissingWeightsError, match="fmwsss weights make-tiny") as info:
        require_local("tiny_sam")
    assert str(root / "tiny_sam.pth") in str(info.value)
    assert "http" not in str(info.value)  # never a download


def test_require_local_missing_random_names_make_random(root, tmp_path):
    with pytest.raises(MissingWeightsError) as info:
        require_local("random_sam_vit_h")
    msg = str(info.value)
    assert str(root / "random_sam_vit_h.pth") in msg and "`fmwsss weights make-random random_sam_vit_h`" in msg
    assert "http" not in msg
    with pytest.raises(MissingWeightsError, match=f"make-random random_clip_vit_b16 --dir {tmp_path / 'x'}"):
        require_local("random_clip_vit_b16", tmp_path / "x")


def test_require_local_tiny_present_is_not_hashed(root, monkeypatch):
    calls = _count_hashes(monkeypatch)
    path = _place(root, WEIGHTS["tiny_clip"], b"any bytes")
    assert require_local("tiny_clip") == path
    assert calls == []


def test_first_use_hashes_and_writes_sidecar_then_trusts_it(root, fake_sam_b, monkeypatch):
    calls = _count_hashes(monkeypatch)
    path = _place(root, fake_sam_b)
    assert require_local("sam_vit_b") == path
    record = json.loads((root / (fake_sam_b.filename + ".sha256")).read_text())
    st = path.stat()
    assert record == {"sha256": fake_sam_b.sha256, "size": st.st_size, "mtime_ns": st.st_mtime_ns}
    assert require_local("sam_vit_b") == path
    assert len(calls) == 1  # second load skipped the hash


def test_same_size_corruption_after_sidecar_is_rehashed_and_rejected(root, fake_sam_b, monkeypatch):
    path = _place(root, fake_sam_b)
    require_local("sam_vit_b")
    bad = b"X" + PAYLOAD[1:]
    path.write_bytes(bad)
    st = path.stat()
    os.utime(path, ns=(st.st_atime_ns, st.st_mtime_ns + 1_000_000_000))  # coarse clocks: force a new mtime
    calls = _count_hashes(monkeypatch)
    with pytest.raises(WeightsIntegrityError) as info:
        require_local("sam_vit_b")
    msg = str(info.value)
    assert str(path) in msg and fake_sam_b.sha256 in msg and hashlib.sha256(bad).hexdigest() in msg
    assert calls == [path]


def test_touched_but_intact_file_is_rehashed_and_accepted(root, fake_sam_b, monkeypatch):
    path = _place(root, fake_sam_b)
    require_local("sam_vit_b")
    st = path.stat()
    os.utime(path, ns=(st.st_atime_ns, st.st_mtime_ns + 1_000_000_000))
    calls = _count_hashes(monkeypatch)
    assert require_local("sam_vit_b") == path
    assert calls == [path]
    assert json.loads((root / (fake_sam_b.filename + ".sha256")).read_text())["mtime_ns"] == path.stat().st_mtime_ns


def test_size_change_is_rejected_without_hashing(root, fake_sam_b, monkeypatch):
    path = _place(root, fake_sam_b)
    require_local("sam_vit_b")
    path.write_bytes(PAYLOAD[:-5])
    calls = _count_hashes(monkeypatch)
    with pytest.raises(WeightsIntegrityError, match=f"size {len(PAYLOAD) - 5} bytes, expected {len(PAYLOAD)}"):
        require_local("sam_vit_b")
    assert calls == []


def test_forged_sidecar_with_other_digest_is_not_trusted(root, fake_sam_b):
    path = _place(root, fake_sam_b, b"Y" * len(PAYLOAD))
    st = path.stat()
    sidecar = root / (fake_sam_b.filename + ".sha256")
    sidecar.write_text(json.dumps({"sha256": "0" * 64, "size": st.st_size, "mtime_ns": st.st_mtime_ns}))
    with pytest.raises(WeightsIntegrityError, match="expected sha256 " + fake_sam_b.sha256):
        require_local("sam_vit_b")


def test_size_none_checks_sha_only(root, monkeypatch):
    spec = dataclasses.replace(WEIGHTS["clip_vit_b16_openai"], sha256=hashlib.sha256(PAYLOAD).hexdigest())
    assert spec.size is None
    monkeypatch.setitem(WEIGHTS, spec.name, spec)
    path = _place(root, spec)
    assert require_local(spec.name) == path
    path.write_bytes(PAYLOAD + b"extra")
    with pytest.raises(WeightsIntegrityError, match="sha256"):
        require_local(spec.name)


# --- CLI ------------------------------------------------------------------------------------------


def _run(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(prog="fmwsss")
    cli.register(parser.add_subparsers(dest="command", required=True))
    args = parser.parse_args(argv)
    return args.func(args)


def test_every_flag_has_help():
    parser = argparse.ArgumentParser(prog="fmwsss")
    weights_parser = cli.register(parser.add_subparsers())
    subs = next(a for a in weights_parser._actions if isinstance(a, argparse._SubParsersAction))
    assert set(subs.choices) == {"list", "fetch", "verify", "make-tiny", "make-random"}
    for name, sub in subs.choices.items():
        for action in sub._actions:
            if not isinstance(action, argparse._HelpAction):
                assert action.help, f"{name} {action.dest} has no help"


def test_cli_list_says_present_only_for_verified_files(root, fake_sam_b, capsys):
    _place(root, WEIGHTS["tiny_sam"], b"t")  # a tiny file without its creation record
    _place(root, fake_sam_b)
    _place(root, WEIGHTS["sam_vit_l"], b"short")
    _place(root, WEIGHTS["clip_vit_b16_openai"], os.urandom(4096))  # the hand-placed random bytes
    assert _run(["weights", "list"]) == 0
    out = capsys.readouterr().out
    rows = {line.split()[0]: line for line in out.splitlines()}
    assert rows["sam_vit_b"].endswith("unverified")  # list never hashes: not verified yet, so not present
    assert rows["clip_vit_b16_openai"].endswith("unverified")
    assert rows["sam_vit_l"].endswith("mismatch")  # 5 bytes, the registry says 1249524607
    assert rows["sam_vit_h"].endswith("missing") and "2.4 GiB" in rows["sam_vit_h"]
    assert rows["tiny_sam"].endswith("unverified")
    assert "unknown" in rows["clip_vit_b16_openai"] and "?" not in out  # the registry declares no CLIP size
    require_local("sam_vit_b")
    weights.record_creation(root / "tiny_sam.pth")
    assert _run(["weights", "verify", "clip_vit_b16_openai"]) == 1  # random bytes: refused, nothing recorded
    assert _run(["weights", "list"]) == 0
    rows = {line.split()[0]: line for line in capsys.readouterr().out.splitlines()}
    assert rows["sam_vit_b"].endswith("present") and rows["tiny_sam"].endswith("present")
    assert rows["clip_vit_b16_openai"].endswith("unverified")


def test_cli_verify(root, fake_sam_b, capsys):
    _place(root, fake_sam_b)
    assert _run(["weights", "verify", "sam_vit_b", "--force"]) == 0
    assert fake_sam_b.sha256 in capsys.readouterr().out
    assert _run(["weights", "verify", "sam_vit_b", "tiny_clip"]) == 1
    captured = capsys.readouterr()
    assert "OK  sam_vit_b" in captured.out and "make-tiny" in captured.err


def test_cli_verify_force_rehashes(root, fake_sam_b, monkeypatch, capsys):
    _place(root, fake_sam_b)
    require_local("sam_vit_b")
    calls = _count_hashes(monkeypatch)
    assert _run(["weights", "verify", "sam_vit_b"]) == 0
    assert calls == []
    assert _run(["weights", "verify", "sam_vit_b", "--force"]) == 0
    assert len(calls) == 1


def test_cli_make_tiny_calls_every_creator(tmp_path, monkeypatch, capsys):
    made: list[tuple[str, Path, int]] = []

    def creator(kind: str):
        def create(path: Path, seed: int) -> None:
            made.append((kind, Path(path), seed))
            Path(path).write_bytes(kind.encode())

        return create

    monkeypatch.setitem(sys.modules, "fmwsss.models.tiny_sam",
                        types.SimpleNamespace(create_tiny_sam=creator("sam")))
    monkeypatch.setitem(sys.modules, "fmwsss.models.clip", types.SimpleNamespace(create_tiny_clip=creator("clip")))
    out = tmp_path / "tiny"
    monkeypatch.setitem(sys.modules, "fmwsss.models.swin", types.SimpleNamespace(create_tiny_swin=creator("swin")))
    assert _run(["weights", "make-tiny", "--dir", str(out), "--seed", "7"]) == 0
    assert sorted(made) == [("clip", out / "tiny_clip.pt", 7), ("sam", out / "tiny_sam.pth", 7),
                            ("swin", out / "tiny_swin.pth", 7)]
    assert require_local("tiny_sam", out) == out / "tiny_sam.pth"
    assert require_local("tiny_clip", out).read_bytes() == b"clip"
    record = json.loads((out / "tiny_clip.pt.sha256").read_text())
    assert record["sha256"] == hashlib.sha256(b"clip").hexdigest()  # recorded at creation
    assert weights.require_verified(out / "tiny_clip.pt") == out / "tiny_clip.pt"


# --- a real checkpoint whose digest the registry does not declare yet -----------------------------


def test_unpinned_checkpoint_is_pinned_by_its_first_verify_then_held_to_it(root, caplog, capsys):
    spec = WEIGHTS["swin_large_in22k"]
    path = _place(root, spec)
    assert _run(["weights", "list"]) == 0
    row = next(line for line in capsys.readouterr().out.splitlines() if line.startswith("swin_large_in22k"))
    assert "digest unpinned" in row and row.endswith("unverified")
    with pytest.raises(WeightsIntegrityError, match="never verified"):
        weights.require_verified(path)
    with caplog.at_level("WARNING", logger="fmwsss.models.weights"):
        assert _run(["weights", "verify", "swin_large_in22k"]) == 0
    digest = hashlib.sha256(PAYLOAD).hexdigest()
    assert f"sha256 {digest}" in capsys.readouterr().out
    assert f'add sha256="{digest}"' in caplog.text and "declares no sha256" in caplog.text
    assert json.loads(weights.sidecar_path(path).read_text())["sha256"] == digest
    assert weights.require_verified(path) == path and weights.weight_status("swin_large_in22k") == "present"
    path.write_bytes(PAYLOAD[::-1])  # same size, other bytes: refused against the pinned record
    with pytest.raises(WeightsIntegrityError) as info:
        weights.require_verified(path)
    assert digest in str(info.value) and hashlib.sha256(PAYLOAD[::-1]).hexdigest() in str(info.value)
    assert _run(["weights", "verify", "swin_large_in22k"]) == 1
    assert "declares no sha256" in capsys.readouterr().err
    assert json.loads(weights.sidecar_path(path).read_text())["sha256"] == digest  # the pin is never moved


def test_unpinned_checkpoint_missing_says_the_digest_is_not_declared(root):
    with pytest.raises(MissingWeightsError) as info:
        require_local("swin_large_in22k")
    msg = str(info.value)
    assert WEIGHTS["swin_large_in22k"].url in msg and "sha256: not declared by the registry yet" in msg
    assert "None" not in msg
