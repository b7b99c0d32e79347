# Copyright (c) mmrefseg contributors.
"""Referring expression segmentation metrics: RES, GRES and REC from masks.

The metric streams: :meth:`RefSegMetric.process` reduces every sample to a
handful of numbers and adds them to running sums, so memory does not grow
with the split (except in ``giou_mode='image'``, see below). Across ranks the
sums are all-reduced and every rank computes the same result.

The pieces live next door: per-sample reduction (``sample_reduction``), the
gRefCOCO rules (``gres_rules``), REC accuracy (``rec_accuracy``), parse
failures (``parse_status``), the state and its cross-rank reduction
(``metric_state``) and the log table (``metric_table``).
"""
import logging
import math
from collections import OrderedDict
from fractions import Fraction
from typing import Any, Dict, List, Optional, Sequence

from mmengine import dist
from mmengine.evaluator import BaseMetric
from mmengine.logging import print_log
from mmengine.structures import BaseDataElement

from mmrefseg.registry import METRICS
from ..functional import percent
from .gres_rules import MLLMSEG_GRES_EPS, gres_results
from .metric_state import (
    State,
    add_state,
    all_reduce_state,
    empty_state,
    merge_states,
)
from .metric_table import format_metric_table
from .parse_status import parse_results
from .sample_reduction import LISA_EPS, reduce_sample

# Re-exported: the metric's public names stay importable from this module.
__all__ = [
    'RefSegMetric', 'LISA_EPS', 'MLLMSEG_GRES_EPS', 'empty_state',
    'merge_states'
]


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
        state = self._new_state()
        reduce_sample(
            sample, state, ignore_index=self.ignore_index,
            pr_thrs=self.pr_thrs, giou_mode=self.giou_mode,
            rec_box_style=self.rec_box_style,
            rec_iou_rule=self.rec_iou_rule, rec_iou_thr=self.rec_iou_thr,
            gres_rule=self.gres_rule)
        return state

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
        res['cIoU'] = percent(sums['I'], sums['U'])
        if self.giou_mode == 'expression':
            res['gIoU'] = percent(sums['giou'], num)
        else:
            means = [float(Fraction(s) / n)
                     for s, n in state['images'].values() if n > 0]
            res['gIoU'] = percent(
                math.fsum(means) + float(sums['anon_img_giou']),
                len(means) + sums['anon_img_num'])
        for t in self.pr_thrs:
            res[f'Pr@{t:g}'] = percent(sums[f'pr@{t:g}'], num)
        res[f'Acc@{self.rec_iou_thr:g}'] = percent(sums['rec_hits'],
                                                   sums['rec_num'])
        num_nt = sums['TP'] + sums['FN']
        if self.gres or (self.gres is None and num_nt > 0):
            res.update(gres_results(sums, self.pr_thrs))
        res.update(parse_results(state['parse']))
        return res

    def compute_metrics(self, results: list) -> Dict[str, float]:
        """Compute the metrics from a list of states (BaseMetric API).

        Args:
            results (list[dict]): States, e.g. one per rank.

        Returns:
            dict: See :meth:`compute_from_state`.
        """
        return self.compute_from_state(merge_states(results))

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
            state = all_reduce_state(state, self._sum_keys)
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
        return format_metric_table(metrics, state['sums'], self.pr_thrs,
                                   self.rec_iou_thr, self.gres_rule)
