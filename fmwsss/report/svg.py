"""Small static SVG charts (no plotting library): a loss curve and a confusion-matrix heatmap."""
from __future__ import annotations

import math
from html import escape
from typing import Sequence

import numpy as np

FONT = 'font-family="sans-serif" font-size="11"'


def nice_step(span: float, count: int = 5) -> float:
    """The smallest "nice" step (1, 2 or 5 x 10^k) that covers ``span`` in at most ``count - 1`` steps:
    ticks a reader can interpolate between (0, 0.5, 1 rather than 0, 0.93, 1.86)."""
    raw = span / max(count - 1, 1)
    magnitude = 10.0 ** math.floor(math.log10(raw))
    return next(m * magnitude for m in (1, 2, 5, 10) if m * magnitude >= raw * (1 - 1e-9))


def nice_ticks(lo: float, hi: float, count: int = 5) -> list[float]:
    """Multiples of :func:`nice_step` from the last one at or below ``lo`` to the first at or above ``hi``
    (the axis is stretched to them, so both ends carry a label); rounded to the step's decimals."""
    if not hi > lo:
        return [lo]
    step = nice_step(hi - lo, count)
    first, last = math.floor(lo / step + 1e-9), math.ceil(hi / step - 1e-9)
    digits = max(0, -math.floor(math.log10(step)))
    return [round(i * step, digits) for i in range(first, last + 1)]


def tick_label(value: float, step: float) -> str:
    """``value`` with as many decimals as the tick ``step`` needs (0.5 → "0.5", 10 → "10"; zero is "0")."""
    if value == 0:
        return "0"
    digits = max(0, -math.floor(math.log10(step) + 1e-9)) if step > 0 else 0
    return f"{value:.{digits}f}"


def line_plot(points: Sequence[tuple[float, float]], title: str, xlabel: str = "iteration",
              ylabel: str = "loss", width: int = 420, height: int = 270, smooth: int = 0) -> str:
    """Loss against iteration: the raw values in light grey and a moving average (window ``smooth``,
    default 5 % of the points) on top, so a noisy per-iteration loss still shows its trend; a legend under
    the title says which line is which, and both axes carry round ticks (:func:`nice_ticks`)."""
    xy = np.asarray(points, np.float64).reshape(-1, 2)
    left, right, top, bottom = 56, 12, 42, 36
    pw, ph = width - left - right, height - top - bottom
    parts = [f'<svg xmlns="http://www.w3.org/2000/svg" width="{width}" height="{height}" '
             f'viewBox="0 0 {width} {height}">', f'<rect width="{width}" height="{height}" fill="white"/>',
             f'<text x="{width / 2}" y="15" text-anchor="middle" {FONT} font-weight="bold">{escape(title)}</text>']
    if len(xy) == 0:
        parts.append(f'<text x="{width / 2}" y="{height / 2}" text-anchor="middle" {FONT}>no data</text></svg>')
        return "".join(parts)
    xticks = nice_ticks(float(xy[:, 0].min()), float(xy[:, 0].max()))
    yticks = nice_ticks(float(min(xy[:, 1].min(), 0.0)), float(xy[:, 1].max()))
    x0, x1 = xticks[0], (xticks[-1] if len(xticks) > 1 else xticks[0] + 1)
    y0, y1 = yticks[0], (yticks[-1] if len(yticks) > 1 else yticks[0] + 1)

    def sx(v):
        return left + (v - x0) / (x1 - x0) * pw

    def sy(v):
        return top + ph - (v - y0) / (y1 - y0) * ph

    parts.append(f'<rect x="{left}" y="{top}" width="{pw}" height="{ph}" fill="none" stroke="#999"/>')
    ystep = yticks[1] - yticks[0] if len(yticks) > 1 else 1.0
    for t in yticks:
        parts.append(f'<line x1="{left - 4}" x2="{left}" y1="{sy(t):.1f}" y2="{sy(t):.1f}" stroke="#999"/>'
                     f'<text x="{left - 6}" y="{sy(t) + 4:.1f}" text-anchor="end" {FONT}>{tick_label(t, ystep)}</text>')
    xstep = xticks[1] - xticks[0] if len(xticks) > 1 else 1.0
    for t in xticks:
        parts.append(f'<line x1="{sx(t):.1f}" x2="{sx(t):.1f}" y1="{top + ph}" y2="{top + ph + 4}" stroke="#999"/>'
                     f'<text x="{sx(t):.1f}" y="{top + ph + 15}" text-anchor="middle" {FONT}>'
                     f'{tick_label(t, xstep)}</text>')
    parts.append(f'<text x="{left + pw / 2}" y="{height - 4}" text-anchor="middle" {FONT}>{escape(xlabel)}</text>'
                 f'<text x="12" y="{top + ph / 2}" text-anchor="middle" {FONT} '
                 f'transform="rotate(-90 12 {top + ph / 2})">{escape(ylabel)}</text>')

    def polyline(data: np.ndarray, colour: str, stroke: float) -> str:
        pts = " ".join(f"{sx(x):.1f},{sy(y):.1f}" for x, y in data)
        return f'<polyline points="{pts}" fill="none" stroke="{colour}" stroke-width="{stroke}"/>'

    window = smooth or max(1, len(xy) // 20)
    legend = [("#bbb" if window > 1 else "#c0392b", f"{ylabel} per {xlabel}")]
    parts.append(polyline(xy, legend[0][0], 1 if window > 1 else 2))
    if window > 1:
        avg = np.convolve(xy[:, 1], np.ones(window) / window, mode="valid")
        parts.append(polyline(np.stack([xy[window - 1:, 0], avg], axis=1), "#c0392b", 2))
        legend.append(("#c0392b", f"moving average of {window}"))
    x = left
    for colour, label in legend:
        parts.append(f'<line x1="{x}" x2="{x + 18}" y1="29" y2="29" stroke="{colour}" stroke-width="2"/>'
                     f'<text x="{x + 22}" y="33" {FONT}>{escape(label)}</text>')
        x += 30 + 6.5 * len(label)
    parts.append("</svg>")
    return "".join(parts)


def confusion_heatmap(confusion: Sequence[Sequence[int]], class_names: Sequence[str], title: str,
                      cell: int = 24) -> str:
    """Row-normalised confusion matrix (rows ground truth, columns prediction): each cell's share of its GT
    class's pixels, white 0 to dark blue 1, with the percentage written where it is at least 1 %.

    Cells are 24 px so that "100" fits in the report's 11 px font (two 21-class matrices side by side still
    fit a 1,400 px window); every cell's hover title gives the share to 0.1 %."""
    cm = np.asarray(confusion, np.float64)
    n = len(class_names)
    rows = cm.sum(axis=1, keepdims=True)
    share = np.divide(cm, rows, out=np.zeros_like(cm), where=rows > 0)
    longest = max(len(c) for c in class_names)
    label_w, top = 9 + 7 * longest, 30 + 6 * longest
    width, height = label_w + n * cell + 10 + int(3.5 * longest), top + n * cell + 24  # column names lean right
    parts = [f'<svg xmlns="http://www.w3.org/2000/svg" width="{width}" height="{height}" '
             f'viewBox="0 0 {width} {height}">', f'<rect width="{width}" height="{height}" fill="white"/>',
             f'<text x="4" y="15" {FONT} font-weight="bold">{escape(title)}</text>',
             f'<text x="{label_w + n * cell / 2}" y="{height - 6}" text-anchor="middle" {FONT}>'
             f'prediction (columns); ground truth (rows); share of each GT row</text>']
    for i, name in enumerate(class_names):
        y = top + i * cell + cell * 0.7
        parts.append(f'<text x="{label_w - 4}" y="{y:.1f}" text-anchor="end" {FONT}>{escape(name)}</text>')
        x = label_w + i * cell + cell * 0.7
        parts.append(f'<text x="{x:.1f}" y="{top - 4}" {FONT} transform="rotate(-60 {x:.1f} {top - 4})">'
                     f'{escape(name)}</text>')
    for i in range(n):
        for j in range(n):
            v = share[i, j]
            level = int(255 - 200 * v)
            colour = f"rgb({level},{int(255 - 150 * v)},255)" if v > 0 else "#fff"
            x, y = label_w + j * cell, top + i * cell
            parts.append(f'<rect x="{x}" y="{y}" width="{cell}" height="{cell}" fill="{colour}" stroke="#eee">'
                         f'<title>{escape(class_names[i])} as {escape(class_names[j])}: {100 * v:.1f} %</title></rect>')
            if v >= 0.01:
                text_colour = "white" if v > 0.5 else "black"
                parts.append(f'<text x="{x + cell / 2}" y="{y + cell / 2 + 4:.1f}" text-anchor="middle" {FONT} '
                             f'fill="{text_colour}">{100 * v:.0f}</text>')
    parts.append("</svg>")
    return "".join(parts)
