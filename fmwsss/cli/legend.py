"""A colour legend for label overlays: each class present in a label map, its palette colour beside its name.

Without one, a colour in an ``fmwsss overlay`` picture cannot be matched to a class (the VOC palette follows
the bits of the label, not any order a reader knows). Drawn with PIL's built-in font: no font file, no new
dependency. Text is drawn without anti-aliasing, so the strip holds only white, black, the swatch outline
and the swatch colours (which a test reads back exactly).
"""
from __future__ import annotations

from typing import Sequence

import numpy as np
from PIL import Image, ImageDraw, ImageFont

SWATCH = 12
"""Side of a colour square, px."""
PAD = 4
"""Margin around the strip and between a swatch and its name, px."""
GAP = 12
"""Space after each name before the next entry, px."""
FONT_SIZE = 12
OUTLINE = (80, 80, 80)
"""Swatch border, so pale colours stay visible on white; 80 is no channel value of the VOC palette."""
EMPTY_TEXT = "no class pixels (background and void only)"


def present_classes(labels: np.ndarray, class_names: Sequence[str]) -> list[tuple[int, str]]:
    """(label, name) of every class 1..C in ``labels``, ascending; background 0 and void 255 are not classes.

    ``ValueError`` on any other value above C: the label map belongs to another dataset's class list.
    """
    counts = np.bincount(np.asarray(labels, dtype=np.uint8).reshape(-1), minlength=256)
    counts[[0, 255]] = 0
    found = np.flatnonzero(counts).tolist()
    unknown = [v for v in found if v > len(class_names)]
    if unknown:
        raise ValueError(f"label values {unknown} exceed the dataset's {len(class_names)} classes "
                         f"(0 = background, 1..{len(class_names)}, 255 = void)")
    return [(v, class_names[v - 1]) for v in found]


def legend_strip(entries: Sequence[tuple[int, str]], palette: Sequence[int], width: int) -> np.ndarray:
    """uint8 (h, ``width``, 3): white strip with one ``[swatch] name`` per entry, left to right, wrapping.

    Entries sit in equal-width columns (as wide as the longest name needs), so the first swatch is at
    (``PAD``, ``PAD``) and entry ``i`` at column ``i % cols``, row ``i // cols``. A map with no class pixels
    gets a one-line note instead.
    """
    font = ImageFont.load_default(size=FONT_SIZE)
    _, top, _, bottom = font.getbbox("Ag")
    row_h = max(SWATCH, bottom - top) + PAD
    if not entries:
        img = Image.new("RGB", (width, row_h + PAD), "white")
        _draw_text(img, (PAD, PAD), EMPTY_TEXT, font)
        return np.asarray(img)
    col_w = SWATCH + PAD + max(int(np.ceil(font.getlength(name))) for _, name in entries) + GAP
    cols = max(1, (width - PAD) // col_w)
    rows = -(-len(entries) // cols)
    img = Image.new("RGB", (width, PAD + rows * row_h), "white")
    draw = ImageDraw.Draw(img)
    colours = np.asarray(palette, dtype=np.int64).reshape(256, 3)
    for i, (label, name) in enumerate(entries):
        x, y = PAD + (i % cols) * col_w, PAD + (i // cols) * row_h
        draw.rectangle((x, y, x + SWATCH - 1, y + SWATCH - 1), fill=tuple(colours[label].tolist()), outline=OUTLINE)
        _draw_text(img, (x + SWATCH + PAD, y + (SWATCH - bottom - top) // 2), name, font)
    return np.asarray(img)


def with_legend(picture: np.ndarray, labels: np.ndarray, class_names: Sequence[str],
                palette: Sequence[int]) -> np.ndarray:
    """``picture`` (H, W, 3) with the legend of the classes in ``labels`` appended below it."""
    strip = legend_strip(present_classes(labels, class_names), palette, picture.shape[1])
    return np.concatenate([picture, strip], axis=0)


def _draw_text(img: Image.Image, xy: tuple[int, int], text: str, font: ImageFont.ImageFont) -> None:
    draw = ImageDraw.Draw(img)
    draw.fontmode = "1"  # no anti-aliasing: black pixels only, never a grey that could pass for a class colour
    draw.text(xy, text, fill="black", font=font)
