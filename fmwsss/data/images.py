"""The one image reader of fmwsss: any file a stage reads becomes 8-bit RGB ``uint8 (H, W, 3)`` here.

Why one reader: CLIP, SAM and the evaluation must see the same pixels, and odd files (CMYK JPEGs, 16-bit
PNGs, palette or alpha images, truncated downloads) must fail loudly once, naming the file, instead of
deep inside a stage.

EXIF orientation is deliberately **not** applied: VOC and COCO ground truth is stored in the file's stored
(unrotated) orientation, so rotating the image would misalign it with its labels.

A truncated file is detected by forcing a full decode (``img.load()``); this relies on Pillow's default
``ImageFile.LOAD_TRUNCATED_IMAGES = False``, which this module never changes.
"""
from __future__ import annotations

import os
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import cv2
import numpy as np
from PIL import Image

MIN_SIDE = 16
"""Smallest accepted side in pixels: CLIP's patch size; anything smaller has no patch token at all."""

_SIXTEEN_BIT_MODES = ("I;16", "I;16B", "I;16L", "I;16N")


class ImageError(ValueError):
    """An image file that is missing, unreadable, corrupt or unusable; the message names the file."""


def _scale_16bit(a: np.ndarray) -> np.ndarray:
    """Map 0..65535 to 0..255 with rounding (x * 255 / 65535), so white stays 255 and black 0."""
    return ((a.astype(np.uint32) * 255 + 32767) // 65535).astype(np.uint8)


def _gray_to_rgb(gray: np.ndarray) -> np.ndarray:
    return np.repeat(gray[:, :, None], 3, axis=2)


def _png16_rgb(path: Path) -> np.ndarray:
    """Decode a 16-bit RGB(A) PNG at full depth (Pillow keeps only the high byte) and scale it to 8 bit."""
    raw = cv2.imdecode(np.fromfile(path, dtype=np.uint8), cv2.IMREAD_UNCHANGED)
    if raw is None or raw.dtype != np.uint16 or raw.ndim != 3:
        raise ImageError(f"{path}: could not decode the 16-bit colour PNG")
    return _scale_16bit(raw[:, :, 2::-1])


def _to_rgb(img: Image.Image, path: Path) -> np.ndarray:
    """Convert a fully loaded Pillow image of any supported mode to uint8 RGB."""
    mode = img.mode
    if mode == "RGB":
        return np.asarray(img, dtype=np.uint8)
    if mode in _SIXTEEN_BIT_MODES:
        return _gray_to_rgb(_scale_16bit(np.asarray(img)))
    if mode == "I":
        a = np.asarray(img)
        lo, hi = int(a.min()), int(a.max())
        if lo < 0 or hi > 65535:
            raise ImageError(f"{path}: 32-bit integer image with values {lo}..{hi}, outside the 16-bit range")
        return _gray_to_rgb(_scale_16bit(a))
    if mode == "F":
        a = np.asarray(img, dtype=np.float64)
        lo, hi = float(a.min()), float(a.max())
        if not (np.isfinite(lo) and np.isfinite(hi)) or lo < 0.0 or hi > 1.0:
            raise ImageError(f"{path}: float image with values {lo}..{hi}; only the range [0, 1] is accepted")
        return _gray_to_rgb(np.rint(a * 255.0).astype(np.uint8))
    # L, LA, 1, P, PA, RGBA, CMYK, YCbCr, LAB, HSV: Pillow's own conversion is exact for 8-bit data;
    # alpha is dropped (the colour under transparent pixels is kept as stored).
    return np.asarray(img.convert("RGB"), dtype=np.uint8)


def load_rgb(path: str | os.PathLike) -> np.ndarray:
    """Read ``path`` as ``uint8 (H, W, 3)`` RGB, in stored orientation.

    Raises ``ImageError`` naming the file when it is missing, not an image, corrupt or truncated, or smaller
    than ``MIN_SIDE`` pixels on a side. Cost: one full decode (two for 16-bit colour PNGs).
    """
    path = Path(path)
    if not path.is_file():
        raise ImageError(f"{path}: image file not found")
    try:
        with Image.open(path) as img:
            rawmode = img.tile[0].args if img.tile else None  # read before load(), which clears tile
            img.load()
            png16 = img.format == "PNG" and isinstance(rawmode, str) and rawmode.endswith(";16B") and (
                img.mode in ("RGB", "RGBA")
            )
            rgb = _png16_rgb(path) if png16 else _to_rgb(img, path)
    except ImageError:
        raise
    except (OSError, SyntaxError, ValueError, Image.DecompressionBombError) as exc:
        raise ImageError(f"{path}: cannot decode image ({exc})") from exc
    h, w = rgb.shape[:2]
    if min(h, w) < MIN_SIDE:
        raise ImageError(f"{path}: image is {w}x{h} pixels; both sides must be at least {MIN_SIDE}")
    return np.ascontiguousarray(rgb)


class BadImages(ImageError):
    """Several unusable images at once: the message lists every one as ``file (reason)`` on one line."""

    def __init__(self, problems: Sequence[tuple[str, str]], where: str, fix: str):
        self.problems = list(problems)
        listed = "; ".join(f"{path} ({reason})" for path, reason in self.problems)
        super().__init__(f"{where}: {len(self.problems)} unusable image(s): {listed}; {fix}")


def probe_header(path: str | os.PathLike) -> tuple[int, int] | str:
    """``(width, height)`` from the file's header alone, or why the header is refused (a string).

    Pillow's ``open`` parses the header without decoding pixels (~0.1 ms a file); a truncated pixel stream
    is not seen here, only by the full decode of ``load_rgb``.
    """
    try:
        with Image.open(path) as img:
            w, h = img.size
    except FileNotFoundError:
        return "image file not found"
    except (OSError, SyntaxError, ValueError, Image.DecompressionBombError) as exc:
        return f"unreadable image header ({exc})"
    if min(w, h) < MIN_SIDE:
        return f"image is {w}x{h} pixels; both sides must be at least {MIN_SIDE}"
    return w, h


def require_decodable(paths: Sequence[str | os.PathLike], where: str, threads: int = 1) -> None:
    """Fully decode every image once (``load_rgb``) and raise one ``BadImages`` naming every failure.

    A job calls this before loading any model, so a truncated file costs seconds, not a model load and a
    partial run, and the user sees all bad files of the job at once. Cost: one decode per image (~5 ms for
    a VOC JPEG), spread over ``threads`` (Pillow releases the GIL while decoding).
    """

    def problem(path: str | os.PathLike) -> tuple[str, str] | None:
        try:
            load_rgb(path)
        except ImageError as exc:
            reason = str(exc)
            prefix = f"{Path(path)}: "
            return str(path), reason[len(prefix):] if reason.startswith(prefix) else reason
        return None

    with ThreadPoolExecutor(max_workers=max(1, threads)) as pool:
        found = [p for p in pool.map(problem, paths) if p is not None]
    if found:
        raise BadImages(found, where, "fix or remove these files, then run again (found before any model loaded)")
