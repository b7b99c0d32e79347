# Copyright (c) mmrefseg contributors.
"""Refuse a checkpoint whose keys or shapes do not match the model.

MMEngine's ``Runner.load_checkpoint`` (used by ``load_from``, ``--resume``
and ``tools/test.py CONFIG CKPT``) loads with ``strict=False`` and only logs
the differences, so a checkpoint from another config evaluates a half-random
model with exit code 0. :class:`CheckpointMatchHook` checks the loaded state
dict against the model in ``after_load_checkpoint``, i.e. after the file is
read and before a single weight is copied, and raises
:class:`CheckpointMismatchError` naming the first mismatched keys with both
shapes.

Partial loading (fine-tuning from a checkpoint of another architecture) is
an explicit choice: ``load_from_partial = True`` in the config (or
``--cfg-options load_from_partial=True``) turns the error into a warning
that lists what is skipped.

A checkpoint that is *meant* to hold only part of the model (the released
converters write ``neck.*``/``decode_head.*``; the backbone loads from its
``pretrained`` directory) says so with
``meta['state_dict_covers'] = ['neck.', 'decode_head.']``: model keys
outside those prefixes may then be absent, everything else is checked.
"""
import re
from dataclasses import dataclass, field
from typing import Any, Dict, List, Optional, Sequence, Tuple

from mmengine.hooks import Hook
from mmengine.model import is_model_wrapper
from torch import nn

from mmrefseg.registry import HOOKS

#: Config key that allows a partial load (documented in docs/safety.md).
PARTIAL_KEY = 'load_from_partial'
#: Checkpoint ``meta`` key listing the model prefixes a partial file covers.
COVERS_KEY = 'state_dict_covers'
# Runner.load_checkpoint strips this prefix before loading (revise_keys).
_WRAPPER_PREFIX = re.compile(r'^module\.')


class CheckpointMismatchError(RuntimeError):
    """A checkpoint's keys or shapes differ from the model's."""


@dataclass
class StateDictMismatch:
    """How a state dict differs from a model.

    Attributes:
        shapes: ``(key, checkpoint shape, model shape)`` for keys in both.
        unexpected: keys only in the checkpoint.
        missing: model keys absent from the checkpoint (those outside a
            partial checkpoint's declared prefixes are not counted).
    """

    shapes: List[Tuple[str, tuple, tuple]] = field(default_factory=list)
    unexpected: List[str] = field(default_factory=list)
    missing: List[str] = field(default_factory=list)

    def __bool__(self) -> bool:
        return bool(self.shapes or self.unexpected or self.missing)

    def counts(self) -> str:
        """``'2 tensors with other shapes, 1 key only in the checkpoint'``."""
        parts = [(len(self.shapes), 'tensor with another shape',
                  'tensors with other shapes'),
                 (len(self.unexpected), 'key only in the checkpoint',
                  'keys only in the checkpoint'),
                 (len(self.missing), 'model key not in the checkpoint',
                  'model keys not in the checkpoint')]
        return ', '.join(f'{n} {one if n == 1 else many}'
                         for n, one, many in parts if n)

    def lines(self, limit: Optional[int]) -> List[str]:
        """One line per difference, at most ``limit`` of each kind."""
        out: List[str] = []
        groups = [
            ([f'{k}: checkpoint {tuple(a)} vs model {tuple(b)}'
              for k, a, b in self.shapes], 'shape'),
            (self.unexpected, 'only in checkpoint'),
            (self.missing, 'not in checkpoint'),
        ]
        for items, label in groups:
            shown = items if limit is None else items[:limit]
            out += [f'  {label}: {item}' for item in shown]
            if len(items) > len(shown):
                out.append(f'  ... and {len(items) - len(shown)} more '
                           f'({label})')
        return out


def compare_state_dict(model: nn.Module,
                       state_dict: Dict[str, Any],
                       covers: Optional[Sequence[str]] = None
                       ) -> StateDictMismatch:
    """Compare a checkpoint's state dict with a model's, key by key.

    Args:
        model: the (unwrapped) model that would receive the weights.
        state_dict: the checkpoint's state dict; a leading ``module.`` is
            stripped from its keys, as ``Runner.load_checkpoint`` does.
        covers: key prefixes a partial checkpoint declares to hold; model
            keys outside them may be missing. None: the whole model.

    Returns:
        StateDictMismatch: empty (falsy) when everything matches.
    """
    ckpt = {_WRAPPER_PREFIX.sub('', k): v for k, v in state_dict.items()}
    own = model.state_dict()
    report = StateDictMismatch()
    for key, value in ckpt.items():
        if key not in own:
            report.unexpected.append(key)
            continue
        got = getattr(value, 'shape', None)
        want = getattr(own[key], 'shape', None)
        # bitsandbytes stores each 4-bit weight's metadata as bytes of
        # text ('...quant_state.bitsandbytes__nf4'), whose length varies.
        if got is not None and want is not None and \
                tuple(got) != tuple(want) and '.quant_state.' not in key:
            report.shapes.append((key, tuple(got), tuple(want)))
    prefixes = tuple(covers) if covers else ('', )
    for key in own:
        # MMEngine's load_state_dict ignores BN counters too.
        if key not in ckpt and key.startswith(prefixes) and \
                'num_batches_tracked' not in key:
            report.missing.append(key)
    return report


def _checkpoint_source(runner) -> str:
    """The file being loaded, as far as the runner tells."""
    load_from = getattr(runner, '_load_from', None)
    if load_from:
        return str(load_from)
    if getattr(runner, '_resume', False):
        from mmengine.runner import find_latest_checkpoint
        latest = find_latest_checkpoint(runner.work_dir)
        if latest:
            return latest
    return 'The checkpoint'


@HOOKS.register_module()
class CheckpointMatchHook(Hook):
    """Fail when a loaded checkpoint does not match the model.

    Runs for ``load_from``, ``--resume`` and ``Runner.load_checkpoint``
    (all call ``after_load_checkpoint`` before copying weights). With
    ``load_from_partial=True`` in the config the mismatch is logged as a
    warning listing every skipped key instead.

    Args:
        max_listed: how many keys of each kind the error names.
    """

    # Last, so it sees the state dict after hooks that rewrite it (EMA).
    priority = 'LOWEST'

    def __init__(self, max_listed: int = 5) -> None:
        self.max_listed = max_listed

    def after_load_checkpoint(self, runner, checkpoint: dict) -> None:
        state_dict = checkpoint.get('state_dict', checkpoint)
        meta = checkpoint.get('meta')
        covers = meta.get(COVERS_KEY) if isinstance(meta, dict) else None
        model = runner.model.module if is_model_wrapper(
            runner.model) else runner.model
        report = compare_state_dict(model, state_dict, covers)
        if not report:
            return
        source = _checkpoint_source(runner)
        if runner.cfg.get(PARTIAL_KEY, False):
            runner.logger.warning(
                f'{source}: partial load ({PARTIAL_KEY}=True): '
                f'{report.counts()}. Skipped (these weights keep their '
                'initial values):\n' + '\n'.join(report.lines(None)))
            return
        raise CheckpointMismatchError(
            f'{source} does not match the model: {report.counts()}.\n' +
            '\n'.join(report.lines(self.max_listed)) +
            '\nLoading it would leave those weights at their initial values '
            '(was it trained with another config?). To fine-tune from the '
            f'keys that do match, set {PARTIAL_KEY}=True in the config or '
            f'pass --cfg-options {PARTIAL_KEY}=True; the skipped keys are '
            'then listed.')
