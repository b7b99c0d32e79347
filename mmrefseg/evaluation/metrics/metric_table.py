# Copyright (c) mmrefseg contributors.
"""Plain-text tables of :class:`RefSegMetric`'s results for the log."""
from typing import Dict, List, Mapping, Sequence, Tuple


def _fmt(value: float) -> str:
    """Two decimals; ``'n/a'`` for NaN (a ratio with a zero denominator)."""
    return 'n/a' if value != value else f'{value:.2f}'


def _box(title: str, header: List[str], values: List[str]) -> List[str]:
    """One titled table of a header row and a value row, right-aligned."""
    widths = [max(len(h), len(v)) for h, v in zip(header, values)]
    sep = '+' + '+'.join('-' * (w + 2) for w in widths) + '+'
    return [
        f'{title}:', sep,
        '| ' + ' | '.join(h.rjust(w) for h, w in zip(header, widths)) + ' |',
        sep,
        '| ' + ' | '.join(v.rjust(w) for v, w in zip(values, widths)) + ' |',
        sep
    ]


def format_metric_table(metrics: Dict[str, float], sums: Mapping[str, float],
                        pr_thrs: Sequence[float], rec_iou_thr: float,
                        gres_rule: str) -> str:
    """A plain-text table of the metrics, grouped as in the papers.

    One box per group: RES (always), GRES (when ``metrics`` has
    ``N-acc``, with the TP/FN/FP/TN counts) and parse (when ``metrics``
    has ``parse_fail_rate``). NaN prints as ``n/a``.

    Args:
        metrics (dict): Output of :meth:`RefSegMetric.compute_from_state`.
        sums (Mapping[str, float]): The merged state's sums (for the GRES
            confusion counts; a missing count prints 0).
        pr_thrs (Sequence[float]): Thresholds of ``Pr@t``/``gres_Pr@t``.
        rec_iou_thr (float): Threshold of ``Acc@<thr>``.
        gres_rule (str): Named in the GRES title.

    Returns:
        str: The table.
    """
    res_keys = ['cIoU', 'gIoU'] + [f'Pr@{t:g}' for t in pr_thrs]
    res_keys.append(f'Acc@{rec_iou_thr:g}')
    rows: List[Tuple[str, List[str], List[str]]] = [
        ('RES', ['#expr'] + res_keys, [str(metrics['num_expressions'])] +
         [_fmt(metrics[k]) for k in res_keys])
    ]
    if 'N-acc' in metrics:
        gres_keys = ['gres_gIoU', 'gres_cIoU', 'N-acc', 'T-acc'
                     ] + [f'gres_Pr@{t:g}' for t in pr_thrs]
        counts = ['TP', 'FN', 'FP', 'TN']
        rows.append((f'GRES ({gres_rule})',
                     [k.replace('gres_', '') for k in gres_keys] + counts,
                     [_fmt(metrics[k]) for k in gres_keys] +
                     [str(int(sums.get(k, 0))) for k in counts]))
    if 'parse_fail_rate' in metrics:
        kinds = [k for k in metrics if k.startswith('parse_fail/')]
        rows.append(('parse', ['fail %'] + [k[11:] for k in kinds],
                     [_fmt(metrics['parse_fail_rate'])] +
                     [str(metrics[k]) for k in kinds]))
    lines: List[str] = []
    for title, header, values in rows:
        lines += _box(title, header, values)
    return '\n'.join(lines)
