# Copyright (c) mmrefseg contributors.
"""reduce_sample on one hand-made image with two expressions."""
import numpy as np
import pytest
import torch

from mmrefseg.evaluation.metrics.metric_state import empty_state
from mmrefseg.evaluation.metrics.sample_reduction import (
    LISA_EPS,
    reduce_sample,
)

OPTIONS = dict(ignore_index=255, pr_thrs=(0.5, ), giou_mode='image',
               rec_box_style='coco', rec_iou_rule='>=', rec_iou_thr=0.5,
               gres_rule='rela')
GRES_KEYS = ('TP', 'FN', 'FP', 'TN', 'gres_I', 'gres_U', 'gres_iou',
             'gres_pr@0.5')


def _state() -> dict:
    state = empty_state()
    state['sums'] = dict.fromkeys(GRES_KEYS, 0)
    return state


def _sample(**extra) -> dict:
    # Expression 0 (1 x 4 image): GT [1, 1, ignored, 0], prediction
    # [1, 0, 1, 1]; the ignored pixel leaves I = 1 (pixel 0) and
    # U = 3 (pixels 0, 1, 3). Expression 1: both empty (no target).
    gt = torch.tensor([[[1, 1, 255, 0]], [[0, 0, 0, 0]]], dtype=torch.uint8)
    pred = torch.tensor([[[1, 0, 1, 1]], [[0, 0, 0, 0]]], dtype=torch.bool)
    return dict(pred_masks=pred, gt_masks=gt, img_id=np.int64(7), **extra)


def test_one_sample_reduces_to_every_sum():
    state = _state()
    reduce_sample(_sample(parse_status=['ok', 'no_grid']), state, **OPTIONS)
    sums = state['sums']
    assert (sums['num_expr'], sums['I'], sums['U']) == (2, 1, 3)
    # LISA gIoU: 1 / (3 + eps), plus 1 for the empty-on-empty expression.
    lisa = 1 / (3 + LISA_EPS) + 1.0
    assert sums['giou'] == pytest.approx(lisa, rel=0, abs=1e-12)
    assert sums['pr@0.5'] == 1  # exact IoUs 1/3 and 1 (U = 0)
    # REC, expression 0 only: predicted box [0, 0, 4, 1] (pixels 0 and 3),
    # GT box [0, 0, 2, 1]: IoU 2 / 4 = 0.5, a hit under '>='.
    assert (sums['rec_num'], sums['rec_hits']) == (1, 1)
    # GRES: expression 0 is a TN scored 1 / 3, expression 1 a TP.
    assert (sums['TP'], sums['TN'], sums['FP'], sums['FN']) == (1, 1, 0, 0)
    assert (sums['gres_I'], sums['gres_U']) == (1, 3)
    assert sums['gres_iou'] == pytest.approx(1 + 1 / 3)
    # Image entry keyed by the plain int of the numpy id.
    (key, (iou_sum, count)), = state['images'].items()
    assert type(key) is int and key == 7 and count == 2
    assert iou_sum == pytest.approx(lisa, rel=0, abs=1e-12)
    assert state['parse'] == {'ok': 1, 'no_grid': 1}


def test_flags_from_metainfo_override_the_masks():
    state = _state()
    # The model says expression 0 has no target: an FP under 'rela' whose
    # mask still counts in U but not in I.
    reduce_sample(_sample(pred_no_target=[True, True]), state, **OPTIONS)
    sums = state['sums']
    assert (sums['FP'], sums['TP'], sums['gres_I'], sums['gres_U']) == (1, 1,
                                                                        0, 3)
    # RES and REC only look at the masks.
    assert (sums['I'], sums['rec_hits']) == (1, 1)


def test_ignore_index_none_and_expression_mode():
    state = _state()
    options = dict(OPTIONS, ignore_index=None, giou_mode='expression')
    reduce_sample(_sample(), state, **options)
    # 255 is foreground now: I = 2 (pixels 0, 2), U = 4; no image entry.
    assert (state['sums']['I'], state['sums']['U']) == (2, 4)
    assert state['images'] == {}


def test_bad_samples_name_the_problem():
    with pytest.raises(ValueError, match='`pred_no_target` has 1 entries'):
        reduce_sample(_sample(pred_no_target=[True]), _state(), **OPTIONS)
    bad = _sample()
    bad['gt_masks'] = bad['gt_masks'][:, :, :3]
    with pytest.raises(ValueError, match='must be at the original size'):
        reduce_sample(bad, _state(), **OPTIONS)
    with pytest.raises(KeyError, match='a.jpg has no pred_masks'):
        reduce_sample(dict(img_path='a.jpg', gt_masks=torch.zeros(1, 2, 2)),
                      _state(), **OPTIONS)
