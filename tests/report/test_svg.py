"""The report's SVG charts: round axis ticks (hand-computed), the loss legend, confusion numbers' size."""
from __future__ import annotations

import re

import pytest

from fmwsss.report.svg import confusion_heatmap, line_plot, nice_step, nice_ticks, tick_label


@pytest.mark.parametrize("span, step", [
    (3.72, 1.0),  # 0.93 a step for 4 steps -> 1
    (39, 10.0),  # 9.75 -> 10
    (4, 1.0),  # exactly 1 a step: 1, not 2
    (13, 5.0),  # 3.25 -> 5
    (0.7, 0.2),  # 0.175 -> 0.2
    (0.06, 0.02),  # 0.015 -> 0.02
    (29999, 10000.0),  # 7499.75 -> 10000
])
def test_nice_step_is_the_smallest_1_2_5_step_covering_the_span(span, step):
    assert nice_step(span) == pytest.approx(step)


def test_nice_ticks_reach_round_numbers_at_or_beyond_both_ends():
    assert nice_ticks(0, 3.72) == [0, 1, 2, 3, 4]
    assert nice_ticks(1, 40) == [0, 10, 20, 30, 40]
    assert nice_ticks(0.2, 0.9) == [0.2, 0.4, 0.6, 0.8, 1.0]  # rounded: no 0.6000000000000001
    assert nice_ticks(1, 30000) == [0, 10000, 20000, 30000]
    assert nice_ticks(-0.3, 0.3) == [-0.4, -0.2, 0, 0.2, 0.4]  # span 0.6: 0.15 -> 0.2
    assert nice_ticks(2.5, 2.5) == [2.5]


def test_tick_label_has_the_step_decimals():
    assert [tick_label(v, 0.2) for v in (0.0, 0.2, 1.0)] == ["0", "0.2", "1.0"]
    assert tick_label(20000.0, 10000.0) == "20000"
    assert tick_label(0.0003, 0.0001) == "0.0003"


def _texts(svg: str) -> list[str]:
    return re.findall(r"<text[^>]*>([^<]*)</text>", svg)


def test_loss_plot_has_a_legend_and_round_ticks():
    points = [(i, 3.72 * (1 - i / 100)) for i in range(1, 101)]  # 3.68 down to 0
    svg = line_plot(points, "segmenter training")
    texts = _texts(svg)
    assert "loss per iteration" in texts and "moving average of 5" in texts  # 100 points: 5 % window
    assert {"0", "1", "2", "3", "4"} <= set(texts)  # y ticks 0..4
    assert {"0", "50", "100"} <= set(texts)  # x ticks: 99/4 = 24.75 -> a step of 50
    short = _texts(line_plot([(1, 2.0), (2, 1.0)], "short"))
    assert "loss per iteration" in short and not any(t.startswith("moving average") for t in short)


def test_confusion_numbers_are_11_px_and_two_21_class_matrices_fit_1400_px():
    names = ["background", "aeroplane", "bicycle", "bird", "boat", "bottle", "bus", "car", "cat", "chair", "cow",
             "diningtable", "dog", "horse", "motorbike", "person", "pottedplant", "sheep", "sofa", "train",
             "tvmonitor"]
    confusion = [[100 if i == j else 0 for j in range(21)] for i in range(21)]
    svg = confusion_heatmap(confusion, names, "confusion")
    sizes = {int(s) for s in re.findall(r'font-size="(\d+)"', svg)}
    assert sizes == {11}
    assert _texts(svg).count("100") == 21  # the diagonal, written out
    width = int(re.search(r'<svg[^>]* width="(\d+)"', svg).group(1))
    # 9 + 7 x 11 (longest name) + 21 cells x 24 + 10 + 3.5 x 11 (leaning column names), floored
    assert width == 638
    assert 2 * (width + 2 + 16) <= 1400 - 2 * 21 - 15  # borders, the plots' margin, body margins, scrollbar
