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


def test_refine_masks_source_cells_after_power():
    cam = torch.tensor([[[4.0, -2.0], [0.0, 1.0]]])  # 2x2 grid, HW = 4
    attn = torch.rand(4, 4, generator=torch.Generator().manual_seed(0)) + 0.1
    t2 = affinity(attn, 1, 2)
    for propagate, thresh in (("score", 0.1), ("cam", 0.1)):
        out = refine(cam, attn, CaaSettings(1, 2, thresh, propagate))
        src = cam_score(cam) if propagate == "score" else cam
        m = torch.from_numpy(box_mask(cam_score(cam)[0].numpy(), thresh)).reshape(4).float()
        assert m.tolist() == [1.0, 0.0, 0.0, 0.0]  # box ends clipped to 1: only cell (0,0)
        torch.testing.assert_close(out.reshape(4), t2 @ (m * src.reshape(4)))
    assert refine(torch.zeros(0, 2, 2), attn, CaaSettings()).shape == (0, 2, 2)
