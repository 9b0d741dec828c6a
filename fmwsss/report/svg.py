"""Small static SVG charts (no plotting library): a loss curve and a confusion-matrix heatmap."""
from __future__ import annotations

from html import escape
from typing import Sequence

import numpy as np

FONT = 'font-family="sans-serif" font-size="11"'


def _ticks(lo: float, hi: float, count: int = 5) -> list[float]:
    if hi <= lo:
        return [lo]
    return list(np.linspace(lo, hi, count))


def _fmt(v: float) -> str:
    return f"{v:.3g}"


def line_plot(points: Sequence[tuple[float, float]], title: str, xlabel: str = "iteration",
              ylabel: str = "loss", width: int = 420, height: int = 260, smooth: int = 0) -> str:
    """Loss against iteration: the raw values in light grey and a moving average (window ``smooth``,
    default 5 % of the points) on top, so a noisy per-iteration loss still shows its trend."""
    xy = np.asarray(points, np.float64).reshape(-1, 2)
    left, right, top, bottom = 64, 12, 24, 36
    pw, ph = width - left - right, height - top - bottom
    parts = [f'<svg xmlns="http://www.w3.org/2000/svg" width="{width}" height="{height}" '
             f'viewBox="0 0 {width} {height}">', f'<rect width="{width}" height="{height}" fill="white"/>',
             f'<text x="{width / 2}" y="15" text-anchor="middle" {FONT} font-weight="bold">{escape(title)}</text>']
    if len(xy) == 0:
        parts.append(f'<text x="{width / 2}" y="{height / 2}" text-anchor="middle" {FONT}>no data</text></svg>')
        return "".join(parts)
    x0, x1 = float(xy[:, 0].min()), float(xy[:, 0].max())
    y0, y1 = float(min(xy[:, 1].min(), 0.0)), float(xy[:, 1].max())
    x1, y1 = (x1 if x1 > x0 else x0 + 1), (y1 if y1 > y0 else y0 + 1)

    def sx(v):
        return left + (v - x0) / (x1 - x0) * pw

    def sy(v):
        return top + ph - (v - y0) / (y1 - y0) * ph

    parts.append(f'<rect x="{left}" y="{top}" width="{pw}" height="{ph}" fill="none" stroke="#999"/>')
    for t in _ticks(y0, y1):
        parts.append(f'<line x1="{left - 4}" x2="{left}" y1="{sy(t):.1f}" y2="{sy(t):.1f}" stroke="#999"/>'
                     f'<text x="{left - 6}" y="{sy(t) + 4:.1f}" text-anchor="end" {FONT}>{_fmt(t)}</text>')
    for t in _ticks(x0, x1):
        parts.append(f'<text x="{sx(t):.1f}" y="{top + ph + 14}" text-anchor="middle" {FONT}>{t:.0f}</text>')
    parts.append(f'<text x="{left + pw / 2}" y="{height - 4}" text-anchor="middle" {FONT}>{escape(xlabel)}</text>'
                 f'<text x="10" y="{top + ph / 2}" text-anchor="middle" {FONT} '
                 f'transform="rotate(-90 10 {top + ph / 2})">{escape(ylabel)}</text>')

    def polyline(data: np.ndarray, colour: str, stroke: float) -> str:
        pts = " ".join(f"{sx(x):.1f},{sy(y):.1f}" for x, y in data)
        return f'<polyline points="{pts}" fill="none" stroke="{colour}" stroke-width="{stroke}"/>'

    parts.append(polyline(xy, "#bbb", 1))
    window = smooth or max(1, len(xy) // 20)
    if window > 1:
        kernel = np.ones(window) / window
        avg = np.convolve(xy[:, 1], kernel, mode="valid")
        parts.append(polyline(np.stack([xy[window - 1:, 0], avg], axis=1), "#c0392b", 2))
    parts.append("</svg>")
    return "".join(parts)


def confusion_heatmap(confusion: Sequence[Sequence[int]], class_names: Sequence[str], title: str,
                      cell: int = 18) -> str:
    """Row-normalised confusion matrix (rows ground truth, columns prediction): each cell's share of its GT
    class's pixels, white 0 to dark blue 1, with the percentage written where it is at least 1 %."""
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
                parts.append(f'<text x="{x + cell / 2}" y="{y + cell * 0.68:.1f}" text-anchor="middle" '
                             f'font-family="sans-serif" font-size="7" fill="{text_colour}">{100 * v:.0f}</text>')
    parts.append("</svg>")
    return "".join(parts)
