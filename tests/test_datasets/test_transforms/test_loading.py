# Copyright (c) mmrefseg contributors.
import cv2
import numpy as np
import pytest
from mmengine.registry import DefaultScope

from mmrefseg.datasets.transforms import LoadRefImage, LoadRefMasks
from mmrefseg.registry import TRANSFORMS


def _sample(path, h=6, w=8, expressions=None):
    return dict(
        img_path=str(path),
        img_id=5,
        height=h,
        width=w,
        expressions=expressions or [dict(ref_id=9, sent_id=1)])


def test_load_ref_image_rgb(tmp_path):
    bgr = np.zeros((6, 8, 3), np.uint8)
    bgr[..., 2] = 255  # red in OpenCV's BGR order
    cv2.imwrite(str(tmp_path / 'a.png'), bgr)
    out = LoadRefImage()(_sample(tmp_path / 'a.png'))
    assert out['img'].dtype == np.uint8 and out['img'].shape == (6, 8, 3)
    assert (out['img'][..., 0] == 255).all() and out['img'][..., 2].max() == 0
    assert out['img_shape'] == out['ori_shape'] == (6, 8)
    with DefaultScope.overwrite_default_scope('mmrefseg'):
        t = TRANSFORMS.build(dict(type='LoadRefImage', check_size=False))
    assert 'check_size=False' in repr(t) and 'LoadRefImage' in repr(t)


def test_load_ref_image_errors(tmp_path):
    with pytest.raises(FileNotFoundError) as err:
        LoadRefImage()(_sample(tmp_path / 'missing.jpg'))
    assert 'missing.jpg' in str(err.value)
    assert 'img_id=5' in str(err.value) and 'ref_ids=[9]' in str(err.value)
    (tmp_path / 'bad.jpg').write_bytes(b'\xff\xd8 definitely not a jpeg')
    with pytest.raises(ValueError) as err:
        LoadRefImage()(_sample(tmp_path / 'bad.jpg'))
    assert 'bad.jpg' in str(err.value) and 'img_id=5' in str(err.value)
    cv2.imwrite(str(tmp_path / 'small.png'), np.zeros((4, 4, 3), np.uint8))
    with pytest.raises(ValueError, match='4x4'):
        LoadRefImage()(_sample(tmp_path / 'small.png'))


def test_load_ref_masks():
    h, w = 10, 12
    exprs = [
        dict(
            text='a',
            ref_id=1,
            sent_id=10,
            ann_ids=[3],
            no_target=False,
            bbox=[1, 1, 5, 5],
            segmentations=[[[1, 1, 5, 1, 5, 5, 1, 5]]]),
        dict(
            text='none',
            ref_id=2,
            sent_id=11,
            ann_ids=[],
            no_target=True,
            bbox=[0, 0, 0, 0],
            segmentations=[]),
        dict(
            text='both',
            ref_id=3,
            sent_id=12,
            ann_ids=[3, 4],
            no_target=False,
            bbox=[1, 1, 11, 9],
            segmentations=[[[1, 1, 5, 1, 5, 5, 1, 5]],
                           [[7, 6, 11, 6, 11, 9, 7, 9]]]),
    ]
    out = LoadRefMasks()(
        dict(img_path='x.jpg', height=h, width=w, expressions=exprs))
    masks = out['gt_masks']
    assert masks.shape == (3, h, w) and masks.dtype == np.uint8
    assert set(np.unique(masks)) == {0, 1}
    assert masks[1].sum() == 0 and masks[0].sum() > 0
    assert (masks[2] >= masks[0]).all() and masks[2].sum() > masks[0].sum()
    assert out['gt_bboxes'].dtype == np.float32
    assert out['gt_bboxes'].shape == (3, 4)
    assert out['no_target'].tolist() == [False, True, False]
    assert out['no_target'].dtype == bool
    assert out['texts'] == ['a', 'none', 'both']
    assert out['ref_ids'] == [1, 2, 3] and out['sent_ids'] == [10, 11, 12]
    assert repr(LoadRefMasks()) == 'LoadRefMasks()'
    bad = dict(
        img_path='x.jpg',
        height=h,
        width=w,
        expressions=[
            dict(exprs[0], segmentations=[{
                'size': [1, 1],
                'counts': [1]
            }])
        ])
    with pytest.raises(ValueError, match='ref_id=1'):
        LoadRefMasks()(bad)


def test_a_given_image_is_kept_and_checked():
    img = np.random.RandomState(0).randint(0, 256, (5, 7, 3), np.uint8)
    out = LoadRefImage()(dict(img=img, expressions=[dict(text='a')]))
    assert np.array_equal(out['img'], img)
    assert out['img_shape'] == out['ori_shape'] == (5, 7)
    for bad in (img[..., 0], img.astype(np.float32), img[..., :2]):
        with pytest.raises(ValueError, match='H x W x 3 uint8'):
            LoadRefImage()(dict(img=bad, expressions=[]))


def test_expressions_without_annotations_give_texts_only():
    out = LoadRefMasks()(dict(ori_shape=(5, 7), expressions=[
        dict(text='the red circle'), dict(text='a star')]))
    assert out['texts'] == ['the red circle', 'a star']
    assert out['ref_ids'] == [None, None]
    assert not {'gt_masks', 'gt_bboxes', 'no_target'} & set(out)
    with pytest.raises(ValueError, match='either all or none'):
        LoadRefMasks()(dict(img_path='x.jpg', ori_shape=(5, 7), expressions=[
            dict(text='a', segmentations=[], bbox=[0, 0, 0, 0],
                 no_target=True), dict(text='b')]))
