# Copyright (c) mmrefseg contributors.
"""The gRefCOCO case table of both rules, worked out by hand."""
import math

import numpy as np
import pytest

from mmrefseg.evaluation.metrics.gres_rules import (
    MLLMSEG_GRES_EPS,
    add_gres_counts,
    gres_results,
)

# One expression per case: TP (no target, says none), FN (no target, draws
# 5 px), FP (target, says none but draws I=2 of U=4), TN (I=3 of U=6).
INTER = [0, 0, 2, 3]
UNION = [0, 5, 4, 6]
GT_NT = np.array([True, True, False, False])
PRED_NT = np.array([True, False, True, False])
KEYS = ('TP', 'FN', 'FP', 'TN', 'gres_I', 'gres_U', 'gres_iou',
        'gres_pr@0.5')


def _counts(rule: str) -> dict:
    sums = dict.fromkeys(KEYS, 0)
    add_gres_counts(sums, INTER, UNION, GT_NT, PRED_NT, rule, (0.5, ))
    return sums


def test_rela_zeroes_the_false_positive_mask():
    sums = _counts('rela')
    assert [sums[k] for k in ('TP', 'FN', 'FP', 'TN')] == [1, 1, 1, 1]
    # I: only TN's 3 (FP's I := 0); U: FN 5 + FP 4 + TN 6.
    assert (sums['gres_I'], sums['gres_U']) == (3, 15)
    # IoU: TP 1, FN 0, FP 0, TN 3 / 6.
    assert sums['gres_iou'] == pytest.approx(1.5)
    assert sums['gres_pr@0.5'] == 1  # TN's 0.5 >= 0.5


def test_mllmseg_keeps_the_false_positive_mask():
    sums = _counts('mllmseg')
    assert (sums['gres_I'], sums['gres_U']) == (5, 15)
    e = MLLMSEG_GRES_EPS
    assert sums['gres_iou'] == pytest.approx(1 + 2 / (4 + e) + 3 / (6 + e),
                                             rel=0, abs=1e-12)
    # 2 / (4 + 1e-8) and 3 / (6 + 1e-8) fall just below 0.5.
    assert sums['gres_pr@0.5'] == 0


def test_gres_results_percentages():
    sums = dict(_counts('rela'), num_expr=4)
    res = gres_results(sums, (0.5, ))
    assert list(res) == [
        'gres_gIoU', 'gres_cIoU', 'N-acc', 'T-acc', 'gres_Pr@0.5'
    ]
    assert res['gres_gIoU'] == pytest.approx(100 * 1.5 / 4)
    assert res['gres_cIoU'] == pytest.approx(100 * 3 / 15)
    assert (res['N-acc'], res['T-acc'], res['gres_Pr@0.5']) == (50, 50, 50)
    # No target expression at all: T-acc and gres_Pr@t are undefined.
    none = gres_results(dict(sums, FP=0, TN=0), (0.5, ))
    assert math.isnan(none['T-acc']) and math.isnan(none['gres_Pr@0.5'])
