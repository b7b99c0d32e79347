# Copyright (c) mmrefseg contributors.
import pytest

from mmrefseg.registry import DATASETS


def _refcoco(root, split, test_mode, **kw):
    return dict(type='RefCOCODataset', data_root=root,
                dataset_name='synthrefcoco', split=split, test_mode=test_mode,
                data_prefix=dict(img_path='images/synthetic'), **kw)


def test_mixed_dataset_uniform_interleaves_members(synthetic_root):
    a = _refcoco(synthetic_root, 'train', False)
    b = _refcoco(synthetic_root, 'val', False)
    mix = DATASETS.build(dict(type='MixedReferDataset', datasets=[a, b],
                              pipeline=[dict(type='LoadRefMasks')]))
    n_a, n_b = (len(d) for d in mix.datasets)
    assert n_a > n_b
    assert len(mix) == 2 * n_a
    assert mix.locate(0) == (0, 0) and mix.locate(1) == (1, 0)
    # The smaller member wraps around.
    assert mix.locate(2 * n_b + 1) == (1, 0)
    sample = mix[1]  # member pipeline empty, shared pipeline applied
    assert sample['gt_masks'].shape[0] == len(sample['texts'])
    concat = DATASETS.build(dict(type='MixedReferDataset', datasets=[a, b],
                                 sampling='concat'))
    assert len(concat) == n_a + n_b
    assert concat.locate(n_a) == (1, 0)


def test_shuffled_expressions_point_at_another_object(synthetic_root):
    real = DATASETS.build(_refcoco(synthetic_root, 'val', True))
    ctrl = DATASETS.build(dict(type='ShuffledExpressionsDataset',
                               dataset=_refcoco(synthetic_root, 'val', True)))
    assert 0 < len(ctrl) <= len(real)
    by_ref = {}
    for i in range(len(real)):
        info = real.get_data_info(i)
        e = info['expressions'][0]
        by_ref.setdefault(e['ref_id'], set()).add(e['text'])
    changed = 0
    for i in range(len(ctrl)):
        e = ctrl.get_data_info(i)['expressions'][0]
        # The text never belongs to the ref whose mask is kept.
        assert e['text'] not in by_ref[e['ref_id']] or \
            sum(e['text'] in t for t in by_ref.values()) > 1
        changed += e['text'] not in by_ref[e['ref_id']]
    assert changed == len(ctrl)


def test_shuffled_expressions_need_per_expression_samples(synthetic_root):
    with pytest.raises(ValueError, match="test_grouping='expression'"):
        DATASETS.build(dict(type='ShuffledExpressionsDataset',
                            dataset=_refcoco(synthetic_root, 'val', True,
                                             test_grouping='image')))
