# Copyright (c) mmrefseg contributors.
"""RefSegMetric on hand-made masks; every expected number is worked out by
hand in the comments next to it."""
import math
import os.path as osp
from typing import List

import numpy as np
import pytest
import torch

from mmrefseg.evaluation.metrics.refseg_metric import (
    LISA_EPS,
    MLLMSEG_GRES_EPS,
    RefSegMetric,
    merge_states,
)

EPS = LISA_EPS
H = W = 4


def box(y0: int,
        y1: int,
        x0: int,
        x1: int,
        h: int = H,
        w: int = W) -> torch.Tensor:
    """A [h, w] bool mask with rows y0:y1 and columns x0:x1 set."""
    mask = torch.zeros(h, w, dtype=torch.bool)
    mask[y0:y1, x0:x1] = True
    return mask


EMPTY = box(0, 0, 0, 0)


def sample(preds: List[torch.Tensor], gts: List[torch.Tensor], **meta) -> dict:
    """The dict ``SegDataSample.to_dict()`` would give."""
    return dict(
        pred_sem_seg=dict(data=torch.stack(preds).to(torch.uint8)),
        gt_sem_seg=dict(data=torch.stack(gts).to(torch.uint8)),
        **meta)


def run(metric: RefSegMetric, samples: List[dict]) -> dict:
    metric.process({}, samples)
    return metric.compute_from_state(metric.local_state(len(samples), 0, 1))


def res_samples() -> List[dict]:
    """Four expressions over two images (4x4).

    img 1, expr a: GT rows 0-1 x cols 0-1 (4 px), pred rows 0-1 x cols 0-2
        (6 px): I=4, U=6, IoU 2/3.
    img 1, expr b: GT rows 2-3 x cols 2-3 (4 px), pred empty: I=0, U=4.
    img 2, expr c: GT empty, pred empty: I=0, U=0 (LISA IoU 1).
    img 2, expr d: GT everything (16 px), pred rows 0-1 (8 px): I=8, U=16.
    """
    return [
        sample([box(0, 2, 0, 3), EMPTY],
               [box(0, 2, 0, 2), box(2, 4, 2, 4)],
               img_id=1),
        sample([EMPTY], [EMPTY], img_id=2),
        sample([box(0, 2, 0, 4)], [box(0, 4, 0, 4)], img_id=2),
    ]


def test_res_ciou_giou_pr():
    out = run(RefSegMetric(gres=False), res_samples())
    assert out['num_expressions'] == 4
    # cIoU = (4 + 0 + 0 + 8) / (6 + 4 + 0 + 16) = 12 / 26
    assert out['cIoU'] == pytest.approx(100 * 12 / 26)
    # gIoU = mean(4/(6+eps), 0/(4+eps), 0/(0+eps) + 1, 8/(16+eps))
    giou = (4 / (6 + EPS) + 0 + 1 + 8 / (16 + EPS)) / 4
    assert out['gIoU'] == pytest.approx(100 * giou, abs=1e-9)
    # exact IoUs 2/3, 0, 1 (empty/empty), 1/2
    assert out['Pr@0.5'] == pytest.approx(75.0)  # 2/3, 1, 1/2
    assert out['Pr@0.6'] == pytest.approx(50.0)  # 2/3, 1
    assert out['Pr@0.7'] == pytest.approx(25.0)  # 1
    assert out['Pr@0.9'] == pytest.approx(25.0)
    assert 'N-acc' not in out


def test_giou_image_mode():
    out = run(RefSegMetric(giou_mode='image', gres=False), res_samples())
    img1 = (4 / (6 + EPS) + 0) / 2
    img2 = (1 + 8 / (16 + EPS)) / 2  # expressions c and d, two samples
    assert out['gIoU'] == pytest.approx(100 * (img1 + img2) / 2, abs=1e-9)
    # cIoU is unaffected by the grouping
    assert out['cIoU'] == pytest.approx(100 * 12 / 26)


def test_giou_image_mode_without_keys():
    samples = res_samples()
    for s in samples:
        del s['img_id']
    out = run(RefSegMetric(giou_mode='image', gres=False), samples)
    # each sample is its own image: img1, (c), (d)
    means = [(4 / (6 + EPS)) / 2, 1.0, 8 / (16 + EPS)]
    assert out['gIoU'] == pytest.approx(100 * sum(means) / 3, abs=1e-9)


@pytest.mark.parametrize(
    'style,rule,hits',
    [
        # target expressions a, b, d (c has no target, skipped)
        # coco: a pred [0,0,3,2] vs GT [0,0,2,2]: 4/6 hit; b empty pred: 0;
        #       d pred [0,0,4,2] vs GT [0,0,4,4]: 8/16 = 0.5
        ('coco', '>=', 2),
        ('coco', '>', 1),
        # mllmseg: a pred [0,0,2,1] (area 2) inside GT [0,0,2,2] (area 4):
        #          2/4 = 0.5; d pred [0,0,3,1] (area 3) vs 16: 3/16
        ('mllmseg', '>=', 1),
        ('mllmseg', '>', 0),
    ])
def test_rec_box_styles_and_rules(style, rule, hits):
    metric = RefSegMetric(gres=False, rec_box_style=style, rec_iou_rule=rule)
    out = run(metric, res_samples())
    assert out['Acc@0.5'] == pytest.approx(100 * hits / 3)


def test_rec_given_gt_boxes_and_fp16():
    # pred rows 0-1 x cols 0-4 -> mllmseg box [0,0,4,1], area 4 (inside GT)
    # GT box [0,0,4,1.9999]: area 7.9996, IoU 4/7.9996 = 0.500025 > 0.5,
    # but float16(1.9999) == 2.0 -> area 8, IoU exactly 0.5: not > 0.5.
    assert float(np.float16(1.9999)) == 2.0
    pred, gt = box(0, 2, 0, 5, 4, 8), box(0, 2, 0, 4, 4, 8)
    s = [sample([pred], [gt], gt_bboxes=[[0., 0., 4., 1.9999]])]
    out = run(RefSegMetric(rec_box_style='mllmseg', rec_iou_rule='>'), s)
    assert out['Acc@0.5'] == 0.0
    s = [sample([pred], [gt], gt_bboxes=[[0., 0., 4., 1.9999]])]
    out = run(RefSegMetric(rec_box_style='mllmseg', rec_iou_rule='>='), s)
    assert out['Acc@0.5'] == 100.0
    # coco: pred [0,0,5,2] area 10, inter 4*1.9999 = 7.9996: IoU 0.79996
    s = [sample([pred], [gt], gt_bboxes=np.array([[0., 0., 4., 1.9999]]))]
    out = run(RefSegMetric(rec_iou_thr=0.8), s)
    assert out['Acc@0.8'] == 0.0
    s = [sample([pred], [gt], gt_bboxes=torch.tensor([[0., 0., 4., 1.9999]]))]
    out = run(RefSegMetric(rec_iou_thr=0.79), s)
    assert out['Acc@0.79'] == 100.0


def gres_samples(flags: bool = True) -> List[dict]:
    """Five expressions covering the four GRES cases (4x4 masks).

    e1 TP: no target, predicted no target, pred empty.
    e2 FN: no target, predicted target, pred 3 px: U=3.
    e3 FP: target GT rows 0-1 x cols 0-1 (4 px), predicted no target but
        its mask rows 0-1 x cols 0-2 (6 px) is kept: I=4, U=6.
    e4 TN: GT rows 0-1 (8 px), pred rows 0-2 (12 px): I=8, U=12.
    e5 TN: GT = pred = rows 2-3 x cols 2-3: I=U=4.
    """
    masks = [(EMPTY, EMPTY, True, True), (box(3, 4, 0, 3), EMPTY, True, False),
             (box(0, 2, 0, 3), box(0, 2, 0, 2), False, True),
             (box(0, 3, 0, 4), box(0, 2, 0, 4), False, False),
             (box(2, 4, 2, 4), box(2, 4, 2, 4), False, False)]
    out = []
    for pred, gt, gt_nt, pred_nt in masks:
        meta = dict(no_target=[gt_nt], pred_no_target=[pred_nt])
        out.append(sample([pred], [gt], **(meta if flags else {})))
    return out


def test_gres_rela():
    metric = RefSegMetric(gres_rule='rela')
    metric.process({}, gres_samples())
    state = metric.local_state(5, 0, 1)
    assert [state['sums'][k] for k in ('TP', 'FN', 'FP', 'TN')] == [1, 1, 1, 2]
    out = metric.compute_from_state(state)
    # IoUs: TP 1, FN 0, FP 0 (I zeroed), 8/12, 4/4 -> (1 + 2/3 + 1) / 5
    assert out['gres_gIoU'] == pytest.approx(100 * (8 / 3) / 5)
    # I = 0 + 0 + 0 + 8 + 4 = 12; U = 0 + 3 + 6 + 12 + 4 = 25
    assert out['gres_cIoU'] == pytest.approx(100 * 12 / 25)
    assert out['N-acc'] == pytest.approx(50.0)  # TP/(TP+FN) = 1/2
    assert out['T-acc'] == pytest.approx(100 * 2 / 3)  # TN/(TN+FP) = 2/3
    # over the 3 target expressions: IoUs 0, 2/3, 1
    assert out['gres_Pr@0.5'] == pytest.approx(100 * 2 / 3)
    assert out['gres_Pr@0.7'] == pytest.approx(100 / 3)
    # classic metrics ignore the no-target decisions: I=16, U=25
    assert out['cIoU'] == pytest.approx(100 * 16 / 25)


def test_gres_mllmseg_keeps_fp_mask():
    out = run(RefSegMetric(gres_rule='mllmseg'), gres_samples())
    e = MLLMSEG_GRES_EPS
    giou = (1 + 0 + 4 / (6 + e) + 8 / (12 + e) + 4 / (4 + e)) / 5
    assert out['gres_gIoU'] == pytest.approx(100 * giou, abs=1e-9)
    # FP keeps I: I = 4 + 8 + 4 = 16, U = 3 + 6 + 12 + 4 = 25
    assert out['gres_cIoU'] == pytest.approx(100 * 16 / 25)
    assert out['N-acc'] == pytest.approx(50.0)
    assert out['T-acc'] == pytest.approx(100 * 2 / 3)


def test_gres_default_flags_from_masks():
    # Without flags: gt_nt = GT empty, pred_nt = pred empty, so e3 (mask
    # kept) becomes TN: TP e1, FN e2, TN e3, e4, e5.
    out = run(RefSegMetric(), gres_samples(flags=False))
    assert out['N-acc'] == pytest.approx(50.0)
    assert out['T-acc'] == pytest.approx(100.0)
    # IoUs 1, 0, 4/6, 8/12, 1; I = 16, U = 25
    assert out['gres_gIoU'] == pytest.approx(100 * (1 + 2 / 3 + 2 / 3 + 1) / 5)
    assert out['gres_cIoU'] == pytest.approx(64.0)


def test_gres_switch():
    out = run(RefSegMetric(gres=False), gres_samples())
    assert 'N-acc' not in out
    out = run(RefSegMetric(gres=True), [res_samples()[0]])
    assert math.isnan(out['N-acc'])  # no no-target expression
    # default pred_nt = empty pred: expr a is TN, expr b (empty pred) FP
    assert out['T-acc'] == pytest.approx(50.0)


def test_parse_failures():
    statuses = ['ok', 'no_mask_tokens', 'ok', 'bad_rle', 'bad_rle']
    samples = gres_samples()
    for s, status in zip(samples, statuses):
        s['parse_status'] = [status]
    out = run(RefSegMetric(), samples)
    assert out['parse_fail_rate'] == pytest.approx(60.0)  # 3 of 5
    assert out['parse_fail/bad_rle'] == 2
    assert out['parse_fail/no_mask_tokens'] == 1
    assert 'parse_fail/ok' not in out
    assert 'parse_fail_rate' not in run(RefSegMetric(), gres_samples())


def test_ignore_index():
    gt = box(0, 2, 0, 2).to(torch.uint8)
    gt[3] = 255  # bottom row ignored
    pred = box(0, 4, 0, 2)  # 8 px, 2 of them on ignored pixels
    s = dict(
        pred_sem_seg=dict(data=pred[None]), gt_sem_seg=dict(data=gt[None]))
    out = run(RefSegMetric(), [s])
    assert out['cIoU'] == pytest.approx(100 * 4 / 6)  # I=4, U=6 (not 8)


def padded_run(samples: List[dict], world_size: int,
               **cfg) -> List[RefSegMetric]:
    """Feed each rank what DefaultSampler gives it (shuffle=False)."""
    size = len(samples)
    total = math.ceil(size / world_size) * world_size
    indices = list(range(size)) + list(range(total - size))  # wrap padding
    metrics = []
    for rank in range(world_size):
        metric = RefSegMetric(**cfg)
        # batches of 2 to check that positions count samples, not batches
        mine = [samples[i] for i in indices[rank:total:world_size]]
        for b in range(0, len(mine), 2):
            metric.process({}, mine[b:b + 2])
        metrics.append(metric)
    return metrics


@pytest.mark.parametrize('cfg', [dict(), dict(giou_mode='image')])
def test_simulated_two_ranks_drop_padding(cfg):
    samples = res_samples() + gres_samples()  # 8 samples
    for i, s in enumerate(samples):
        s['img_id'] = i // 3  # images split across ranks
        s['parse_status'] = ['ok' if i % 3 else 'bad']
    samples = samples[:7]  # odd size: rank 1 gets a padded duplicate
    single = RefSegMetric(**cfg)
    single.process({}, samples)
    expected = single.compute_from_state(single.local_state(7, 0, 1))

    ranks = padded_run(samples, 2, **cfg)
    assert [m._num_processed for m in ranks] == [4, 4]
    states = [m.local_state(7, r, 2) for r, m in enumerate(ranks)]
    merged = ranks[0].compute_from_state(merge_states(states))
    assert merged == pytest.approx(expected, nan_ok=True)
    # keeping the padded duplicate (sample 0 again) changes the result
    naive = [m.local_state(8, r, 2) for r, m in enumerate(ranks)]
    wrong = ranks[0].compute_from_state(merge_states(naive))
    assert wrong['num_expressions'] == expected['num_expressions'] + 2
    # compute_metrics (BaseMetric API) merges a list of states too
    assert ranks[0].compute_metrics(states) == pytest.approx(
        expected, nan_ok=True)


def test_evaluate_prefix_reset_and_segdatasample():
    from mmengine.evaluator import Evaluator
    from mmengine.registry import DefaultScope
    from mmengine.structures import PixelData
    from mmseg.structures import SegDataSample

    def to_sds(s: dict) -> SegDataSample:
        meta = {k: v for k, v in s.items() if not k.endswith('sem_seg')}
        sds = SegDataSample(metainfo=meta)
        sds.pred_sem_seg = PixelData(data=s['pred_sem_seg']['data'])
        sds.gt_sem_seg = PixelData(data=s['gt_sem_seg']['data'])
        return sds

    # as a config would build it: default scope 'mmrefseg'
    with DefaultScope.overwrite_default_scope('mmrefseg'):
        evaluator = Evaluator(dict(type='RefSegMetric', gres=False))
    evaluator.process([to_sds(s) for s in res_samples()])
    out = evaluator.evaluate(3)
    assert out['refseg/cIoU'] == pytest.approx(100 * 12 / 26)
    assert out['refseg/Acc@0.5'] == pytest.approx(100 * 2 / 3)
    metric = evaluator.metrics[0]
    assert metric._pending is None and metric._accum['sums']['I'] == 0
    table = metric.format_table(
        metric.compute_from_state(merge_states([])), merge_states([]))
    assert 'n/a' in table and 'cIoU' in table


def _dist_worker(rank: int, world_size: int, init_file: str,
                 samples: List[dict], queue) -> None:
    import torch.distributed as tdist
    tdist.init_process_group(
        'gloo',
        init_method=f'file://{init_file}',
        rank=rank,
        world_size=world_size)
    try:
        size = len(samples)
        total = math.ceil(size / world_size) * world_size
        indices = list(range(size)) + list(range(total - size))
        metric = RefSegMetric(giou_mode='image', prefix='x')
        metric.process({},
                       [samples[i] for i in indices[rank:total:world_size]])
        queue.put((rank, dict(metric.evaluate(size))))
    finally:
        tdist.destroy_process_group()


def test_real_two_process_gloo(tmp_path):
    import torch.multiprocessing as mp
    samples = (res_samples() + gres_samples())[:7]
    for i, s in enumerate(samples):
        s['img_id'] = i // 3
        s['parse_status'] = ['ok' if i % 3 else 'bad']
    single = RefSegMetric(giou_mode='image', prefix='x')
    single.process({}, samples)
    expected = single.evaluate(7)

    ctx = mp.get_context('spawn')
    queue = ctx.Queue()
    init_file = osp.join(str(tmp_path), 'dist_init')
    procs = [
        ctx.Process(
            target=_dist_worker, args=(r, 2, init_file, samples, queue))
        for r in range(2)
    ]
    for p in procs:
        p.start()
    results = dict(queue.get(timeout=120) for _ in procs)
    for p in procs:
        p.join(timeout=60)
    assert all(p.exitcode == 0 for p in procs)
    for rank in range(2):
        assert results[rank] == pytest.approx(expected, nan_ok=True)


def test_invalid_options_and_shapes():
    with pytest.raises(ValueError):
        RefSegMetric(giou_mode='sample')
    with pytest.raises(ValueError):
        RefSegMetric(rec_iou_rule='>>')
    metric = RefSegMetric()
    bad = dict(
        pred_sem_seg=dict(data=torch.zeros(1, 4, 4)),
        gt_sem_seg=dict(data=torch.zeros(1, 4, 5)))
    with pytest.raises(ValueError, match='original size'):
        metric.process({}, [bad])
    bad = sample([EMPTY], [EMPTY], no_target=[True, False])
    with pytest.raises(ValueError, match='no_target'):
        metric.process({}, [bad])


@pytest.mark.parametrize('cfg', [
    dict(), dict(giou_mode='image'), dict(gres=True),
    dict(gres=True, gres_rule='mllmseg')
])
def test_grouping_by_image_gives_the_same_numbers_to_the_last_digit(cfg):
    """Per-expression samples and the same expressions grouped K per image
    (test_grouping='image') sum the same IoUs: every metric is equal, not
    only close (float sums would depend on the grouping)."""
    rng = np.random.RandomState(0)
    h, w = 13, 17
    images = []
    for img_id in range(12):
        k = int(rng.randint(1, 8))
        preds = [torch.from_numpy(rng.rand(h, w) > rng.rand()) for _ in
                 range(k)]
        gts = [torch.from_numpy(rng.rand(h, w) > rng.rand() * 1.2) for _ in
               range(k)]
        images.append((img_id, preds, gts))
    grouped = [sample(p, g, img_id=i) for i, p, g in images]
    single = [sample([p], [g], img_id=i) for i, ps, gs in images
              for p, g in zip(ps, gs)]
    assert len(single) > len(grouped)
    by_image = run(RefSegMetric(**cfg), grouped)
    by_expr = run(RefSegMetric(**cfg), single)
    assert by_image == by_expr
    # Reversed order too.
    assert run(RefSegMetric(**cfg), single[::-1]) == by_expr
