# Copyright (c) mmrefseg contributors.
"""The running sums behind :class:`RefSegMetric`, mergeable across ranks."""
from typing import Dict, Sequence

import torch
from mmengine import dist

State = Dict[str, dict]


def empty_state() -> State:
    """Return an empty metric state.

    A state has three dicts: ``sums`` (name -> number, added up),
    ``parse`` (parse status -> count) and ``images`` (image key ->
    ``(sum of per-expression IoU, number of expressions)``).

    Returns:
        dict: ``dict(sums={}, parse={}, images={})``.
    """
    return dict(sums={}, parse={}, images={})


def add_state(dst: State, src: State) -> None:
    """Add ``src`` into ``dst`` in place (never aliases mutable parts)."""
    for name in ('sums', 'parse'):
        target = dst[name]
        for key, value in src[name].items():
            target[key] = target.get(key, 0) + value
    images = dst['images']
    for key, (iou_sum, count) in src['images'].items():
        old = images.get(key)
        images[key] = ((iou_sum, count) if old is None else
                       (old[0] + iou_sum, old[1] + count))


def merge_states(states: Sequence[State]) -> State:
    """Merge metric states, e.g. those of several ranks.

    Sums and parse counts add up; per-image entries with the same key add
    up too, so an image whose expressions were evaluated on different ranks
    is still one image.

    Args:
        states (Sequence[dict]): States as returned by
            :meth:`RefSegMetric.local_state`.

    Returns:
        dict: A new state; the inputs are not modified.
    """
    merged = empty_state()
    for state in states:
        add_state(merged, state)
    return merged


def all_reduce_state(state: State, sum_keys: Sequence[str]) -> State:
    """Add up the states of all ranks; every rank gets the same result.

    The sums travel as one float64 vector through an all-reduce (one
    collective however many keys); the small dicts (parse counts, per-image
    entries) are gathered as objects and merged with :func:`merge_states`.

    Args:
        state (dict): This rank's state.
        sum_keys (Sequence[str]): Names of the sums, in the same order on
            every rank; a key missing from ``state['sums']`` counts as 0.

    Returns:
        dict: The merged state of all ranks, its sums as floats keyed by
        ``sum_keys``.
    """
    sums = state['sums']
    vec = torch.tensor([float(sums.get(k, 0)) for k in sum_keys],
                       dtype=torch.float64)
    dist.all_reduce(vec, op='sum')
    gathered = dist.all_gather_object(
        dict(parse=state['parse'], images=state['images']))
    merged = merge_states([
        dict(sums={}, parse=g['parse'], images=g['images']) for g in gathered
    ])
    merged['sums'] = dict(zip(sum_keys, vec.tolist()))
    return merged
