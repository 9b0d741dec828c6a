from pathlib import Path

import cv2
import numpy as np
import pytest
from PIL import Image

from fmwsss.data.images import ImageError, load_rgb


def _rgb(h=20, w=24) -> np.ndarray:
    rng = np.random.default_rng(0)
    return rng.integers(0, 256, size=(h, w, 3), dtype=np.uint8)


def test_rgb_png_roundtrip(tmp_path: Path):
    a = _rgb()
    Image.fromarray(a).save(tmp_path / "a.png")
    out = load_rgb(tmp_path / "a.png")
    assert out.dtype == np.uint8 and out.shape == (20, 24, 3)
    np.testing.assert_array_equal(out, a)


def test_real_jpeg(voc_sample: Path):
    out = load_rgb(voc_sample / "JPEGImages" / "2007_000032.jpg")
    assert out.shape == (281, 500, 3) and out.dtype == np.uint8


@pytest.mark.parametrize("mode", ["L", "LA", "RGBA", "P", "CMYK", "1"])
def test_modes_become_rgb(tmp_path: Path, mode: str):
    src = Image.fromarray(_rgb())
    img = src.convert(mode)
    ext = "jpg" if mode == "CMYK" else "png"
    img.save(tmp_path / f"x.{ext}")
    out = load_rgb(tmp_path / f"x.{ext}")
    assert out.shape == (20, 24, 3) and out.dtype == np.uint8
    if mode in ("RGBA", "P"):
        np.testing.assert_array_equal(out, np.asarray(img.convert("RGB")))
    if mode in ("L", "LA", "1"):
        gray = np.asarray(img.convert("L"))
        np.testing.assert_array_equal(out, np.repeat(gray[:, :, None], 3, axis=2))


def test_cmyk_jpeg_colour(tmp_path: Path):
    Image.new("RGB", (32, 32), (200, 30, 40)).convert("CMYK").save(tmp_path / "c.jpg", quality=100)
    out = load_rgb(tmp_path / "c.jpg")
    assert np.abs(out.astype(int) - [200, 30, 40]).max() <= 6


def test_gray16_png_is_scaled_not_clipped(tmp_path: Path):
    g = np.array([[0, 257, 32768, 65535]], dtype=np.uint16).repeat(16, axis=0).repeat(4, axis=1)
    Image.fromarray(g).save(tmp_path / "g.png")
    assert Image.open(tmp_path / "g.png").mode.startswith("I;16")
    out = load_rgb(tmp_path / "g.png")
    np.testing.assert_array_equal(out[0, ::4, 0], [0, 1, 128, 255])
    assert (out[..., 0] == out[..., 2]).all()


def test_int32_and_float_gray(tmp_path: Path):
    i = np.full((16, 16), 65535, dtype=np.int32)
    Image.fromarray(i, mode="I").save(tmp_path / "i.tif")
    assert load_rgb(tmp_path / "i.tif")[0, 0].tolist() == [255, 255, 255]
    f = np.full((16, 16), 0.5, dtype=np.float32)
    Image.fromarray(f, mode="F").save(tmp_path / "f.tif")
    assert load_rgb(tmp_path / "f.tif")[0, 0].tolist() == [128, 128, 128]
    Image.fromarray(f * 300, mode="F").save(tmp_path / "bad.tif")
    with pytest.raises(ImageError, match="bad.tif"):
        load_rgb(tmp_path / "bad.tif")


def test_rgb16_png_uses_full_depth(tmp_path: Path):
    a = np.zeros((16, 16, 3), dtype=np.uint16)
    a[..., 0], a[..., 1], a[..., 2] = 1000, 40000, 65535  # RGB; cv2 writes BGR
    cv2.imwrite(str(tmp_path / "c.png"), a[..., ::-1])
    out = load_rgb(tmp_path / "c.png")
    # round(x * 255 / 65535): 1000 -> 4 (Pillow's high byte would give 3)
    assert out[0, 0].tolist() == [4, 156, 255]


def test_missing_file(tmp_path: Path):
    with pytest.raises(ImageError, match="nope.jpg.*not found"):
        load_rgb(tmp_path / "nope.jpg")


def test_not_an_image(tmp_path: Path):
    (tmp_path / "t.jpg").write_text("hello")
    with pytest.raises(ImageError, match="t.jpg"):
        load_rgb(tmp_path / "t.jpg")


def test_truncated_jpeg(tmp_path: Path, voc_sample: Path):
    data = (voc_sample / "JPEGImages" / "2007_000032.jpg").read_bytes()
    (tmp_path / "cut.jpg").write_bytes(data[: len(data) // 2])
    with Image.open(tmp_path / "cut.jpg") as img:  # the header alone still parses
        assert img.size == (500, 281)
    with pytest.raises(ImageError, match="cut.jpg"):
        load_rgb(tmp_path / "cut.jpg")


def test_too_small(tmp_path: Path):
    Image.fromarray(_rgb(15, 40)).save(tmp_path / "s.png")
    with pytest.raises(ImageError, match=r"s.png.*40x15"):
        load_rgb(tmp_path / "s.png")
    Image.fromarray(_rgb(16, 16)).save(tmp_path / "ok.png")
    assert load_rgb(tmp_path / "ok.png").shape == (16, 16, 3)


def test_exif_orientation_not_applied(tmp_path: Path):
    a = _rgb(16, 32)
    img = Image.fromarray(a)
    exif = img.getexif()
    exif[0x0112] = 6  # "rotate 90 CW" for viewers
    img.save(tmp_path / "o.png", exif=exif)
    out = load_rgb(tmp_path / "o.png")
    assert out.shape == (16, 32, 3)
    np.testing.assert_array_equal(out, a)
