"""sha256-checked downloads against a local ``http.server`` on 127.0.0.1 (no internet needed)."""
from __future__ import annotations

import argparse
import dataclasses
import hashlib
import http.server
import socket
import threading
from pathlib import Path
from typing import Iterator

import pytest

from fmwsss.cli import weights as cli
from fmwsss.models.download import DownloadError, fetch_weight, source_url
from fmwsss.models.weights import WEIGHTS, MissingWeightsError, WeightsIntegrityError, require_local

PAYLOAD = bytes(range(256)) * 64  # 16 KiB


class _Server:
    """Serves ``routes[path] = (body, mode)``; mode "ok", "short" (Content-Length lies), "404"."""

    def __init__(self) -> None:
        self.routes: dict[str, tuple[bytes, str]] = {}
        self.requests: list[str] = []
        server = self

        class Handler(http.server.BaseHTTPRequestHandler):
            def do_GET(self) -> None:  # noqa: N802 (stdlib name)
                server.requests.append(self.path)
                body, mode = server.routes.get(self.path, (b"", "404"))
                if mode == "404":
                    self.send_error(404, "Not Found")
                    return
                self.send_response(200)
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body[: len(body) // 2] if mode == "short" else body)

            def log_message(self, *args: object) -> None:
                pass

        self.httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.base = f"http://127.0.0.1:{self.httpd.server_address[1]}"

    def url(self, path: str) -> str:
        return self.base + path


@pytest.fixture
def server(monkeypatch: pytest.MonkeyPatch) -> Iterator[_Server]:
    monkeypatch.setenv("no_proxy", "127.0.0.1,localhost")
    monkeypatch.delenv("FMWSSS_WEIGHTS_MIRROR", raising=False)
    srv = _Server()
    thread = threading.Thread(target=srv.httpd.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)
    thread.start()
    yield srv
    srv.httpd.shutdown()
    srv.httpd.server_close()
    thread.join(timeout=5)


@pytest.fixture
def spec(server: _Server, monkeypatch: pytest.MonkeyPatch):
    """``sam_vit_b`` pointed at PAYLOAD served by ``server`` at /sam/<filename>."""
    base = WEIGHTS["sam_vit_b"]
    fake = dataclasses.replace(
        base, url=server.url(f"/sam/{base.filename}"), sha256=hashlib.sha256(PAYLOAD).hexdigest(), size=len(PAYLOAD)
    )
    monkeypatch.setitem(WEIGHTS, "sam_vit_b", fake)
    server.routes[f"/sam/{base.filename}"] = (PAYLOAD, "ok")
    return fake


def _only_file_is(dest_dir: Path, expected: set[str]) -> None:
    """Exactly ``expected`` in ``dest_dir``: no temp file or partial download left behind."""
    present = {p.name for p in dest_dir.iterdir()} if dest_dir.exists() else set()
    assert present == expected


def test_download_verifies_writes_sidecar_and_is_not_repeated(tmp_path, server, spec):
    path = fetch_weight("sam_vit_b", tmp_path, progress=False)
    assert path == tmp_path / spec.filename and path.read_bytes() == PAYLOAD
    _only_file_is(tmp_path, {spec.filename, spec.filename + ".sha256"})
    assert server.requests == [f"/sam/{spec.filename}"]
    assert fetch_weight("sam_vit_b", tmp_path, progress=False) == path
    assert len(server.requests) == 1  # already present and verified: no second download
    assert require_local("sam_vit_b", tmp_path) == path


def test_wrong_sha256_leaves_nothing(tmp_path, server, spec):
    server.routes[f"/sam/{spec.filename}"] = (PAYLOAD[::-1], "ok")
    with pytest.raises(WeightsIntegrityError) as info:
        fetch_weight("sam_vit_b", tmp_path, progress=False)
    msg = str(info.value)
    assert spec.url in msg and spec.sha256 in msg and hashlib.sha256(PAYLOAD[::-1]).hexdigest() in msg
    _only_file_is(tmp_path, set())


def test_content_length_lies_leaves_nothing(tmp_path, server, spec, monkeypatch):
    monkeypatch.setitem(WEIGHTS, "sam_vit_b", dataclasses.replace(spec, size=None))  # only the header can tell
    server.routes[f"/sam/{spec.filename}"] = (PAYLOAD, "short")
    with pytest.raises(WeightsIntegrityError, match=f"got {len(PAYLOAD) // 2} bytes, expected {len(PAYLOAD)}"):
        fetch_weight("sam_vit_b", tmp_path, progress=False)
    _only_file_is(tmp_path, set())


def test_file_shorter_than_registry_size_leaves_nothing(tmp_path, server, spec):
    server.routes[f"/sam/{spec.filename}"] = (PAYLOAD[:1000], "ok")
    with pytest.raises(WeightsIntegrityError) as info:
        fetch_weight("sam_vit_b", tmp_path, progress=False)
    assert spec.url in str(info.value) and f"got 1000 bytes, expected {len(PAYLOAD)}" in str(info.value)
    _only_file_is(tmp_path, set())


def test_http_404_is_a_clear_error(tmp_path, server, spec):
    server.routes.clear()
    with pytest.raises(DownloadError) as info:
        fetch_weight("sam_vit_b", tmp_path, progress=False)
    msg = str(info.value)
    assert "HTTP 404" in msg and spec.url in msg and str(tmp_path / spec.filename) in msg
    _only_file_is(tmp_path, set())


def test_offline_names_url_and_manual_path(tmp_path, monkeypatch):
    with socket.socket() as sock:  # a port nobody listens on: connection refused
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    monkeypatch.setenv("no_proxy", "127.0.0.1,localhost")
    monkeypatch.delenv("FMWSSS_WEIGHTS_MIRROR", raising=False)
    url = f"http://127.0.0.1:{port}/ViT-B-16.pt"
    with pytest.raises(MissingWeightsError) as info:
        fetch_weight("clip_vit_b16_openai", tmp_path, url=url, progress=False)
    msg = str(info.value)
    assert url in msg and str(tmp_path / "ViT-B-16.pt") in msg
    assert WEIGHTS["clip_vit_b16_openai"].url in msg  # what to download by hand
    _only_file_is(tmp_path, set())


def test_mirror_env_and_url_override_order(tmp_path, server, spec, monkeypatch):
    server.routes[f"/mirror/{spec.filename}"] = (PAYLOAD, "ok")
    monkeypatch.setenv("FMWSSS_WEIGHTS_MIRROR", server.url("/mirror/"))
    assert source_url(spec) == server.url(f"/mirror/{spec.filename}")
    assert source_url(spec, "http://x/y.pth") == "http://x/y.pth"
    fetch_weight("sam_vit_b", tmp_path, progress=False)
    assert server.requests == [f"/mirror/{spec.filename}"]
    server.routes["/explicit.bin"] = (PAYLOAD, "ok")
    fetch_weight("sam_vit_b", tmp_path / "b", url=server.url("/explicit.bin"), progress=False)
    assert server.requests[-1] == "/explicit.bin"


def test_corrupt_existing_file_is_replaced(tmp_path, server, spec):
    (tmp_path / spec.filename).write_bytes(b"\0" * len(PAYLOAD))
    path = fetch_weight("sam_vit_b", tmp_path, progress=False)
    assert path.read_bytes() == PAYLOAD and len(server.requests) == 1


def test_tiny_weights_are_never_downloaded(tmp_path):
    with pytest.raises(ValueError, match="make-tiny"):
        fetch_weight("tiny_sam", tmp_path)


def test_cli_fetch(tmp_path, server, spec, capsys):
    parser = argparse.ArgumentParser(prog="fmwsss")
    cli.register(parser.add_subparsers(dest="command", required=True))
    args = parser.parse_args(["weights", "fetch", "sam_vit_b", "--dir", str(tmp_path), "--no-progress"])
    assert args.func(args) == 0
    assert capsys.readouterr().out.strip() == str(tmp_path / spec.filename)
    server.routes.clear()
    args = parser.parse_args(["weights", "fetch", "sam_vit_b", "--dir", str(tmp_path / "x"), "--no-progress"])
    assert args.func(args) == 1
    assert "HTTP 404" in capsys.readouterr().err
    with pytest.raises(SystemExit):
        parser.parse_args(["weights", "fetch", "tiny_sam"])  # tiny models are not fetchable


def test_unpinned_swin_is_pinned_by_its_first_fetch_and_refuses_changed_bytes(tmp_path, server, monkeypatch, caplog):
    base = WEIGHTS["swin_large_in22k"]
    route = "/microsoft/swin/pytorch_model.bin"
    monkeypatch.setitem(WEIGHTS, base.name, dataclasses.replace(base, url=server.url(route)))
    server.routes[route] = (PAYLOAD, "ok")
    with caplog.at_level("WARNING"):
        path = fetch_weight(base.name, tmp_path, progress=False)
    digest = hashlib.sha256(PAYLOAD).hexdigest()
    assert path == tmp_path / base.filename and path.read_bytes() == PAYLOAD
    assert f'add sha256="{digest}"' in caplog.text  # the registry declares none: asked to add it
    assert require_local(base.name, tmp_path) == path
    server.routes[route] = (PAYLOAD[::-1], "ok")  # upstream (or a man in the middle) now serves other bytes
    assert fetch_weight(base.name, tmp_path, progress=False) == path and len(server.requests) == 1  # pinned: kept
    path.write_bytes(b"corrupt" + PAYLOAD[7:])  # the local copy breaks: re-fetched, and held to the first digest
    with pytest.raises(WeightsIntegrityError) as info:
        fetch_weight(base.name, tmp_path, progress=False)
    assert digest in str(info.value) and hashlib.sha256(PAYLOAD[::-1]).hexdigest() in str(info.value)
    assert len(server.requests) == 2
    _only_file_is(tmp_path, {base.filename, base.filename + ".sha256"})  # nothing half-written left
