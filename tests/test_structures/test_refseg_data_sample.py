# Copyright (c) mmrefseg contributors.
"""RefSegDataSample: typed per-expression fields, packing, metric input."""
import numpy as np
import pytest
import torch
from mmseg.structures import SegDataSample

from mmrefseg.datasets.transforms import PackRefSegInputs
from mmrefseg.evaluation.metrics import RefSegMetric
from mmrefseg.structures import RefSegDataSample


def test_fields_are_typed_and_travel():
    sample = RefSegDataSample(metainfo=dict(img_id=3))
    assert isinstance(sample, SegDataSample)
    assert sample.num_expressions == 0
    sample.texts = ('a', 'b')
    sample.gt_masks = torch.zeros(2, 4, 5, dtype=torch.uint8)
    sample.gt_no_target = [True, False]
    assert sample.texts == ['a', 'b'] and sample.num_expressions == 2
    assert sample.gt_no_target.dtype == torch.bool
    assert 'texts' in sample and 'pred_masks' not in sample
    moved = sample.to('cpu')
    assert moved.texts == ['a', 'b']
    assert torch.equal(moved.gt_masks, sample.gt_masks)
    keys = set(sample.to_dict())
    assert {'texts', 'gt_masks', 'gt_no_target', 'img_id'} <= keys
    assert not any(k.startswith('_') for k in keys)


def test_pack_writes_typed_fields_and_the_template_seed():
    results = dict(
        pixel_values=np.zeros((1, 3, 4, 4), np.float32),
        img=np.zeros((5, 7, 3), np.uint8), img_path='x.jpg',
        texts=['a', 'b'], gt_masks=np.ones((2, 5, 7), np.uint8),
        gt_bboxes=np.zeros((2, 4), np.float32),
        no_target=np.array([False, True]), num_tiles=1, tile_grid=(1, 1))
    np.random.seed(3)
    packed = PackRefSegInputs()(dict(results))
    sample = packed['data_samples']
    assert sample.texts == ['a', 'b']
    assert sample.gt_masks.shape == (2, 5, 7)
    assert sample.gt_masks.dtype == torch.uint8
    assert sample.gt_bboxes.shape == (2, 4)
    assert sample.gt_no_target.tolist() == [False, True]
    assert packed['inputs']['image'].shape == (5, 7, 3)
    np.random.seed(3)
    assert sample.metainfo['template_seed'] == np.random.randint(2**31)
    # A pipeline-written answer (Text4Seg) needs no template draw.
    text4seg = PackRefSegInputs()(dict(results, question='q', answer='a'))
    assert 'template_seed' not in text4seg['data_samples'].metainfo
    # No annotations: texts from the expressions, no GT fields.
    bare = PackRefSegInputs()(dict(
        pixel_values=results['pixel_values'], img=results['img'],
        expressions=[dict(text='the star')]))['data_samples']
    assert bare.texts == ['the star'] and 'gt_masks' not in bare


def test_metric_reads_the_typed_fields():
    gt = torch.zeros(2, 4, 4, dtype=torch.uint8)
    gt[0, :2, :2] = 1
    pred = torch.zeros(2, 4, 4, dtype=torch.bool)
    pred[0, :2, :] = True  # I = 4, U = 8
    sample = RefSegDataSample(metainfo=dict(img_id=1))
    sample.texts = ['a', 'b']
    sample.gt_masks = gt
    sample.gt_no_target = [False, True]
    sample.pred_masks = pred
    sample.pred_no_target = [False, True]
    metric = RefSegMetric(gres=True)
    metric.process({}, [sample.to_dict()])
    state = metric.local_state(size=1, rank=0, world_size=1)
    assert state['sums']['I'] == 4 and state['sums']['U'] == 8
    assert state['sums']['TP'] == 1 and state['sums']['TN'] == 1
    # The same numbers from a plain SegDataSample's K channels.
    from mmengine.structures import PixelData
    plain = SegDataSample(metainfo=dict(img_id=1, no_target=[False, True],
                                        pred_no_target=[False, True]))
    plain.gt_sem_seg = PixelData(data=gt)
    plain.pred_sem_seg = PixelData(data=pred.to(torch.uint8))
    other = RefSegMetric(gres=True)
    other.process({}, [plain.to_dict()])
    assert other.local_state(size=1, rank=0, world_size=1)['sums'] == \
        state['sums']
    with pytest.raises(KeyError, match='pred_masks'):
        RefSegMetric().process({}, [dict(gt_masks=gt)])
