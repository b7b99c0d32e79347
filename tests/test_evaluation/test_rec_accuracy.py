# Copyright (c) mmrefseg contributors.
"""REC hits from masks under both box conventions and both IoU rules."""
import numpy as np
import pytest
import torch

from mmrefseg.evaluation.metrics.rec_accuracy import rec_hits


def _mask(rows: slice, cols: slice) -> torch.Tensor:
    mask = torch.zeros(1, 4, 4, dtype=torch.bool)
    mask[0, rows, cols] = True
    return mask


ONE = np.array([True])


def test_threshold_rule_decides_a_tie():
    pred = _mask(slice(0, 2), slice(0, 2))  # coco box [0, 0, 2, 2]
    gt_box = [[0, 0, 2, 4]]  # IoU 4 / 8 = 0.5 exactly
    assert rec_hits(pred, pred, gt_box, ONE, 'coco', '>=', 0.5) == (1, 1)
    assert rec_hits(pred, pred, gt_box, ONE, 'coco', '>', 0.5) == (1, 0)


def test_box_styles():
    pred = _mask(slice(0, 1), slice(0, 1))  # one pixel
    gt_box = np.array([[0, 0, 1, 1.0004]])
    # coco: [0, 0, 1, 1] vs a box just over one pixel: a miss at 1.0.
    assert rec_hits(pred, pred, gt_box, ONE, 'coco', '>=', 1.0) == (1, 0)
    # mllmseg: the predicted box [0, 0, 0, 0] has no area.
    assert rec_hits(pred, pred, gt_box, ONE, 'mllmseg', '>=', 0.5) == (1, 0)
    # mllmseg rounds GT boxes to float16: 1.0004 becomes 1.0, so an
    # inclusive two-pixel box [0, 0, 1, 1] matches exactly.
    pred2 = _mask(slice(0, 2), slice(0, 2))
    assert rec_hits(pred2, pred2, gt_box, ONE, 'mllmseg', '>=',
                    1.0) == (1, 1)


def test_gt_boxes_from_masks_and_only_targets_count():
    pred = torch.cat([_mask(slice(0, 2), slice(0, 2)),
                      _mask(slice(0, 4), slice(0, 4))])
    gt = torch.cat([_mask(slice(0, 2), slice(0, 2)),
                    torch.zeros(1, 4, 4, dtype=torch.bool)])
    has_target = np.array([True, False])
    # The second expression has no target: neither counted nor a hit.
    assert rec_hits(pred, gt, None, has_target, 'coco', '>=', 0.5) == (1, 1)
    # Counted anyway, the empty GT's all-zero box is a miss.
    assert rec_hits(pred, gt, None, np.array([False, True]), 'coco', '>=',
                    0.5) == (1, 0)
    assert rec_hits(pred, gt, None, np.zeros(2, bool), 'coco', '>=',
                    0.5) == (0, 0)
    with pytest.raises(ValueError, match='`gt_bboxes` has 1 boxes for 2'):
        rec_hits(pred, gt, torch.zeros(1, 4), has_target, 'coco', '>=', 0.5)
