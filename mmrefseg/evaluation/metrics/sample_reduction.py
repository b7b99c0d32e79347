# Copyright (c) mmrefseg contributors.
"""Per-sample reduction behind :class:`RefSegMetric`: one image with K
expressions becomes a handful of numbers added to a state."""
from typing import Any, Dict, Hashable, List, Optional, Sequence, Tuple

import numpy as np
from torch import Tensor

from ..functional import as_mask, exact_sum
from .gres_rules import add_gres_counts
from .metric_state import State
from .parse_status import add_parse_counts
from .rec_accuracy import rec_hits

# Epsilon of the reference implementations; keeping it makes our numbers
# match theirs to the printed precision.
LISA_EPS = 1e-5  # LISA / MLLMSeg RES: iou = I / (U + 1e-5)


def _expression_flags(value: Any, num: int,
                      name: str) -> Optional[np.ndarray]:
    """Per-expression bool flags from metainfo, or None when absent.

    Args:
        value (Any): A bool sequence, ndarray or tensor with one entry per
            expression, or None.
        num (int): Number of expressions K of the sample.
        name (str): Field name, for the error message.

    Returns:
        np.ndarray, optional: [K] bool flags, None when ``value`` is None.

    Raises:
        ValueError: ``value`` does not have K entries.
    """
    if value is None:
        return None
    if isinstance(value, Tensor):
        value = value.cpu().numpy()
    flags = np.asarray(value, dtype=bool).reshape(-1)
    if flags.size != num:
        raise ValueError(f'`{name}` has {flags.size} entries for {num} '
                         'expressions')
    return flags


def _field(sample: dict, name: str, sem_seg_name: str) -> Any:
    """A typed [K, H, W] field of a ``RefSegDataSample``, or the K channels
    of a plain ``SegDataSample``'s ``PixelData`` as a fallback."""
    if sample.get(name) is not None:
        return sample[name]
    if sample.get(sem_seg_name) is not None:
        return sample[sem_seg_name]['data']
    raise KeyError(f'The sample of {sample.get("img_path")} has no {name} '
                   f'(nor {sem_seg_name}); the metric needs ground truth '
                   'and predictions.')


def _sample_masks(sample: dict,
                  ignore_index: Optional[int]) -> Tuple[Tensor, Tensor]:
    """The binary prediction and ground truth of one sample.

    Pixels whose GT equals ``ignore_index`` are dropped from both, so they
    count in neither I nor U.

    Args:
        sample (dict): ``pred_masks`` and ``gt_masks`` [K, H, W] (or a
            plain ``SegDataSample``'s ``pred_sem_seg`` / ``gt_sem_seg``).
        ignore_index (int, optional): GT value excluded from both masks.

    Returns:
        tuple[Tensor, Tensor]: ``pred`` and ``gt``, bool [K, H, W] on the
        prediction's device.

    Raises:
        KeyError: A mask is missing.
        ValueError: The two masks differ in shape.
    """
    pred = as_mask(_field(sample, 'pred_masks', 'pred_sem_seg'))
    gt = as_mask(_field(sample, 'gt_masks', 'gt_sem_seg'))
    if pred.shape != gt.shape:
        raise ValueError(f'pred_masks {tuple(pred.shape)} and '
                         f'gt_masks {tuple(gt.shape)} differ; the '
                         'prediction must be at the original size')
    gt = gt.to(pred.device)
    pred = pred.bool()
    if ignore_index is not None:
        valid = gt != ignore_index
        gt = (gt != 0) & valid
        pred = pred & valid
    else:
        gt = gt.bool()
    return pred, gt


def _no_target_flags(sample: dict, pred: Tensor,
                     gt: Tensor) -> Tuple[np.ndarray, np.ndarray]:
    """The GT and predicted "no target" flags of one sample's expressions.

    Args:
        sample (dict): May hold ``gt_no_target`` (or ``no_target``) and
            ``pred_no_target``, one bool per expression.
        pred (Tensor): Predicted bool masks [K, H, W].
        gt (Tensor): GT bool masks [K, H, W].

    Returns:
        tuple[np.ndarray, np.ndarray]: [K] bool ``gt_nt`` (default: the GT
        mask is empty) and ``pred_nt`` (default: the predicted mask is
        empty).
    """
    num = pred.shape[0]
    gt_nt = sample.get('gt_no_target', sample.get('no_target'))
    gt_nt = _expression_flags(gt_nt, num, 'gt_no_target')
    if gt_nt is None:
        gt_nt = gt.flatten(1).sum(1).cpu().numpy() == 0
    pred_nt = _expression_flags(sample.get('pred_no_target'), num,
                                'pred_no_target')
    if pred_nt is None:
        pred_nt = pred.flatten(1).sum(1).cpu().numpy() == 0
    return gt_nt, pred_nt


def _add_res_sums(sums: Dict[str, float], inter: List[int],
                 union: List[int], pr_thrs: Sequence[float]) -> List[float]:
    """Add one sample's RES numbers to ``sums`` in place.

    Args:
        sums (dict): Receives ``num_expr``, ``I``, ``U``, ``giou`` (sum of
            the LISA IoUs) and ``pr@<t>`` (count of exact IoUs ``>= t``).
        inter (list[int]): [K] intersections ``I_i``.
        union (list[int]): [K] unions ``U_i``.
        pr_thrs (Sequence[float]): Thresholds of ``Pr@t``.

    Returns:
        list[float]: [K] LISA IoUs ``I_i / (U_i + 1e-5)``, plus 1 when
        ``U_i == 0`` (an empty prediction on an empty target is right).
    """
    sums['num_expr'] = len(inter)
    sums['I'] = int(sum(inter))
    sums['U'] = int(sum(union))
    lisa = [
        i / (u + LISA_EPS) + (1.0 if u == 0 else 0.0)
        for i, u in zip(inter, union)
    ]
    sums['giou'] = exact_sum(lisa)
    exact = [i / u if u > 0 else 1.0 for i, u in zip(inter, union)]
    for t in pr_thrs:
        sums[f'pr@{t:g}'] = sum(1 for v in exact if v >= t)
    return lisa


def _add_image_giou(state: State, sample: dict, lisa: List[float]) -> None:
    """Record one image's gIoU (``giou_mode='image'``) in ``state``.

    Images are grouped by ``img_id``, else ``img_path``: the per-image
    entry ``(sum of IoUs, count)`` adds up across batches and ranks. A
    sample without either key is an image on its own.

    Args:
        state (dict): Receives ``images[key]``, or the ``anon_img_giou`` /
            ``anon_img_num`` sums for a sample without a key.
        sample (dict): The sample (for ``img_id`` / ``img_path``).
        lisa (list[float]): [K] per-expression IoUs of the sample.
    """
    if not lisa:
        return
    key: Optional[Hashable] = sample.get('img_id')
    if key is None:
        key = sample.get('img_path')
    if key is None:
        # Without a key the sample is one image on its own: its mean
        # goes straight into the sums, no per-image entry needed.
        state['sums']['anon_img_giou'] = exact_sum(lisa) / len(lisa)
        state['sums']['anon_img_num'] = 1
        return
    if isinstance(key, (np.integer, Tensor)):
        key = int(key)
    state['images'][key] = (exact_sum(lisa), len(lisa))


def reduce_sample(sample: dict, state: State, *, ignore_index: Optional[int],
                  pr_thrs: Sequence[float], giou_mode: str,
                  rec_box_style: str, rec_iou_rule: str, rec_iou_thr: float,
                  gres_rule: str) -> None:
    """Reduce one sample (one image, K expressions) into ``state``.

    Args:
        sample (dict): A ``RefSegDataSample.to_dict()`` output (see
            :meth:`RefSegMetric.process` for the fields read).
        state (dict): A fresh state whose ``sums`` hold every key of the
            metric at 0; RES, REC, GRES and parse numbers are written in
            place.
        ignore_index (int, optional): GT value excluded from I and U.
        pr_thrs (Sequence[float]): Thresholds of ``Pr@t``/``gres_Pr@t``.
        giou_mode (str): ``'image'`` also records the per-image gIoU.
        rec_box_style (str): See :func:`rec_hits`.
        rec_iou_rule (str): See :func:`rec_hits`.
        rec_iou_thr (float): See :func:`rec_hits`.
        gres_rule (str): See :func:`add_gres_counts`.
    """
    pred, gt = _sample_masks(sample, ignore_index)
    inter = (pred & gt).flatten(1).sum(1).tolist()
    union = (pred | gt).flatten(1).sum(1).tolist()
    gt_nt, pred_nt = _no_target_flags(sample, pred, gt)
    sums = state['sums']
    lisa = _add_res_sums(sums, inter, union, pr_thrs)
    if giou_mode == 'image':
        _add_image_giou(state, sample, lisa)
    sums['rec_num'], sums['rec_hits'] = rec_hits(pred, gt,
                                                 sample.get('gt_bboxes'),
                                                 ~gt_nt, rec_box_style,
                                                 rec_iou_rule, rec_iou_thr)
    add_gres_counts(sums, inter, union, gt_nt, pred_nt, gres_rule, pr_thrs)
    add_parse_counts(state['parse'], sample.get('parse_status'))
