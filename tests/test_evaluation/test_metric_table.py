# Copyright (c) mmrefseg contributors.
from mmrefseg.evaluation.metrics.metric_table import format_metric_table


def test_res_box_right_aligned_with_nan_as_na():
    metrics = {
        'num_expressions': 3, 'cIoU': 50.0, 'gIoU': float('nan'),
        'Pr@0.5': 100 / 3, 'Acc@0.5': 100.0
    }
    table = format_metric_table(metrics, {}, (0.5, ), 0.5, 'rela')
    assert table.split('\n') == [
        'RES:',
        '+-------+-------+------+--------+---------+',
        '| #expr |  cIoU | gIoU | Pr@0.5 | Acc@0.5 |',
        '+-------+-------+------+--------+---------+',
        '|     3 | 50.00 |  n/a |  33.33 |  100.00 |',
        '+-------+-------+------+--------+---------+',
    ]


def test_gres_and_parse_boxes():
    metrics = {
        'num_expressions': 2, 'cIoU': 1.0, 'gIoU': 2.0, 'Acc@0.5': 3.0,
        'gres_gIoU': 4.0, 'gres_cIoU': 5.0, 'N-acc': 6.0, 'T-acc': 7.0,
        'parse_fail_rate': 50.0, 'parse_fail/no_grid': 1
    }
    table = format_metric_table(metrics, dict(TP=1, TN=1.0), (), 0.5,
                                'mllmseg').split('\n')
    assert table[6:11] == [
        'GRES (mllmseg):',
        '+------+------+-------+-------+----+----+----+----+',
        '| gIoU | cIoU | N-acc | T-acc | TP | FN | FP | TN |',
        '+------+------+-------+-------+----+----+----+----+',
        # counts print as integers; a missing count is 0
        '| 4.00 | 5.00 |  6.00 |  7.00 |  1 |  0 |  0 |  1 |',
    ]
    assert table[12:] == [
        'parse:',
        '+--------+---------+',
        '| fail % | no_grid |',
        '+--------+---------+',
        '|  50.00 |       1 |',
        '+--------+---------+',
    ]
