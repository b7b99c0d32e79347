# Copyright (c) mmrefseg contributors.
"""Rule tables for renaming state-dict keys, and strict coverage checks.

A converter is a list of :class:`Rule` (regex on the source key -> target
key template, plus an optional tensor transform that may split one source
tensor into several targets). :func:`plan_mapping` applies the rules to key
names only, so coverage is checked before any tensor is read:

* every source key matches exactly one rule or an explicit drop rule,
* every target key the model expects is produced exactly once,

and anything else raises :class:`KeyCoverageError` naming the keys.
"""
import re
from dataclasses import dataclass, field
from typing import (
    Callable,
    Dict,
    Iterable,
    List,
    Mapping,
    Optional,
    Sequence,
    Tuple,
)

import torch

# (source key, tensor) -> {target key: tensor}
Transform = Callable[[str, torch.Tensor], Dict[str, torch.Tensor]]


class KeyCoverageError(KeyError):
    """Source keys left unused, target keys left unfilled, or clashes."""

    def __str__(self) -> str:  # KeyError would repr() the message
        return str(self.args[0]) if self.args else ''


@dataclass
class Rule:
    """One renaming rule.

    Args:
        pattern: regex matched with ``fullmatch`` against the source key.
        targets: target key templates (``re`` group references like
            ``\\1`` allowed); several when ``transform`` splits a tensor.
            Empty for a drop rule.
        transform: maps ``(source_key, tensor)`` to ``{target: tensor}``
            with exactly the keys of the expanded ``targets``; default is
            identity for a single target.
        reason: why keys are dropped (drop rules only), for the report.
    """

    pattern: str
    targets: Sequence[str] = ()
    transform: Optional[Callable[..., Dict[str, torch.Tensor]]] = None
    reason: str = ''
    _regex: re.Pattern = field(init=False, repr=False)

    def __post_init__(self) -> None:
        self._regex = re.compile(self.pattern)

    @property
    def is_drop(self) -> bool:
        return not self.targets

    def match(self, key: str) -> Optional[List[str]]:
        """Expanded target keys if ``key`` matches, else None."""
        m = self._regex.fullmatch(key)
        if m is None:
            return None
        return [m.expand(t) for t in self.targets]


@dataclass
class MappingPlan:
    """Result of :func:`plan_mapping`: what happens to each source key."""

    targets: Dict[str, Tuple[Rule, List[str]]]  # source -> (rule, targets)
    dropped: Dict[str, str]  # source -> reason

    def apply(self, key: str,
              tensor: torch.Tensor) -> Dict[str, torch.Tensor]:
        """Converted tensors of one source key ({} if dropped)."""
        if key in self.dropped:
            return {}
        rule, names = self.targets[key]
        if rule.transform is None:
            return {names[0]: tensor}
        out = rule.transform(key, tensor)
        if sorted(out) != sorted(names):
            raise RuntimeError(f'Transform of {key} produced {sorted(out)}, '
                               f'expected {sorted(names)}')
        return out


def _short(keys: Iterable[str], limit: int = 20) -> str:
    keys = sorted(keys)
    text = '\n  '.join(keys[:limit])
    if len(keys) > limit:
        text += f'\n  ... and {len(keys) - limit} more'
    return '\n  ' + text


def plan_mapping(source_keys: Iterable[str], rules: Sequence[Rule],
                 expected_targets: Optional[Iterable[str]] = None,
                 what: str = 'checkpoint') -> MappingPlan:
    """Match every source key to one rule and check target coverage.

    Args:
        source_keys: all keys of the source state dict.
        rules: renaming and drop rules; the first matching rule wins.
        expected_targets: every key the target model expects; when given,
            each must be produced exactly once and nothing else may be.
        what: name used in error messages.

    Returns:
        MappingPlan: the per-key plan.

    Raises:
        KeyCoverageError: naming unmatched source keys, missing or
            unexpected target keys, or targets produced twice.
    """
    targets: Dict[str, Tuple[Rule, List[str]]] = {}
    dropped: Dict[str, str] = {}
    unmatched: List[str] = []
    produced: Dict[str, str] = {}
    clashes: List[str] = []
    for key in source_keys:
        for rule in rules:
            names = rule.match(key)
            if names is None:
                continue
            if rule.is_drop:
                dropped[key] = rule.reason
            else:
                targets[key] = (rule, names)
                for name in names:
                    if name in produced:
                        clashes.append(f'{name} (from {produced[name]} and '
                                       f'{key})')
                    produced[name] = key
            break
        else:
            unmatched.append(key)
    problems = []
    if unmatched:
        hint = ''
        if any('lora_' in k or 'base_layer' in k for k in unmatched):
            hint = ('\n(These look like unmerged LoRA weights: merge the '
                    'adapters into the base weights first.)')
        problems.append(f'{len(unmatched)} {what} keys match no conversion '
                        f'rule and are not listed as dropped:'
                        f'{_short(unmatched)}{hint}')
    if clashes:
        problems.append('target keys produced more than once:' +
                        _short(clashes))
    if expected_targets is not None:
        expected = set(expected_targets)
        missing = expected - set(produced)
        extra = set(produced) - expected
        if missing:
            problems.append(f'{len(missing)} target keys are not filled by '
                            f'the {what}:{_short(missing)}')
        if extra:
            named = [f'{name} (from {produced[name]})' for name in extra]
            problems.append(f'{len(extra)} converted keys do not exist in '
                            f'the target model:{_short(named)}')
    if problems:
        raise KeyCoverageError('Key coverage check failed for the ' + what +
                               ':\n' + '\n'.join(problems))
    return MappingPlan(targets=targets, dropped=dropped)


def check_shapes(converted: Mapping[str, Tuple[int, ...]],
                 expected: Mapping[str, Tuple[int, ...]],
                 what: str = 'checkpoint') -> None:
    """Raise naming every converted tensor whose shape differs."""
    bad = [f'{k}: {tuple(converted[k])} vs expected {tuple(expected[k])}'
           for k in converted
           if k in expected and tuple(converted[k]) != tuple(expected[k])]
    if bad:
        raise KeyCoverageError(f'Shape mismatch in the {what}:{_short(bad)}')


def mapping_table(rules: Sequence[Rule]) -> str:
    """A Markdown table of the rules (docs and ``--print-mapping``)."""
    lines = ['| source (regex) | target |', '|---|---|']
    for rule in rules:
        dest = ', '.join(f'`{t}`' for t in rule.targets) if rule.targets \
            else f'(dropped: {rule.reason})'
        # A literal '|' inside a cell would end the Markdown cell.
        cells = [c.replace('|', '\\|') for c in (rule.pattern, dest)]
        lines.append(f'| `{cells[0]}` | {cells[1]} |')
    return '\n'.join(lines)
