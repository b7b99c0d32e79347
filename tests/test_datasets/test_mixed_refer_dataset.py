# Copyright (c) mmrefseg contributors.
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
