# Copyright (c) mmrefseg contributors.
"""Referring expression segmentation metrics: RES, GRES and REC from masks.

The metric streams: :meth:`RefSegMetric.process` reduces every sample to a
handful of numbers and adds them to running sums, so memory does not grow
with the split (except in ``giou_mode='image'``, see below). Across ranks the
sums are all-reduced and every rank computes the same result.
"""
import logging
import math
from collections import OrderedDict
from fractions import Fraction
from typing import Any, Dict, Hashable, List, Optional, Sequence

import numpy as np
import torch
from mmengine import dist
from mmengine.evaluator import BaseMetric
from mmengine.logging import print_log
from mmengine.structures import BaseDataElement
from torch import Tensor

from mmrefseg.registry import METRICS
from ..functional import as_mask, box_iou, mask_boxes
from .metric_state import State, add_state, empty_state, merge_states

# Epsilons of the reference implementations; keeping them makes our numbers
# match theirs to the printed precision.
LISA_EPS = 1e-5  # LISA / MLLMSeg RES: iou = I / (U + 1e-5)
MLLMSEG_GRES_EPS = 1e-8  # MLLMSeg GRES: iou = I / (U + 1e-8)


def _ratio(num: float, den: float) -> float:
    """``100 * num / den`` in percent, NaN when undefined (``den == 0``)."""
    return 100.0 * float(num) / den if den > 0 else float('nan')


def _exact_sum(values) -> Fraction:
    """The exact sum of floats.

    Per-expression IoUs are added as exact fractions (a float is one), so
    the sums, and the metrics, do not depend on how expressions were
    grouped into samples or in which order they came: one sample per
    expression and one per image give the same numbers to the last digit.
    """
    return sum((Fraction(v) for v in values), Fraction(0))


def _flags(value: Any, num: int, name: str) -> Optional[np.ndarray]:
    """Per-expression bool flags from metainfo, or None when absent."""
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


@METRICS.register_module()
class RefSegMetric(BaseMetric):
    """Referring expression segmentation metric (RES, GRES, REC from masks).

    One *expression* (one channel of ``pred_masks`` / ``gt_masks``) is the
    unit of evaluation. For expression ``i`` with binary prediction ``P_i``
    and ground truth ``G_i`` at the original resolution (pixels whose GT
    equals ``ignore_index`` are dropped from both), ``I_i = |P_i & G_i|`` and
    ``U_i = |P_i | G_i|``. All results are in percent; a ratio whose
    denominator is 0 is NaN.

    **RES** (every expression; only the masks count, a ``pred_no_target``
    decision does not change them):

    - ``cIoU`` = ``sum_i I_i / sum_i U_i`` (overall IoU, LISA / ReLA).
    - ``gIoU``: per-expression ``iou_i = I_i / (U_i + 1e-5)``, plus 1 when
      ``U_i == 0`` (empty prediction on an empty target is right; LISA).
      ``giou_mode='expression'``: mean of ``iou_i`` over expressions (LISA).
      ``giou_mode='image'``: mean over images of the per-image mean of
      ``iou_i`` (MLLMSeg ``test_mllmseg_res.py``); images are grouped by
      ``img_id`` (else ``img_path``, else each sample is its own image).
    - ``Pr@t``: fraction of expressions with ``I_i / U_i >= t`` (exact
      ratio, 1 when ``U_i == 0``), for ``t`` in ``pr_thrs``.
    - ``Acc@0.5`` (REC from masks, over expressions with a target): the
      predicted box is the tight box of ``P_i`` (all zeros when ``P_i`` is
      empty), the GT box is ``gt_bboxes[i]`` (xyxy) or, when absent, the
      tight box of ``G_i`` in pixel-edge coordinates (both styles); a hit
      is ``IoU >= rec_iou_thr`` (``rec_iou_rule='>='``, InternVL / COCO)
      or ``IoU > rec_iou_thr`` (``'>'``, MLLMSeg). Box IoU is continuous:
      ``area = (x2 - x1) * (y2 - y1)``.
      ``rec_box_style='coco'``: a mask box spans pixel edges,
      ``[x_min, y_min, x_max + 1, y_max + 1]``. ``'mllmseg'``: a predicted
      box is the inclusive pixel indices ``[x_min, y_min, x_max, y_max]``
      (no +1, ``mask_to_bbox``) and GT boxes are rounded to float16 as
      MLLMSeg stores them.

    **GRES** (reported when ``gres=True``, or with ``gres=None`` when any
    expression has no target). ``gt_nt`` is the ``gt_no_target`` flag (default:
    ``G_i`` empty) and ``pred_nt`` the model's ``pred_no_target`` decision
    (default: ``P_i`` empty). Following ReLA's naming the positive class is
    "no target":

    ====================  ===============================================
    case                  ``gres_rule='rela'`` (ReLA ``refer_evaluation``)
    ====================  ===============================================
    gt_nt,  pred_nt (TP)  IoU 1, adds nothing to I or U
    gt_nt,  !pred_nt (FN) IoU 0, U += U_i (the predicted area)
    !gt_nt, pred_nt (FP)  I_i := 0, U += U_i (mask still counts), IoU 0
    !gt_nt, !pred_nt (TN) I += I_i, U += U_i, IoU = I_i / U_i (0 if U_i=0)
    ====================  ===============================================

    ``gres_rule='mllmseg'`` (``test_mllmseg_gres.py``, GSVA) differs only in
    that an FP keeps its mask: FP and TN both add ``I_i`` and ``U_i`` and
    score ``I_i / (U_i + 1e-8)``. Then ``gres_gIoU`` = mean IoU over all
    expressions, ``gres_cIoU`` = ``sum I / sum U``, ``N-acc`` =
    ``TP / (TP + FN)``, ``T-acc`` = ``TN / (TN + FP)`` and ``gres_Pr@t`` =
    fraction of target expressions (FP + TN) whose IoU is ``>= t``.

    **Parsing** (Text4Seg): with ``parse_status`` (one string per
    expression, ``'ok'`` or a failure kind) the metric reports
    ``parse_fail_rate`` (percent of expressions that did not parse) and
    ``parse_fail/<kind>`` (counts).

    **Streaming and distributed evaluation.** ``process`` keeps sums, not
    masks. MMEngine's ``DefaultSampler`` pads the last round with duplicates
    so that all ranks see the same number of samples; the ``k``-th sample a
    rank processes has global position ``rank + k * world_size`` and only
    the last sample of a rank can be padding (position ``>= size``). The
    most recent sample is therefore held back and folded in by
    :meth:`evaluate` only when its position is ``< size`` (the same samples
    :func:`mmengine.dist.collect_results` would drop). The sums are then
    all-reduced and the small dicts (parse counts, per-image entries) are
    gathered with :func:`mmengine.dist.all_gather_object`; every rank
    computes the result. ``self.results`` stays empty and
    :meth:`compute_metrics` accepts a list of states.
    ``giou_mode='image'`` must group expressions by image across batches and
    ranks, so it stores one ``(iou sum, count)`` pair per image: O(#images)
    small entries instead of constant memory.

    Reproducing MLLMSeg: ``giou_mode='image', rec_iou_rule='>',
    rec_box_style='mllmseg', gres_rule='mllmseg'``.

    Args:
        giou_mode (str): ``'expression'`` or ``'image'``. Defaults to
            ``'expression'``.
        pr_thrs (Sequence[float]): Thresholds of ``Pr@t`` and
            ``gres_Pr@t``. Defaults to ``(0.5, 0.6, 0.7, 0.8, 0.9)``.
        rec_iou_thr (float): Box IoU threshold of REC accuracy. Defaults to
            0.5.
        rec_iou_rule (str): ``'>='`` or ``'>'``. Defaults to ``'>='``.
        rec_box_style (str): ``'coco'`` or ``'mllmseg'``. Defaults to
            ``'coco'``.
        gres (bool, optional): Force GRES metrics on (True) or off (False);
            None reports them when any expression has no target. Defaults to
            None.
        gres_rule (str): ``'rela'`` or ``'mllmseg'``. Defaults to ``'rela'``.
        ignore_index (int, optional): GT value excluded from I and U.
            Defaults to 255.
        collect_device (str): Kept for :class:`BaseMetric` compatibility.
            Defaults to 'cpu'.
        prefix (str, optional): Prefix of the output keys. Defaults to
            ``'refseg'``.
        collect_dir (str, optional): Kept for :class:`BaseMetric`
            compatibility. Defaults to None.
    """

    default_prefix: Optional[str] = 'refseg'

    def __init__(self,
                 giou_mode: str = 'expression',
                 pr_thrs: Sequence[float] = (0.5, 0.6, 0.7, 0.8, 0.9),
                 rec_iou_thr: float = 0.5,
                 rec_iou_rule: str = '>=',
                 rec_box_style: str = 'coco',
                 gres: Optional[bool] = None,
                 gres_rule: str = 'rela',
                 ignore_index: Optional[int] = 255,
                 collect_device: str = 'cpu',
                 prefix: Optional[str] = None,
                 collect_dir: Optional[str] = None) -> None:
        super().__init__(
            collect_device=collect_device,
            prefix=prefix,
            collect_dir=collect_dir)
        for name, value, allowed in (
            ('giou_mode', giou_mode, ('expression', 'image')),
            ('rec_iou_rule', rec_iou_rule, ('>=', '>')),
            ('rec_box_style', rec_box_style, ('coco', 'mllmseg')),
            ('gres_rule', gres_rule, ('rela', 'mllmseg')),
        ):
            if value not in allowed:
                raise ValueError(f'{name} must be one of {allowed}, '
                                 f'got {value!r}')
        self.giou_mode = giou_mode
        self.pr_thrs = tuple(float(t) for t in pr_thrs)
        self.rec_iou_thr = float(rec_iou_thr)
        self.rec_iou_rule = rec_iou_rule
        self.rec_box_style = rec_box_style
        self.gres = gres
        self.gres_rule = gres_rule
        self.ignore_index = ignore_index
        self._sum_keys = self._make_sum_keys()
        self.reset()

    # ------------------------------------------------------------------
    # state handling
    # ------------------------------------------------------------------
    def _make_sum_keys(self) -> List[str]:
        keys = [
            'num_expr', 'I', 'U', 'giou', 'rec_num', 'rec_hits',
            'anon_img_giou', 'anon_img_num', 'TP', 'FN', 'FP', 'TN', 'gres_I',
            'gres_U', 'gres_iou'
        ]
        keys += [f'pr@{t:g}' for t in self.pr_thrs]
        keys += [f'gres_pr@{t:g}' for t in self.pr_thrs]
        return keys

    def _new_state(self) -> State:
        state = empty_state()
        state['sums'] = {key: 0 for key in self._sum_keys}
        return state

    def reset(self) -> None:
        """Forget everything processed so far."""
        self.results.clear()
        self._accum = self._new_state()
        self._pending: Optional[State] = None
        self._num_processed = 0

    def local_state(self,
                    size: int,
                    rank: Optional[int] = None,
                    world_size: Optional[int] = None) -> State:
        """This rank's state with sampler padding removed.

        Args:
            size (int): Length of the whole dataset.
            rank (int, optional): Rank; defaults to the current one.
            world_size (int, optional): World size; defaults to the current
                one.

        Returns:
            dict: A copy of the accumulated state plus the last processed
            sample when its global position ``rank + (n - 1) * world_size``
            is below ``size``.
        """
        if rank is None or world_size is None:
            rank, world_size = dist.get_dist_info()
        state = merge_states([self._accum])
        if self._pending is not None:
            position = rank + (self._num_processed - 1) * world_size
            if position < size:
                add_state(state, self._pending)
        return state

    # ------------------------------------------------------------------
    # per-sample reduction
    # ------------------------------------------------------------------
    def process(self, data_batch: Any, data_samples: Sequence[dict]) -> None:
        """Reduce each sample to sums; the newest one stays pending.

        Args:
            data_batch (Any): Unused.
            data_samples (Sequence[dict]): ``RefSegDataSample.to_dict()``
                outputs (a data sample is accepted too). Read:
                ``pred_masks``, ``gt_masks`` [K, H, W] (a plain
                ``SegDataSample``'s ``pred_sem_seg``/``gt_sem_seg`` [K, H,
                W] as a fallback), ``gt_no_target``, ``pred_no_target``,
                ``gt_bboxes`` [K, 4], ``parse_status``, ``img_id`` /
                ``img_path``.
        """
        for sample in data_samples:
            if isinstance(sample, BaseDataElement):
                sample = sample.to_dict()
            state = self._sample_state(sample)
            if self._pending is not None:
                add_state(self._accum, self._pending)
            self._pending = state
            self._num_processed += 1

    def skip_samples(self, num: int) -> None:
        """Account for ``num`` samples of this rank that were never scored.

        Evaluation loops that skip unreadable batches call this, so that
        the sampler positions used by :meth:`local_state` to drop padding
        stay right: the skipped samples still held their positions.

        Args:
            num (int): Samples skipped after the last processed one.
        """
        if num <= 0:
            return
        if self._pending is not None:
            add_state(self._accum, self._pending)
            self._pending = None
        self._num_processed += num

    def _sample_state(self, sample: dict) -> State:
        """Reduce one sample (one image, K expressions) to a state."""
        pred = as_mask(_field(sample, 'pred_masks', 'pred_sem_seg'))
        gt = as_mask(_field(sample, 'gt_masks', 'gt_sem_seg'))
        if pred.shape != gt.shape:
            raise ValueError(f'pred_masks {tuple(pred.shape)} and '
                             f'gt_masks {tuple(gt.shape)} differ; the '
                             'prediction must be at the original size')
        gt = gt.to(pred.device)
        pred = pred.bool()
        if self.ignore_index is not None:
            valid = gt != self.ignore_index
            gt = (gt != 0) & valid
            pred = pred & valid
        else:
            gt = gt.bool()
        num = pred.shape[0]
        inter = (pred & gt).flatten(1).sum(1).tolist()
        union = (pred | gt).flatten(1).sum(1).tolist()
        pred_area = pred.flatten(1).sum(1).cpu().numpy()
        gt_area = gt.flatten(1).sum(1).cpu().numpy()

        gt_nt = sample.get('gt_no_target', sample.get('no_target'))
        gt_nt = _flags(gt_nt, num, 'gt_no_target')
        if gt_nt is None:
            gt_nt = gt_area == 0
        pred_nt = _flags(sample.get('pred_no_target'), num, 'pred_no_target')
        if pred_nt is None:
            pred_nt = pred_area == 0

        state = self._new_state()
        sums = state['sums']
        sums['num_expr'] = num
        sums['I'] = int(sum(inter))
        sums['U'] = int(sum(union))
        lisa = [
            i / (u + LISA_EPS) + (1.0 if u == 0 else 0.0)
            for i, u in zip(inter, union)
        ]
        sums['giou'] = _exact_sum(lisa)
        exact = [i / u if u > 0 else 1.0 for i, u in zip(inter, union)]
        for t in self.pr_thrs:
            sums[f'pr@{t:g}'] = sum(1 for v in exact if v >= t)
        self._add_image_giou(state, sample, lisa)
        self._add_rec(sums, sample, pred, gt, gt_nt)
        self._add_gres(sums, inter, union, gt_nt, pred_nt)
        status = sample.get('parse_status')
        if status is not None:
            if isinstance(status, str):
                status = [status]
            for kind in status:
                state['parse'][kind] = state['parse'].get(kind, 0) + 1
        return state

    def _add_image_giou(self, state: State, sample: dict,
                        lisa: List[float]) -> None:
        if self.giou_mode != 'image' or not lisa:
            return
        key: Optional[Hashable] = sample.get('img_id')
        if key is None:
            key = sample.get('img_path')
        if key is None:
            # Without a key the sample is one image on its own: its mean
            # goes straight into the sums, no per-image entry needed.
            state['sums']['anon_img_giou'] = _exact_sum(lisa) / len(lisa)
            state['sums']['anon_img_num'] = 1
            return
        if isinstance(key, (np.integer, Tensor)):
            key = int(key)
        state['images'][key] = (_exact_sum(lisa), len(lisa))

    def _add_rec(self, sums: dict, sample: dict, pred: Tensor, gt: Tensor,
                 gt_nt: np.ndarray) -> None:
        has_target = ~gt_nt
        if not has_target.any():
            return
        edges = self.rec_box_style == 'coco'
        pred_boxes = mask_boxes(pred, edges=edges)
        gt_boxes = sample.get('gt_bboxes')
        if gt_boxes is None:
            # GT boxes of the datasets are COCO boxes (pixel edges) whatever
            # the style of the predicted box.
            gt_boxes = mask_boxes(gt, edges=True)
        else:
            if isinstance(gt_boxes, Tensor):
                gt_boxes = gt_boxes.cpu().numpy()
            gt_boxes = np.asarray(gt_boxes, dtype=np.float64).reshape(-1, 4)
            if gt_boxes.shape[0] != pred_boxes.shape[0]:
                raise ValueError(f'`gt_bboxes` has {gt_boxes.shape[0]} boxes '
                                 f'for {pred_boxes.shape[0]} expressions')
        if self.rec_box_style == 'mllmseg':
            gt_boxes = gt_boxes.astype(np.float16).astype(np.float64)
        ious = box_iou(pred_boxes[has_target], gt_boxes[has_target])
        if self.rec_iou_rule == '>=':
            hits = ious >= self.rec_iou_thr
        else:
            hits = ious > self.rec_iou_thr
        sums['rec_num'] = int(has_target.sum())
        sums['rec_hits'] = int(hits.sum())

    def _add_gres(self, sums: dict, inter: List[int], union: List[int],
                  gt_nt: np.ndarray, pred_nt: np.ndarray) -> None:
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
            if self.gres_rule == 'rela':
                if p_nt:
                    i = 0
                iou = i / u if u > 0 else 0.0
            else:
                iou = i / (u + MLLMSEG_GRES_EPS)
            sums['gres_I'] += i
            sums['gres_U'] += u
            sums['gres_iou'] += Fraction(iou)
            for t in self.pr_thrs:
                if iou >= t:
                    sums[f'gres_pr@{t:g}'] += 1

    # ------------------------------------------------------------------
    # results
    # ------------------------------------------------------------------
    def compute_from_state(self, state: State) -> Dict[str, float]:
        """Compute the metrics (percent, no prefix) from a merged state.

        Args:
            state (dict): A state, e.g. from :func:`merge_states`.

        Returns:
            OrderedDict[str, float]: ``num_expressions``, ``cIoU``, ``gIoU``,
            ``Pr@t``..., ``Acc@<rec_iou_thr>``; with GRES ``gres_gIoU``,
            ``gres_cIoU``, ``N-acc``, ``T-acc``, ``gres_Pr@t``...; with
            parse statuses ``parse_fail_rate`` and ``parse_fail/<kind>``.
        """
        sums = dict(self._new_state()['sums'], **state['sums'])
        num = sums['num_expr']
        res: Dict[str, float] = OrderedDict()
        res['num_expressions'] = int(num)
        res['cIoU'] = _ratio(sums['I'], sums['U'])
        if self.giou_mode == 'expression':
            res['gIoU'] = _ratio(sums['giou'], num)
        else:
            means = [float(Fraction(s) / n)
                     for s, n in state['images'].values() if n > 0]
            res['gIoU'] = _ratio(
                math.fsum(means) + float(sums['anon_img_giou']),
                len(means) + sums['anon_img_num'])
        for t in self.pr_thrs:
            res[f'Pr@{t:g}'] = _ratio(sums[f'pr@{t:g}'], num)
        res[f'Acc@{self.rec_iou_thr:g}'] = _ratio(sums['rec_hits'],
                                                  sums['rec_num'])
        num_nt = sums['TP'] + sums['FN']
        if self.gres or (self.gres is None and num_nt > 0):
            num_t = sums['TN'] + sums['FP']
            res['gres_gIoU'] = _ratio(sums['gres_iou'], num)
            res['gres_cIoU'] = _ratio(sums['gres_I'], sums['gres_U'])
            res['N-acc'] = _ratio(sums['TP'], num_nt)
            res['T-acc'] = _ratio(sums['TN'], num_t)
            for t in self.pr_thrs:
                res[f'gres_Pr@{t:g}'] = _ratio(sums[f'gres_pr@{t:g}'], num_t)
        parse = state['parse']
        if parse:
            total = sum(parse.values())
            fails = {k: v for k, v in parse.items() if k != 'ok'}
            res['parse_fail_rate'] = _ratio(sum(fails.values()), total)
            for kind in sorted(fails):
                res[f'parse_fail/{kind}'] = int(fails[kind])
        return res

    def compute_metrics(self, results: list) -> Dict[str, float]:
        """Compute the metrics from a list of states (BaseMetric API).

        Args:
            results (list[dict]): States, e.g. one per rank.

        Returns:
            dict: See :meth:`compute_from_state`.
        """
        return self.compute_from_state(merge_states(results))

    def _sync(self, state: State) -> State:
        """All-reduce the sums and gather the small dicts of all ranks."""
        keys = self._sum_keys
        sums = state['sums']
        vec = torch.tensor([float(sums.get(k, 0)) for k in keys],
                           dtype=torch.float64)
        dist.all_reduce(vec, op='sum')
        gathered = dist.all_gather_object(
            dict(parse=state['parse'], images=state['images']))
        merged = merge_states([
            dict(sums={}, parse=g['parse'], images=g['images'])
            for g in gathered
        ])
        merged['sums'] = dict(zip(keys, vec.tolist()))
        return merged

    def evaluate(self, size: int) -> dict:
        """Drop sampler padding, reduce over ranks and compute the metrics.

        Args:
            size (int): Length of the whole dataset.

        Returns:
            dict: Metrics keyed ``<prefix>/<name>`` (see
            :meth:`compute_from_state`), identical on every rank.
        """
        rank, world_size = dist.get_dist_info()
        state = self.local_state(size, rank, world_size)
        if world_size > 1:
            state = self._sync(state)
        if state['sums'].get('num_expr', 0) == 0:
            print_log(
                f'{self.__class__.__name__} saw no expression; check that '
                'the evaluator receives predictions.',
                logger='current',
                level=logging.WARNING)
        metrics = self.compute_from_state(state)
        print_log('\n' + self.format_table(metrics, state), logger='current')
        self.reset()
        if self.prefix:
            metrics = OrderedDict(
                (f'{self.prefix}/{k}', v) for k, v in metrics.items())
        return metrics

    def format_table(self, metrics: Dict[str, float], state: State) -> str:
        """A plain-text table of the metrics, grouped as in the papers.

        Args:
            metrics (dict): Output of :meth:`compute_from_state`.
            state (dict): The merged state (for the GRES confusion counts).

        Returns:
            str: The table.
        """

        def fmt(value: float) -> str:
            return 'n/a' if value != value else f'{value:.2f}'

        res_keys = ['cIoU', 'gIoU'] + [f'Pr@{t:g}' for t in self.pr_thrs]
        res_keys.append(f'Acc@{self.rec_iou_thr:g}')
        rows = [
            ('RES', ['#expr'] + res_keys, [str(metrics['num_expressions'])] +
             [fmt(metrics[k]) for k in res_keys])
        ]
        if 'N-acc' in metrics:
            gres_keys = ['gres_gIoU', 'gres_cIoU', 'N-acc', 'T-acc'
                         ] + [f'gres_Pr@{t:g}' for t in self.pr_thrs]
            counts = ['TP', 'FN', 'FP', 'TN']
            rows.append((f'GRES ({self.gres_rule})',
                         [k.replace('gres_', '') for k in gres_keys] + counts,
                         [fmt(metrics[k]) for k in gres_keys] +
                         [str(int(state['sums'].get(k, 0))) for k in counts]))
        if 'parse_fail_rate' in metrics:
            kinds = [k for k in metrics if k.startswith('parse_fail/')]
            rows.append(('parse', ['fail %'] + [k[11:] for k in kinds],
                         [fmt(metrics['parse_fail_rate'])] +
                         [str(metrics[k]) for k in kinds]))
        lines = []
        for title, header, values in rows:
            widths = [max(len(h), len(v)) for h, v in zip(header, values)]
            sep = '+' + '+'.join('-' * (w + 2) for w in widths) + '+'
            lines += [
                f'{title}:', sep,
                '| ' + ' | '.join(h.rjust(w)
                                  for h, w in zip(header, widths)) + ' |', sep,
                '| ' + ' | '.join(v.rjust(w)
                                  for v, w in zip(values, widths)) + ' |', sep
            ]
        return '\n'.join(lines)
