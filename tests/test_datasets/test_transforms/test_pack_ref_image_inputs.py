# Copyright (c) mmrefseg contributors.
import numpy as np
import pytest
import torch
from mmengine.registry import DefaultScope

from mmrefseg.datasets import RefCOCODataset
from mmrefseg.datasets.transforms import PackRefImageInputs


def test_pack_after_resize_keeps_masks_at_original_size(synthetic_root):
    # The pipeline of projects/mmseg_text_decoder: resize the image before
    # decoding masks, so masks and boxes stay in original pixels.
    pipeline = [
        dict(type='mmrefseg.LoadRefImage'),
        dict(type='Resize', scale=(40, 32), keep_ratio=False),
        dict(type='mmrefseg.LoadRefMasks'),
        dict(type='mmrefseg.PackRefImageInputs'),
    ]
    with DefaultScope.overwrite_default_scope('mmseg'):
        dataset = RefCOCODataset(
            data_root=synthetic_root, dataset_name='synthrefcoco',
            split_by='unc', split='val', test_mode=True,
            data_prefix=dict(img_path='images/synthetic'),
            pipeline=pipeline)
        packed = dataset[0]
    info = dataset.get_data_info(0)
    expr = info['expressions'][0]
    img, sample = packed['inputs'], packed['data_samples']
    assert img.dtype == torch.uint8 and img.shape == (3, 32, 40)
    gt = sample.gt_sem_seg.data
    assert gt.dtype == torch.uint8
    assert gt.shape == (1, info['height'], info['width'])
    assert gt.sum() > 0
    meta = sample.metainfo
    assert meta['texts'] == [expr['text']]
    assert meta['img_shape'] == (32, 40)
    assert meta['ori_shape'] == (info['height'], info['width'])
    np.testing.assert_allclose(meta['gt_bboxes'][0], expr['bbox'], atol=1e-3)
    ys, xs = np.nonzero(gt[0].numpy())
    # The GT box encloses the decoded mask in original coordinates.
    assert xs.min() >= expr['bbox'][0] - 1 and xs.max() <= expr['bbox'][2]
    assert meta['no_target'] == [False]


def test_pack_errors_and_meta_keys():
    img = np.zeros((4, 5, 3), np.uint8)
    with pytest.raises(KeyError, match="'texts'.*x.jpg"):
        PackRefImageInputs()(dict(img=img, img_path='x.jpg'))
    with pytest.raises(KeyError, match="'img'"):
        PackRefImageInputs()(dict(texts=['a'], img_path='x.jpg'))
    out = PackRefImageInputs(meta_keys=('texts', ))(
        dict(img=img, texts=['a'], img_path='x.jpg'))
    assert set(out['data_samples'].metainfo) == {'texts'}
    assert 'gt_sem_seg' not in out['data_samples']
    assert 'PackRefImageInputs' in repr(PackRefImageInputs())
