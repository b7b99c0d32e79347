# Copyright (c) mmrefseg contributors.
"""RefSegJsonlDataset: REFER round trip, PNG/RLE/box targets, mixing."""
import json
import os.path as osp

import cv2
import numpy as np
import pytest

from mmrefseg.datasets import RefSegJsonlDataset
from mmrefseg.datasets.refseg_format import (
    RefSegFormatError,
    dump_refseg_jsonl,
    refer_to_records,
)
from mmrefseg.datasets.transforms import LoadRefMasks
from mmrefseg.registry import DATASETS

IMG_PREFIX = 'images/synthetic'


def _convert(root: str, out: str, grefer: bool = False) -> str:
    folder = 'grefcoco' if grefer else 'synthrefcoco'
    refs = 'grefs(unc).json' if grefer else 'refs(unc).p'
    dump_refseg_jsonl(
        refer_to_records(osp.join(root, folder, refs),
                         osp.join(root, folder, 'instances.json'),
                         img_prefix=IMG_PREFIX), out)
    return out


def _without_record_id(info: dict) -> dict:
    info = dict(info)
    info['expressions'] = [{k: v for k, v in e.items() if k != 'record_id'}
                           for e in info['expressions']]
    return info


@pytest.mark.parametrize('grefer', [False, True])
@pytest.mark.parametrize('split,test_mode,grouping,packing', [
    ('val', True, 'expression', 1),
    ('testB', True, 'image', 1),
    ('train', False, 'expression', 1),
    ('train', False, 'expression', 3),
])
def test_refer_round_trip_gives_the_same_samples(synthetic_root, tmp_path,
                                                 grefer, split, test_mode,
                                                 grouping, packing):
    out = _convert(synthetic_root, str(tmp_path / 'synth.jsonl'), grefer)
    common = dict(data_root=synthetic_root, split=split, test_mode=test_mode,
                  test_grouping=grouping, max_expressions_per_sample=packing,
                  seed=3)
    if grefer:
        refer = DATASETS.build(dict(
            type='GRefCOCODataset', data_prefix=dict(img_path=IMG_PREFIX),
            **common))
    else:
        refer = DATASETS.build(dict(
            type='RefCOCODataset', dataset_name='synthrefcoco',
            data_prefix=dict(img_path=IMG_PREFIX), **common))
    name = refer.dataset_name
    ours = RefSegJsonlDataset(ann_file=out, dataset_name=name, **common)
    assert len(ours) == len(refer) > 0
    masks = LoadRefMasks()
    kinds = set()
    for i in range(len(refer)):
        a, b = refer.get_data_info(i), ours.get_data_info(i)
        assert _without_record_id(b) == a
        assert [e['record_id'] for e in b['expressions']] == [
            e['ref_id'] for e in a['expressions']]
        ma, mb = masks(dict(a)), masks(dict(b))
        np.testing.assert_array_equal(ma['gt_masks'], mb['gt_masks'])
        np.testing.assert_array_equal(ma['gt_bboxes'], mb['gt_bboxes'])
        kinds.update(len(e['ann_ids']) for e in b['expressions'])
    if grefer and test_mode:
        assert 0 in kinds and max(kinds) > 1  # no- and multi-target


def _write(tmp_path, records, name='data.jsonl') -> str:
    path = tmp_path / name
    with open(path, 'w') as f:
        for r in records:
            f.write((r if isinstance(r, str) else json.dumps(r)) + '\n')
    return str(path)


@pytest.fixture
def own_data(tmp_path):
    """Two images, PNG / label-map / RLE / polygon / box / no targets."""
    (tmp_path / 'img').mkdir()
    (tmp_path / 'png').mkdir()
    img = np.full((20, 30, 3), 90, np.uint8)
    cv2.imwrite(str(tmp_path / 'img' / 'a.png'), img)
    cv2.imwrite(str(tmp_path / 'img' / 'b.png'), img[:10])
    mask = np.zeros((20, 30), np.uint8)
    mask[2:6, 3:9] = 255
    cv2.imwrite(str(tmp_path / 'png' / 'a_obj.png'), mask)
    labels = np.zeros((20, 30), np.uint8)
    labels[10:12, 0:4], labels[15:20, 20:30] = 1, 2
    cv2.imwrite(str(tmp_path / 'png' / 'a_labels.png'), labels)
    rle = dict(size=[10, 30], counts=[5, 5, 290])  # column 0, rows 5-9
    records = [
        dict(id='png', image='a.png', split='train',
             phrases=['the box', 'that thing'],
             targets=[dict(mask='a_obj.png')]),
        dict(id='labels', image='a.png', split='train', phrases=['two'],
             targets=[dict(mask='a_labels.png', value=2),
                      dict(polygons=[[0, 0, 4, 0, 4, 4, 0, 4]], id=77)]),
        dict(id=9, image='b.png', height=10, width=30, image_id=5,
             split='val', phrases=['the stick'], targets=[dict(rle=rle)]),
        dict(id='none', image='b.png', split='val', phrases=['a zebra'],
             targets=[]),
        dict(id='boxed', image='b.png', split='val', phrases=['boxed'],
             targets=[dict(box=[1, 2, 5, 6])]),
    ]
    return str(tmp_path), _write(tmp_path, records)


def _build(root, ann, **kw):
    kw.setdefault('test_mode', True)
    return RefSegJsonlDataset(ann_file=ann, data_root=root,
                              data_prefix=dict(img_path='img',
                                               mask_path='png'), **kw)


def test_targets_of_every_kind_decode(own_data):
    root, ann = own_data
    ds = _build(root, ann)
    assert len(ds) == 5  # box-only record skipped
    samples = [LoadRefMasks()(ds.get_data_info(i)) for i in range(len(ds))]
    png, png2, labels, rle, none = samples
    assert png2['texts'] == ['that thing']
    assert png['texts'] == ['the box'] and png['img_id'] == 6
    assert png['gt_masks'][0].sum() == 24 and png['gt_masks'][0, 2, 3] == 1
    # The box of a PNG target is its tight box, found when fetched.
    assert png['gt_bboxes'][0].tolist() == [3, 2, 9, 6]
    assert png['expressions'][0]['record_id'] == 'png'
    assert png['expressions'][0]['ref_id'] == 1  # line number (str id)
    # Label-map value 2 (not 1) united with the polygon.
    assert labels['gt_masks'][0].sum() == 50 + 16
    assert labels['expressions'][0]['ann_ids'] == [2, 77]
    assert labels['gt_bboxes'][0].tolist() == [0, 0, 30, 20]
    assert rle['img_id'] == 5 and rle['expressions'][0]['ref_id'] == 9
    assert rle['gt_masks'][0][:, 0].tolist() == [0] * 5 + [1] * 5
    assert none['no_target'].tolist() == [True]
    assert not none['gt_masks'].any()
    assert none['gt_bboxes'][0].tolist() == [0, 0, 0, 0]
    assert none['expressions'][0]['ann_ids'] == []
    # Sizes read from the image header when the record has none.
    assert (png['height'], png['width'], none['height']) == (20, 30, 10)


def test_splits_grouping_and_box_only_modes(own_data):
    root, ann = own_data
    val = _build(root, ann, split='val', test_grouping='image')
    assert len(val) == 1  # one image, 2 of its 3 records (box-only left out)
    assert [e['text'] for e in val.get_data_info(0)['expressions']] == [
        'the stick', 'a zebra']
    boxes = _build(root, ann, split='val', box_only='box_mask')
    sample = LoadRefMasks()(boxes.get_data_info(2))
    assert sample['texts'] == ['boxed']
    expect = np.zeros((10, 30), np.uint8)
    expect[2:6, 1:5] = 1
    np.testing.assert_array_equal(sample['gt_masks'][0], expect)
    assert sample['gt_bboxes'][0].tolist() == [1, 2, 5, 6]
    train = _build(root, ann, split='train', test_mode=False,
                   max_expressions_per_sample=4)
    assert len(train) == 1 and len(train[0]['expressions']) == 3
    with pytest.raises(ValueError, match="splits present: .*'train'"):
        _build(root, ann, split='test')
    with pytest.raises(ValueError, match='box_only'):
        _build(root, ann, box_only='rectangle')


def test_bad_records_name_file_line_and_id(own_data, tmp_path):
    root, _ = own_data
    cases = [
        ('{"id": 1, "image": "a.png", "phrases": ["x"]}', 'targets'),
        ('{"image": "a.png", "phrases": [" "], "targets": []}',
         'empty_phrase'),
        ('{"image": "a.png", "phrases": ["x"], "targets": [{"box": [1]}]}',
         'box must be'),
        ('{"image": "a.png", "phrases": ["x"], "targets": '
         '[{"mask": "m.png", "rle": {}}]}', 'exactly one'),
        ('{"image": "a.png" "phrases"', 'invalid_json'),
        ('{"image": "a.png", "phrase": ["x"], "targets": []}',
         'unknown keys'),
    ]
    for k, (line, match) in enumerate(cases):
        ann = _write(tmp_path, ['', line], name=f'bad{k}.jsonl')
        with pytest.raises(RefSegFormatError, match=match) as info:
            _build(root, ann)
        assert f'bad{k}.jsonl:2' in str(info.value)
    dup = _write(tmp_path, [
        dict(id='x', image='a.png', phrases=['a'], targets=[]),
        dict(id='x', image='a.png', phrases=['b'], targets=[])
    ], name='dup.jsonl')
    with pytest.raises(RefSegFormatError, match=r":2 \(id='x'\): "
                       r'duplicate_id: id also used on line 1'):
        _build(root, dup)


def test_unreadable_png_is_reported_when_fetched(own_data, tmp_path):
    root, _ = own_data
    with open(osp.join(root, 'png', 'broken.png'), 'wb') as f:
        f.write(b'not a png')
    ann = _write(tmp_path, [dict(id='b', image='a.png', phrases=['x'],
                                 targets=[dict(mask='broken.png')])],
                 name='broken.jsonl')
    ds = _build(root, ann)
    with pytest.raises(RefSegFormatError, match="id='b'.*unreadable_mask"):
        ds.get_data_info(0)


def test_mixes_with_refcoco(synthetic_root, tmp_path, own_data):
    root, ann = own_data
    custom = dict(type='RefSegJsonlDataset', ann_file=ann, data_root=root,
                  data_prefix=dict(img_path='img', mask_path='png'),
                  split='train', max_expressions_per_sample=2)
    refcoco = dict(type='RefCOCODataset', data_root=synthetic_root,
                   dataset_name='synthrefcoco', split='train',
                   data_prefix=dict(img_path=IMG_PREFIX),
                   max_expressions_per_sample=2)
    mix = DATASETS.build(dict(
        type='MixedReferDataset', datasets=[refcoco, custom],
        pipeline=[dict(type='LoadRefImage'), dict(type='LoadRefMasks')]))
    n_refcoco, n_custom = (len(d) for d in mix.datasets)
    assert n_custom == 1 and len(mix) == 2 * n_refcoco
    for idx in range(4):
        sample = mix[idx]
        assert sample['gt_masks'].shape[1:] == sample['img'].shape[:2]
        assert sample['dataset_name'] == ('custom' if idx % 2 else
                                          'synthrefcoco')
    assert mix[1]['gt_masks'].sum() > 0
