# Copyright (c) mmrefseg contributors.
"""Parse-failure counts of text-decoding heads (Text4Seg): how many
expressions' answers did not parse into a mask, by kind of failure."""
from collections import OrderedDict
from typing import Any, Dict

from ..functional import percent


def add_parse_counts(counts: Dict[str, int], status: Any) -> None:
    """Count the parse statuses of one sample in place.

    Args:
        counts (dict): Status -> count, updated in place.
        status (str | Sequence[str] | None): One status per expression
            (``'ok'`` or a failure kind); a single string for K = 1; None
            adds nothing.
    """
    if status is None:
        return
    if isinstance(status, str):
        status = [status]
    for kind in status:
        counts[kind] = counts.get(kind, 0) + 1


def parse_results(counts: Dict[str, int]) -> Dict[str, float]:
    """The parse metrics of merged counts.

    Args:
        counts (dict): Status -> count over the split.

    Returns:
        OrderedDict[str, float]: Empty without counts; else
        ``parse_fail_rate`` (percent of expressions whose status is not
        ``'ok'``) and ``parse_fail/<kind>`` (counts, kinds sorted).
    """
    res: Dict[str, float] = OrderedDict()
    if not counts:
        return res
    total = sum(counts.values())
    fails = {k: v for k, v in counts.items() if k != 'ok'}
    res['parse_fail_rate'] = percent(sum(fails.values()), total)
    for kind in sorted(fails):
        res[f'parse_fail/{kind}'] = int(fails[kind])
    return res
