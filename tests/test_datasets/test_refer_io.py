# Copyright (c) mmrefseg contributors.
import os
import pickle

import numpy as np
import pytest
from pycocotools import mask as mask_utils

from mmrefseg.datasets.refer_io import (
    find_grefer_refs_path,
    load_instances,
    load_refs_file,
    segmentation_to_mask,
    select_exact_split,
    select_refer_split,
    union_bbox_xyxy,
    union_mask,
)
from mmrefseg.fileio import UnsafeFileError, load_plain_pickle


class _Evil:
    """Pickles to ``os.system('touch <marker>')``."""

    def __init__(self, marker: str) -> None:
        self.marker = marker

    def __reduce__(self):
        return (os.system, (f'touch {self.marker}', ))


@pytest.mark.parametrize('protocol', [0, 2, pickle.HIGHEST_PROTOCOL])
def test_malicious_pickle_refused_without_running(tmp_path, protocol):
    marker = tmp_path / 'pwned'
    path = tmp_path / 'refs(unc).p'
    # Hidden inside an otherwise ordinary refs list.
    path.write_bytes(
        pickle.dumps([{
            'ref_id': 1
        }, _Evil(str(marker))], protocol=protocol))
    with pytest.raises(UnsafeFileError) as err:
        load_plain_pickle(str(path))
    msg = str(err.value)
    assert 'posix.system' in msg and str(path) in msg
    assert not marker.exists()
    # The dataset-level loader refuses the same way.
    with pytest.raises(UnsafeFileError):
        load_refs_file(str(path))
    assert not marker.exists()


def test_other_globals_refused(tmp_path):
    path = tmp_path / 'x.p'
    path.write_bytes(pickle.dumps(np.zeros(2)))
    with pytest.raises(UnsafeFileError, match='numpy'):
        load_plain_pickle(str(path))
    path.write_bytes(b"cbuiltins\neval\n(S'1+1'\ntR.")
    with pytest.raises(UnsafeFileError, match='builtins.eval'):
        load_plain_pickle(str(path))


def test_py2_pickle_loads_as_str(tmp_path, py2_pickle):
    obj = [{
        b'sent': b'the man',
        b'raw': u'caf\xe9',
        b'tokens': [b'a', b'b'],
        b'ann_id': 123456,
        b'neg': -1,
        b'score': 0.5,
        b'ok': True,
        b'none': None,
        b'big': 70000
    }]
    path = tmp_path / 'refs(unc).p'
    path.write_bytes(py2_pickle(obj))
    assert load_plain_pickle(str(path)) == [{
        'sent': 'the man',
        'raw': 'caf\xe9',
        'tokens': ['a', 'b'],
        'ann_id': 123456,
        'neg': -1,
        'score': 0.5,
        'ok': True,
        'none': None,
        'big': 70000
    }]
    # latin-1 maps every py2 byte, non-ASCII included.
    path.write_bytes(py2_pickle([b'caf\xe9']))
    assert load_plain_pickle(str(path)) == ['caf\xe9']


def test_py3_plain_containers_load(tmp_path):
    obj = {'a': {1, 2}, 'b': frozenset([3]), 'c': b'\x00\xff', 'd': (1, 'x')}
    for protocol in (2, pickle.HIGHEST_PROTOCOL):
        path = tmp_path / f'p{protocol}.p'
        path.write_bytes(pickle.dumps(obj, protocol=protocol))
        assert load_plain_pickle(str(path)) == obj


def test_bad_pickle_files(tmp_path):
    with pytest.raises(FileNotFoundError, match='nope.p'):
        load_plain_pickle(str(tmp_path / 'nope.p'))
    path = tmp_path / 'garbage.p'
    path.write_bytes(b'\x80\x02]q\x00(K\x01')  # truncated
    with pytest.raises(ValueError, match='garbage.p'):
        load_plain_pickle(str(path))


def test_missing_files_name_path_and_layout(tmp_path):
    with pytest.raises(FileNotFoundError) as err:
        load_refs_file(str(tmp_path / 'refcoco' / 'refs(unc).p'))
    assert 'refcoco/refs(unc).p' in str(err.value)
    assert '<data_root>/<dataset>/instances.json' in str(err.value)
    with pytest.raises(FileNotFoundError) as err:
        find_grefer_refs_path(str(tmp_path), 'grefcoco', 'unc')
    assert 'grefs(unc).json' in str(err.value)
    assert 'grefs(unc).p' in str(err.value)
    with pytest.raises(FileNotFoundError, match='instances.json'):
        load_instances(str(tmp_path / 'instances.json'))
    bad = tmp_path / 'bad.json'
    bad.write_text('{"images": []}')
    with pytest.raises(ValueError, match='annotations'):
        load_instances(str(bad))


def test_split_selection_matches_refer():
    refs = [
        dict(ref_id=i, split=s) for i, s in enumerate(
            ['train', 'val', 'testA', 'testB', 'testAB', 'testC', 'test'])
    ]

    def ids(split):
        return [r['ref_id'] for r in select_refer_split(refs, split)]

    assert ids('train') == [0]
    assert ids('val') == [1]
    assert ids('testA') == [2, 4]
    assert ids('testB') == [3, 4]
    assert ids('testC') == [5]
    assert ids('test') == [2, 3, 4, 5, 6]
    assert ids('testAB') == [4]
    assert [r['ref_id'] for r in select_exact_split(refs, 'testA')] == [2]


def test_segmentation_to_mask_formats(to_uncompressed_rle):
    h, w = 20, 30
    truth = np.zeros((h, w), np.uint8)
    truth[4:12, 6:20] = 1
    # Uncompressed RLE, compressed RLE as str and as bytes: exact.
    rle = mask_utils.encode(np.asfortranarray(truth))
    for segm in (to_uncompressed_rle(truth),
                 dict(size=[h, w], counts=rle['counts'].decode('ascii')),
                 dict(size=[h, w], counts=rle['counts'])):
        mask = segmentation_to_mask(segm, h, w)
        assert mask.dtype == np.uint8 and mask.shape == (h, w)
        np.testing.assert_array_equal(mask, truth)
    # Polygon: pycocotools' rasteriser, within a pixel of the rectangle.
    poly = [[6, 4, 20, 4, 20, 12, 6, 12]]
    mask = segmentation_to_mask(poly, h, w)
    assert set(np.unique(mask)) <= {0, 1}
    assert (mask & truth).sum() / (mask | truth).sum() > 0.8
    # Parts with < 6 coordinates are skipped, alone they give nothing.
    np.testing.assert_array_equal(
        segmentation_to_mask(poly + [[1, 1, 2, 2]], h, w), mask)
    assert segmentation_to_mask([[1, 1, 2, 2]], h, w).sum() == 0
    # Two overlapping parts: a binary union, not a sum.
    two = segmentation_to_mask(poly + [[10, 4, 25, 4, 25, 12, 10, 12]], h, w)
    assert two.max() == 1 and two.sum() > mask.sum()
    with pytest.raises(ValueError, match='size'):
        segmentation_to_mask(to_uncompressed_rle(truth), h + 1, w)
    with pytest.raises(TypeError):
        segmentation_to_mask(42, h, w)


def test_union_helpers():
    h, w = 10, 10
    a = [[0, 0, 4, 0, 4, 4, 0, 4]]
    b = [[6, 6, 9, 6, 9, 9, 6, 9]]
    union = union_mask([a, b], h, w)
    np.testing.assert_array_equal(
        union,
        segmentation_to_mask(a, h, w) | segmentation_to_mask(b, h, w))
    assert union_mask([], h, w).sum() == 0
    assert union_bbox_xyxy([[1, 2, 3, 4], [0, 5, 10, 1]]) == [0, 2, 10, 6]
    assert union_bbox_xyxy([]) == [0, 0, 0, 0]
