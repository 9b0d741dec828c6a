import http.server
import io
import json
import tarfile
import threading
from pathlib import Path

import pytest

from fmwsss.data import FetchError, demo_splits, fetch_coco_sample, fetch_voc_sample, open_dataset


def _voc_tar(voc_sample: Path, ids: list[str]) -> bytes:
    """A tar in the official VOC2012 trainval layout holding ``ids`` (plus an unrelated member first)."""
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w") as tf:
        extra = tarfile.TarInfo("VOCdevkit/VOC2012/Annotations/2007_000032.xml")
        extra.size = 5
        tf.addfile(extra, io.BytesIO(b"<a/>\n"))
        for i in ids:
            tf.add(voc_sample / "JPEGImages" / f"{i}.jpg", f"VOCdevkit/VOC2012/JPEGImages/{i}.jpg")
            tf.add(voc_sample / "SegmentationClass" / f"{i}.png", f"VOCdevkit/VOC2012/SegmentationClass/{i}.png")
    return buf.getvalue()


@pytest.fixture(scope="module")
def server(voc_sample: Path):
    """http://127.0.0.1:<port>/ serving full.tar, few.tar, short.tar (lies about its length), cut.tar."""
    full = _voc_tar(voc_sample, demo_splits()["all"])
    files = {
        "/full.tar": (full, len(full)),
        "/few.tar": (_voc_tar(voc_sample, demo_splits()["all"][:3]), None),
        "/short.tar": (full[: len(full) // 2], len(full)),
        "/cut.tar": (full[: len(full) // 2], None),
    }

    class Handler(http.server.BaseHTTPRequestHandler):
        def do_GET(self):
            if self.path not in files:
                self.send_error(404, "Not Found")
                return
            body, length = files[self.path]
            self.send_response(200)
            self.send_header("Content-Length", str(length or len(body)))
            self.end_headers()
            self.wfile.write(body)
            self.close_connection = True

        def log_message(self, *args):
            pass

    httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=httpd.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{httpd.server_address[1]}"
    httpd.shutdown()
    httpd.server_close()


def _check_demo(dest: Path, voc_sample: Path) -> None:
    assert json.loads((dest / "labels.json").read_text()) == json.loads((voc_sample / "labels.json").read_text())
    ds = open_dataset("demo", dest, name="demo")
    assert len(ds.ids) == 24 and len(ds.splits["train"]) == 16 and len(ds.splits["val"]) == 8
    assert (dest / "JPEGImages" / "2007_000032.jpg").read_bytes() == (
        voc_sample / "JPEGImages" / "2007_000032.jpg"
    ).read_bytes()
    assert (dest / "ImageSets" / "Segmentation" / "val.txt").read_text().split() == ds.splits["val"]
    assert not [p for p in dest.parent.iterdir() if p.name.startswith(".")]  # no temporaries left


def test_from_local_dir_idempotent(voc_sample: Path, tmp_path: Path):
    dest = tmp_path / "data" / "voc_sample"
    res = fetch_voc_sample(str(voc_sample), dest, progress=False)
    assert res.action == "fetched" and res.count == 24
    _check_demo(dest, voc_sample)
    assert (dest / "MANIFEST.md").is_file()
    again = fetch_voc_sample(str(voc_sample), dest, progress=False)
    assert again.action == "already present"


def test_from_url(server: str, voc_sample: Path, tmp_path: Path):
    dest = tmp_path / "voc_sample"
    res = fetch_voc_sample(f"{server}/full.tar", dest, progress=False)
    assert res.action == "fetched"
    _check_demo(dest, voc_sample)


def test_url_missing_ids(server: str, tmp_path: Path):
    with pytest.raises(FetchError, match=r"few.tar: 21 of the 24 listed ids did not arrive.*2011_003030"):
        fetch_voc_sample(f"{server}/few.tar", tmp_path / "d", progress=False)
    assert not (tmp_path / "d").exists() and not list(tmp_path.iterdir())


def test_url_errors(server: str, tmp_path: Path):
    with pytest.raises(FetchError, match=r"nothing.tar: HTTP error 404"):
        fetch_voc_sample(f"{server}/nothing.tar", tmp_path / "d", progress=False)
    with pytest.raises(FetchError, match=r"short.tar: download truncated: got \d+ of \d+ bytes"):
        fetch_voc_sample(f"{server}/short.tar", tmp_path / "d", progress=False)
    with pytest.raises(FetchError, match=r"cut.tar: not a complete, readable tar archive"):
        fetch_voc_sample(f"{server}/cut.tar", tmp_path / "d", progress=False)
    assert not list(tmp_path.iterdir())


def test_refuses_foreign_dest(voc_sample: Path, tmp_path: Path):
    (tmp_path / "d").mkdir()
    (tmp_path / "d" / "mine.txt").write_text("keep me")
    with pytest.raises(FetchError, match="exists but is not a complete sample"):
        fetch_voc_sample(str(voc_sample), tmp_path / "d", progress=False)
    assert (tmp_path / "d" / "mine.txt").read_text() == "keep me"


def test_coco_sample(coco_sample: Path, tmp_path: Path):
    dest = tmp_path / "coco_sample"
    assert fetch_coco_sample(coco_sample, dest).action == "fetched"
    assert len(list((dest / "val2014").glob("*.jpg"))) == 12
    ds = open_dataset("coco", dest, name="c", split="val2014", annotations="annotations/instances_sample.json")
    assert len(ds.ids) == 12
    assert fetch_coco_sample(coco_sample, dest).action == "already present"
    with pytest.raises(FetchError, match="instances_sample.json"):
        fetch_coco_sample(tmp_path / "nowhere", tmp_path / "x")
