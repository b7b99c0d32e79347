# Copyright (c) mmrefseg contributors.
"""What a picture shows of a ``RefSegDataSample``, as plain arrays."""
from typing import Dict, Sequence

import numpy as np


def _numpy(x) -> np.ndarray:
    return x.detach().cpu().numpy() if hasattr(x, 'detach') else np.asarray(x)


def sample_drawing_fields(sample, image_hw: Sequence[int]) -> Dict:
    """Texts, masks and legend notes of a predicted sample.

    Args:
        sample (RefSegDataSample): A predicted sample (``texts``,
            ``pred_masks`` and optionally ``pred_probs``,
            ``pred_no_target``, ``parse_status``, ``gt_masks``,
            ``gt_no_target``).
        image_hw (Sequence[int]): (H, W) of the image drawn.

    Returns:
        dict: ``texts``, ``pred_masks`` (K, H, W) bool, ``pred_notes``,
        ``gt_masks`` (K, H, W) or None, ``gt_notes``.
    """
    texts = list(sample.texts)
    k = len(texts)
    h, w = image_hw[:2]
    pred = _numpy(sample.pred_masks).astype(bool).reshape(k, h, w) \
        if 'pred_masks' in sample else np.zeros((k, h, w), bool)
    no_target = _numpy(sample.pred_no_target).astype(bool) \
        if 'pred_no_target' in sample else ~pred.reshape(k, -1).any(1)
    probs = _numpy(sample.pred_probs).reshape(k, h, w) \
        if 'pred_probs' in sample else None
    status = list(sample.parse_status) if 'parse_status' in sample \
        else [None] * k
    notes = []
    for i in range(k):
        if no_target[i]:
            note = 'no target'
        elif status[i] is not None:
            note = status[i]
        elif probs is not None and pred[i].any():
            note = f'p={probs[i][pred[i]].mean():.2f}'
        else:
            note = ''
        if status[i] not in (None, 'ok') and status[i] not in note:
            note = f'{note}; {status[i]}' if note else status[i]
        notes.append(note)
    gt = gt_notes = None
    if 'gt_masks' in sample:
        gt = _numpy(sample.gt_masks).astype(bool).reshape(k, h, w)
        gt_nt = _numpy(sample.gt_no_target).astype(bool) \
            if 'gt_no_target' in sample else ~gt.reshape(k, -1).any(1)
        gt_notes = ['GT: no target' if v else '' for v in gt_nt]
    return dict(texts=texts, pred_masks=pred, pred_notes=notes,
                gt_masks=gt, gt_notes=gt_notes)
