"""A minimal W3C WebDriver client over chromedriver's HTTP API (standard library only, no selenium).

Enough for the report's browser test: open a page, run a script, read the browser console log, save a
screenshot. ``Browser.find()`` returns None when Debian's ``chromium``/``chromium-driver`` are not installed
(``make install-browser``).
"""
from __future__ import annotations

import base64
import json
import shutil
import socket
import subprocess
import time
import urllib.error
import urllib.request
from pathlib import Path
from typing import Any

CHROMIUM_NAMES = ("chromium", "chromium-browser", "google-chrome")


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class Browser:
    """Headless Chromium driven through chromedriver; use as a context manager."""

    def __init__(self, chromium: str, chromedriver: str, width: int = 1400, height: int = 1000):
        self.port = _free_port()
        self.proc = subprocess.Popen([chromedriver, f"--port={self.port}"], stdout=subprocess.DEVNULL,
                                     stderr=subprocess.DEVNULL)
        self.base = f"http://127.0.0.1:{self.port}"
        deadline = time.monotonic() + 20
        while True:
            try:
                self._call("GET", "/status")
                break
            except (urllib.error.URLError, ConnectionError):
                if time.monotonic() > deadline:
                    self.proc.kill()
                    raise RuntimeError(f"{chromedriver} did not answer on port {self.port}")
                time.sleep(0.1)
        caps = {"browserName": "chrome", "goog:loggingPrefs": {"browser": "ALL"},
                "goog:chromeOptions": {"binary": chromium, "args": [
                    "--headless=new", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage",
                    f"--window-size={width},{height}"]}}
        self.session = self._call("POST", "/session", {"capabilities": {"alwaysMatch": caps}})["sessionId"]

    @classmethod
    def find(cls) -> tuple[str, str] | None:
        """(chromium, chromedriver) paths, or None when either is missing."""
        chromium = next((p for p in map(shutil.which, CHROMIUM_NAMES) if p), None)
        driver = shutil.which("chromedriver")
        return (chromium, driver) if chromium and driver else None

    def _call(self, method: str, path: str, body: dict | None = None) -> Any:
        data = json.dumps(body).encode() if body is not None else None
        req = urllib.request.Request(self.base + path, data=data, method=method,
                                     headers={"Content-Type": "application/json"})
        try:
            with urllib.request.urlopen(req, timeout=60) as resp:
                return json.loads(resp.read() or b"{}").get("value")
        except urllib.error.HTTPError as exc:
            raise RuntimeError(f"webdriver {method} {path}: {exc.read().decode(errors='replace')}") from None

    def _session(self, method: str, path: str, body: dict | None = None) -> Any:
        return self._call(method, f"/session/{self.session}{path}", body)

    def get(self, url: str) -> None:
        self._session("POST", "/url", {"url": url})

    def run(self, script: str, *args: Any) -> Any:
        """Run ``script`` (a function body; ``arguments`` holds ``args``) and return its value."""
        return self._session("POST", "/execute/sync", {"script": script, "args": list(args)})

    def console(self) -> list[dict]:
        """Browser console entries since the last call (chromedriver's log endpoint)."""
        return self._session("POST", "/se/log", {"type": "browser"})

    def resize(self, width: int, height: int) -> None:
        self._session("POST", "/window/rect", {"width": int(width), "height": int(height)})

    def screenshot(self, path: Path, width: int = 1400, height: int = 1000) -> None:
        """Save a PNG of the window resized to ``width`` x ``height`` (e.g. the page's full size)."""
        self.resize(width, height)
        Path(path).write_bytes(base64.b64decode(self._session("GET", "/screenshot")))

    def close(self) -> None:
        try:
            self._session("DELETE", "")
        finally:
            self.proc.terminate()
            self.proc.wait(timeout=10)

    def __enter__(self) -> "Browser":
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
