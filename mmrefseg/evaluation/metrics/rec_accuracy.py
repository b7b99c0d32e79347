# Copyright (c) mmrefseg contributors.
"""REC accuracy from masks: the tight box of the predicted mask against the
GT box, with the box conventions of COCO / InternVL and of MLLMSeg."""
from typing import Any, Tuple

import numpy as np
from torch import Tensor

from ..functional import box_iou, mask_boxes


def rec_hits(pred: Tensor, gt: Tensor, gt_bboxes: Any,
             has_target: np.ndarray, box_style: str, iou_rule: str,
             iou_thr: float) -> Tuple[int, int]:
    """Count the REC hits of one sample's expressions that have a target.

    Args:
        pred (Tensor): Predicted bool masks [K, H, W]; the predicted box is
            the tight box (all zeros when the mask is empty).
        gt (Tensor): GT bool masks [K, H, W]; their tight boxes in
            pixel-edge coordinates stand in when ``gt_bboxes`` is None.
        gt_bboxes (Any): [K, 4] xyxy GT boxes (tensor, ndarray or nested
            sequence), or None.
        has_target (np.ndarray): [K] bool, the expressions that count.
        box_style (str): ``'coco'``: a mask box spans pixel edges,
            ``[x_min, y_min, x_max + 1, y_max + 1]``. ``'mllmseg'``: the
            predicted box is the inclusive pixel indices (no +1, MLLMSeg's
            ``mask_to_bbox``) and GT boxes are rounded to float16 as MLLMSeg
            stores them.
        iou_rule (str): ``'>='`` (InternVL / COCO) or ``'>'`` (MLLMSeg).
        iou_thr (float): Box IoU threshold of a hit.

    Returns:
        tuple[int, int]: Number of expressions with a target and number of
        hits among them; ``(0, 0)`` when no expression has a target.

    Raises:
        ValueError: ``gt_bboxes`` does not have K boxes.
    """
    if not has_target.any():
        return 0, 0
    pred_boxes = mask_boxes(pred, edges=box_style == 'coco')
    if gt_bboxes is None:
        # GT boxes of the datasets are COCO boxes (pixel edges) whatever
        # the style of the predicted box.
        gt_boxes = mask_boxes(gt, edges=True)
    else:
        if isinstance(gt_bboxes, Tensor):
            gt_bboxes = gt_bboxes.cpu().numpy()
        gt_boxes = np.asarray(gt_bboxes, dtype=np.float64).reshape(-1, 4)
        if gt_boxes.shape[0] != pred_boxes.shape[0]:
            raise ValueError(f'`gt_bboxes` has {gt_boxes.shape[0]} boxes '
                             f'for {pred_boxes.shape[0]} expressions')
    if box_style == 'mllmseg':
        gt_boxes = gt_boxes.astype(np.float16).astype(np.float64)
    ious = box_iou(pred_boxes[has_target], gt_boxes[has_target])
    if iou_rule == '>=':
        hits = ious >= iou_thr
    else:
        hits = ious > iou_thr
    return int(has_target.sum()), int(hits.sum())
