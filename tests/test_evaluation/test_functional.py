# Copyright (c) mmrefseg contributors.
import math

import numpy as np
import pytest
import torch

from mmrefseg.evaluation.functional import (
    as_mask,
    box_iou,
    mask_boxes,
    percent,
)


def test_mask_boxes_edges_and_inclusive():
    masks = torch.zeros(3, 5, 6, dtype=torch.bool)
    masks[0, 1:3, 2:5] = True  # rows 1-2, cols 2-4
    masks[2, 4, 0] = True  # a single pixel in the corner
    inclusive = mask_boxes(masks, edges=False)
    np.testing.assert_array_equal(
        inclusive, [[2, 1, 4, 2], [0, 0, 0, 0], [0, 4, 0, 4]])
    coco = mask_boxes(masks, edges=True)
    # the empty mask stays all zero instead of becoming [0, 0, 1, 1]
    np.testing.assert_array_equal(
        coco, [[2, 1, 5, 3], [0, 0, 0, 0], [0, 4, 1, 5]])
    assert mask_boxes(masks[:0], edges=True).shape == (0, 4)


def test_box_iou_rowwise():
    a = np.array([[0, 0, 2, 2], [0, 0, 1, 1], [0, 0, 0, 0]], dtype=float)
    b = np.array([[1, 1, 3, 3], [2, 2, 3, 3], [0, 0, 0, 0]], dtype=float)
    np.testing.assert_allclose(box_iou(a, b), [1 / 7, 0.0, 0.0])


def test_as_mask_shapes():
    assert as_mask(np.ones((4, 5))).shape == (1, 4, 5)
    assert as_mask(torch.ones(2, 4, 5)).shape == (2, 4, 5)
    with pytest.raises(ValueError, match=r'\[K, H, W\]'):
        as_mask(torch.ones(1, 1, 4, 5))


def test_percent_is_nan_without_cases():
    assert percent(1, 4) == 25.0
    assert percent(0, 3) == 0.0
    assert math.isnan(percent(0, 0))
