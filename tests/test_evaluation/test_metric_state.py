# Copyright (c) mmrefseg contributors.
"""merge_states / all_reduce_state in one process (the two-process gloo run
is in test_refseg_metric.py)."""
from mmrefseg.evaluation.metrics.metric_state import (
    all_reduce_state,
    merge_states,
)


def _state(i: int, u: int, images: dict) -> dict:
    return dict(sums=dict(I=i, U=u), parse={'ok': 1}, images=images)


def test_merge_adds_per_image_entries_by_key():
    a = _state(1, 2, {7: (0.5, 1)})
    b = _state(3, 4, {7: (1.0, 2), 'x.jpg': (0.25, 1)})
    merged = merge_states([a, b])
    assert merged['sums'] == dict(I=4, U=6)
    assert merged['parse'] == {'ok': 2}
    assert merged['images'] == {7: (1.5, 3), 'x.jpg': (0.25, 1)}
    assert a['images'] == {7: (0.5, 1)}  # inputs untouched


def test_all_reduce_keeps_key_order_and_fills_missing_sums():
    state = _state(1, 2, {7: (0.5, 1)})
    reduced = all_reduce_state(state, ['U', 'TP', 'I'])
    # One rank: the sums come back as floats keyed in the given order,
    # a key the state lacks as 0.
    assert list(reduced['sums'].items()) == [('U', 2.0), ('TP', 0.0),
                                             ('I', 1.0)]
    assert reduced['parse'] == {'ok': 1}
    assert reduced['images'] == {7: (0.5, 1)}
    reduced['parse']['ok'] = 5
    assert state['parse'] == {'ok': 1}  # a copy, not an alias
