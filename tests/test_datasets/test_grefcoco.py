# Copyright (c) mmrefseg contributors.
import json
import shutil

import numpy as np
import pytest

from mmrefseg.datasets import GRefCOCODataset
from mmrefseg.datasets.refer_io import segmentation_to_mask
from mmrefseg.datasets.transforms import LoadRefMasks

SYNTH = dict(data_prefix=dict(img_path='images/synthetic'))


def _grefs(root):
    with open(f'{root}/grefcoco/grefs(unc).json') as f:
        return json.load(f)


def test_modes_and_targets(synthetic_root):
    grefs = [r for r in _grefs(synthetic_root) if r['split'] == 'val']
    ds = GRefCOCODataset(
        synthetic_root,
        split='val',
        test_mode=True,
        pipeline=[LoadRefMasks()],
        **SYNTH)
    assert len(ds) == sum(len(r['sentences']) for r in grefs)
    kinds = set()
    for i in range(len(ds)):
        out = ds[i]
        (expr, ) = out['expressions']
        mask = out['gt_masks'][0]
        if expr['no_target']:
            kinds.add('none')
            assert expr['ann_ids'] == [] and expr['segmentations'] == []
            assert expr['bbox'] == [0, 0, 0, 0]
            assert mask.sum() == 0 and out['no_target'][0]
        else:
            parts = [
                segmentation_to_mask(s, out['height'], out['width'])
                for s in expr['segmentations']
            ]
            np.testing.assert_array_equal(mask, np.maximum.reduce(parts))
            kinds.add('multi' if len(parts) > 1 else 'single')
            assert not out['no_target'][0]
            if len(parts) > 1:
                assert mask.sum() > max(p.sum() for p in parts)
                ys, xs = np.nonzero(mask)
                x1, y1, x2, y2 = expr['bbox']
                assert x1 <= xs.min() + 1 and y1 <= ys.min() + 1
                assert x2 >= xs.max() and y2 >= ys.max()
    assert kinds == {'none', 'single', 'multi'}
    train = GRefCOCODataset(
        synthetic_root,
        split='train',
        seed=0,
        max_expressions_per_sample=4,
        **SYNTH)
    assert len(train) == len({
        r['image_id']
        for r in _grefs(synthetic_root) if r['split'] == 'train'
    })
    assert all(1 <= len(train.get_data_info(i)['expressions']) <= 4
               for i in range(len(train)))
    unpacked = GRefCOCODataset(synthetic_root, split='train', seed=0, **SYNTH)
    assert len(unpacked) == sum(r['split'] == 'train'
                                for r in _grefs(synthetic_root))


def test_exact_splits(synthetic_root):
    n = {
        s:
        len(GRefCOCODataset(synthetic_root, split=s, test_mode=True, **SYNTH))
        for s in ('testA', 'testB')
    }
    assert n['testA'] > 0 and n['testB'] > 0
    with pytest.raises(ValueError, match='selects no refs'):
        GRefCOCODataset(synthetic_root, split='test', **SYNTH)


def test_pickle_fallback_and_int_ann_id(tmp_path, refer_tree, py2_pickle):
    root = tmp_path / 'g'
    (root / 'grefcoco').mkdir(parents=True)
    shutil.copy(refer_tree['instances'], root / 'grefcoco' / 'instances.json')

    def ref(ref_id, ann_id, no_target):
        return {
            b'ref_id':
            ref_id,
            b'image_id':
            1,
            b'split':
            b'val',
            b'ann_id':
            ann_id,
            b'no_target':
            no_target,
            b'sent_ids': [ref_id],
            b'sentences': [{
                b'sent_id': ref_id,
                b'sent': b'x %d' % ref_id,
                b'raw': b'X',
                b'tokens': [b'x']
            }]
        }

    (root / 'grefcoco' / 'grefs(unc).p').write_bytes(
        py2_pickle(
            [ref(1, [-1], True),
             ref(2, [11, 12], False),
             ref(3, 12, False)]))
    ds = GRefCOCODataset(
        str(root), split='val', test_mode=True, pipeline=[LoadRefMasks()])
    out = [ds[i] for i in range(3)]
    assert [o['expressions'][0]['ann_ids'] for o in out] == [[], [11, 12],
                                                             [12]]
    assert [bool(o['no_target'][0]) for o in out] == [True, False, False]
    assert out[0]['gt_masks'].sum() == 0
    masks = refer_tree['masks']
    np.testing.assert_array_equal(out[2]['gt_masks'][0], masks[12])
    union = out[1]['gt_masks'][0]
    assert (union >= masks[12]).all() and union.sum() > masks[12].sum()
    assert out[1]['expressions'][0]['bbox'] == [5.0, 10.0, 45.0, 35.0]


def test_missing_grefs(tmp_path):
    with pytest.raises(FileNotFoundError) as err:
        GRefCOCODataset(str(tmp_path), split='val')
    assert 'grefcoco/grefs(unc).json' in str(err.value)
    assert 'grefs(unc).p' in str(err.value)


def test_image_grouping_with_gt_rej_answer(synthetic_root):
    """MLLMSeg's GRES eval unit: all sentences of an image, GT [REJ]."""
    from mmrefseg.models.processors import InternVLProcessor, count_slots
    from mmrefseg.utils.tokenizer import build_tokenizer
    grefs = [r for r in _grefs(synthetic_root) if r['split'] == 'val']
    ds = GRefCOCODataset(
        synthetic_root,
        split='val',
        test_mode=True,
        test_grouping='image_one_prompt',
        pipeline=[LoadRefMasks()],
        **SYNTH)
    assert len(ds) == len({r['image_id'] for r in grefs})
    assert sum(len(ds[i]['expressions']) for i in range(len(ds))) == sum(
        len(r['sentences']) for r in grefs)
    conv = InternVLProcessor(
        build_tokenizer(dict(type='tiny_bpe', vocab_size=1024),
                        ('[SEG]', '[REJ]')), 4,
        prompt_style='mllmseg_paper_eval', test_reject_no_target=True)
    seen_rej = False
    for i in range(len(ds)):
        out = ds[i]
        flags = [bool(f) for f in out['no_target']]
        assert flags == [e['no_target'] for e in out['expressions']]
        assert [bool(m.sum() == 0) for m in out['gt_masks']] == flags
        answer = conv(out['texts'], no_target=out['no_target'])['answer']
        assert count_slots(answer) == [
            '[REJ]' if f else '[SEG]' for f in flags]
        seen_rej |= any(flags)
    assert seen_rej
