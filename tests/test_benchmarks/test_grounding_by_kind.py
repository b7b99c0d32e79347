# Copyright (c) mmrefseg contributors.

import numpy as np
import pytest
import torch
from pycocotools import mask as mask_utils
from repo_scripts import load_script

from mmrefseg.structures import RefSegDataSample


@pytest.fixture(scope='module')
def by_kind():
    return load_script('benchmarks/grounding_by_kind.py')


def _mask(rows, cols):
    m = np.zeros((4, 6), dtype=np.uint8)
    m[rows, cols] = 1
    return m


def _sample(text, gt, pred):
    sample = RefSegDataSample(metainfo=dict(img_id=1))
    sample.texts = [text]
    sample.gt_masks = torch.from_numpy(gt)[None]
    sample.pred_masks = torch.from_numpy(pred)[None].bool()
    return sample


def test_rows_split_quality_from_selection(by_kind):
    a = _mask(slice(0, 2), slice(0, 2))  # 4 px
    b = _mask(slice(1, 3), slice(3, 6))  # 6 px
    rles = [mask_utils.encode(np.asfortranarray(m)) for m in (a, b)]
    stats = by_kind.KindStats()
    stats.add(_sample('the red one', a, a), rles)  # right object
    stats.add(_sample('the leftmost circle', a, b), rles)  # wrong object
    stats.add(_sample('the star', b, a | b), rles)  # both objects
    rows = {r[0]: r[1:] for r in stats.rows()}
    assert list(rows) == ['colour', 'shape', 'position', 'all']
    np.testing.assert_allclose(rows['colour'], (1, 100, 100, 100, 100, 0))
    # Wrong object: zero IoU with the target, a perfect mask of another.
    np.testing.assert_allclose(rows['position'], (1, 0, 0, 0, 100, 0))
    np.testing.assert_allclose(rows['shape'], (1, 60, 60, 100, 60, 0))
    # cIoU pools pixels: (4 + 0 + 6) / (4 + 10 + 10).
    np.testing.assert_allclose(
        rows['all'], (3, 1000 / 24, 160 / 3, 200 / 3, 260 / 3, 0))
    table = stats.table()
    assert '| position | 1 | 0.0 | 0.0 | 0.0 | 100.0 |' in table
    # Mask heads say nothing about parsing: no parse column.
    assert 'parse' not in table


def test_selection_counts_target_other_object_and_nothing(by_kind):
    a = _mask(slice(0, 2), slice(0, 2))
    b = _mask(slice(1, 3), slice(3, 6))
    off = _mask(3, 2)  # on neither object
    rles = [mask_utils.encode(np.asfortranarray(m)) for m in (a, b)]
    stats = by_kind.KindStats()
    stats.add(_sample('the red one', a, a | _mask(2, 0)), rles)
    stats.add(_sample('the star', a, b), rles)
    stats.add(_sample('the star', b, np.zeros_like(a)), rles)
    stats.add(_sample('the star', b, off), rles)
    assert stats.selection == {'target': 1, 'other object': 1,
                               'nothing': 2}
    assert stats.selection_line() == (
        'prediction marks: target 25.0% (1), other object 25.0% (1), '
        'nothing 50.0% (2)')


def test_grid_cells_split_answers_and_oracle(by_kind):
    # 4x6 image, 2x2 grid: cell centres at rows (1, 3), columns (1, 4).
    big = _mask(slice(0, 4), slice(0, 3))  # keeps cells (0, 0), (1, 0)
    tiny = _mask(0, 5)  # misses every centre: no cell
    stats = by_kind.GridCellStats((2, 2), cap=2)
    stats.add(_sample('the red one', big, big))
    stats.add(_sample('the star', tiny, np.zeros_like(tiny)))
    stats.add(_sample('the star', tiny, tiny))
    rows = {r[0]: r[1:] for r in stats.rows()}
    assert list(rows) == [0, '2 or more', 'all']
    # The empty grid scores 0 as oracle; the model drew one of the two.
    np.testing.assert_allclose(rows[0][:3], (2, 0, 50))
    assert np.isnan(rows[0][3]) and rows[0][4] == 50
    # Both grid cells upsample to columns 0-2: the oracle is exact.
    np.testing.assert_allclose(rows['2 or more'], (1, 100, 100, 100, 0))
    np.testing.assert_allclose(rows['all'][:3], (3, 12 / 14 * 100, 1300 / 14))
    table = stats.table()
    assert '| 2 or more | 1 | 100.0 | 100.0 | 100% | 0.0 |' in table
    assert '| 0 | 2 | 0.0 | 50.0 | - | 50.0 |' in table


def test_parse_failures_are_counted_per_kind(by_kind):
    a = _mask(slice(0, 2), slice(0, 2))
    stats = by_kind.KindStats()
    for text, status in [('the red one', 'ok'),
                         ('the blue one', 'truncated'),
                         ('the star', 'no_seg_tag')]:
        sample = _sample(text, a, a)
        sample.parse_status = [status]
        stats.add(sample, [])
    rows = {r[0]: r[1:] for r in stats.rows()}
    assert rows['colour'][-1] == 50 and rows['shape'][-1] == 100
    np.testing.assert_allclose(rows['all'][-1], 200 / 3)
    assert '| colour | 2 | 100.0 | 100.0 | 100.0 | 0.0 | 50.0 |' \
        in stats.table()


def test_one_expression_per_sample(by_kind):
    sample = _sample('the red one', _mask(0, 0), _mask(0, 0))
    sample.texts = ['the red one', 'the star']
    with pytest.raises(ValueError, match='one expression per sample'):
        by_kind.KindStats().add(sample, [])


def test_missing_instances_file_names_the_path(by_kind, tmp_path):
    with pytest.raises(FileNotFoundError, match='instances.json'):
        by_kind.object_masks(str(tmp_path), 'synthrefcoco')
