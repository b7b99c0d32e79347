# Copyright (c) mmrefseg contributors.
import pytest

from mmrefseg.registry import DATASETS


def _refcoco(root, split, test_mode, **kw):
    return dict(type='RefCOCODataset', data_root=root,
                dataset_name='synthrefcoco', split=split, test_mode=test_mode,
                data_prefix=dict(img_path='images/synthetic'), **kw)


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
