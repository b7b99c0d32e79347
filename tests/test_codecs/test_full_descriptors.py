# Copyright (c) mmrefseg contributors.
import numpy as np
import pytest

from mmrefseg.codecs import (
    build_answer,
    decode_answer,
    decode_full_answer,
    encode_full_descriptors,
    grid_to_labels,
)


def test_round_trip_of_random_grids():
    rng = np.random.default_rng(0)
    for _ in range(20):
        h, w = rng.integers(1, 17, size=2)
        grid = rng.random((h, w)) < 0.3
        text = build_answer('red circle', grid, answer_format='full')
        assert '\n<seg>' in text and text.endswith('</seg>')
        body = text.split('<seg>')[1]
        assert '\n' not in body and body.count('| ') == h * w - 1
        result = decode_full_answer(text, (h, w))
        assert result.status == 'ok', result.repairs
        assert np.array_equal(result.grid, grid)
        assert result.no_target == (not grid.any())


def test_rrle_reader_does_not_read_full_answers_cleanly():
    """Why the head needs the format: R-RLE's parser flags them."""
    grid = np.eye(4, dtype=bool)
    text = build_answer('dot', grid, answer_format='full')
    assert decode_answer(text, (4, 4)).status != 'ok'


def test_repairs_are_reported():
    labels = grid_to_labels(np.eye(3, dtype=bool), 'dot')
    body = encode_full_descriptors(labels)
    cut = decode_full_answer('A:\n<seg>' + body[:20], (3, 3))
    assert cut.status == 'truncated' and 'row_length' in cut.repairs
    extra = decode_full_answer(f'A:\n<seg>{body}| dot</seg>', (3, 3))
    assert extra.repairs == ['row_length']
    assert np.array_equal(extra.grid, np.eye(3, dtype=bool))
    rle = decode_full_answer('A:\n<seg>others *9</seg>', (3, 3))
    assert 'run_format' in rle.repairs
    empty = decode_full_answer('A:\n<seg></seg>', (3, 3))
    assert empty.status == 'empty_body' and empty.no_target
    untagged = decode_full_answer(f'Sure:\n{body}', (3, 3))
    assert untagged.status == 'no_seg_tag'
    assert np.array_equal(untagged.grid, np.eye(3, dtype=bool))
    strict = decode_full_answer(
        'A:\n<seg>' + body.replace('dot', 'box', 1) + '</seg>', (3, 3),
        label='dot')
    assert 'unknown_label' in strict.repairs and strict.grid.sum() == 2


def test_unknown_format_is_refused():
    with pytest.raises(ValueError, match='answer_format'):
        build_answer('x', np.zeros((2, 2), bool), answer_format='irle')
