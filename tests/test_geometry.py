"""ovtools.geometry: the masked-crop function against its definition, box de-duplication."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from torchvision.ops import roi_align

from ovtools.geometry import dedup_boxes, masked_roi_crops, square_context_boxes


def test_masked_roi_crops_is_the_blend_of_two_roi_aligns_and_batches_freely():
    g = torch.Generator().manual_seed(0)
    image = torch.randn(1, 3, 40, 50, generator=g)
    fill = torch.randn(1, 3, 40, 50, generator=g)
    masks = torch.zeros(3, 40, 50, dtype=torch.bool)
    masks[0, 5:20, 8:30] = True
    masks[1, 22:39, 0:12] = True
    masks[2, 0:3, 45:50] = True
    rois = square_context_boxes(torch.tensor([[8.0, 5, 30, 20], [0, 22, 12, 39], [45, 0, 50, 3]]), 0.2)
    out = masked_roi_crops(image, rois, 16, masks, fill)
    assert out.shape == (3, 3, 16, 16)
    for i in range(3):
        one = roi_align(image, [rois[i : i + 1]], 16, 1.0, 2, True)
        m = roi_align(masks[i][None, None].float(), [rois[i : i + 1]], 16, 1.0, 2, True)
        bg = roi_align(fill, [rois[i : i + 1]], 16, 1.0, 2, True)
        torch.testing.assert_close(out[i : i + 1], one * m + bg * (1 - m))
        torch.testing.assert_close(masked_roi_crops(image, rois[i : i + 1], 16, masks[i : i + 1], fill), out[i : i + 1])
    # no fill → outside the mask is 0; no masks → plain crops
    zero_fill = masked_roi_crops(image, rois, 16, masks)
    m0 = roi_align(masks[:1, None].float(), [rois[:1]], 16, 1.0, 2, True)
    torch.testing.assert_close(zero_fill[:1], roi_align(image, [rois[:1]], 16, 1.0, 2, True) * m0)
    torch.testing.assert_close(masked_roi_crops(image, rois, 16), roi_align(image, [rois], 16, 1.0, 2, True))


def test_masked_roi_crops_rejects_masks_of_another_grid():
    with pytest.raises(ValueError, match=r"masks must have shape \(1, 10, 10\)"):
        masked_roi_crops(torch.zeros(1, 3, 10, 10), torch.tensor([[0.0, 0, 5, 5]]), 4, torch.zeros(1, 8, 8))


def test_dedup_boxes_keeps_the_first_of_each_group_in_order():
    boxes = np.array([[0, 0, 10, 10], [20, 20, 30, 30], [0, 0, 10, 11], [21, 20, 30, 30]], np.float32)
    np.testing.assert_array_equal(dedup_boxes(boxes, 0.8), boxes[:2])
    assert dedup_boxes(np.zeros((0, 4), np.float32), 0.5).shape == (0, 4)
