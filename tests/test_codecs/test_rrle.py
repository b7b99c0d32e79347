# Copyright (c) mmrefseg contributors.
"""Tests for the Text4Seg semantic-descriptor / R-RLE codec."""
import re

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from PIL import Image

from mmrefseg.codecs import (
    BACKGROUND,
    REPAIR_KINDS,
    STATUS_OK,
    DecodeResult,
    build_answer,
    decode_answer,
    decode_body,
    encode_full_descriptors,
    encode_irle,
    encode_mask,
    encode_rrle,
    grid_to_labels,
    mask_to_grid,
    sanitize_label,
)

# Text4Seg's worked R-RLE example, as its reference encoder writes it.
HORSE = 'white horse'
HORSE_GRID = np.array(
    [[0, 0, 0, 0], [0, 1, 1, 0], [1, 1, 1, 0], [0, 0, 0, 0]], dtype=bool)
HORSE_BODY = ('others *4\n others *1| white horse *2| others *1\n'
              ' white horse *3| others *1\n others *4\n')
HORSE_ANSWER = """Sure, here is the segmentation mask for 'white horse':
<seg>others *4
 others *1| white horse *2| others *1
 white horse *3| others *1
 others *4
</seg>"""
PREFIX = "Sure, here is the segmentation mask for 'white horse':\n<seg>"
LABELS = ('white horse', 'the man in red', 'dog', 'left guy with 2 hats',
          'person on the far right side of the picture')
PROPERTY_SIZES = [(4, 4), (16, 16), (24, 24), (32, 32), (5, 9), (9, 3),
                  (1, 7)]


def rows_of(spec: str) -> np.ndarray:
    """'0110/1111' -> bool grid, to write expected grids compactly."""
    return np.array([[c == '1' for c in row] for row in spec.split('/')])


def random_grid(rng: np.random.Generator, h: int, w: int) -> np.ndarray:
    """A blob-like grid: a few rectangles plus speckle, density varies."""
    grid = np.zeros((h, w), dtype=bool)
    for _ in range(rng.integers(0, 4)):
        y0, x0 = rng.integers(0, h), rng.integers(0, w)
        grid[y0:y0 + rng.integers(1, h + 1), x0:x0 + rng.integers(1, w + 1)] \
            = True
    return grid ^ (rng.random((h, w)) < rng.choice([0.0, 0.05, 0.5]))


def check_invariants(result: DecodeResult, hw) -> None:
    """Shape, dtype and bookkeeping every decode must satisfy."""
    assert isinstance(result, DecodeResult)
    assert result.grid.shape == tuple(hw) and result.grid.dtype == bool
    assert result.labels.shape == tuple(hw)
    assert all(isinstance(x, str) for x in result.labels.flat)
    assert result.repairs == [k for k in REPAIR_KINDS if k in result.repairs]
    assert result.status == (result.repairs[0] if result.repairs else
                             STATUS_OK)
    assert result.no_target == (not result.grid.any())


# ---------------------------------------------------------------- encoding
def test_worked_example_byte_for_byte():
    labels = grid_to_labels(HORSE_GRID, HORSE)
    assert labels[2] == [HORSE, HORSE, HORSE, BACKGROUND]
    assert encode_rrle(labels) == HORSE_BODY
    assert build_answer(HORSE, HORSE_GRID) == HORSE_ANSWER
    assert build_answer(HORSE, HORSE_GRID).endswith('others *4\n</seg>')


def test_encode_mask_samples_cell_centres():
    # Each 4x4 block of the mask is one cell; only its centre pixel counts.
    mask = np.kron(HORSE_GRID, np.ones((4, 4), dtype=np.uint8))
    assert encode_mask(mask, HORSE, (4, 4)) == HORSE_BODY
    thin = np.zeros((64, 64), dtype=np.uint8)
    thin[:, 0] = 1  # misses every cell centre
    assert encode_mask(thin, 'pole') == 'others *16\n' + ' others *16\n' * 15


def test_empty_and_full_targets():
    empty = np.zeros((16, 16), dtype=bool)
    answer = build_answer('nobody', empty)
    assert answer.split('<seg>')[1] == '\n '.join(['others *16'] * 16) + \
        '\n</seg>'
    result = decode_answer(answer)
    assert result.status == STATUS_OK and result.no_target
    assert not result.grid.any()
    # The reference decoder empties this one (first label seen -> id 0).
    full = decode_answer(build_answer('dog', ~empty))
    assert full.status == STATUS_OK and not full.no_target
    assert full.grid.all()


def test_ablation_formats():
    labels = grid_to_labels(HORSE_GRID, HORSE)
    full = encode_full_descriptors(labels)
    assert full.count('| ') == 15 and '\n' not in full
    assert full.startswith('others| others| others| others| others| white')
    assert encode_irle(labels) == (
        'others *5| white horse *2| others *1| white horse *3| others *5')
    # Image-wise RLE is one line of h*w cells: rows are recovered.
    result = decode_body(encode_irle(labels), (4, 4))
    assert result.repairs == ['merged_rows']
    np.testing.assert_array_equal(result.grid, HORSE_GRID)


def test_sanitize_label():
    assert sanitize_label('white horse') == 'white horse'
    assert sanitize_label('  a |b*c\n d ') == 'a b c d'
    assert sanitize_label('Others') == 'target'
    assert sanitize_label(' | ') == 'target'
    answer = build_answer('man |*\n in red', HORSE_GRID)
    assert "for 'man in red':" in answer
    np.testing.assert_array_equal(decode_answer(answer, (4, 4)).grid,
                                  HORSE_GRID)


@pytest.mark.parametrize('bad', ['', ' dog', 'a|b', 'a*b', 'a\nb', 3])
def test_encoder_rejects_ambiguous_labels(bad):
    with pytest.raises(ValueError):
        encode_rrle([[bad]])


def test_encoder_rejects_bad_shapes_and_background_label():
    with pytest.raises(ValueError):
        encode_rrle([['a', 'b'], ['a']])
    with pytest.raises(ValueError):
        encode_rrle([])
    with pytest.raises(ValueError):
        grid_to_labels(HORSE_GRID, 'Others')
    with pytest.raises(ValueError):
        mask_to_grid(np.zeros((2, 2, 3)), (2, 2))
    with pytest.raises(ValueError):
        decode_answer('x', (0, 4))


# ---------------------------------------------------------- mask -> grid
@pytest.mark.parametrize('seed', range(40))
def test_mask_to_grid_matches_pillow_nearest(seed):
    rng = np.random.default_rng(seed)
    H, W = rng.integers(1, 400, size=2)
    h, w = rng.integers(1, 70, size=2)
    if seed < 4:  # the shapes the data pipeline actually uses
        (H, W), (h, w) = [(448, 448), (480, 640), (427, 640), (2, 7)][seed], \
            [(16, 16), (24, 24), (32, 32), (7, 2)][seed]
    mask = ((rng.random((H, W)) < 0.5) * rng.choice([1, 255])).astype(np.uint8)
    expected = np.asarray(
        Image.fromarray(mask).resize((int(w), int(h)), Image.NEAREST)) > 0
    np.testing.assert_array_equal(mask_to_grid(mask, (h, w)), expected)


def test_mask_to_grid_exact_borders_follow_pillow():
    # 2 px -> 7 cells: the centre of cell 3 is exactly on the pixel border
    # and Pillow's float walk puts it left of it.
    ramp = np.array([[0, 1]], dtype=np.uint8)
    assert mask_to_grid(ramp, (1, 7)).astype(int).tolist() == \
        [[0, 0, 0, 0, 1, 1, 1]]
    assert mask_to_grid(np.array([[0, 2]]), (1, 2)).tolist() == \
        [[False, True]]


# ------------------------------------------------------------- round trip
@pytest.mark.parametrize('hw', [(16, 16), (24, 24), (32, 32), (5, 9),
                                (13, 7), (1, 1), (1, 20), (20, 1)])
def test_round_trip(hw):
    rng = np.random.default_rng(hash(hw) % 2**32)
    for trial in range(12):
        label = LABELS[trial % len(LABELS)]
        grid = random_grid(rng, *hw)
        if trial == 0:
            grid[:] = True
        answer = build_answer(label, grid)
        for result in (decode_answer(answer, hw),
                       decode_answer(answer, hw, label=label)):
            assert result.status == STATUS_OK, result.repairs
            np.testing.assert_array_equal(result.grid, grid)
            assert result.no_target == (not grid.any())
        body = answer.split('<seg>')[1][:-len('</seg>')]
        from_body = decode_body(body, hw)
        np.testing.assert_array_equal(from_body.grid, grid)
        assert (from_body.labels == np.where(grid, label, BACKGROUND)).all()


# ------------------------------------------------------------ repairs
def body_rows(*rows: str) -> str:
    """Join rows the canonical way into a tagged answer."""
    return PREFIX + '\n '.join(rows) + '\n</seg>'


ROW1 = 'others *1| white horse *2| others *1'
ROW2 = 'white horse *3| others *1'
REPAIR_CASES = {
    # name: (text, expected repairs, expected grid)
    'no_seg_tag_runs': (
        "Sure, here is the mask for 'white horse':\n" + HORSE_BODY,
        ['no_seg_tag'], '0000/0110/1110/0000'),
    'no_seg_tag_garbage': (
        'I cannot segment that, sorry. 5 * 3 = 15', ['no_seg_tag'],
        '0000/0000/0000/0000'),
    'missing_end_tag': (
        HORSE_ANSWER[:-len('</seg>')], ['missing_end_tag'],
        '0000/0110/1110/0000'),
    'truncated_after_star': (
        PREFIX + 'others *4\n others *1| white horse *2| others *',
        ['truncated', 'missing_end_tag', 'row_count', 'row_length'],
        '0000/0110/0000/0000'),
    'truncated_mid_label': (
        PREFIX + 'others *4\n white horse *3| oth',
        ['truncated', 'missing_end_tag', 'row_count', 'row_length'],
        '0000/1111/0000/0000'),
    'truncated_after_known_label': (
        PREFIX + 'others *4\n white horse *3| others',
        ['truncated', 'missing_end_tag', 'row_count', 'row_length'],
        '0000/1110/0000/0000'),
    'truncated_mid_count': (
        PREFIX + f'others *4\n {ROW1}\n white horse *1',
        ['truncated', 'missing_end_tag', 'row_count', 'row_length'],
        '0000/0110/1111/0000'),
    'truncated_between_rows': (
        PREFIX + f'others *4\n {ROW1}\n ',
        ['truncated', 'missing_end_tag', 'row_count'],
        '0000/0110/0000/0000'),
    'truncated_in_tag': (
        PREFIX[:-3], ['no_seg_tag'], '0000/0000/0000/0000'),
    'empty_body': (PREFIX + '</seg>', ['empty_body'], '0000/0000/0000/0000'),
    'too_few_rows': (
        body_rows('others *4', 'white horse *4'), ['row_count'],
        '0000/1111/0000/0000'),
    'too_many_rows': (
        body_rows('others *4', ROW1, ROW2, 'others *4', 'dog *4', 'dog *4'),
        ['row_count'], '0000/0110/1110/0000'),
    'merged_rows': (
        PREFIX + f'others *4\n {ROW1} {ROW2}\n others *4\n</seg>',
        ['merged_rows', 'run_format'], '0000/0110/1110/0000'),
    'short_row_padded_with_last_label': (
        body_rows('others *4', 'others *1| white horse *2', ROW2,
                  'others *4'), ['row_length'], '0000/0111/1110/0000'),
    'long_row_cut': (
        body_rows('others *4', 'others *1| white horse *2| others *3', ROW2,
                  'others *4'), ['row_length'], '0000/0110/1110/0000'),
    'garbage_line': (
        PREFIX + f'others *4\nblah blah\n {ROW1}\n {ROW2}\n others *4\n</seg>',
        ['bad_run'], '0000/0110/1110/0000'),
    'empty_run': (
        body_rows('others *4', 'others *1| | white horse *2| others *1', ROW2,
                  'others *4'), ['bad_run'], '0000/0110/1110/0000'),
    'missing_count': (
        body_rows('others *4', 'others *1| white horse| white horse *1| '
                  'others *1', ROW2, 'others *4'), ['missing_count'],
        '0000/0110/1110/0000'),
    'negative_count': (
        body_rows('others *4', 'others *1| white horse *-2| others *3', ROW2,
                  'others *4'), ['bad_count'], '0000/0000/1110/0000'),
    'fractional_count': (
        body_rows('others *4', 'others *1| white horse *2.7| others *1',
                  ROW2, 'others *4'), ['bad_count'], '0000/0110/1110/0000'),
    'huge_count': (
        body_rows('others *4', 'white horse *' + '9' * 40, ROW2,
                  'others *4'), ['bad_count'], '0000/1111/1110/0000'),
    'zero_count': (
        body_rows('others *0| white horse *4', 'others *4', 'others *4',
                  'others *4'), ['bad_count'], '1111/0000/0000/0000'),
    'empty_label': (
        # '\n ' + ' *4' looks like an indented row as much as an empty label
        body_rows('others *4', ' *4', ROW2, 'others *4'),
        ['unknown_label', 'row_separator', 'run_format'],
        '0000/0000/1110/0000'),
    'newline_without_space': (
        PREFIX + HORSE_BODY.replace('\n ', '\n') + '</seg>',
        ['row_separator'], '0000/0110/1110/0000'),
    'crlf_and_blank_line': (
        PREFIX + HORSE_BODY.replace('\n ', '\r\n\r\n ') + '</seg>',
        ['row_separator'], '0000/0110/1110/0000'),
    'sloppy_spacing': (
        body_rows('others*4', 'others *1|white horse  * 2 |others *01', ROW2,
                  'others *4'), ['run_format'], '0000/0110/1110/0000'),
    'case_of_background': (
        body_rows('Others *4', ROW1, ROW2, 'OTHERS *4'), [],
        '0000/0110/1110/0000'),
}


@pytest.mark.parametrize('name', sorted(REPAIR_CASES))
def test_repairs(name):
    text, repairs, grid = REPAIR_CASES[name]
    result = decode_answer(text, (4, 4))
    check_invariants(result, (4, 4))
    assert result.repairs == repairs
    np.testing.assert_array_equal(result.grid, rows_of(grid))


def test_every_repair_kind_is_exercised():
    seen = {k for _, repairs, _ in REPAIR_CASES.values() for k in repairs}
    assert seen | {'unknown_label'} == set(REPAIR_KINDS)


def test_unknown_label_when_restricted_to_expression():
    text = HORSE_ANSWER.replace(' white horse *3', ' brown horse *3')
    loose = decode_answer(text, (4, 4))
    assert loose.status == STATUS_OK  # any non-background is foreground
    np.testing.assert_array_equal(loose.grid, HORSE_GRID)
    strict = decode_answer(text, (4, 4), label=HORSE)
    assert strict.repairs == ['unknown_label']
    np.testing.assert_array_equal(strict.grid, rows_of('0000/0110/0000/0000'))
    assert strict.labels[2, 0] == 'brown horse'


def test_per_row_repair_keeps_later_rows_aligned():
    # The reference decoder shifts every later row after a short one.
    result = decode_answer(
        body_rows('others *16', 'dog *3', *['others *8| dog *8'] * 14),
        (16, 16))
    assert result.repairs == ['row_length']
    assert result.grid[1].all()
    assert (result.grid[2:, 8:].all() and not result.grid[2:, :8].any())


@pytest.mark.parametrize('text', [None, b'<seg>dog *4\n</seg>', 42, '\x00',
                                  '<seg>' * 3, '</seg><seg>', '*' * 1000,
                                  '<seg>\ud800 *2|' * 5])
def test_odd_inputs_never_raise(text):
    check_invariants(decode_answer(text, (4, 4)), (4, 4))
    check_invariants(decode_body(text, (3, 5)), (3, 5))


# ------------------------------------------------------ property-based
GRAMMAR_ALPHABET = list('others whiteh*|0123456789\n\r\t -+.<>/seg') + \
    ['<seg>', '</seg>', '\n ', '| ', ' *', 'others', 'white horse']
TOKENS = ['<seg>', '</seg>', '\n', '\n ', '| ', '|', ' *', '*', ' ', '-',
          '0', '7', '99999999999', '.5', 'others', 'dog', '\r']
COUNTS = ['0', '-3', '', '2.5', 'x', '+2', '017', '1', '40',
          '123456789012345678901234567890']
PROPERTY_SETTINGS = dict(
    deadline=None, database=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])


@settings(max_examples=3000, **PROPERTY_SETTINGS)
@given(text=st.text(max_size=300), hw=st.sampled_from(PROPERTY_SIZES))
def test_random_text_never_raises(text, hw):
    check_invariants(decode_answer(text, hw), hw)


@settings(max_examples=3000, **PROPERTY_SETTINGS)
@given(text=st.lists(st.sampled_from(GRAMMAR_ALPHABET),
                     max_size=200).map(''.join),
       hw=st.sampled_from(PROPERTY_SIZES))
def test_grammar_soup_never_raises(text, hw):
    check_invariants(decode_answer(text, hw), hw)
    check_invariants(decode_body(text, hw, label='white horse'), hw)


@st.composite
def valid_answers(draw):
    """A correct answer for a random grid, with its grid and size."""
    hw = draw(st.sampled_from(PROPERTY_SIZES))
    rng = np.random.default_rng(draw(st.integers(0, 2**32 - 1)))
    grid = random_grid(rng, *hw)
    return build_answer(draw(st.sampled_from(LABELS)), grid), grid, hw


def mutate(draw, text: str) -> str:
    """Apply one random corruption to an answer."""
    kind = draw(st.sampled_from(['delete', 'insert', 'truncate', 'swap',
                                 'count', 'drop_row', 'dup_row']))
    pos = draw(st.integers(0, len(text)))
    if kind == 'delete':
        return text[:pos] + text[pos + draw(st.integers(1, 8)):]
    if kind == 'insert':
        return text[:pos] + ''.join(
            draw(st.lists(st.sampled_from(TOKENS) | st.characters(),
                          min_size=1, max_size=4))) + text[pos:]
    if kind == 'truncate':
        return text[:pos]
    if kind == 'count':
        counts = list(re.finditer(r'\*(\d+)', text))
        if not counts:
            return text
        m = counts[draw(st.integers(0, len(counts) - 1))]
        return text[:m.start(1)] + draw(st.sampled_from(COUNTS)) + \
            text[m.end(1):]
    lines = text.split('\n')
    i, j = (draw(st.integers(0, len(lines) - 1)) for _ in range(2))
    if kind == 'swap':
        lines[i], lines[j] = lines[j], lines[i]
    elif kind == 'drop_row':
        del lines[i]
    else:
        lines.insert(i, lines[j])
    return '\n'.join(lines)


@settings(max_examples=3000, **PROPERTY_SETTINGS)
@given(data=st.data(), answer=valid_answers())
def test_mutated_answers_never_raise(data, answer):
    text, _, hw = answer
    for _ in range(data.draw(st.integers(1, 4))):
        text = mutate(data.draw, text)
    check_invariants(decode_answer(text, hw), hw)


@settings(max_examples=1000, **PROPERTY_SETTINGS)
@given(answer=valid_answers(), cut=st.floats(0, 1))
def test_truncation_keeps_complete_rows(answer, cut):
    text, grid, hw = answer
    cut_at = int(cut * len(text))
    result = decode_answer(text[:cut_at], hw)
    check_invariants(result, hw)
    body_start = text.index('<seg>') + len('<seg>')
    complete = text[body_start:cut_at].count('\n')
    np.testing.assert_array_equal(result.grid[:complete], grid[:complete])
    if cut_at < len(text) - len('</seg>'):
        assert result.status in ('truncated', 'no_seg_tag')
    elif cut_at < len(text):
        assert result.status in ('truncated', 'missing_end_tag')
