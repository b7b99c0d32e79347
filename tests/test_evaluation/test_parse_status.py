# Copyright (c) mmrefseg contributors.
import math

from mmrefseg.evaluation.metrics.parse_status import (
    add_parse_counts,
    parse_results,
)


def test_counts_and_fail_rate():
    counts = {}
    add_parse_counts(counts, ['ok', 'no_grid', 'ok'])
    add_parse_counts(counts, 'bad_row')  # one expression
    add_parse_counts(counts, None)  # a head without parse statuses
    assert counts == {'ok': 2, 'no_grid': 1, 'bad_row': 1}
    res = parse_results(counts)
    # 2 of 4 expressions failed; kinds sorted after the rate.
    assert list(res.items()) == [('parse_fail_rate', 50.0),
                                 ('parse_fail/bad_row', 1),
                                 ('parse_fail/no_grid', 1)]
    assert parse_results({}) == {}
    assert parse_results({'ok': 3}) == {'parse_fail_rate': 0.0}
    assert not math.isnan(parse_results({'ok': 3})['parse_fail_rate'])
