# Copyright (c) mmrefseg contributors.
"""Generalized RES (gRefCOCO) scoring: the no-target confusion counts and
the IoU of every expression under ReLA's or MLLMSeg's rule."""
from collections import OrderedDict
from fractions import Fraction
from typing import Dict, List, Mapping, Sequence

import numpy as np

from ..functional import percent

# Epsilon of MLLMSeg's GRES evaluation; keeping it makes our numbers match
# theirs to the printed precision.
MLLMSEG_GRES_EPS = 1e-8  # MLLMSeg GRES: iou = I / (U + 1e-8)


def add_gres_counts(sums: Dict[str, float], inter: List[int],
                    union: List[int], gt_nt: np.ndarray, pred_nt: np.ndarray,
                    rule: str, pr_thrs: Sequence[float]) -> None:
    """Add one sample's GRES numbers to ``sums`` in place.

    The positive class is "no target" (ReLA's naming). Per expression:

    - gt_nt, pred_nt (TP): IoU 1, adds nothing to I or U.
    - gt_nt, !pred_nt (FN): IoU 0, U += U_i (the predicted area).
    - !gt_nt, pred_nt (FP): ``'rela'``: I_i := 0, U += U_i (the mask still
      counts), IoU 0. ``'mllmseg'``: as TN, the mask is kept.
    - !gt_nt, !pred_nt (TN): I += I_i, U += U_i; IoU = I_i / U_i (0 when
      U_i = 0) under ``'rela'``, I_i / (U_i + 1e-8) under ``'mllmseg'``.

    Args:
        sums (dict): Receives ``TP``/``FN``/``FP``/``TN``, ``gres_I``,
            ``gres_U``, ``gres_iou`` (sum of IoUs over all expressions) and
            ``gres_pr@<t>`` (target expressions with IoU ``>= t``); every
            key must already be present.
        inter (list[int]): [K] intersections ``I_i``.
        union (list[int]): [K] unions ``U_i``.
        gt_nt (np.ndarray): [K] bool, the expression has no target.
        pred_nt (np.ndarray): [K] bool, the model says "no target".
        rule (str): ``'rela'`` (ReLA ``refer_evaluation``) or ``'mllmseg'``
            (``test_mllmseg_gres.py``, GSVA).
        pr_thrs (Sequence[float]): Thresholds of ``gres_Pr@t``.
    """
    for i, u, g_nt, p_nt in zip(inter, union, gt_nt.tolist(),
                                pred_nt.tolist()):
        if g_nt:
            if p_nt:
                sums['TP'] += 1
                sums['gres_iou'] += 1
            else:
                sums['FN'] += 1
                sums['gres_U'] += u
            continue
        sums['FP' if p_nt else 'TN'] += 1
        if rule == 'rela':
            if p_nt:
                i = 0
            iou = i / u if u > 0 else 0.0
        else:
            iou = i / (u + MLLMSEG_GRES_EPS)
        sums['gres_I'] += i
        sums['gres_U'] += u
        sums['gres_iou'] += Fraction(iou)
        for t in pr_thrs:
            if iou >= t:
                sums[f'gres_pr@{t:g}'] += 1


def gres_results(sums: Mapping[str, float],
                 pr_thrs: Sequence[float]) -> Dict[str, float]:
    """The GRES metrics (percent) of merged sums.

    Args:
        sums (Mapping[str, float]): Merged sums with every key that
            :func:`add_gres_counts` writes, plus ``num_expr``.
        pr_thrs (Sequence[float]): Thresholds of ``gres_Pr@t``.

    Returns:
        OrderedDict[str, float]: ``gres_gIoU`` (mean IoU over all
        expressions), ``gres_cIoU`` (``sum I / sum U``), ``N-acc``
        (``TP / (TP + FN)``), ``T-acc`` (``TN / (TN + FP)``) and
        ``gres_Pr@t`` (fraction of target expressions with IoU ``>= t``).
        A ratio with a zero denominator is NaN.
    """
    num_nt = sums['TP'] + sums['FN']
    num_t = sums['TN'] + sums['FP']
    res: Dict[str, float] = OrderedDict()
    res['gres_gIoU'] = percent(sums['gres_iou'], sums['num_expr'])
    res['gres_cIoU'] = percent(sums['gres_I'], sums['gres_U'])
    res['N-acc'] = percent(sums['TP'], num_nt)
    res['T-acc'] = percent(sums['TN'], num_t)
    for t in pr_thrs:
        res[f'gres_Pr@{t:g}'] = percent(sums[f'gres_pr@{t:g}'], num_t)
    return res
