"""CAA on small matrices with hand-computed answers."""
from __future__ import annotations

import numpy as np
import torch

from fmwsss.cams.caa import CaaSettings, affinity, box_mask, cam_score, refine


def test_sinkhorn_then_symmetrise_then_power():
    a = torch.tensor([[2.0, 1.0], [1.0, 4.0]])
    # columns: [2/3, 1/5; 1/3, 4/5]; rows: r0 = 13/15, r1 = 17/15
    w = torch.tensor([[(2 / 3) / (13 / 15), (1 / 5) / (13 / 15)], [(1 / 3) / (17 / 15), (4 / 5) / (17 / 15)]])
    t = (w + w.t()) / 2
    torch.testing.assert_close(affinity(a, 1, 1), t)
    torch.testing.assert_close(affinity(a, 1, 2), t @ t)
    torch.testing.assert_close(affinity(a, 1, 3), t @ t @ t)


def test_score_relu_minmax():
    s = cam_score(torch.tensor([[[-1.0, 0.0], [1.0, 3.0]]]))
    torch.testing.assert_close(s, torch.tensor([[[0.0, 0.0], [1 / 3, 1.0]]]), atol=1e-6, rtol=0)


def test_box_mask_strict_threshold_all_contours_and_clipped_end():
    score = np.zeros((6, 8))
    score[1:3, 1:3] = 0.9  # blob A
    score[4, 5:8] = 0.5  # blob B touches the right edge
    score[0, 6] = 0.15  # uint8 38: below the threshold
    mask = box_mask(score, 0.2)  # max uint8 = 229 -> threshold int(0.2 * 229) = 45, strict >
    expected = np.zeros((6, 8), bool)
    expected[1:3, 1:3] = True
    expected[4, 5:7] = True  # end 8 clipped to W-1 = 7: last column never inside
    np.testing.assert_array_equal(mask, expected)
    edge = np.zeros((4, 4))
    edge[1, 1] = 1.0
    edge[2, 2] = 0.4  # uint8 102 vs threshold int(0.4*255)=102: not strictly above -> excluded
    np.testing.assert_array_equal(box_mask(edge, 0.4), np.eye(4, dtype=bool) & (np.arange(4) == 1))
    assert not box_mask(np.zeros((3, 3)), 0.4).any()


#: 9 x 9 attention of a 3 x 3 grid, 3 x (0.55 I + 0.05 J): Sinkhorn's column step divides by 3, its row step
#: by 1, and the result is symmetric, so T = 0.55 I + 0.05 J and T^2 = 0.3025 I + (2 x 0.55 x 0.05 + 9 x
#: 0.05^2) J = 0.3025 I + 0.0775 J: 0.38 on the diagonal, 0.0775 elsewhere.
ATTN = 3 * (0.55 * torch.eye(9) + 0.05 * torch.ones(9, 9))
T2_DIAG, T2_OFF = 0.38, 0.0775
#: Class A peaks at (0, 0) = 4 and (0, 1) = 2: scores 1 and 0.5 (uint8 254 and 127, the 1e-7 of the min-max
#: truncates 255 to 254). Class B's only positive cell is the bottom-right corner, which the clipped box end
#: never covers: B's mask is empty, whatever the threshold.
CAM = torch.tensor([[[4.0, 2.0, -1.0], [0.0, 1.0, -1.0], [-1.0, -1.0, -1.0]],
                    [[-1.0, -1.0, -1.0], [-1.0, -1.0, -1.0], [-1.0, -1.0, 3.0]]])


def test_affinity_of_a_doubly_stochastic_attention():
    t2 = affinity(ATTN, 1, 2)
    torch.testing.assert_close(t2, T2_OFF * torch.ones(9, 9) + (T2_DIAG - T2_OFF) * torch.eye(9))


def expected_refined(sources: dict[int, float]) -> torch.Tensor:
    """x'(i) = sum_j T^2(i, j) x(j) over the masked source cells j (flat index -> value), on the 3 x 3 grid."""
    out = torch.zeros(9)
    for j, value in sources.items():
        out += value * T2_OFF
        out[j] += value * (T2_DIAG - T2_OFF)
    return out.reshape(3, 3)


def test_refine_coarse_propagates_scores_of_cells_in_the_boxes():
    # threshold int(0.4 x 254) = 101: cells (0, 0) and (0, 1) are above; their box is row 0, columns 0-1
    out = refine(CAM, ATTN, CaaSettings(1, 2, 0.4, "score"))
    torch.testing.assert_close(out[0], expected_refined({0: 1.0, 1: 0.5}), atol=1e-6, rtol=0)
    torch.testing.assert_close(out[1], torch.zeros(3, 3))


def test_refine_fine_propagates_raw_cams_with_a_stricter_box():
    # threshold int(0.5 x 254) = 127, strict: only (0, 0) stays in; the raw CAM value 4 propagates
    out = refine(CAM, ATTN, CaaSettings(1, 2, 0.5, "cam"))
    torch.testing.assert_close(out[0], expected_refined({0: 4.0}), atol=1e-6, rtol=0)
    torch.testing.assert_close(out[1], torch.zeros(3, 3))
    out = refine(CAM, ATTN, CaaSettings(1, 2, 0.4, "cam"))
    torch.testing.assert_close(out[0], expected_refined({0: 4.0, 1: 2.0}), atol=1e-6, rtol=0)


def test_refine_of_no_class():
    assert refine(torch.zeros(0, 3, 3), ATTN, CaaSettings()).shape == (0, 3, 3)
